package amazonebs

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/provisioner"
)

// These builds use communicator = "none", so that the whole pipeline runs
// against an API-only simulator (no sshd, no root).
const noComm = `
region        = "eu-west-1"
instance_type = "t3.micro"
communicator  = "none"
source_ami_filter {
  filters     = { name = "debian-12-amd64-*" }
  owners      = ["136693071363"]
  most_recent = true
}
`

func describeImage(t *testing.T, st *State, region, id string) types.Image {
	t.Helper()
	out, err := st.ec2(region).DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("describe %s: %v", id, err)
	}
	return out.Images[0]
}

// whileRunning is what a test saw of the instance while it ran.
type whileRunning struct{ cpuCredits string }

func TestPipelineImageOptions(t *testing.T) {
	srv := apiSim(t)
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, st *State, log string, seen whileRunning)
	}{
		{"ami_from_snapshot", `ami_name = "from-snap"
ami_from_snapshot = true`, func(t *testing.T, st *State, log string, seen whileRunning) {
			im := describeImage(t, st, "eu-west-1", st.AMIs["eu-west-1"])
			if aws.ToString(im.Name) != "from-snap" || aws.ToString(im.RootDeviceName) == "" {
				t.Errorf("image %s root %q", aws.ToString(im.Name), aws.ToString(im.RootDeviceName))
			}
			if !strings.Contains(log, "Registering the AMI from snapshots: from-snap") || strings.Contains(log, "Creating AMI ") {
				t.Errorf("log:\n%s", log)
			}
			if len(st.Snapshots["eu-west-1"]) == 0 {
				t.Error("no snapshots recorded")
			}
		}},
		{"encrypt_boot", `ami_name = "encrypted"
encrypt_boot = true`, func(t *testing.T, st *State, log string, seen whileRunning) {
			im := describeImage(t, st, "eu-west-1", st.AMIs["eu-west-1"])
			if aws.ToString(im.Name) != "encrypted" {
				t.Errorf("name %q", aws.ToString(im.Name))
			}
			for _, b := range im.BlockDeviceMappings {
				if b.Ebs != nil && !aws.ToBool(b.Ebs.Encrypted) {
					t.Errorf("unencrypted mapping %+v", b)
				}
			}
			out, _ := st.ec2("").DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"self"}})
			for _, o := range out.Images {
				if strings.HasPrefix(aws.ToString(o.Name), "amibake-unencrypted-") {
					t.Errorf("the unencrypted AMI %s is left", aws.ToString(o.ImageId))
				}
			}
		}},
		// Every option set here differs from EC2's default for the type
		// (t2: standard credits), so the simulator's answer shows it arrived.
		{"launch options", `ami_name = "launch-options"
enable_unlimited_credits = true
capacity_reservation_preference = "none"
placement {
  tenancy = "dedicated"
}
metadata_options {
  http_tokens = "required"
  http_put_response_hop_limit = 2
  instance_metadata_tags = "enabled"
}
iam_instance_profile = "builder"
user_data = "#!/bin/sh\necho hi\n"
ebs_optimized = true
shutdown_behavior = "terminate"`, func(t *testing.T, st *State, log string, seen whileRunning) {
			in := st.Instance // as DescribeInstances answered once it ran
			if m := in.MetadataOptions; m == nil || m.HttpTokens != types.HttpTokensStateRequired || aws.ToInt32(m.HttpPutResponseHopLimit) != 2 ||
				m.InstanceMetadataTags != types.InstanceMetadataTagsStateEnabled {
				t.Errorf("metadata_options: %+v", in.MetadataOptions)
			}
			if in.Placement == nil || in.Placement.Tenancy != types.TenancyDedicated {
				t.Errorf("placement: %+v", in.Placement)
			}
			if in.IamInstanceProfile == nil || !strings.HasSuffix(aws.ToString(in.IamInstanceProfile.Arn), ":instance-profile/builder") {
				t.Errorf("iam_instance_profile: %+v", in.IamInstanceProfile)
			}
			if !aws.ToBool(in.EbsOptimized) {
				t.Error("ebs_optimized: not set")
			}
			if c := in.CapacityReservationSpecification; c == nil || c.CapacityReservationPreference != types.CapacityReservationPreferenceNone {
				t.Errorf("capacity_reservation_preference: %+v", c)
			}
			c := simClient(srv, "eu-west-1")
			id := aws.ToString(in.InstanceId)
			ud, err := c.DescribeInstanceAttribute(ctx(t), &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameUserData})
			if err != nil || ud.UserData == nil || aws.ToString(ud.UserData.Value) != base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n")) {
				t.Errorf("user_data: %+v %v", ud, err)
			}
			sb, err := c.DescribeInstanceAttribute(ctx(t), &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceInitiatedShutdownBehavior})
			if err != nil || sb.InstanceInitiatedShutdownBehavior == nil || aws.ToString(sb.InstanceInitiatedShutdownBehavior.Value) != "terminate" {
				t.Errorf("shutdown_behavior: %+v %v", sb, err)
			}
			if seen.cpuCredits != "unlimited" {
				t.Errorf("enable_unlimited_credits: the running instance has %q credits", seen.cpuCredits)
			}
		}},
		{"skip_create_ami", `skip_create_ami = true`, func(t *testing.T, st *State, log string, seen whileRunning) {
			if len(st.AMIs) != 0 || strings.Contains(log, "Stopping the source instance") || strings.Contains(log, "Prevalidating") {
				t.Errorf("AMIs %v, log:\n%s", st.AMIs, log)
			}
		}},
		{"deprecate_at and extra volume", `ami_name = "deprecating"
deprecate_at = "2030-01-02T03:04:05Z"
launch_block_device_mappings {
  device_name = "/dev/sdf"
  volume_size = 4
  volume_type = "gp3"
  delete_on_termination = false
}`, func(t *testing.T, st *State, log string, seen whileRunning) {
			im := describeImage(t, st, "eu-west-1", st.AMIs["eu-west-1"])
			// EC2 rounds the deprecation time to the minute.
			if !strings.HasPrefix(aws.ToString(im.DeprecationTime), "2030-01-02T03:04") {
				t.Errorf("deprecation %q", aws.ToString(im.DeprecationTime))
			}
			if !strings.Contains(log, "Deleting volume: vol-") {
				t.Errorf("extra volume not deleted:\n%s", log)
			}
		}},
		{"skip_save_build_region", `ami_name = "elsewhere"
ami_regions = ["eu-west-2"]
skip_save_build_region = true
snapshot_users = ["111122223333"]`, func(t *testing.T, st *State, log string, seen whileRunning) {
			if _, ok := st.AMIs["eu-west-1"]; ok || st.AMIs["eu-west-2"] == "" {
				t.Errorf("AMIs = %v", st.AMIs)
			}
			snaps := st.Snapshots["eu-west-2"]
			if len(snaps) == 0 {
				t.Fatal("no snapshots in eu-west-2")
			}
			attr, err := simClient(srv, "eu-west-2").DescribeSnapshotAttribute(ctx(t), &ec2.DescribeSnapshotAttributeInput{
				SnapshotId: aws.String(snaps[0]), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
			if err != nil || len(attr.CreateVolumePermissions) != 1 || aws.ToString(attr.CreateVolumePermissions[0].UserId) != "111122223333" {
				t.Errorf("create volume permissions %+v %v", attr, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := noComm
			if tt.name == "launch options" { // t3 types default to unlimited credits
				src = strings.Replace(src, `"t3.micro"`, `"t2.micro"`, 1)
			}
			st, u := testState(t, srv, mustConfig(t, src+tt.src))
			var seen whileRunning
			st.Provision = func(ctx context.Context, _ communicator.Communicator, b *provisioner.Build) error {
				// EC2 lists the credits of running instances only.
				out, err := simClient(srv, st.Region).DescribeInstanceCreditSpecifications(ctx, &ec2.DescribeInstanceCreditSpecificationsInput{InstanceIds: []string{b.InstanceID}})
				if err == nil && len(out.InstanceCreditSpecifications) == 1 {
					seen.cpuCredits = aws.ToString(out.InstanceCreditSpecifications[0].CpuCredits)
				}
				return err
			}
			if err := runSteps(t, st); err != nil {
				t.Fatalf("build: %v\n%s", err, u)
			}
			tt.check(t, st, u.String(), seen)
		})
	}
}

func TestPipelineFailureDeregisters(t *testing.T) {
	srv := apiSim(t)
	// The copy to a region the simulator does not serve fails after the
	// AMI exists: the cleanups must deregister it.
	st, u := testState(t, srv, mustConfig(t, noComm+`ami_name = "doomed"
ami_regions = ["xx-nowhere-1"]`))
	err := runSteps(t, st)
	if err == nil {
		t.Fatalf("the copy to xx-nowhere-1 succeeded?\n%s", u)
	}
	if !strings.Contains(u.String(), "Deregistering the AMI") {
		t.Errorf("log:\n%s", u)
	}
	if inv := srv.Inventory(); len(inv.Regions["eu-west-1"].Images)+len(inv.Regions["eu-west-1"].Snapshots) != 0 {
		t.Errorf("left: %+v", inv.Regions["eu-west-1"])
	}
}

func TestPipelineSpotFleet(t *testing.T) {
	srv := apiSim(t)
	src := strings.Replace(noComm, `instance_type = "t3.micro"`, "", 1) + `ami_name = "spot"
spot_price = "auto"
spot_instance_types = ["t3a.micro", "t3.micro"]
spot_tags = { Kind = "spot" }
fleet_tags = { Fleet = "yes" }
availability_zone = "eu-west-1b"`
	st, u := testState(t, srv, mustConfig(t, src))
	if err := runSteps(t, st); err != nil {
		t.Fatalf("build: %v\n%s", err, u)
	}
	if st.Instance.InstanceLifecycle != types.InstanceLifecycleTypeSpot || st.Instance.InstanceType != "t3a.micro" {
		t.Errorf("instance lifecycle %q type %q", st.Instance.InstanceLifecycle, st.Instance.InstanceType)
	}
	if p := st.Instance.Placement; p == nil || aws.ToString(p.AvailabilityZone) != "eu-west-1b" {
		t.Errorf("availability_zone: placement %+v", p)
	}
	if tags := tagMap(st.Instance.Tags); tags["Kind"] != "spot" || tags["amibake:run-id"] != "run-1" {
		t.Errorf("instance tags %v", tags)
	}
	if !strings.Contains(u.String(), "Launching a spot AWS instance...") || !strings.Contains(u.String(), "Skipping the stop of the spot instance") {
		t.Errorf("log:\n%s", u)
	}
	if lts := srv.Inventory().Regions["eu-west-1"].LaunchTemplates; len(lts) != 0 {
		t.Errorf("launch templates left: %v", lts)
	}

	// No capacity: the build fails with the fleet's reason.
	if err := srv.SetFaults(ec2sim.FaultSettings{Rules: []ec2sim.FaultRule{{Action: "CreateFleet", Fault: ec2sim.FaultInsufficientCap, Probability: 1}}}); err != nil {
		t.Fatal(err)
	}
	st, u = testState(t, srv, mustConfig(t, strings.Replace(src, `"spot"`, `"spot-2"`, 1)))
	read := journaled(t, st)
	err := runSteps(t, st)
	if err == nil || !strings.Contains(err.Error(), "the spot fleet launched no instance: InsufficientInstanceCapacity") {
		t.Fatalf("err = %v\n%s", err, u)
	}
	// The fleet answered that it launched nothing: the journal says so,
	// and a later cleanup has nothing to wait for.
	if left := read().Left(); len(left) != 0 {
		t.Errorf("the journal leaves %+v", left)
	}
	if lts := srv.Inventory().Regions["eu-west-1"].LaunchTemplates; len(lts) != 0 {
		t.Errorf("launch templates left: %v", lts)
	}
}
