package amazonebs

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Waits bound and pace every wait on EC2: instances changing state, images
// and snapshots becoming available. Polls start soon and back off.
type Waits struct {
	// Delay, when set (aws_polling.delay_seconds, AWS_POLL_DELAY_SECONDS),
	// is a fixed delay between polls instead of the backoff.
	Delay time.Duration
	// MaxAttempts (aws_polling.max_attempts, AWS_MAX_ATTEMPTS) bounds the
	// polls of one wait; 0 means the wait's own time limit.
	MaxAttempts int
	// MinDelay and MaxDelay shape the backoff when Delay is unset.
	MinDelay, MaxDelay time.Duration
}

// DefaultWaits polls soon (a fifth of a second) and backs off gently (x1.2
// per poll) to 15s: short waits end close to when the resource is ready,
// long ones (an AMI: minutes) settle at one call per 15s.
func DefaultWaits() Waits {
	return Waits{MinDelay: 200 * time.Millisecond, MaxDelay: 15 * time.Second}
}

// backoff is the growth of the delay between polls.
const backoff = 1.2

// WaitsFrom applies aws_polling, or else Packer's environment variables.
func WaitsFrom(c *Config, getenv func(string) string) Waits {
	w := DefaultWaits()
	if getenv != nil {
		if n, err := strconv.Atoi(getenv("AWS_POLL_DELAY_SECONDS")); err == nil && n > 0 {
			w.Delay = time.Duration(n) * time.Second
		}
		if n, err := strconv.Atoi(getenv("AWS_MAX_ATTEMPTS")); err == nil && n > 0 {
			w.MaxAttempts = n
		}
	}
	if p := c.Polling; p != nil {
		if p.DelaySeconds > 0 {
			w.Delay = time.Duration(p.DelaySeconds) * time.Second
		}
		if p.MaxAttempts > 0 {
			w.MaxAttempts = p.MaxAttempts
		}
	}
	return w
}

// bounds returns the SDK waiter's delays and total duration for a wait
// whose own limit is limit.
func (w Waits) bounds(limit time.Duration) (minDelay, maxDelay, total time.Duration) {
	minDelay, maxDelay = w.MinDelay, w.MaxDelay
	if minDelay <= 0 {
		minDelay = 250 * time.Millisecond
	}
	if maxDelay < minDelay {
		maxDelay = minDelay
	}
	if w.Delay > 0 {
		minDelay, maxDelay = w.Delay, w.Delay
	}
	total = limit
	if w.MaxAttempts > 0 {
		total = time.Duration(w.MaxAttempts) * maxDelay
	}
	return minDelay, maxDelay, total
}

// ErrWaitTimeout is wrapped by the error of a wait that ran out of time.
var ErrWaitTimeout = fmt.Errorf("timed out (raise aws_polling's delay_seconds or max_attempts, or AWS_POLL_DELAY_SECONDS / AWS_MAX_ATTEMPTS)")

// poll calls check until it reports done, fails, ctx ends or the wait's
// bounds are exhausted. The first check is immediate.
func (w Waits) poll(ctx context.Context, what string, limit time.Duration, check func(ctx context.Context) (bool, error)) error {
	minDelay, maxDelay, total := w.bounds(limit)
	start := time.Now()
	delay := minDelay
	for attempt := 1; ; attempt++ {
		done, err := check(ctx)
		if err != nil || done {
			return err
		}
		if w.MaxAttempts > 0 && attempt >= w.MaxAttempts || w.MaxAttempts == 0 && time.Since(start)+delay > total {
			return fmt.Errorf("wait for %s: %w after %s", what, ErrWaitTimeout, time.Since(start).Round(time.Second))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(time.Duration(float64(delay)*backoff), maxDelay)
	}
}

// withLimit returns waits whose polls are bounded by limit rather than by
// max_attempts: cleanup retries are not governed by aws_polling.
func (w Waits) withLimit(limit time.Duration) limitedWaits {
	w.MaxAttempts = 0
	return limitedWaits{w: w, limit: limit}
}

type limitedWaits struct {
	w     Waits
	limit time.Duration
}

func (l limitedWaits) poll(ctx context.Context, what string, _ time.Duration, check func(ctx context.Context) (bool, error)) error {
	if l.w.Delay > 0 {
		l.w.Delay = min(l.w.Delay, 5*time.Second)
	}
	return l.w.poll(ctx, what, l.limit, check)
}
