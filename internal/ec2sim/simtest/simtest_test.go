package simtest_test

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

// On the harsh profile every new group is unknown for 1 to 2 s: a call
// naming it at once fails, the same call with RetryNotFound succeeds, and
// a listing of it is awaited with Eventually.
func TestFixturesOnHarsh(t *testing.T) {
	srv, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Consistency: ec2sim.HarshConsistency()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := ec2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "simulator-secret", ""),
		BaseEndpoint: aws.String(srv.URL()),
		HTTPClient:   awsclient.HTTPClient(nil),
	}, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })

	tags := func(id string) *ec2.CreateTagsInput {
		return &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}
	}
	mk := func(name string) string {
		out, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.GroupId)
	}

	late := mk("late")
	if _, err := c.CreateTags(ctx, tags(late)); !simtest.IsNotFound(err) {
		t.Fatalf("CreateTags at once on harsh: got %v, want a NotFound (else this test proves nothing)", err)
	}
	if _, err := c.CreateTags(ctx, tags(mk("retried")), simtest.RetryNotFound); err != nil {
		t.Fatalf("CreateTags with RetryNotFound: %v", err)
	}

	listed := mk("listed")
	simtest.Eventually(ctx, t, "the new group in DescribeSecurityGroups", func(ctx context.Context) (bool, error) {
		out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{})
		if err != nil {
			return false, err
		}
		for _, g := range out.SecurityGroups {
			if aws.ToString(g.GroupId) == listed {
				return true, nil
			}
		}
		return false, nil
	})

	// Visible: once it returns, a listing shows the key pair.
	kp, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	simtest.Visible(ctx, t, c, aws.ToString(kp.KeyPairId))
	keys, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
	if err != nil || len(keys.KeyPairs) != 1 || aws.ToString(keys.KeyPairs[0].KeyPairId) != aws.ToString(kp.KeyPairId) {
		t.Fatalf("DescribeKeyPairs after Visible: %v %+v", err, keys)
	}

	// Anything but NotFound ends the wait at once.
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"sg-0000000000000dead"}}, simtest.RetryNotFound); err == nil || simtest.IsNotFound(err) {
		t.Fatalf("CreateTags without tags: got %v, want a validation error, not retried", err)
	}
	start := time.Now()
	err = simtest.Poll(ctx, func(ctx context.Context) (bool, error) {
		_, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
		return err == nil, err
	})
	if err == nil || simtest.IsNotFound(err) || time.Since(start) > simtest.Window/2 {
		t.Fatalf("Poll on an invalid request: got %v after %s, want its error at once", err, time.Since(start))
	}
}
