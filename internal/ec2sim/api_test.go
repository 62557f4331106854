package ec2sim_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func TestSmokeNoSSH(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	ctx := ctxT(t)
	c := client(srv, "us-east-1")
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"099720109477"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/*ubuntu-noble-24.04-amd64-server-*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs.Images) == 0 {
		t.Fatal("no images")
	}
	t.Logf("%d images, first %s %s", len(imgs.Images), *imgs.Images[0].ImageId, *imgs.Images[0].Name)
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro})
	if err != nil {
		t.Fatal(err)
	}
	id := run.Instances[0].InstanceId
	t.Logf("run: %s %s", *id, run.Instances[0].State.Name)
	w := ec2.NewInstanceRunningWaiter(c)
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_ = time.Second
}
