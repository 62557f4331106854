package provisioner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// Common holds the fields Packer handles for every provisioner, whatever
// its type.
type Common struct {
	// Only and Except are build-name globs (Packer's -only semantics).
	Only, Except []string
	PauseBefore  time.Duration
	// MaxRetries is how many times a failed provisioner is run again.
	MaxRetries int
	// Timeout bounds each attempt; 0 means none.
	Timeout time.Duration
	// RetryDelay returns the wait before retry n (1, 2, ...); nil means
	// DefaultRetryDelay. Tests set it to return 0.
	RetryDelay func(n int) time.Duration
}

// CommonOf returns the common fields of a template provisioner.
func CommonOf(p *template.Provisioner) Common {
	return Common{
		Only:        p.Only,
		Except:      p.Except,
		PauseBefore: p.PauseBefore,
		MaxRetries:  p.MaxRetries,
		Timeout:     p.Timeout,
	}
}

// DefaultRetryDelay backs off exponentially from 1s to at most 30s. Packer
// retries at once, which rarely helps with the flaky mirror or the apt lock
// that max_retries is usually set for.
func DefaultRetryDelay(n int) time.Duration {
	d := time.Second << min(max(n-1, 0), 5)
	return min(d, 30*time.Second)
}

// Applies reports whether a provisioner with these only/except lists runs
// for the named build. Patterns are globs (*, ?, [a-z]) matched against the
// build's full name and against its name without the HCL2 build-block
// prefix, so both "app.amazon-ebs.ubuntu" and Packer's usual
// "amazon-ebs.ubuntu" select the build "app.amazon-ebs.ubuntu".
func Applies(only, except []string, buildName string) bool {
	if len(only) > 0 && !matchAny(only, buildName) {
		return false
	}
	return !matchAny(except, buildName)
}

func matchAny(patterns []string, name string) bool {
	candidates := []string{name}
	// Every dot-suffix that still has a dot: "a.b.c" also tries "b.c".
	for rest := name; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if !strings.Contains(rest, ".") {
			break
		}
		candidates = append(candidates, rest)
	}
	for _, p := range patterns {
		for _, c := range candidates {
			if ok, err := path.Match(p, c); (err == nil && ok) || p == c {
				return true
			}
		}
	}
	return false
}

// Run runs p for the build b with Packer's common fields applied: it is
// skipped unless only/except select b.Name; it waits pause_before; each
// attempt is bounded by timeout; a failure is retried max_retries times.
// The log lines are Packer's.
func Run(ctx context.Context, u ui.UI, comm communicator.Communicator, b *Build, p Provisioner, opts Common) error {
	if !Applies(opts.Only, opts.Except, b.Name) {
		slog.Debug("provisioner skipped by only/except", "build", b.Name, "only", opts.Only, "except", opts.Except)
		return nil
	}
	if opts.PauseBefore > 0 {
		u.Say(fmt.Sprintf("Pausing %s before the next provisioner...", opts.PauseBefore))
		if err := sleep(ctx, opts.PauseBefore); err != nil {
			return err
		}
	}
	delay := opts.RetryDelay
	if delay == nil {
		delay = DefaultRetryDelay
	}

	err := attempt(ctx, u, comm, b, p, opts.Timeout)
	for left, n := opts.MaxRetries, 1; err != nil && left > 0; left, n = left-1, n+1 {
		if ctx.Err() != nil {
			return err
		}
		u.Say(fmt.Sprintf("Provisioner failed with %q, retrying with %d trie(s) left", err, left))
		if serr := sleep(ctx, delay(n)); serr != nil {
			return err
		}
		err = attempt(ctx, u, comm, b, p, opts.Timeout)
		if err == nil {
			return nil
		}
		if left == 1 {
			u.Say("retry limit reached.")
		}
	}
	return err
}

// ErrTimeout is wrapped by the error of a provisioner that ran out of time.
var ErrTimeout = errors.New("provisioner timed out")

func attempt(ctx context.Context, u ui.UI, comm communicator.Communicator, b *Build, p Provisioner, timeout time.Duration) error {
	if timeout <= 0 {
		return p.Provision(ctx, u, comm, b)
	}
	u.Say(fmt.Sprintf("Setting a %s timeout for the next provisioner...", timeout))
	tctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	err := p.Provision(tctx, u, comm, b)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(tctx), ErrTimeout) {
		u.Error("Cancelling provisioner after a timeout...")
		return fmt.Errorf("%w after %s: %w", ErrTimeout, timeout, err)
	}
	return err
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sleep waits d or until ctx is done; plugins use it for pause_after.
func Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }
