package amazonebs

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestLaunchTemplateData: a spot fleet's launch template carries what
// the RunInstances request would, for every option that reaches it.
func TestLaunchTemplateData(t *testing.T) {
	base := func() *types.RequestLaunchTemplateData {
		return &types.RequestLaunchTemplateData{
			ImageId: aws.String("ami-06128816a1c781a57"), KeyName: aws.String("amibake_key"),
			EbsOptimized: aws.Bool(false), SecurityGroupIds: []string{"sg-1"},
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{
				{ResourceType: types.ResourceTypeInstance, Tags: append(ownWant(), types.Tag{Key: aws.String("Kind"), Value: aws.String("spot")})},
				{ResourceType: types.ResourceTypeVolume, Tags: ownWant()},
			},
		}
	}
	tests := []struct {
		name  string
		hcl   string
		state func(*State)
		want  func(*types.RequestLaunchTemplateData)
	}{
		{"base", "", nil, func(*types.RequestLaunchTemplateData) {}},
		{"ebs_optimized", `ebs_optimized = true`, nil, func(d *types.RequestLaunchTemplateData) { d.EbsOptimized = aws.Bool(true) }},
		{"user_data", `user_data = "#!/bin/sh\necho x"`, nil, func(d *types.RequestLaunchTemplateData) {
			d.UserData = aws.String("IyEvYmluL3NoCmVjaG8geA==")
		}},
		{"iam_instance_profile", `iam_instance_profile = "builder"`, nil, func(d *types.RequestLaunchTemplateData) {
			d.IamInstanceProfile = &types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String("builder")}
		}},
		{"metadata_options", `metadata_options {
  http_endpoint = "enabled"
  http_tokens = "required"
  http_put_response_hop_limit = 3
  instance_metadata_tags = "disabled"
}`, nil, func(d *types.RequestLaunchTemplateData) {
			d.MetadataOptions = &types.LaunchTemplateInstanceMetadataOptionsRequest{HttpEndpoint: "enabled", HttpTokens: "required",
				HttpPutResponseHopLimit: aws.Int32(3), InstanceMetadataTags: "disabled"}
		}},
		{"launch_block_device_mappings", `launch_block_device_mappings {
  device_name = "/dev/sdf"
  volume_type = "gp3"
  volume_size = 8
  throughput = 200
  iops = 3000
  encrypted = true
  kms_key_id = "alias/k"
  snapshot_id = "snap-1"
}
launch_block_device_mappings {
  device_name = "/dev/sdb"
  no_device = true
}
launch_block_device_mappings {
  device_name = "/dev/sdc"
  virtual_name = "ephemeral0"
}`, nil, func(d *types.RequestLaunchTemplateData) {
			d.BlockDeviceMappings = []types.LaunchTemplateBlockDeviceMappingRequest{
				{DeviceName: aws.String("/dev/sdf"), Ebs: &types.LaunchTemplateEbsBlockDeviceRequest{DeleteOnTermination: aws.Bool(false),
					Encrypted: aws.Bool(true), Iops: aws.Int32(3000), KmsKeyId: aws.String("alias/k"), SnapshotId: aws.String("snap-1"),
					Throughput: aws.Int32(200), VolumeSize: aws.Int32(8), VolumeType: types.VolumeTypeGp3}},
				{DeviceName: aws.String("/dev/sdb"), NoDevice: aws.String("")},
				{DeviceName: aws.String("/dev/sdc"), VirtualName: aws.String("ephemeral0")},
			}
		}},
		{"run_tags and run_volume_tags (no network interface tags in a template)", `run_tags = { Team = "a" }
run_volume_tags = { Vol = "v" }`, nil, func(d *types.RequestLaunchTemplateData) {
			d.TagSpecifications[0].Tags = append(ownWant("Team", "a"), types.Tag{Key: aws.String("Kind"), Value: aws.String("spot")})
			d.TagSpecifications[1].Tags = ownWant("Vol", "v")
		}},
		{"associate_public_ip_address", `associate_public_ip_address = true
subnet_id = "subnet-1"`, func(s *State) { s.SubnetID = "subnet-1" }, func(d *types.RequestLaunchTemplateData) {
			d.SecurityGroupIds = nil
			d.NetworkInterfaces = []types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{{DeviceIndex: aws.Int32(0),
				AssociatePublicIpAddress: aws.Bool(true), DeleteOnTermination: aws.Bool(true), Groups: []string{"sg-1"}, SubnetId: aws.String("subnet-1")}}
		}},
		{"placement", `placement {
  tenancy = "dedicated"
  host_id = "h-1"
}`, nil, func(d *types.RequestLaunchTemplateData) {
			d.Placement = &types.LaunchTemplatePlacementRequest{Tenancy: types.TenancyDedicated, HostId: aws.String("h-1")}
		}},
		{"availability_zone alone: the fleet's subnet decides", `availability_zone = "ap-northeast-1a"`, func(s *State) { s.AZ = "ap-northeast-1a" }, func(*types.RequestLaunchTemplateData) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, "spot_price = \"auto\"\nspot_tags = { Kind = \"spot\" }\n"+tt.hcl)
			if tt.state != nil {
				tt.state(s)
			}
			want := base()
			tt.want(want)
			sameRequest(t, launchTemplateData(launchInput(t, s)), want)
		})
	}
}

// TestCreateFleetInput: the fleet's own options (spot_price,
// spot_instance_types, spot_allocation_strategy, fleet_tags) and the
// subnet.
func TestCreateFleetInput(t *testing.T) {
	override := func(typ string, prio float64) types.FleetLaunchTemplateOverridesRequest {
		return types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(typ), Priority: aws.Float64(prio)}
	}
	base := func() *ec2.CreateFleetInput {
		return &ec2.CreateFleetInput{
			Type: types.FleetTypeInstant, ClientToken: aws.String("token-1"),
			TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
				TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
			LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
				LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String("lt-1"), Version: aws.String("$Latest")},
				Overrides:                   []types.FleetLaunchTemplateOverridesRequest{override("t2.micro", 0)},
			}},
			SpotOptions:       &types.SpotOptionsRequest{AllocationStrategy: types.SpotAllocationStrategyPriceCapacityOptimized},
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeFleet, Tags: ownWant()}},
		}
	}
	tests := []struct {
		name, hcl, subnet, az string
		want                  func(*ec2.CreateFleetInput)
	}{
		{"spot_price auto: no maximum", `spot_price = "auto"`, "", "", func(*ec2.CreateFleetInput) {}},
		{"spot_price: the maximum", `spot_price = "0.05"`, "", "", func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].MaxPrice = aws.String("0.05")
		}},
		{"spot_instance_types: in order of priority", `spot_instance_types = ["t3a.micro", "t3.micro"]`, "", "", func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides = []types.FleetLaunchTemplateOverridesRequest{override("t3a.micro", 0), override("t3.micro", 1)}
		}},
		{"spot_allocation_strategy", `spot_price = "auto"
spot_allocation_strategy = "capacity-optimized"`, "", "", func(in *ec2.CreateFleetInput) {
			in.SpotOptions.AllocationStrategy = types.SpotAllocationStrategyCapacityOptimized
		}},
		{"fleet_tags", `spot_price = "auto"
fleet_tags = { Fleet = "yes" }`, "", "", func(in *ec2.CreateFleetInput) {
			in.TagSpecifications[0].Tags = ownWant("Fleet", "yes")
		}},
		{"subnet", `spot_price = "auto"`, "subnet-1", "", func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].SubnetId = aws.String("subnet-1")
		}},
		{"availability_zone without a subnet", `spot_price = "auto"
availability_zone = "ap-northeast-1c"`, "", "ap-northeast-1c", func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].AvailabilityZone = aws.String("ap-northeast-1c")
		}},
		{"a subnet decides the zone", `spot_price = "auto"`, "subnet-1", "ap-northeast-1c", func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].SubnetId = aws.String("subnet-1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, tt.hcl)
			fleetTags, err := s.renderTags("fleet_tags", s.Config.Parsed.FleetTags)
			if err != nil {
				t.Fatal(err)
			}
			want := base()
			tt.want(want)
			sameRequest(t, createFleetInput(s.Config, "lt-1", "token-1", tt.subnet, tt.az, s.ownTags(), fleetTags), want)
		})
	}
}

func TestCreateLaunchTemplateInput(t *testing.T) {
	data := &types.RequestLaunchTemplateData{ImageId: aws.String("ami-1")}
	want := &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("amibake_x"), LaunchTemplateData: data, ClientToken: aws.String("token-1-lt"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: ownWant()}},
	}
	s := reqState(t, "")
	sameRequest(t, createLaunchTemplateInput("amibake_x", "token-1", data, s.ownTags()), want)
}
