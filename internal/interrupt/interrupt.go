// Package interrupt turns SIGINT and SIGTERM into two contexts: the first
// signal cancels the run so that cleanup can proceed, a second one cancels
// the cleanup too. A third gets Go's default handling (the process dies).
package interrupt

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Context returns run, cancelled by the first SIGINT or SIGTERM, and
// cleanup, cancelled by the second (cleanup is not cancelled by parent, so
// that cleanup still runs when parent is; run is cancelled with either).
// signal returns the first signal received, nil if none. stop releases the
// signal handlers and both contexts.
//
// run carries cleanup: Cleanup(run) returns it, so code that is handed only
// run can do its cleanup with the right context.
func Context(parent context.Context) (run context.Context, cleanup context.Context, sig func() os.Signal, stop func()) {
	return notify(parent, make(chan os.Signal, 2), true)
}

func notify(parent context.Context, ch chan os.Signal, install bool) (context.Context, context.Context, func() os.Signal, func()) {
	cleanup, cancelCleanup := context.WithCancel(context.WithoutCancel(parent))
	run, cancelRunCause := context.WithCancelCause(context.WithValue(parent, cleanupKey{}, cleanup))
	cancelRun := func() { cancelRunCause(nil) }
	// Cancelling cleanup cancels run as well.
	unlink := context.AfterFunc(cleanup, cancelRun)

	var (
		mu    sync.Mutex
		first os.Signal
	)
	if install {
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-ch:
				n++
				if n == 1 {
					mu.Lock()
					first = s
					mu.Unlock()
					// The cause says why in every "...: interrupted by"
					// message that code reading context.Cause prints.
					cancelRunCause(&Interrupted{Signal: s})
					continue
				}
				cancelCleanup()
				if install {
					// From now on a signal kills the process, in case the
					// cleanup it interrupted does not return.
					signal.Stop(ch)
				}
				return
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if install {
				signal.Stop(ch)
			}
			close(done)
			unlink()
			cancelRun()
			cancelCleanup()
		})
	}
	get := func() os.Signal {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
	return run, cleanup, get, stop
}

type cleanupKey struct{}

// Cleanup returns the cleanup context that Context attached to ctx (or to
// a parent of it). Without one it returns ctx without its cancellation, so
// that cleanup code still runs when ctx is cancelled.
func Cleanup(ctx context.Context) context.Context {
	if c, ok := ctx.Value(cleanupKey{}).(context.Context); ok {
		return c
	}
	return context.WithoutCancel(ctx)
}

// ExitCode is the conventional exit code after sig: 128 + its number
// (130 for SIGINT, 143 for SIGTERM); 1 for anything else.
func ExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok && s > 0 && s < 64 {
		return 128 + int(s)
	}
	return 1
}

// Interrupted is the cause of a run context cancelled by a signal.
type Interrupted struct{ Signal os.Signal }

func (e *Interrupted) Error() string {
	if e.Signal == syscall.SIGTERM {
		return "interrupted by SIGTERM"
	}
	return "interrupted by SIGINT (Ctrl-C)"
}

// Is makes errors.Is(err, context.Canceled) hold for a cause too.
func (e *Interrupted) Is(target error) bool { return target == context.Canceled }
