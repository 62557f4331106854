package reuse

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
)

const tutorialAMI = "ami-06128816a1c781a57"

func startSim(t testing.TB) (*ec2sim.Server, Clients) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	if err != nil {
		cancel()
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close(); cancel() })
	clients := map[string]*ec2.Client{}
	return srv, func(region string) EC2 {
		if c, ok := clients[region]; ok {
			return c
		}
		c := ec2.New(ec2.Options{
			Region: region, BaseEndpoint: aws.String(srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		})
		clients[region] = c
		return c
	}
}

// register makes an account-owned AMI in region from the tutorial image's
// snapshot, tagged with digest when it is not empty, and waits until it is
// listed (it stands for an AMI baked earlier).
func register(t testing.TB, clients Clients, region, name, digest string) string {
	t.Helper()
	ctx := context.Background()
	c := clients(region).(*ec2.Client)
	src, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{tutorialAMI}})
	if err != nil || len(src.Images) != 1 {
		t.Fatalf("describe the tutorial AMI in %s: %v", region, err)
	}
	in := &ec2.RegisterImageInput{
		Name: aws.String(name), RootDeviceName: aws.String("/dev/sda1"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsBlockDevice{SnapshotId: src.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId}}},
	}
	if digest != "" {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeImage,
			Tags: []types.Tag{{Key: aws.String(TagKey), Value: aws.String(digest)}}}}
	}
	out, err := c.RegisterImage(ctx, in)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	simtest.Visible(ctx, t, c, aws.ToString(out.ImageId))
	return aws.ToString(out.ImageId)
}

func TestFindAndCopy(t *testing.T) {
	srv, clients := startSim(t)
	ctx := context.Background()
	const region, digest = "ap-northeast-1", "d1"
	regions := []string{region, "us-east-1", "eu-west-1"}

	found, err := Find(ctx, clients, digest, regions)
	if err != nil || len(found) != 0 {
		t.Fatalf("Find before any AMI: %v, %v", found, err)
	}
	register(t, clients, region, "other", "d2")
	register(t, clients, region, "untagged", "")
	id := register(t, clients, region, "mine", digest)

	srv.ResetCalls()
	found, err = Find(ctx, clients, digest, regions)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[region] != id {
		t.Fatalf("Find = %v, want only %s:%s", found, region, id)
	}
	for action := range srv.Calls() {
		if action != "DescribeImages" {
			t.Errorf("Find called %s", action)
		}
	}

	var started []string
	all, err := CopyMissing(ctx, clients, digest, found, regions, CopyOptions{
		Poll: 5 * time.Millisecond, Tags: map[string]string{"Team": "a"},
		OnCopy: func(r, _ string) { started = append(started, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[region] != id || len(started) != 2 {
		t.Fatalf("CopyMissing = %v (started %v)", all, started)
	}
	if n := srv.Succeeded()["CopyImage"]; n != 2 { // copies made, not retries
		t.Errorf("CopyImage called %d times, want 2", n)
	}
	again, err := Find(ctx, clients, digest, regions)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		if again[r] != all[r] {
			t.Errorf("%s: Find after copy = %q, want %q", r, again[r], all[r])
		}
	}
	out, err := clients("eu-west-1").DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{all["eu-west-1"]}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("describe copy: %v", err)
	}
	im := out.Images[0]
	tags := map[string]string{}
	for _, tg := range im.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags[TagKey] != digest || tags["Team"] != "a" || aws.ToString(im.Name) != "mine" {
		t.Errorf("copy name %q tags %v", aws.ToString(im.Name), tags)
	}

	// Nothing left to copy: no call.
	srv.ResetCalls()
	if _, err := CopyMissing(ctx, clients, digest, all, regions, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls()["CopyImage"]; n != 0 {
		t.Errorf("CopyImage called %d times with every region present", n)
	}
}

func TestFindIgnoresUnavailableAndOthers(t *testing.T) {
	_, clients := startSim(t)
	ctx := context.Background()
	const region = "ap-northeast-1"
	id := register(t, clients, region, "gone-image", "dd")
	c := clients(region).(*ec2.Client)
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	found, err := Find(ctx, clients, "dd", []string{region})
	if err != nil || len(found) != 0 {
		t.Fatalf("Find found a deregistered AMI: %v %v", found, err)
	}
	if _, err := Find(ctx, clients, "", []string{region}); err == nil {
		t.Error("Find accepted an empty digest")
	}
	if _, err := CopyMissing(ctx, clients, "dd", nil, []string{region}, CopyOptions{}); err == nil {
		t.Error("CopyMissing with nothing found did not fail")
	}
}
