package amazonebs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// terminateAttempts bounds the build's own retries of a TerminateInstances
// that keeps failing (each attempt already has the SDK's retries of
// throttling and server errors).
const terminateAttempts = 5

// terminateInstance terminates the source instance, retrying a failing
// call with backoff and saying so. When every attempt failed it records
// the failure in s.TerminateErr, so that the cleanups that wait for the
// instance to be gone (its volumes, its security group) end at once with
// a clear error instead of waiting minutes for what cannot happen.
func terminateInstance(ctx context.Context, s *State, id string) error {
	delay := max(5*s.Waits.MinDelay, 10*time.Millisecond)
	for attempt := 1; ; attempt++ {
		err := s.deleteRetry(ctx, id, "terminate instance "+id, func(ctx context.Context) error {
			_, err := s.ec2("").TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
			return err
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt == terminateAttempts {
			err = fmt.Errorf("terminate source instance %s (%d attempts): %w; it may still be running: `amibake cleanup --run-id %s` removes it", id, attempt, err, s.RunID)
			s.TerminateErr = err
			return err
		}
		s.UI.Error(fmt.Sprintf("Terminating instance %s failed (attempt %d of %d): %v; retrying in %s", id, attempt, terminateAttempts, err, delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// errNotTerminated is what a cleanup that needs the instance gone returns
// when it could not be terminated.
func errNotTerminated(s *State, what string) error {
	id := "the source instance"
	if s.Instance != nil {
		id = "source instance " + aws.ToString(s.Instance.InstanceId)
	}
	return fmt.Errorf("%s: %s was not terminated, so it still holds it; `amibake cleanup --run-id %s` removes both", what, id, s.RunID)
}
