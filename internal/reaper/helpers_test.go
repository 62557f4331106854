package reaper

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
)

func startSim(t testing.TB, opts ec2sim.Options) *ec2sim.Server {
	t.Helper()
	opts.NoSSH = true
	srv, err := ec2sim.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func simClient(url, region string) *ec2.Client {
	return ec2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "simulator-secret", ""),
		BaseEndpoint: aws.String(url),
		HTTPClient:   awsclient.HTTPClient(nil),
	}, func(o *ec2.Options) { o.RetryMaxAttempts = 5 })
}

func simClients(url string) ClientFactory {
	return func(_ ledger.Location, region string) (EC2API, error) { return simClient(url, region), nil }
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fixture creates resources the way a build does, with amibake's tags in
// the create call (or none, for tags == nil), and waits until they are
// listed: they stand for what a build left earlier.
type fixture struct {
	t   testing.TB
	ctx context.Context
	c   *ec2.Client
}

func tagSpec(rt types.ResourceType, tags map[string]string) []types.TagSpecification {
	if tags == nil {
		return nil
	}
	var ts []types.Tag
	for k, v := range tags {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return []types.TagSpecification{{ResourceType: rt, Tags: ts}}
}

func tagsFor(runID string, at time.Time) map[string]string {
	return ledger.Tags(runID, "amazon-ebs.test", at)
}

func (f fixture) sourceAMI() string {
	f.t.Helper()
	out, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"099720109477"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/*ubuntu-noble-24.04-amd64-server-*"}}},
	})
	if err != nil || len(out.Images) == 0 {
		f.t.Fatalf("find a source AMI: %v", err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

func (f fixture) instance(token string, tags map[string]string, groups ...string) string {
	f.t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(f.sourceAMI()), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: types.InstanceTypeT3Micro, SecurityGroupIds: groups}
	if token != "" {
		in.ClientToken = aws.String(token)
	}
	if tags != nil {
		in.TagSpecifications = append(tagSpec(types.ResourceTypeInstance, tags), tagSpec(types.ResourceTypeVolume, tags)...)
	}
	out, err := f.c.RunInstances(f.ctx, in)
	if err != nil {
		f.t.Fatalf("RunInstances: %v", err)
	}
	simtest.Visible(f.ctx, f.t, f.c, aws.ToString(out.Instances[0].InstanceId))
	return aws.ToString(out.Instances[0].InstanceId)
}

func (f fixture) keyPair(name string, tags map[string]string) string {
	f.t.Helper()
	out, err := f.c.CreateKeyPair(f.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name), TagSpecifications: tagSpec(types.ResourceTypeKeyPair, tags)})
	if err != nil {
		f.t.Fatalf("CreateKeyPair: %v", err)
	}
	simtest.Visible(f.ctx, f.t, f.c, aws.ToString(out.KeyPairId))
	return aws.ToString(out.KeyPairId)
}

func (f fixture) group(name string, tags map[string]string) string {
	f.t.Helper()
	out, err := f.c.CreateSecurityGroup(f.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("test"),
		TagSpecifications: tagSpec(types.ResourceTypeSecurityGroup, tags)})
	if err != nil {
		f.t.Fatalf("CreateSecurityGroup: %v", err)
	}
	simtest.Visible(f.ctx, f.t, f.c, aws.ToString(out.GroupId))
	return aws.ToString(out.GroupId)
}

func inventory(srv *ec2sim.Server, region string) ec2sim.RegionInventory {
	return srv.Inventory().Regions[region]
}

func TestMain(m *testing.M) {
	if mode := os.Getenv("REAPER_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}
