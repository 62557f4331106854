package amazonebs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/template"
)

// reqBase is the smallest configuration the request tests add options to;
// reqState adds instance_type = "t2.micro" unless they set an instance type.
const reqBase = `
region        = "ap-northeast-1"
source_ami    = "ami-06128816a1c781a57"
ssh_username  = "root"
ami_name      = "hello"
`

var reqNow = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// ownWant are amibake's own tags on a resource of the request tests' State.
func ownWant(user ...string) []types.Tag {
	m := map[string]string{"amibake:run-id": "run-1", "amibake:build": "amazon-ebs", "amibake:created-at": "2026-12-02T10:00:00Z", "amibake:lease-until": "2026-12-02T10:15:00Z"}
	for i := 0; i+1 < len(user); i += 2 {
		m[user[i]] = user[i+1]
	}
	return ec2Tags(m)
}

// reqState is the State the steps before the launch leave for reqBase plus
// hcl: the source AMI, a temporary key pair and security group, no subnet.
func reqState(t *testing.T, hcl string) *State {
	t.Helper()
	if !strings.Contains(hcl, "instance_type") {
		hcl += "\ninstance_type = \"t2.micro\"\n"
	}
	c := mustConfig(t, reqBase+hcl)
	return &State{
		Config: c, Region: c.Region, RunID: "run-1", BuildName: "amazon-ebs",
		Now:         func() time.Time { return reqNow },
		SourceImage: &types.Image{ImageId: aws.String("ami-06128816a1c781a57"), Name: aws.String("src-name")},
		BuildTime:   template.BuildTimeData{SourceAMI: "ami-06128816a1c781a57", SourceAMIName: "src-name", BuildRegion: c.Region},
		KeyName:     "amibake_key", SecurityGroupIDs: []string{"sg-1"},
	}
}

// launchInput is the RunInstances request stepLaunch sends for s.
func launchInput(t *testing.T, s *State) *ec2.RunInstancesInput {
	t.Helper()
	l, err := (&stepLaunch{token: "token-1"}).launchState(s)
	if err != nil {
		t.Fatal(err)
	}
	return runInstancesInput(s.Config, l)
}

// baseRunInstances is what reqBase launches with.
func baseRunInstances() *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId: aws.String("ami-06128816a1c781a57"), InstanceType: "t2.micro",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), EbsOptimized: aws.Bool(false),
		ClientToken: aws.String("token-1"), KeyName: aws.String("amibake_key"),
		SecurityGroupIds:                  []string{"sg-1"},
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop,
		BlockDeviceMappings:               []types.BlockDeviceMapping{},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: ownWant()},
			{ResourceType: types.ResourceTypeNetworkInterface, Tags: ownWant()},
			{ResourceType: types.ResourceTypeVolume, Tags: ownWant()},
		},
	}
}

// sameRequest compares two requests field by field (as JSON, which shows
// a difference readably).
func sameRequest(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("request differs\n got: %s\nwant: %s", g, w)
	}
}

// TestRunInstancesInput has a row for every option that reaches
// RunInstances: each sets it and says which fields change from the base.
func TestRunInstancesInput(t *testing.T) {
	userDataFile := filepath.Join(t.TempDir(), "ud.sh")
	if err := os.WriteFile(userDataFile, []byte("#!/bin/sh\necho file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		hcl   string
		state func(*State) // what an earlier step found
		want  func(*ec2.RunInstancesInput)
	}{
		{"base", "", nil, func(*ec2.RunInstancesInput) {}},
		{"instance_type", `instance_type = "t3.large"`, nil, func(in *ec2.RunInstancesInput) { in.InstanceType = "t3.large" }},
		{"ebs_optimized", `ebs_optimized = true`, nil, func(in *ec2.RunInstancesInput) { in.EbsOptimized = aws.Bool(true) }},
		{"shutdown_behavior", `shutdown_behavior = "terminate"`, nil, func(in *ec2.RunInstancesInput) {
			in.InstanceInitiatedShutdownBehavior = types.ShutdownBehaviorTerminate
		}},
		{"run_tags: instance and network interface, rendered", `run_tags = { Team = "{{ .SourceAMIName }}" }`, nil, func(in *ec2.RunInstancesInput) {
			in.TagSpecifications[0].Tags = ownWant("Team", "src-name")
			in.TagSpecifications[1].Tags = ownWant("Team", "src-name")
		}},
		{"run_tag blocks", "run_tag {\n key = \"K\"\n value = \"V\"\n}", nil, func(in *ec2.RunInstancesInput) {
			in.TagSpecifications[0].Tags = ownWant("K", "V")
			in.TagSpecifications[1].Tags = ownWant("K", "V")
		}},
		{"run_tags cannot override amibake's", `run_tags = { "amibake:run-id" = "forged" }`, nil, func(*ec2.RunInstancesInput) {}},
		{"run_volume_tags: volumes", `run_volume_tags = { Vol = "run" }`, nil, func(in *ec2.RunInstancesInput) {
			in.TagSpecifications[2].Tags = ownWant("Vol", "run")
		}},
		{"launch_block_device_mappings: ebs", `launch_block_device_mappings {
  device_name = "/dev/sdf"
  volume_type = "gp3"
  volume_size = 20
  iops = 4000
  throughput = 250
  encrypted = true
  kms_key_id = "alias/k"
  snapshot_id = "snap-1"
  delete_on_termination = true
}`, nil, func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{
				DeleteOnTermination: aws.Bool(true), VolumeType: types.VolumeTypeGp3, VolumeSize: aws.Int32(20),
				Iops: aws.Int32(4000), Throughput: aws.Int32(250), Encrypted: aws.Bool(true),
				KmsKeyId: aws.String("alias/k"), SnapshotId: aws.String("snap-1"),
			}}}
		}},
		{"launch_block_device_mappings: delete_on_termination false is sent", `launch_block_device_mappings {
  device_name = "/dev/sdg"
  volume_size = 5
}`, nil, func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdg"), Ebs: &types.EbsBlockDevice{
				DeleteOnTermination: aws.Bool(false), VolumeSize: aws.Int32(5)}}}
		}},
		{"launch_block_device_mappings: no_device", `launch_block_device_mappings {
  device_name = "/dev/sdb"
  no_device = true
}`, nil, func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdb"), NoDevice: aws.String("")}}
		}},
		{"launch_block_device_mappings: virtual_name", `launch_block_device_mappings {
  device_name = "/dev/sdc"
  virtual_name = "ephemeral0"
}`, nil, func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdc"), VirtualName: aws.String("ephemeral0")}}
		}},
		{"user_data: base64", `user_data = "#!/bin/sh\necho x"`, nil, func(in *ec2.RunInstancesInput) {
			in.UserData = aws.String("IyEvYmluL3NoCmVjaG8geA==") // Packer's, tags-no-ami-users
		}},
		{"user_data_file: its content", `user_data_file = "` + userDataFile + `"`, nil, func(in *ec2.RunInstancesInput) {
			in.UserData = aws.String("IyEvYmluL3NoCmVjaG8gZmlsZQo=")
		}},
		{"iam_instance_profile: name", `iam_instance_profile = "builder"`, nil, func(in *ec2.RunInstancesInput) {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String("builder")}
		}},
		{"iam_instance_profile: ARN", `iam_instance_profile = "arn:aws:iam::111122223333:instance-profile/builder"`, nil, func(in *ec2.RunInstancesInput) {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::111122223333:instance-profile/builder")}
		}},
		{"metadata_options", `metadata_options {
  http_endpoint = "enabled"
  http_tokens = "required"
  http_put_response_hop_limit = 2
  instance_metadata_tags = "enabled"
}`, nil, func(in *ec2.RunInstancesInput) {
			in.MetadataOptions = &types.InstanceMetadataOptionsRequest{HttpEndpoint: "enabled", HttpTokens: "required",
				HttpPutResponseHopLimit: aws.Int32(2), InstanceMetadataTags: "enabled"}
		}},
		{"availability_zone (stepNetwork copies it)", `availability_zone = "ap-northeast-1a"`, func(s *State) { s.AZ = s.Config.AvailabilityZone }, func(in *ec2.RunInstancesInput) {
			in.Placement = &types.Placement{AvailabilityZone: aws.String("ap-northeast-1a")}
		}},
		{"tenancy", `tenancy = "dedicated"`, nil, func(in *ec2.RunInstancesInput) {
			in.Placement = &types.Placement{Tenancy: types.TenancyDedicated}
		}},
		{"placement block, whose tenancy wins", `tenancy = "dedicated"
placement {
  tenancy = "host"
  host_id = "h-1"
  host_resource_group_arn = "arn:aws:resource-groups:ap-northeast-1:111122223333:group/hosts"
}`, nil, func(in *ec2.RunInstancesInput) {
			in.Placement = &types.Placement{Tenancy: types.TenancyHost, HostId: aws.String("h-1"),
				HostResourceGroupArn: aws.String("arn:aws:resource-groups:ap-northeast-1:111122223333:group/hosts")}
		}},
		{"enable_unlimited_credits", `enable_unlimited_credits = true`, nil, func(in *ec2.RunInstancesInput) {
			in.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: aws.String("unlimited")}
		}},
		{"enable_t2_unlimited", `enable_t2_unlimited = true`, nil, func(in *ec2.RunInstancesInput) {
			in.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: aws.String("unlimited")}
		}},
		{"enable_nitro_enclave", `enable_nitro_enclave = true`, nil, func(in *ec2.RunInstancesInput) {
			in.EnclaveOptions = &types.EnclaveOptionsRequest{Enabled: aws.Bool(true)}
		}},
		{"capacity_reservation_preference", `capacity_reservation_preference = "open"`, nil, func(in *ec2.RunInstancesInput) {
			in.CapacityReservationSpecification = &types.CapacityReservationSpecification{CapacityReservationPreference: types.CapacityReservationPreferenceOpen}
		}},
		{"capacity_reservation_id", `capacity_reservation_id = "cr-1"`, nil, func(in *ec2.RunInstancesInput) {
			in.CapacityReservationSpecification = &types.CapacityReservationSpecification{
				CapacityReservationTarget: &types.CapacityReservationTarget{CapacityReservationId: aws.String("cr-1")}}
		}},
		{"capacity_reservation_group_arn", `capacity_reservation_group_arn = "arn:aws:resource-groups:ap-northeast-1:111122223333:group/cr"`, nil, func(in *ec2.RunInstancesInput) {
			in.CapacityReservationSpecification = &types.CapacityReservationSpecification{
				CapacityReservationTarget: &types.CapacityReservationTarget{CapacityReservationResourceGroupArn: aws.String("arn:aws:resource-groups:ap-northeast-1:111122223333:group/cr")}}
		}},
		{"license_specifications", `license_specifications {
  license_configuration_request {
    license_configuration_arn = "arn:aws:license-manager:ap-northeast-1:111122223333:license-configuration:lic-1"
  }
}`, nil, func(in *ec2.RunInstancesInput) {
			in.LicenseSpecifications = []types.LicenseConfigurationRequest{{LicenseConfigurationArn: aws.String("arn:aws:license-manager:ap-northeast-1:111122223333:license-configuration:lic-1")}}
		}},
		{"subnet_id (stepNetwork copies it)", `subnet_id = "subnet-1"`, func(s *State) { s.SubnetID = s.Config.SubnetID }, func(in *ec2.RunInstancesInput) {
			in.SubnetId = aws.String("subnet-1")
		}},
		{"security_group_ids (stepSecurityGroup copies them)", `security_group_ids = ["sg-a", "sg-b"]`, func(s *State) { s.SecurityGroupIDs = s.Config.SecurityGroupIDs }, func(in *ec2.RunInstancesInput) {
			in.SecurityGroupIds = []string{"sg-a", "sg-b"}
		}},
		{"ssh_keypair_name (stepKeyPair copies it)", `ssh_keypair_name = "mine"
ssh_agent_auth = true`, func(s *State) { s.KeyName = s.Config.SSHKeyPairName }, func(in *ec2.RunInstancesInput) {
			in.KeyName = aws.String("mine")
		}},
		{"associate_public_ip_address: a network interface with the groups and subnet", `associate_public_ip_address = true
subnet_id = "subnet-1"`, func(s *State) { s.SubnetID = s.Config.SubnetID }, func(in *ec2.RunInstancesInput) {
			in.SecurityGroupIds = nil
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), AssociatePublicIpAddress: aws.Bool(true),
				DeleteOnTermination: aws.Bool(true), Groups: []string{"sg-1"}, SubnetId: aws.String("subnet-1")}}
		}},
		{"associate_public_ip_address false", `associate_public_ip_address = false`, nil, func(in *ec2.RunInstancesInput) {
			in.SecurityGroupIds = nil
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), AssociatePublicIpAddress: aws.Bool(false),
				DeleteOnTermination: aws.Bool(true), Groups: []string{"sg-1"}}}
		}},
		{"spot_tags: on the spot instance only", `spot_price = "auto"
spot_tags = { Kind = "spot" }
run_tags = { Team = "a" }`, nil, func(in *ec2.RunInstancesInput) {
			in.TagSpecifications[0].Tags = append(ownWant("Team", "a"), types.Tag{Key: aws.String("Kind"), Value: aws.String("spot")})
			in.TagSpecifications[1].Tags = ownWant("Team", "a")
		}},
		{"spot_tags: left out of an on-demand launch", `spot_tags = { Kind = "spot" }`, nil, func(*ec2.RunInstancesInput) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, tt.hcl)
			if tt.state != nil {
				tt.state(s)
			}
			want := baseRunInstances()
			tt.want(want)
			sameRequest(t, launchInput(t, s), want)
		})
	}
}
