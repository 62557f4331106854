package amazonebs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// EC2 is eventually consistent: a resource created a moment ago may answer
// NotFound to the next call that names it (a security group to
// AuthorizeSecurityGroupIngress, a key pair to RunInstances, an instance to
// TerminateInstances). Calls that name a new resource retry NotFound for
// this long after it was created.
const consistencyWindow = 30 * time.Second

func isNotFound(err error) bool { return isNotFoundCode(apiCode(err)) }

func isNotFoundCode(code string) bool {
	return strings.HasSuffix(code, ".NotFound") || strings.HasSuffix(code, ".NotFoundException")
}

// births remembers when this build created each resource.
type births struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *State) born(id string) {
	s.births.mu.Lock()
	defer s.births.mu.Unlock()
	if s.births.at == nil {
		s.births.at = map[string]time.Time{}
	}
	s.births.at[id] = time.Now()
}

// recent reports whether id was created by this build within the
// consistency window, so that NotFound may only mean "not visible yet".
func (s *State) recent(id string) bool {
	s.births.mu.Lock()
	defer s.births.mu.Unlock()
	t, ok := s.births.at[id]
	return ok && time.Since(t) < consistencyWindow
}

// consistencyWaits polls quickly: visibility comes within seconds.
func (s *State) consistencyWaits() Waits {
	w := s.Waits
	w.MaxAttempts, w.Delay = 0, 0
	w.MinDelay = min(max(w.MinDelay, time.Millisecond), 100*time.Millisecond)
	w.MaxDelay = min(max(w.MaxDelay, w.MinDelay), 2*time.Second)
	return w
}

// retryNotFound runs call, retrying while it fails with NotFound about a
// resource just created (within the window from since).
func (s *State) retryNotFound(ctx context.Context, what string, call func(context.Context) error) error {
	since := time.Now()
	var last error
	err := s.consistencyWaits().poll(ctx, what, consistencyWindow+time.Second, func(ctx context.Context) (bool, error) {
		err := call(ctx)
		switch {
		case err == nil:
			return true, nil
		case isNotFound(err) && time.Since(since) < consistencyWindow:
			last = err
			return false, nil
		}
		return false, err
	})
	if errors.Is(err, ErrWaitTimeout) && last != nil {
		return last
	}
	return err
}

// deleteRetry runs a delete of a resource this build created; NotFound is
// retried while the resource is recent, and means it is gone after that.
func (s *State) deleteRetry(ctx context.Context, id, what string, del func(context.Context) error) error {
	return s.consistencyWaits().poll(ctx, what, consistencyWindow+time.Second, func(ctx context.Context) (bool, error) {
		err := del(ctx)
		switch {
		case err == nil:
			return true, nil
		case isNotFound(err):
			return !s.recent(id), nil
		}
		return false, err
	})
}
