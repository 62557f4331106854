package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// maybeCreated reports whether a create call that failed may have created
// its resource all the same: the build was cancelled while the call was in
// flight, the connection failed before an answer came, or EC2 answered
// with a server error. A client error (4xx) means nothing was created.
func maybeCreated(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode() >= 500
	}
	var ae smithy.APIError
	return !errors.As(err, &ae)
}

// inflightLookup bounds the search for a resource whose create call ended
// without an answer: long enough for EC2's listings to catch up.
const inflightLookup = 10 * time.Second

// findByFilter polls describe until it returns ids or the lookup time is
// up; an empty result then means the create call did not create anything.
func (s *State) findByFilter(ctx context.Context, what string, describe func(context.Context) ([]string, error)) ([]string, error) {
	var ids []string
	err := s.consistencyWaits().poll(ctx, what, inflightLookup, func(ctx context.Context) (bool, error) {
		var err error
		ids, err = describe(ctx)
		return len(ids) > 0, err
	})
	if errors.Is(err, ErrWaitTimeout) {
		return nil, nil
	}
	return ids, err
}

// launchedWithToken finds the instances a RunInstances call with this
// ClientToken created, if it created any.
func (s *State) launchedWithToken(ctx context.Context, token string) ([]string, error) {
	return s.findByFilter(ctx, "an instance launched with client token "+token, func(ctx context.Context) ([]string, error) {
		out, err := s.ec2("").DescribeInstances(ctx, &ec2.DescribeInstancesInput{
			Filters: []types.Filter{{Name: aws.String("client-token"), Values: []string{token}}},
		})
		if err != nil {
			return nil, fmt.Errorf("look for an instance launched with client token %s: %w", token, err)
		}
		var ids []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if in.State != nil && in.State.Name == types.InstanceStateNameTerminated {
					continue
				}
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
		return ids, nil
	})
}

// imagesNamed finds this account's AMIs named name in region.
func (s *State) imagesNamed(ctx context.Context, region, name string) ([]string, error) {
	return s.findByFilter(ctx, fmt.Sprintf("an AMI named %q", name), func(ctx context.Context) ([]string, error) {
		out, err := s.ec2(region).DescribeImages(ctx, &ec2.DescribeImagesInput{
			Owners:  []string{"self"},
			Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}},
		})
		if err != nil {
			return nil, fmt.Errorf("look for an AMI named %q: %w", name, err)
		}
		var ids []string
		for _, im := range out.Images {
			ids = append(ids, aws.ToString(im.ImageId))
		}
		return ids, nil
	})
}

// groupsNamed finds the security groups named name in the build's VPC (the
// generated name is unique to this build).
func (s *State) groupsNamed(ctx context.Context, name string) ([]string, error) {
	return s.findByFilter(ctx, fmt.Sprintf("a security group named %q", name), func(ctx context.Context) ([]string, error) {
		filters := []types.Filter{{Name: aws.String("group-name"), Values: []string{name}}}
		if s.VPCID != "" {
			filters = append(filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{s.VPCID}})
		}
		out, err := s.ec2("").DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filters})
		if err != nil {
			return nil, fmt.Errorf("look for a security group named %q: %w", name, err)
		}
		var ids []string
		for _, g := range out.SecurityGroups {
			ids = append(ids, aws.ToString(g.GroupId))
		}
		return ids, nil
	})
}
