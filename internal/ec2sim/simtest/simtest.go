// Package simtest is what a test's own fixtures need to work against an
// eventually consistent EC2, the simulator's default and harsh profiles
// included (EC2SIM_CONSISTENCY): a fixture that creates a resource and
// then names it must do what the EC2 guide asks of every client ("Eventual
// consistency in the Amazon EC2 API": retry NotFound after a create with
// exponential backoff), and a fixture that expects a listing to show a new
// resource must wait for it.
//
// Only fixtures use it: the product under test gets clients without it, so
// a product that gives up on NotFound still fails the test.
package simtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ec2sim"
)

// Window bounds every wait here: far longer than any profile keeps a new
// resource unseen (harsh: 2 s), short enough that a resource that never
// appears fails the test promptly.
const Window = 15 * time.Second

// backoff is 50 ms doubling to 1 s; fixed steps rather than jitter, so
// that the attempts always span Window.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, time.Second)
}

// attempts spans Window with backoff's steps.
var attempts = func() int {
	n, total := 1, time.Duration(0)
	for total < Window {
		total += backoff(n)
		n++
	}
	return n
}()

// IsNotFound reports whether err is an EC2 NotFound answer
// (InvalidInstanceID.NotFound, InvalidGroup.NotFound,
// InvalidLaunchTemplateName.NotFoundException...).
func IsNotFound(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	c := ae.ErrorCode()
	return strings.HasSuffix(c, ".NotFound") || strings.HasSuffix(c, ".NotFoundException")
}

// RetryNotFound is a per-call option for a fixture's call that names a
// resource created moments ago: the SDK retries NotFound (and what it
// retries anyway) with backoff for up to Window.
//
//	c.CreateTags(ctx, in, simtest.RetryNotFound)
func RetryNotFound(o *ec2.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = attempts
		so.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
			return backoff(attempt), nil
		})
		// Not the shared retry quota: a fixture's retries are expected, and
		// must not starve the client's others.
		so.RateLimiter = ratelimit.None
		so.Retryables = append(so.Retryables, retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if IsNotFound(err) {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
	})
}

// Eventually polls cond with backoff until it reports true, and fails the
// test if it does not within Window or returns an error; what says what
// was awaited. For a fixture that expects a listing (DescribeImages by
// filter, DescribeInstances by tag...) to show a resource just created.
func Eventually(ctx context.Context, t testing.TB, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := Poll(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Poll is Eventually returning an error, for fixtures outside a test's
// goroutine.
func Poll(ctx context.Context, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, Window)
	defer cancel()
	for attempt := 1; ; attempt++ {
		ok, err := cond(ctx)
		switch {
		case err != nil && !IsNotFound(err):
			return err
		case ok:
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("still %w when the wait ended (%w)", err, ctx.Err())
			}
			return fmt.Errorf("not seen (%w; waits up to %s)", ctx.Err(), Window)
		case <-time.After(backoff(attempt)):
		}
	}
}

// Visible waits until each id (an instance, security group, key pair,
// image, snapshot, volume or launch template, by its id prefix) is
// described by id, and so listed; an image's snapshots too. For a fixture
// that creates what the code under test must then find by a listing, as
// it would on EC2 for a resource created some time before.
func Visible(ctx context.Context, t testing.TB, c *ec2.Client, ids ...string) {
	t.Helper()
	for _, id := range ids {
		describe, err := describer(c, id)
		if err != nil {
			t.Fatal(err)
		}
		Eventually(ctx, t, id+" to be visible", func(ctx context.Context) (bool, error) {
			n, err := describe(ctx)
			return n == 1, err
		})
		if strings.HasPrefix(id, "ami-") {
			out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
			if err != nil || len(out.Images) != 1 {
				t.Fatalf("describe %s for its snapshots: %v", id, err)
			}
			for _, m := range out.Images[0].BlockDeviceMappings {
				if m.Ebs != nil && m.Ebs.SnapshotId != nil {
					Visible(ctx, t, c, *m.Ebs.SnapshotId)
				}
			}
		}
	}
}

// EnvWindow is the longest a new resource stays unseen on simulators that
// follow EC2SIM_CONSISTENCY (those started without a profile), for an
// option of the code under test that says how long to allow for
// consistency (a reaper's Settle) where a test shortens it. A name that is
// no profile gives 0: starting the simulator fails on it.
func EnvWindow() time.Duration {
	name := os.Getenv(ec2sim.ConsistencyEnv)
	if name == "" {
		name = "none"
	}
	p, _ := ec2sim.ConsistencyProfile(name)
	return p.MaxWindow()
}

// describer returns a call that describes id by id and counts what it got.
func describer(c *ec2.Client, id string) (func(context.Context) (int, error), error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			if err != nil {
				return 0, err
			}
			n := 0
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
			return n, nil
		}, nil
	case "sg":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.SecurityGroups), nil
		}, nil
	case "key":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyPairIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.KeyPairs), nil
		}, nil
	case "ami":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.Images), nil
		}, nil
	case "snap":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.Snapshots), nil
		}, nil
	case "vol":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.Volumes), nil
		}, nil
	case "lt":
		return func(ctx context.Context) (int, error) {
			out, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}})
			if err != nil {
				return 0, err
			}
			return len(out.LaunchTemplates), nil
		}, nil
	}
	return nil, fmt.Errorf("simtest.Visible: %q is not an id of a kind it knows", id)
}
