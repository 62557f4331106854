package amazonebs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// waitInstance polls DescribeInstances until the instance is in state want.
// It replaces the SDK's waiters, whose jittered exponential delays
// overshoot short transitions by seconds; this one backs off gently from a
// quarter second. A state the instance cannot leave for want fails at once.
func waitInstance(ctx context.Context, s *State, id string, want types.InstanceStateName) (*types.Instance, error) {
	var found *types.Instance
	what := fmt.Sprintf("instance %s to be %s", id, want)
	err := s.Waits.poll(ctx, what, instanceWaitLimit, func(ctx context.Context) (bool, error) {
		out, err := s.ec2("").DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			if isNotFound(err) {
				if want == types.InstanceStateNameTerminated && !s.recent(id) {
					return true, nil
				}
				return false, nil // not visible yet
			}
			return false, fmt.Errorf("describe instance %s: %w", id, err)
		}
		for _, r := range out.Reservations {
			for i := range r.Instances {
				in := r.Instances[i]
				if aws.ToString(in.InstanceId) != id || in.State == nil {
					continue
				}
				state := in.State.Name
				if state == want {
					found = &in
					return true, nil
				}
				if dead(state, want) {
					reason := ""
					if in.StateReason != nil {
						reason = ": " + aws.ToString(in.StateReason.Message)
					}
					return false, fmt.Errorf("instance %s is %s while waiting for it to be %s%s", id, state, want, reason)
				}
			}
		}
		return false, nil
	})
	return found, err
}

// dead reports whether an instance in state can no longer reach want.
func dead(state, want types.InstanceStateName) bool {
	switch want {
	case types.InstanceStateNameRunning, types.InstanceStateNameStopped:
		return state == types.InstanceStateNameShuttingDown || state == types.InstanceStateNameTerminated
	}
	return false
}
