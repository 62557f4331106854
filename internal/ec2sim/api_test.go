package ec2sim_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/ec2sim"
)

// fixture is an API-only simulator with a client and the common
// resources a bake creates.
type fixture struct {
	srv *ec2sim.Server
	c   *ec2.Client
	ctx context.Context
	ami string // the newest public Ubuntu 24.04 amd64 image
}

func newFixture(t *testing.T, opts ec2sim.Options) *fixture {
	t.Helper()
	opts.NoSSH = true
	srv := startSim(t, opts)
	f := &fixture{srv: srv, c: client(srv, "us-east-1"), ctx: ctxT(t)}
	out, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"099720109477"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"*ubuntu-noble-24.04-amd64-server-20261105"}}},
	})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("find source image: %v (%d images)", err, len(out.Images))
	}
	f.ami = *out.Images[0].ImageId
	return f
}

func (f *fixture) run(t *testing.T, mod ...func(*ec2.RunInstancesInput)) string {
	t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(f.ami), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	for _, m := range mod {
		m(in)
	}
	out, err := f.c.RunInstances(f.ctx, in)
	if err != nil {
		t.Fatalf("run instances: %v", err)
	}
	return *out.Instances[0].InstanceId
}

func (f *fixture) state(t *testing.T, id string) types.InstanceStateName {
	t.Helper()
	out, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return out.Reservations[0].Instances[0].State.Name
}

func (f *fixture) image(t *testing.T, id string) types.Image {
	t.Helper()
	out, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		t.Fatalf("describe image %s: %v", id, err)
	}
	return out.Images[0]
}

func (f *fixture) createImage(t *testing.T, inst, name string) string {
	t.Helper()
	out, err := f.c.CreateImage(f.ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(name)})
	if err != nil {
		t.Fatalf("create image: %v", err)
	}
	return *out.ImageId
}

func edPublicKey(t testing.TB) []byte {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := ssh.NewPublicKey(pub)
	return ssh.MarshalAuthorizedKey(k)
}

func TestErrorCodes(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	c, ctx := f.c, f.ctx
	if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("k"), PublicKeyMaterial: edPublicKey(t)}); err != nil {
		t.Fatal(err)
	}
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("g"), Description: aws.String("d")})
	if err != nil {
		t.Fatal(err)
	}
	inst := f.run(t, func(in *ec2.RunInstancesInput) { in.SecurityGroupIds = []string{*sg.GroupId} })
	gone := f.run(t)
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{gone}}); err != nil {
		t.Fatal(err)
	}
	ami := f.createImage(t, inst, "taken-name")
	snap := *f.image(t, ami).BlockDeviceMappings[0].Ebs.SnapshotId

	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"image not found", func() error {
			_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}})
			return err
		}, "InvalidAMIID.NotFound"},
		{"image malformed", func() error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-nope"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, "InvalidAMIID.Malformed"},
		{"instance not found", func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"key not found", func() error {
			_, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"nope"}})
			return err
		}, "InvalidKeyPair.NotFound"},
		{"key not found on launch", func() error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), KeyName: aws.String("nope"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, "InvalidKeyPair.NotFound"},
		{"key duplicate", func() error {
			_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("k"), PublicKeyMaterial: edPublicKey(t)})
			return err
		}, "InvalidKeyPair.Duplicate"},
		{"key material", func() error {
			_, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("bad"), PublicKeyMaterial: []byte("not a key")})
			return err
		}, "InvalidKey.Format"},
		{"group not found", func() error {
			_, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
			return err
		}, "InvalidGroup.NotFound"},
		{"group duplicate", func() error {
			_, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("g"), Description: aws.String("d")})
			return err
		}, "InvalidGroup.Duplicate"},
		{"group in use", func() error {
			_, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
			return err
		}, "DependencyViolation"},
		{"rule duplicate", func() error {
			perm := []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}
			if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm}); err != nil {
				return err
			}
			_, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perm})
			return err
		}, "InvalidPermission.Duplicate"},
		{"ami name duplicate", func() error {
			_, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String("taken-name")})
			return err
		}, "InvalidAMIName.Duplicate"},
		{"ami name malformed", func() error {
			_, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String("no{braces}")})
			return err
		}, "InvalidAMIName.Malformed"},
		{"bad instance type", func() error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), InstanceType: "huge", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, "InvalidParameterValue"},
		{"bad user data", func() error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), UserData: aws.String("%%%"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, "InvalidParameterValue"},
		{"stop terminated", func() error {
			_, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{gone}})
			return err
		}, "IncorrectInstanceState"},
		{"image from terminated", func() error {
			_, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(gone), Name: aws.String("from-gone")})
			return err
		}, "IncorrectInstanceState"},
		{"snapshot in use", func() error {
			_, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)})
			return err
		}, "InvalidSnapshot.InUse"},
		{"deregister public image", func() error {
			_, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(f.ami)})
			return err
		}, "UnauthorizedOperation"},
		{"bad launch permission", func() error {
			_, err := c.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(ami),
				LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String("12")}}}})
			return err
		}, "InvalidAMIAttributeItemValue"},
		{"tag missing instance", func() error {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"modify type while running", func() error {
			_, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(inst), InstanceType: &types.AttributeValue{Value: aws.String("t3.large")}})
			return err
		}, "IncorrectInstanceState"},
		{"max results too small", func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(2)})
			return err
		}, "InvalidParameterValue"},
		{"bad next token", func() error {
			_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}, NextToken: aws.String("garbage")})
			return err
		}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := apiCode(err); got != tt.code {
				t.Fatalf("error = %v (code %q), want %s", err, got, tt.code)
			}
		})
	}
}

func TestDescribeImagesFilters(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	inst := f.run(t)
	own := f.createImage(t, inst, "my-image-1")
	if _, err := f.c.CreateTags(f.ctx, &ec2.CreateTagsInput{Resources: []string{own}, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("infra")}}}); err != nil {
		t.Fatal(err)
	}
	f2 := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	tests := []struct {
		name  string
		in    ec2.DescribeImagesInput
		check func([]types.Image) bool
	}{
		{"owner self", ec2.DescribeImagesInput{Owners: []string{"self"}}, func(im []types.Image) bool { return len(im) == 1 && *im[0].ImageId == own }},
		// No Amazon Linux is seeded (the machines are Debian): the alias matches nothing.
		{"owner alias amazon", ec2.DescribeImagesInput{Owners: []string{"amazon"}}, func(im []types.Image) bool {
			return !slices.ContainsFunc(im, func(i types.Image) bool { return *i.OwnerId != "137112412989" })
		}},
		{"debian x86_64 by wildcard", ec2.DescribeImagesInput{Owners: []string{"136693071363"}, Filters: []types.Filter{f2("name", "debian-12-*-2000"), f2("architecture", "x86_64")}},
			func(im []types.Image) bool { return len(im) == 4 }}, // the deprecated oldest one is left out
		{"include deprecated", ec2.DescribeImagesInput{Owners: []string{"136693071363"}, IncludeDeprecated: aws.Bool(true), Filters: []types.Filter{f2("name", "debian-12-amd64-*")}},
			func(im []types.Image) bool { return len(im) == 5 }},
		{"question mark wildcard", ec2.DescribeImagesInput{Filters: []types.Filter{f2("name", "debian-12-amd64-2026110?-2000")}},
			func(im []types.Image) bool { return len(im) == 1 && *im[0].OwnerId == "136693071363" }},
		{"tag filter", ec2.DescribeImagesInput{Filters: []types.Filter{f2("tag:team", "infra")}}, func(im []types.Image) bool { return len(im) == 1 && *im[0].ImageId == own }},
		{"tag-key filter", ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{f2("tag-key", "nope")}}, func(im []types.Image) bool { return len(im) == 0 }},
		{"is-public false", ec2.DescribeImagesInput{Filters: []types.Filter{f2("is-public", "false")}}, func(im []types.Image) bool { return len(im) == 1 }},
		{"executable by all", ec2.DescribeImagesInput{ExecutableUsers: []string{"all"}, Owners: []string{"self"}}, func(im []types.Image) bool { return len(im) == 0 }},
		{"state filter", ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{f2("state", "available"), f2("image-type", "machine"), f2("root-device-type", "ebs")}},
			func(im []types.Image) bool { return len(im) == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := f.c.DescribeImages(f.ctx, &tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(out.Images) {
				var names []string
				for _, im := range out.Images {
					names = append(names, *im.Name)
				}
				t.Fatalf("unexpected images: %v", names)
			}
		})
	}
	// The tutorial AMI exists only in ap-northeast-1 and logs in as root.
	tokyo := client(f.srv, "ap-northeast-1")
	if _, err := tokyo.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-06128816a1c781a57"}}); err != nil {
		t.Errorf("tutorial AMI in ap-northeast-1: %v", err)
	}
	if _, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-06128816a1c781a57"}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("tutorial AMI in us-east-1: err = %v, want NotFound", err)
	}
}

func TestDescribeInstancesFilters(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	tagged := f.run(t, func(in *ec2.RunInstancesInput) {
		in.TagSpecifications = []types.TagSpecification{tagSpec(types.ResourceTypeInstance, "Name", "Packer Builder", "amibake:run-id", "r1")}
	})
	other := f.run(t)
	if _, err := f.c.StopInstances(f.ctx, &ec2.StopInstancesInput{InstanceIds: []string{other}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"tag", []types.Filter{{Name: aws.String("tag:amibake:run-id"), Values: []string{"r1"}}}, []string{tagged}},
		{"tag wildcard", []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"Packer*"}}}, []string{tagged}},
		{"state running", []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}, []string{tagged}},
		{"state stopped or running", []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"stopped", "running"}}}, []string{tagged, other}},
		{"tag-key and state (AND)", []types.Filter{{Name: aws.String("tag-key"), Values: []string{"Name"}}, {Name: aws.String("instance-state-name"), Values: []string{"stopped"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{Filters: tt.filters})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					got = append(got, *in.InstanceId)
				}
			}
			sort.Strings(got)
			want := slices.Clone(tt.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	if _, err := f.c.RunInstances(f.ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), MinCount: aws.Int32(12), MaxCount: aws.Int32(12)}); err != nil {
		t.Fatal(err)
	}
	f.srv.ResetCalls()
	p := ec2.NewDescribeInstancesPaginator(f.c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	seen := map[string]bool{}
	for p.HasMorePages() {
		out, err := p.NextPage(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if seen[*in.InstanceId] {
					t.Fatalf("%s on two pages", *in.InstanceId)
				}
				seen[*in.InstanceId] = true
			}
		}
	}
	if len(seen) != 12 || f.srv.Calls()["DescribeInstances"] != 3 {
		t.Fatalf("%d instances in %d calls, want 12 in 3", len(seen), f.srv.Calls()["DescribeInstances"])
	}
	all, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{})
	if err != nil {
		t.Fatal(err)
	}
	ip := ec2.NewDescribeImagesPaginator(f.c, &ec2.DescribeImagesInput{MaxResults: aws.Int32(7)})
	n := 0
	for ip.HasMorePages() {
		out, err := ip.NextPage(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) > 7 {
			t.Fatalf("page of %d images, want at most 7", len(out.Images))
		}
		n += len(out.Images)
	}
	if n != len(all.Images) {
		t.Fatalf("paged %d images, unpaged %d", n, len(all.Images))
	}
}

func TestEventualConsistency(t *testing.T) {
	const window = 300 * time.Millisecond
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.Consistency{Name: "test",
		Lags: []ec2sim.Lag{{Kind: "instance", Calls: ec2sim.AllCalls, Probability: 1, Min: window, Max: window}}}})
	start := time.Now()
	id := f.run(t)
	_, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if time.Since(start) < window && apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("describe right after launch: err = %v, want InvalidInstanceID.NotFound", err)
	}
	_, err = f.c.CreateTags(f.ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	if time.Since(start) < window && apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("tag right after launch: err = %v, want InvalidInstanceID.NotFound", err)
	}
	list, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < window && len(list.Reservations) != 0 {
		t.Fatalf("a listing right after launch shows the new instance")
	}
	// The SDK waiter retries NotFound until the id is known.
	w := ec2.NewInstanceRunningWaiter(f.c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	})
	if err := w.Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatalf("running waiter: %v", err)
	}
	if time.Since(start) < window {
		t.Fatalf("waiter returned within the consistency window")
	}
}

func TestLifecycleWithLatency(t *testing.T) {
	lat := ec2sim.Latency{Pending: 150 * time.Millisecond, SSHReady: 100 * time.Millisecond, Request: time.Millisecond, Stopping: 100 * time.Millisecond, ShuttingDown: 100 * time.Millisecond, ImagePending: 150 * time.Millisecond}
	f := newFixture(t, ec2sim.Options{Latency: lat})
	ud := base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hello from user data\n"))
	id := f.run(t, func(in *ec2.RunInstancesInput) { in.UserData = aws.String(ud) })
	if s := f.state(t, id); s != types.InstanceStateNamePending {
		t.Fatalf("state right after launch = %s, want pending", s)
	}
	fast := func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 50*time.Millisecond
	}
	if err := ec2.NewInstanceRunningWaiter(f.c, fast).Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Running comes before the boot finishes (SSHReady): the console fills
	// in a moment later, as on EC2.
	var console string
	for range 100 {
		out, err := f.c.GetConsoleOutput(f.ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
		if console = string(b); strings.Contains(console, "hello from user data") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(console, "hello from user data") {
		t.Errorf("console output lacks the user data: %q", console)
	}
	if _, err := f.c.RebootInstances(f.ctx, &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	stop, err := f.c.StopInstances(f.ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if sc := stop.StoppingInstances[0]; sc.CurrentState.Name != types.InstanceStateNameStopping || sc.PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("stop answered %s → %s", sc.PreviousState.Name, sc.CurrentState.Name)
	}
	if err := ec2.NewInstanceStoppedWaiter(f.c, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 50*time.Millisecond
	}).
		Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.ModifyInstanceAttribute(f.ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String("t3.large")}}); err != nil {
		t.Fatalf("modify stopped instance type: %v", err)
	}
	// What Packer sets at stop time for ena_support and sriov_support.
	if _, err := f.c.ModifyInstanceAttribute(f.ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), EnaSupport: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatalf("modify ENA support: %v", err)
	}
	if _, err := f.c.ModifyInstanceAttribute(f.ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), SriovNetSupport: &types.AttributeValue{Value: aws.String("simple")}}); err != nil {
		t.Fatalf("modify SR-IOV support: %v", err)
	}
	ami := f.createImage(t, id, "latency-image")
	if im := f.image(t, ami); im.State != types.ImageStatePending {
		t.Fatalf("new image state = %s, want pending", im.State)
	}
	if err := ec2.NewImageAvailableWaiter(f.c, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 50*time.Millisecond
	}).
		Wait(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.StartInstances(f.ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceRunningWaiter(f.c, fast).Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Reservations[0].Instances[0].InstanceType; got != "t3.large" {
		t.Errorf("instance type after modify = %s", got)
	}
	if _, err := f.c.TerminateInstances(f.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceTerminatedWaiter(f.c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 50*time.Millisecond
	}).
		Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	vols, err := f.c.DescribeVolumes(f.ctx, &ec2.DescribeVolumesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) != 0 {
		t.Errorf("root volume outlived its instance: %d volumes", len(vols.Volumes))
	}
}
