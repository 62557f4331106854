package ec2sim_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func TestInstanceTypes(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	out, err := f.c.DescribeInstanceTypes(f.ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t2.micro", "t3.micro", "t4g.micro"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[types.InstanceType]types.InstanceTypeInfo{}
	for _, it := range out.InstanceTypes {
		got[it.InstanceType] = it
	}
	for name, want := range map[types.InstanceType]struct {
		hv   types.InstanceTypeHypervisor
		arch types.ArchitectureType
		mem  int64
	}{"t2.micro": {"xen", "x86_64", 1024}, "t3.micro": {"nitro", "x86_64", 1024}, "t4g.micro": {"nitro", "arm64", 1024}} {
		it := got[name]
		if it.Hypervisor != want.hv || !contains(it.ProcessorInfo.SupportedArchitectures, want.arch) || aws.ToInt64(it.MemoryInfo.SizeInMiB) != want.mem {
			t.Errorf("%s: hypervisor %s, architectures %v, memory %d", name, it.Hypervisor, it.ProcessorInfo.SupportedArchitectures, aws.ToInt64(it.MemoryInfo.SizeInMiB))
		}
	}
	if _, err := f.c.DescribeInstanceTypes(f.ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t9.huge"}}); apiCode(err) != "InvalidInstanceType" {
		t.Errorf("unknown type: %v, want InvalidInstanceType", err)
	}
	offs, err := f.c.DescribeInstanceTypeOfferings(f.ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: types.LocationTypeAvailabilityZone,
		Filters: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"t2.micro"}}}})
	if err != nil || len(offs.InstanceTypeOfferings) != 3 {
		t.Errorf("t2.micro offerings by zone: %v, %+v", err, offs)
	}
	// Launches fail as EC2 fails.
	if _, err := f.c.RunInstances(f.ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), InstanceType: "t9.huge", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := f.c.RunInstances(f.ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), InstanceType: "t4g.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); apiCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("x86_64 image on t4g.micro: %v", err)
	}
}

func contains[T comparable](l []T, v T) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func TestLaunchOptionsKept(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	id := f.run(t, func(in *ec2.RunInstancesInput) {
		in.InstanceType = "m5.large"
		in.CapacityReservationSpecification = &types.CapacityReservationSpecification{CapacityReservationPreference: types.CapacityReservationPreferenceNone}
		in.EnclaveOptions = &types.EnclaveOptionsRequest{Enabled: aws.Bool(true)}
		in.LicenseSpecifications = []types.LicenseConfigurationRequest{{LicenseConfigurationArn: aws.String("arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-1")}}
		in.CpuOptions = &types.CpuOptionsRequest{CoreCount: aws.Int32(1), ThreadsPerCore: aws.Int32(1)}
		in.MetadataOptions = &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired, InstanceMetadataTags: types.InstanceMetadataTagsStateEnabled}
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{VolumeType: types.VolumeTypeGp3, VolumeSize: aws.Int32(10)}}}
	})
	d, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := d.Reservations[0].Instances[0]
	if in.CapacityReservationSpecification == nil || in.CapacityReservationSpecification.CapacityReservationPreference != types.CapacityReservationPreferenceNone {
		t.Errorf("capacity reservation preference: %+v", in.CapacityReservationSpecification)
	}
	if in.EnclaveOptions == nil || !aws.ToBool(in.EnclaveOptions.Enabled) {
		t.Errorf("enclave options: %+v", in.EnclaveOptions)
	}
	if len(in.Licenses) != 1 || !strings.HasSuffix(aws.ToString(in.Licenses[0].LicenseConfigurationArn), "lic-1") {
		t.Errorf("licenses: %+v", in.Licenses)
	}
	if in.CpuOptions == nil || aws.ToInt32(in.CpuOptions.CoreCount) != 1 || aws.ToInt32(in.CpuOptions.ThreadsPerCore) != 1 {
		t.Errorf("cpu options: %+v", in.CpuOptions)
	}
	if in.MetadataOptions.InstanceMetadataTags != types.InstanceMetadataTagsStateEnabled || in.MetadataOptions.HttpProtocolIpv6 != types.InstanceMetadataProtocolStateDisabled {
		t.Errorf("metadata options: %+v", in.MetadataOptions)
	}
	if aws.ToString(in.Placement.AvailabilityZoneId) == "" || aws.ToString(in.NetworkInterfaces[0].MacAddress) == "" || in.Hypervisor != types.HypervisorTypeXen {
		t.Errorf("zone id %q, MAC %q, hypervisor %s", aws.ToString(in.Placement.AvailabilityZoneId), aws.ToString(in.NetworkInterfaces[0].MacAddress), in.Hypervisor)
	}
	attr, err := f.c.DescribeInstanceAttribute(f.ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameEnclaveOptions})
	if err != nil || !aws.ToBool(attr.EnclaveOptions.Enabled) {
		t.Errorf("enclaveOptions attribute: %v %+v", err, attr)
	}
	vols, err := f.c.DescribeVolumes(f.ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("volumes: %v %+v", err, vols)
	}
	if v := vols.Volumes[0]; aws.ToInt32(v.Iops) != 3000 || aws.ToInt32(v.Throughput) != 125 {
		t.Errorf("gp3 volume: iops %d throughput %d, want 3000/125", aws.ToInt32(v.Iops), aws.ToInt32(v.Throughput))
	}

	// Credits: t2 launches standard, t3 unlimited; non-burstable types
	// refuse a CreditSpecification, Xen types refuse CpuOptions.
	t2 := f.run(t, func(in *ec2.RunInstancesInput) { in.InstanceType = "t2.micro" })
	t3 := f.run(t, func(in *ec2.RunInstancesInput) {
		in.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: aws.String("standard")}
	})
	cs, err := f.c.DescribeInstanceCreditSpecifications(f.ctx, &ec2.DescribeInstanceCreditSpecificationsInput{InstanceIds: []string{t2, t3}})
	if err != nil || len(cs.InstanceCreditSpecifications) != 2 {
		t.Fatalf("credit specifications: %v %+v", err, cs)
	}
	for _, c := range cs.InstanceCreditSpecifications {
		if aws.ToString(c.CpuCredits) != "standard" {
			t.Errorf("%s credits %s, want standard", aws.ToString(c.InstanceId), aws.ToString(c.CpuCredits))
		}
	}
	for name, mod := range map[string]func(*ec2.RunInstancesInput){
		"credits on m5": func(in *ec2.RunInstancesInput) {
			in.InstanceType = "m5.large"
			in.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: aws.String("unlimited")}
		},
		"cpu options on t2": func(in *ec2.RunInstancesInput) {
			in.InstanceType = "t2.micro"
			in.CpuOptions = &types.CpuOptionsRequest{CoreCount: aws.Int32(1)}
		},
		"enclave on t3": func(in *ec2.RunInstancesInput) {
			in.EnclaveOptions = &types.EnclaveOptionsRequest{Enabled: aws.Bool(true)}
		},
	} {
		in := &ec2.RunInstancesInput{ImageId: aws.String(f.ami), InstanceType: "t3.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
		mod(in)
		if _, err := f.c.RunInstances(f.ctx, in); err == nil {
			t.Errorf("%s: launched, want an error", name)
		}
	}
}

func TestDefaultVPCParts(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	vpcs, err := f.c.DescribeVpcs(f.ctx, &ec2.DescribeVpcsInput{})
	if err != nil {
		t.Fatal(err)
	}
	vpc := vpcs.Vpcs[0].VpcId
	a, err := f.c.DescribeVpcAttribute(f.ctx, &ec2.DescribeVpcAttributeInput{VpcId: vpc, Attribute: types.VpcAttributeNameEnableDnsHostnames})
	if err != nil || !aws.ToBool(a.EnableDnsHostnames.Value) {
		t.Errorf("enableDnsHostnames: %v %+v", err, a)
	}
	rt, err := f.c.DescribeRouteTables(f.ctx, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{*vpc}}, {Name: aws.String("association.main"), Values: []string{"true"}}}})
	if err != nil || len(rt.RouteTables) != 1 || len(rt.RouteTables[0].Routes) != 2 {
		t.Fatalf("route tables: %v %+v", err, rt)
	}
	igw, err := f.c.DescribeInternetGateways(f.ctx, &ec2.DescribeInternetGatewaysInput{Filters: []types.Filter{{Name: aws.String("attachment.vpc-id"), Values: []string{*vpc}}}})
	if err != nil || len(igw.InternetGateways) != 1 || aws.ToString(rt.RouteTables[0].Routes[1].GatewayId) != aws.ToString(igw.InternetGateways[0].InternetGatewayId) {
		t.Errorf("internet gateway: %v %+v", err, igw)
	}
	id := f.run(t)
	enis, err := f.c.DescribeNetworkInterfaces(f.ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
	if err != nil || len(enis.NetworkInterfaces) != 1 || aws.ToString(enis.NetworkInterfaces[0].MacAddress) == "" {
		t.Errorf("network interfaces: %v %+v", err, enis)
	}
	pw, err := f.c.GetPasswordData(f.ctx, &ec2.GetPasswordDataInput{InstanceId: aws.String(id)})
	if err != nil || aws.ToString(pw.PasswordData) != "" {
		t.Errorf("password data of a Linux instance: %v %+v", err, pw)
	}
	v, err := f.c.CreateVolume(f.ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(5), VolumeType: types.VolumeTypeGp3})
	if err != nil || v.State != types.VolumeStateCreating || aws.ToInt32(v.Iops) != 3000 {
		t.Fatalf("create volume: %v %+v", err, v)
	}
	if err := ec2.NewVolumeAvailableWaiter(f.c).Wait(f.ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{*v.VolumeId}}, 10e9); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.DeleteVolume(f.ctx, &ec2.DeleteVolumeInput{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
}

func TestSecurityGroupRules(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	g, err := f.c.CreateSecurityGroup(f.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("r"), Description: aws.String("r")})
	if err != nil {
		t.Fatal(err)
	}
	perm := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
		IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8"), Description: aws.String("https out")}}}
	if _, err := f.c.AuthorizeSecurityGroupEgress(f.ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: g.GroupId, IpPermissions: []types.IpPermission{perm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.AuthorizeSecurityGroupEgress(f.ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: g.GroupId, IpPermissions: []types.IpPermission{perm}}); apiCode(err) != "InvalidPermission.Duplicate" {
		t.Errorf("duplicate egress rule: %v", err)
	}
	perm.FromPort, perm.ToPort = aws.Int32(22), aws.Int32(22)
	perm.IpRanges[0].Description = aws.String("ssh in")
	if _, err := f.c.AuthorizeSecurityGroupIngress(f.ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId, IpPermissions: []types.IpPermission{perm}}); err != nil {
		t.Fatal(err)
	}
	rules, err := f.c.DescribeSecurityGroupRules(f.ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{*g.GroupId}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules.SecurityGroupRules {
		got = append(got, strings.Join([]string{map[bool]string{true: "out", false: "in"}[aws.ToBool(r.IsEgress)], aws.ToString(r.CidrIpv4), aws.ToString(r.Description)}, " "))
	}
	for _, want := range []string{"out 0.0.0.0/0 ", "out 10.0.0.0/8 https out", "in 10.0.0.0/8 ssh in"} {
		if !contains(got, want) {
			t.Errorf("rules %q lack %q", got, want)
		}
	}
	sg, err := f.c.DescribeSecurityGroups(f.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{*g.GroupId}})
	if err != nil || aws.ToString(sg.SecurityGroups[0].IpPermissions[0].IpRanges[0].Description) != "ssh in" {
		t.Errorf("IpRange description: %v %+v", err, sg)
	}
}

// Packer's ami_users request: the users both structured and flat, no
// OperationType (../shared/reference/packer-outputs/tags).
func TestModifyImageAttributePackerShape(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	id := f.run(t)
	img, err := f.c.CreateImage(f.ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("shared")})
	if err != nil {
		t.Fatal(err)
	}
	status, body := post(t, f.srv, authHeader, url.Values{"Action": {"ModifyImageAttribute"}, "Version": {"2016-11-15"}, "ImageId": {*img.ImageId},
		"LaunchPermission.Add.1.UserId": {"111122223333"}, "UserId.1": {"111122223333"}})
	if status != 200 {
		t.Fatalf("Packer's ami_users request: %d %s", status, body)
	}
	a, err := f.c.DescribeImageAttribute(f.ctx, &ec2.DescribeImageAttributeInput{ImageId: img.ImageId, Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil || len(a.LaunchPermissions) != 1 || aws.ToString(a.LaunchPermissions[0].UserId) != "111122223333" {
		t.Fatalf("launch permissions: %v %+v", err, a)
	}
	// A flat list alone still needs OperationType.
	status, body = post(t, f.srv, authHeader, url.Values{"Action": {"ModifyImageAttribute"}, "ImageId": {*img.ImageId}, "UserId.1": {"444455556666"}})
	if status != 400 || !strings.Contains(body, "MissingParameter") {
		t.Fatalf("flat users without OperationType: %d %s", status, body)
	}
}

func TestConsoleOutput(t *testing.T) {
	const post = 300 * time.Millisecond
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.Latency{ConsolePost: post}})
	console := func(id string, latest bool) (string, error) {
		out, err := f.c.GetConsoleOutput(f.ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(latest)})
		if err != nil {
			return "", err
		}
		b, _ := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
		return string(b), nil
	}
	xen := f.run(t, func(in *ec2.RunInstancesInput) { in.InstanceType = "t2.micro" })
	booted := time.Now()
	nitro := f.run(t, func(in *ec2.RunInstancesInput) { in.InstanceType = "t3.micro" })
	if _, err := console(xen, true); apiCode(err) != "UnsupportedOperation" {
		t.Errorf("Latest on t2.micro: %v, want UnsupportedOperation", err)
	}
	if out, err := console(nitro, true); err != nil || !strings.Contains(out, "login") {
		t.Errorf("Latest on t3.micro: %q, %v; want the live console", out, err)
	}
	if out, err := console(xen, false); err != nil || (out != "" && time.Since(booted) < post) {
		t.Errorf("buffered console right after boot: %q, %v; want nothing posted yet", out, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := console(xen, false)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "login") {
			if d := time.Since(booted); d < post {
				t.Errorf("posted after %s, want at least %s", d, post)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("console output never posted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
