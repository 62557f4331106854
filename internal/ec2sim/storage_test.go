package ec2sim_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func TestSnapshotProgressRises(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.Latency{SnapshotPending: 400 * time.Millisecond}})
	id := f.run(t)
	vols, err := f.c.DescribeVolumes(f.ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("root volume: %v %d", err, len(vols.Volumes))
	}
	snap, err := f.c.CreateSnapshot(f.ctx, &ec2.CreateSnapshotInput{VolumeId: vols.Volumes[0].VolumeId, Description: aws.String("manual"),
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeSnapshot, "k", "v")}})
	if err != nil {
		t.Fatal(err)
	}
	progress := func() (string, int) {
		out, err := f.c.DescribeSnapshots(f.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(strings.TrimSuffix(aws.ToString(out.Snapshots[0].Progress), "%"))
		return string(out.Snapshots[0].State), p
	}
	var seen []int
	for range 100 {
		state, p := progress()
		seen = append(seen, p)
		if state == "completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if seen[len(seen)-1] != 100 || !slices.IsSorted(seen) || slices.Compact(slices.Clone(seen))[0] == 100 || len(slices.Compact(slices.Clone(seen))) < 3 {
		t.Fatalf("progress went %v, want rising to 100%%", seen)
	}
	if _, err := f.c.ModifySnapshotAttribute(f.ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: snap.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String("111122223333")}}}}); err != nil {
		t.Fatal(err)
	}
	attr, err := f.c.DescribeSnapshotAttribute(f.ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: snap.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(attr.CreateVolumePermissions) != 1 || *attr.CreateVolumePermissions[0].UserId != "111122223333" {
		t.Fatalf("snapshot attribute: %v %+v", err, attr)
	}
	// RegisterImage from the snapshot.
	reg, err := f.c.RegisterImage(f.ctx, &ec2.RegisterImageInput{Name: aws.String("registered"), RootDeviceName: aws.String("/dev/sda1"), Architecture: types.ArchitectureValuesX8664,
		VirtualizationType: aws.String("hvm"), EnaSupport: aws.Bool(true),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{SnapshotId: snap.SnapshotId, VolumeType: types.VolumeTypeGp3}}}})
	if err != nil {
		t.Fatal(err)
	}
	if im := f.image(t, *reg.ImageId); im.State != types.ImageStateAvailable {
		t.Fatalf("registered image state %s", im.State)
	}
	if _, err := f.c.DeleteSnapshot(f.ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete a registered image's snapshot: err = %v", err)
	}
	if _, err := f.c.DeregisterImage(f.ctx, &ec2.DeregisterImageInput{ImageId: reg.ImageId}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DeleteSnapshot(f.ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DescribeSnapshots(f.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{*snap.SnapshotId}}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("deleted snapshot: err = %v", err)
	}
}

func TestKeepVolumeAfterTermination(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	id := f.run(t, func(in *ec2.RunInstancesInput) {
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(false)}}}
	})
	if _, err := f.c.TerminateInstances(f.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	vols, err := f.c.DescribeVolumes(f.ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("status"), Values: []string{"available"}}}})
	if err != nil || len(vols.Volumes) != 1 || *vols.Volumes[0].Size != 20 {
		t.Fatalf("kept volume: %v %+v", err, vols)
	}
	if f.srv.Inventory().Empty() {
		t.Fatal("a kept volume must show in the inventory")
	}
	if _, err := f.c.DeleteVolume(f.ctx, &ec2.DeleteVolumeInput{VolumeId: vols.Volumes[0].VolumeId}); err != nil {
		t.Fatal(err)
	}
	if !f.srv.Inventory().Empty() {
		t.Fatalf("leftovers: %+v", f.srv.Inventory().Leftovers())
	}
}

func TestImageAttributes(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ami := f.createImage(t, f.run(t), "shared")
	if _, err := f.c.ModifyImageAttribute(f.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
		{UserId: aws.String("111122223333")}, {Group: types.PermissionGroupAll},
		{OrganizationArn: aws.String("arn:aws:organizations::123456789012:organization/o-abc")},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.ModifyImageAttribute(f.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami), Description: &types.AttributeValue{Value: aws.String("new description")}}); err != nil {
		t.Fatal(err)
	}
	lp, err := f.c.DescribeImageAttribute(f.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.LaunchPermissions) != 3 {
		t.Fatalf("launch permissions: %+v", lp.LaunchPermissions)
	}
	desc, err := f.c.DescribeImageAttribute(f.ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(ami), Attribute: types.ImageAttributeNameDescription})
	if err != nil || aws.ToString(desc.Description.Value) != "new description" {
		t.Fatalf("description: %v %+v", err, desc.Description)
	}
	if im := f.image(t, ami); !aws.ToBool(im.Public) {
		t.Fatal("group all did not make the image public")
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Minute)
	if _, err := f.c.EnableImageDeprecation(f.ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(ami), DeprecateAt: aws.Time(at)}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.image(t, ami).DeprecationTime); got != at.Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("deprecation time %s, want %s", got, at)
	}
}

func TestTags(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	a, b := f.run(t), f.run(t)
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := f.c.CreateTags(f.ctx, &ec2.CreateTagsInput{Resources: []string{a, b}, Tags: []types.Tag{tag("env", "ci"), tag("amibake:run-id", "r1")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DeleteTags(f.ctx, &ec2.DeleteTagsInput{Resources: []string{b}, Tags: []types.Tag{{Key: aws.String("env")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := f.c.DescribeTags(f.ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-type"), Values: []string{"instance"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, td := range out.Tags {
		got = append(got, *td.ResourceId+"/"+*td.Key+"="+*td.Value)
	}
	want := []string{a + "/amibake:run-id=r1", a + "/env=ci", b + "/amibake:run-id=r1"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tags %v, want %v", got, want)
	}
	if _, err := f.c.CreateTags(f.ctx, &ec2.CreateTagsInput{Resources: []string{a}, Tags: []types.Tag{tag("aws:reserved", "x")}}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("aws: tag prefix: err = %v", err)
	}
}

func TestNetworkAndAccount(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	vpcs, err := f.c.DescribeVpcs(f.ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 || !strings.HasPrefix(*vpcs.Vpcs[0].CidrBlock, "127.") {
		t.Fatalf("default VPC: %v %+v", err, vpcs)
	}
	subnets, err := f.c.DescribeSubnets(f.ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{*vpcs.Vpcs[0].VpcId}}, {Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(subnets.Subnets) != 3 {
		t.Fatalf("default subnets: %v %+v", err, subnets)
	}
	azs, err := f.c.DescribeAvailabilityZones(f.ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(azs.AvailabilityZones) != 3 || *azs.AvailabilityZones[0].ZoneName != "us-east-1a" || *azs.AvailabilityZones[0].ZoneId != "use1-az1" {
		t.Fatalf("zones: %v %+v", err, azs)
	}
	regions, err := f.c.DescribeRegions(f.ctx, &ec2.DescribeRegionsInput{RegionNames: []string{"ap-northeast-1"}})
	if err != nil || len(regions.Regions) != 1 {
		t.Fatalf("regions: %v %+v", err, regions)
	}
	attrs, err := f.c.DescribeAccountAttributes(f.ctx, &ec2.DescribeAccountAttributesInput{AttributeNames: []types.AccountAttributeName{types.AccountAttributeNameDefaultVpc}})
	if err != nil || len(attrs.AccountAttributes) != 1 || *attrs.AccountAttributes[0].AttributeValues[0].AttributeValue != *vpcs.Vpcs[0].VpcId {
		t.Fatalf("account attributes: %v %+v", err, attrs)
	}
	// A launch in a given subnet gets a private IP inside it.
	id := f.run(t, func(in *ec2.RunInstancesInput) { in.SubnetId = subnets.Subnets[1].SubnetId })
	d, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := d.Reservations[0].Instances[0]
	if *in.SubnetId != *subnets.Subnets[1].SubnetId || *in.Placement.AvailabilityZone != *subnets.Subnets[1].AvailabilityZone ||
		!strings.HasPrefix(*in.PrivateIpAddress, "127.31.") || !strings.HasPrefix(*in.PublicIpAddress, "127.") {
		t.Fatalf("placement: subnet %s az %s ip %s/%s", *in.SubnetId, *in.Placement.AvailabilityZone, *in.PrivateIpAddress, *in.PublicIpAddress)
	}
}
