package amazonebs

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	gossh "golang.org/x/crypto/ssh"
)

func TestCreateImageInput(t *testing.T) {
	specs := []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ownWant()}}
	base := func() *ec2.CreateImageInput {
		return &ec2.CreateImageInput{InstanceId: aws.String("i-1"), Name: aws.String("hello"),
			BlockDeviceMappings: []types.BlockDeviceMapping{}, TagSpecifications: specs}
	}
	tests := []struct {
		name, hcl, desc string
		want            func(*ec2.CreateImageInput)
	}{
		{"base", "", "", func(*ec2.CreateImageInput) {}},
		{"ami_description (rendered by the step)", `ami_description = "built from {{ .SourceAMIName }}"`, "built from src-name", func(in *ec2.CreateImageInput) {
			in.Description = aws.String("built from src-name")
		}},
		{"disable_stop_instance: no reboot", `disable_stop_instance = true`, "", func(in *ec2.CreateImageInput) { in.NoReboot = aws.Bool(true) }},
		{"ami_block_device_mappings", `ami_block_device_mappings {
  device_name = "/dev/sdf"
  volume_type = "io2"
  volume_size = 30
  iops = 5000
  delete_on_termination = true
}`, "", func(in *ec2.CreateImageInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{
				DeleteOnTermination: aws.Bool(true), VolumeType: types.VolumeTypeIo2, VolumeSize: aws.Int32(30), Iops: aws.Int32(5000)}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, tt.hcl)
			desc, err := s.description()
			if err != nil || desc != tt.desc {
				t.Fatalf("description = %q, %v; want %q", desc, err, tt.desc)
			}
			want := base()
			tt.want(want)
			sameRequest(t, createImageInput(s.Config, "i-1", "hello", desc, specs), want)
		})
	}
}

// TestImageTagSpecsFromConfig: run_tags reach CreateImage's image and
// snapshot specifications unless skip_ami_run_tags.
func TestImageTagSpecsFromConfig(t *testing.T) {
	tests := []struct {
		name, hcl string
		want      []types.TagSpecification
	}{
		{"none", "", []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ownWant()}}},
		{"run_tags", `run_tags = { Team = "{{ .SourceAMIName }}" }`, []types.TagSpecification{
			{ResourceType: types.ResourceTypeImage, Tags: ownWant("Team", "src-name")},
			{ResourceType: types.ResourceTypeSnapshot, Tags: ec2Tags(map[string]string{"Team": "src-name"})},
		}},
		{"skip_ami_run_tags", "run_tags = { Team = \"a\" }\nskip_ami_run_tags = true", []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ownWant()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reqState(t, tt.hcl).imageTagSpecs()
			if err != nil {
				t.Fatal(err)
			}
			sameRequest(t, got, tt.want)
		})
	}
}

func TestCopyImageInput(t *testing.T) {
	own := map[string]string{"amibake:run-id": "run-1"}
	base := func(region string) *ec2.CopyImageInput {
		return &ec2.CopyImageInput{SourceImageId: aws.String("ami-1"), SourceRegion: aws.String("ap-northeast-1"),
			Name: aws.String("hello"), ClientToken: aws.String("tok"), CopyImageTags: aws.Bool(true),
			TagSpecifications: copyTagSpecs(own)}
	}
	tests := []struct {
		name, hcl, region, desc string
		want                    func(*ec2.CopyImageInput)
	}{
		{"ami_regions: a plain copy", `ami_regions = ["us-west-2"]`, "us-west-2", "", func(*ec2.CopyImageInput) {}},
		{"ami_description", "ami_regions = [\"us-west-2\"]\nami_description = \"d\"", "us-west-2", "d", func(in *ec2.CopyImageInput) {
			in.Description = aws.String("d")
		}},
		{"encrypt_boot: encrypted copies with the default key", "ami_regions = [\"us-west-2\"]\nencrypt_boot = true", "us-west-2", "", func(in *ec2.CopyImageInput) {
			in.Encrypted = aws.Bool(true)
		}},
		{"region_kms_key_ids: that region's key", "ami_regions = [\"us-west-2\"]\nregion_kms_key_ids = { us-west-2 = \"alias/west\" }", "us-west-2", "", func(in *ec2.CopyImageInput) {
			in.Encrypted, in.KmsKeyId = aws.Bool(true), aws.String("alias/west")
		}},
		{"kms_key_id is the build region's only", "ami_regions = [\"us-west-2\"]\nencrypt_boot = true\nkms_key_id = \"alias/build\"", "us-west-2", "", func(in *ec2.CopyImageInput) {
			in.Encrypted = aws.Bool(true)
		}},
		{"encrypt_boot in the build region", "encrypt_boot = true", "ap-northeast-1", "", func(in *ec2.CopyImageInput) {
			in.Encrypted = aws.Bool(true)
		}},
		{"encrypt_boot with kms_key_id in the build region", "encrypt_boot = true\nkms_key_id = \"alias/build\"", "ap-northeast-1", "", func(in *ec2.CopyImageInput) {
			in.Encrypted, in.KmsKeyId = aws.Bool(true), aws.String("alias/build")
		}},
		{"encrypt_boot with region_kms_key_ids for the build region", "encrypt_boot = true\nregion_kms_key_ids = { ap-northeast-1 = \"alias/here\" }", "ap-northeast-1", "", func(in *ec2.CopyImageInput) {
			in.Encrypted, in.KmsKeyId = aws.Bool(true), aws.String("alias/here")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, tt.hcl)
			want := base(tt.region)
			tt.want(want)
			got := copyImageInput(s.Config, imageCopy{SourceID: "ami-1", SourceRegion: "ap-northeast-1", Region: tt.region,
				Name: "hello", Description: tt.desc, Token: "tok", Own: own})
			sameRequest(t, got, want)
		})
	}
}

func TestRegisterImageInput(t *testing.T) {
	spec := types.TagSpecification{ResourceType: types.ResourceTypeImage, Tags: ownWant()}
	snaps := []deviceSnapshot{{Device: "/dev/xvda", SnapshotID: "snap-1"}}
	src := &types.Image{Architecture: types.ArchitectureValuesArm64, BootMode: types.BootModeValuesUefi, EnaSupport: aws.Bool(true)}
	base := func() *ec2.RegisterImageInput {
		return &ec2.RegisterImageInput{
			Name: aws.String("hello"), Architecture: types.ArchitectureValuesArm64, BootMode: types.BootModeValuesUefi,
			RootDeviceName: aws.String("/dev/xvda"), VirtualizationType: aws.String("hvm"), EnaSupport: aws.Bool(true),
			TagSpecifications: []types.TagSpecification{spec},
			BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"),
				Ebs: &types.EbsBlockDevice{SnapshotId: aws.String("snap-1"), DeleteOnTermination: aws.Bool(true)}}},
		}
	}
	tests := []struct {
		name, hcl, desc string
		want            func(*ec2.RegisterImageInput)
	}{
		{"base: the source's architecture, boot mode and ENA", "ami_from_snapshot = true", "", func(*ec2.RegisterImageInput) {}},
		{"ami_description", "ami_from_snapshot = true\nami_description = \"d\"", "d", func(in *ec2.RegisterImageInput) { in.Description = aws.String("d") }},
		{"ami_virtualization_type", "ami_from_snapshot = true\nami_virtualization_type = \"paravirtual\"", "", func(in *ec2.RegisterImageInput) {
			in.VirtualizationType = aws.String("paravirtual")
		}},
		{"ena_support false wins over the source's", "ami_from_snapshot = true\nena_support = false", "", func(in *ec2.RegisterImageInput) { in.EnaSupport = aws.Bool(false) }},
		{"sriov_support", "ami_from_snapshot = true\nsriov_support = true", "", func(in *ec2.RegisterImageInput) { in.SriovNetSupport = aws.String("simple") }},
		{"imds_support", "ami_from_snapshot = true\nimds_support = \"v2.0\"", "", func(in *ec2.RegisterImageInput) { in.ImdsSupport = types.ImdsSupportValuesV20 }},
		{"ami_block_device_mappings after the snapshots", "ami_from_snapshot = true\nami_block_device_mappings {\n device_name = \"/dev/sdb\"\n no_device = true\n}", "", func(in *ec2.RegisterImageInput) {
			in.BlockDeviceMappings = append(in.BlockDeviceMappings, types.BlockDeviceMapping{DeviceName: aws.String("/dev/sdb"), NoDevice: aws.String("")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := reqState(t, tt.hcl)
			want := base()
			tt.want(want)
			sameRequest(t, registerImageInput(s.Config, src, aws.String("/dev/xvda"), "hello", tt.desc, spec, snaps), want)
		})
	}
}

func TestCreateSnapshotInput(t *testing.T) {
	spec := types.TagSpecification{ResourceType: types.ResourceTypeSnapshot, Tags: ownWant()}
	sameRequest(t, createSnapshotInput("vol-1", "/dev/xvda", "i-1", "hello", spec), &ec2.CreateSnapshotInput{
		VolumeId: aws.String("vol-1"), Description: aws.String("/dev/xvda of i-1 for AMI hello"),
		TagSpecifications: []types.TagSpecification{spec}})
}

// TestShareInputs: ami_users, ami_groups, ami_org_arns, ami_ou_arns,
// snapshot_users, snapshot_groups, deprecate_at and imds_support.
func TestShareInputs(t *testing.T) {
	type inputs struct {
		Launch    *ec2.ModifyImageAttributeInput
		Volume    *ec2.ModifySnapshotAttributeInput
		Deprecate *ec2.EnableImageDeprecationInput
		IMDS      *ec2.ModifyImageAttributeInput
	}
	launch := func(p ...types.LaunchPermission) *ec2.ModifyImageAttributeInput {
		return &ec2.ModifyImageAttributeInput{ImageId: aws.String("ami-1"), LaunchPermission: &types.LaunchPermissionModifications{Add: p}}
	}
	volume := func(p ...types.CreateVolumePermission) *ec2.ModifySnapshotAttributeInput {
		return &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String("snap-1"), CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: p}}
	}
	tests := []struct {
		name, hcl string
		want      inputs
	}{
		{"none", "", inputs{}},
		{"ami_users", `ami_users = ["111122223333", "444455556666"]`, inputs{Launch: launch(
			types.LaunchPermission{UserId: aws.String("111122223333")}, types.LaunchPermission{UserId: aws.String("444455556666")})}},
		{"ami_groups", `ami_groups = ["all"]`, inputs{Launch: launch(types.LaunchPermission{Group: types.PermissionGroupAll})}},
		{"ami_org_arns", `ami_org_arns = ["arn:aws:organizations::111122223333:organization/o-1"]`, inputs{Launch: launch(
			types.LaunchPermission{OrganizationArn: aws.String("arn:aws:organizations::111122223333:organization/o-1")})}},
		{"ami_ou_arns", `ami_ou_arns = ["arn:aws:organizations::111122223333:ou/o-1/ou-1"]`, inputs{Launch: launch(
			types.LaunchPermission{OrganizationalUnitArn: aws.String("arn:aws:organizations::111122223333:ou/o-1/ou-1")})}},
		{"snapshot_users", `snapshot_users = ["111122223333"]`, inputs{Volume: volume(types.CreateVolumePermission{UserId: aws.String("111122223333")})}},
		{"snapshot_groups", `snapshot_groups = ["all"]`, inputs{Volume: volume(types.CreateVolumePermission{Group: types.PermissionGroupAll})}},
		{"deprecate_at", `deprecate_at = "2030-01-02T03:04:05Z"`, inputs{Deprecate: &ec2.EnableImageDeprecationInput{
			ImageId: aws.String("ami-1"), DeprecateAt: aws.Time(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))}}},
		{"imds_support", `imds_support = "v2.0"`, inputs{IMDS: &ec2.ModifyImageAttributeInput{ImageId: aws.String("ami-1"),
			ImdsSupport: &types.AttributeValue{Value: aws.String("v2.0")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := reqState(t, tt.hcl).Config
			got := inputs{launchPermissionInput(c, "ami-1"), createVolumePermissionInput(c, "snap-1"), deprecationInput(c, "ami-1"), imdsSupportInput(c, "ami-1")}
			sameRequest(t, got, tt.want)
		})
	}
}

func TestInstanceRequests(t *testing.T) {
	sameRequest(t, stopInstancesInput("i-1"), &ec2.StopInstancesInput{InstanceIds: []string{"i-1"}})
	tests := []struct {
		name, hcl string
		want      []*ec2.ModifyInstanceAttributeInput
	}{
		{"none", "", nil},
		{"ena_support", `ena_support = true`, []*ec2.ModifyInstanceAttributeInput{{InstanceId: aws.String("i-1"), EnaSupport: &types.AttributeBooleanValue{Value: aws.Bool(true)}}}},
		{"ena_support false", `ena_support = false`, []*ec2.ModifyInstanceAttributeInput{{InstanceId: aws.String("i-1"), EnaSupport: &types.AttributeBooleanValue{Value: aws.Bool(false)}}}},
		{"sriov_support", `sriov_support = true`, []*ec2.ModifyInstanceAttributeInput{{InstanceId: aws.String("i-1"), SriovNetSupport: &types.AttributeValue{Value: aws.String("simple")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameRequest(t, instanceAttributeInputs(reqState(t, tt.hcl).Config, "i-1"), tt.want)
		})
	}
}

func TestSecurityGroupRequests(t *testing.T) {
	spec := types.TagSpecification{ResourceType: types.ResourceTypeSecurityGroup, Tags: ownWant("Team", "a")}
	sameRequest(t, createSecurityGroupInput("amibake_x", "amazon-ebs", "vpc-1", spec), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("amibake_x"), Description: aws.String("Temporary group for amibake build amazon-ebs"),
		VpcId: aws.String("vpc-1"), TagSpecifications: []types.TagSpecification{spec}})
	sameRequest(t, createSecurityGroupInput("amibake_x", "b", "", spec).VpcId, (*string)(nil))

	tests := []struct {
		name  string
		port  int
		cidrs []string
		want  types.IpPermission
	}{
		{"ssh_port and IPv4 sources", 2222, []string{"203.0.113.7/32", "10.0.0.0/16"}, types.IpPermission{IpProtocol: aws.String("tcp"),
			FromPort: aws.Int32(2222), ToPort: aws.Int32(2222),
			IpRanges: []types.IpRange{{CidrIp: aws.String("203.0.113.7/32")}, {CidrIp: aws.String("10.0.0.0/16")}}}},
		{"IPv6 sources", 22, []string{"2001:db8::1/128"}, types.IpPermission{IpProtocol: aws.String("tcp"),
			FromPort: aws.Int32(22), ToPort: aws.Int32(22), Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::1/128")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameRequest(t, authorizeIngressInput("sg-1", tt.port, tt.cidrs), &ec2.AuthorizeSecurityGroupIngressInput{
				GroupId: aws.String("sg-1"), IpPermissions: []types.IpPermission{tt.want}})
		})
	}
}

func TestLookupRequests(t *testing.T) {
	s := reqState(t, `security_group_filter {
  filters = { "tag:Role" = "build" }
}
subnet_filter {
  filters = { "tag:Tier" = "build" }
}`)
	f := func(name, value string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: []string{value}}
	}
	sameRequest(t, securityGroupFilterInput(s.Config, "vpc-1"), &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{f("tag:Role", "build"), f("vpc-id", "vpc-1")}})
	sameRequest(t, securityGroupFilterInput(s.Config, ""), &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{f("tag:Role", "build")}})
	sameRequest(t, describeSubnetsInput(s.Config, "", "vpc-1", "ap-northeast-1a"), &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		f("tag:Tier", "build"), f("vpc-id", "vpc-1"), f("availability-zone", "ap-northeast-1a")}})
	sameRequest(t, describeSubnetsInput(s.Config, "subnet-1", "vpc-1", ""), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-1"}})
}

func TestImportKeyPairInput(t *testing.T) {
	pub, _, err := generateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	spec := types.TagSpecification{ResourceType: types.ResourceTypeKeyPair, Tags: ownWant()}
	sameRequest(t, importKeyPairInput("amibake_k", pub, spec), &ec2.ImportKeyPairInput{
		KeyName: aws.String("amibake_k"), PublicKeyMaterial: gossh.MarshalAuthorizedKey(pub), TagSpecifications: []types.TagSpecification{spec}})
}
