package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/amibake/amibake/internal/ledger"
)

// maybeCreated reports whether a create call that failed may have created
// its resource all the same: the build was cancelled while the call was in
// flight, the connection failed before an answer came, or EC2 answered
// with a server error. A client error (4xx) means nothing was created, and
// so does a launch refused for capacity: EC2 sends InsufficientInstanceCapacity
// as a server error (HTTP 500), but it is a decision, and the retries the
// SDK made with the same ClientToken would have returned an instance an
// earlier attempt had launched.
func maybeCreated(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if launchRefused(err) {
		return false
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
	return s.liveInstances(ctx, "an instance launched with client token "+token,
		[]types.Filter{{Name: aws.String("client-token"), Values: []string{token}}})
}

// launchedFromTemplates finds the instances this run's spot fleets
// launched from launch templates ltIDs: EC2 tags every instance launched
// from a launch template with aws:ec2launchtemplate:id ("Launch EC2
// instances using a launch template", EC2 User Guide), while a fleet's
// instance does not carry the CreateFleet ClientToken.
func (s *State) launchedFromTemplates(ctx context.Context, ltIDs []string) ([]string, error) {
	return s.liveInstances(ctx, "an instance launched from launch template "+strings.Join(ltIDs, ", "), []types.Filter{
		{Name: aws.String("tag:aws:ec2launchtemplate:id"), Values: ltIDs},
		{Name: aws.String("tag:" + ledger.TagRunID), Values: []string{s.RunID}},
	})
}

// liveInstances finds the instances filters match that are not
// terminated, waiting a while for EC2's listings to show them.
func (s *State) liveInstances(ctx context.Context, what string, filters []types.Filter) ([]string, error) {
	return s.findByFilter(ctx, what, func(ctx context.Context) ([]string, error) {
		out, err := s.ec2("").DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: filters})
		if err != nil {
			return nil, fmt.Errorf("look for %s: %w", what, err)
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
