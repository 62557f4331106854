// Package pipeline runs a build as a sequence of small steps, each with Run
// and Cleanup, the shape of Packer's multistep: a step that ran is cleaned
// up, in reverse order, whatever failed. Unlike multistep, state is a typed
// value chosen by the caller and Cleanup gets a context and returns an error.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Step is one thing a build does: one AWS call or one SSH interaction.
// Run may leave partial work behind; Cleanup must undo whatever Run created,
// be safe to call when Run failed half-way, and not depend on ctx not being
// cancelled (the runner gives it a fresh one).
type Step[S any] interface {
	Name() string
	Run(ctx context.Context, state S) error
	Cleanup(ctx context.Context, state S) error
}

// OnError decides what happens when a step fails.
type OnError int

const (
	// OnErrorCleanup runs every cleanup (the default).
	OnErrorCleanup OnError = iota
	// OnErrorAbort leaves everything as it is, for inspection.
	OnErrorAbort
	// OnErrorAsk asks the user: clean up, abort or retry the step.
	OnErrorAsk
	// OnErrorRunCleanupProvisioner runs the error-cleanup-provisioner (the
	// OnStepError hook), then leaves everything else as it is, like
	// OnErrorAbort: Packer's "abort and exit without any cleanup besides
	// the error-cleanup-provisioner".
	OnErrorRunCleanupProvisioner
)

// ParseOnError maps the -on-error flag's values.
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "", "cleanup":
		return OnErrorCleanup, nil
	case "abort":
		return OnErrorAbort, nil
	case "ask":
		return OnErrorAsk, nil
	case "run-cleanup-provisioner":
		return OnErrorRunCleanupProvisioner, nil
	}
	return 0, fmt.Errorf("invalid -on-error value %q: want cleanup, abort, ask or run-cleanup-provisioner", s)
}

// Decision is the answer to an ask on error.
type Decision int

const (
	DecideCleanup Decision = iota
	DecideAbort
	DecideRetry
)

// Hooks let the command decorate a run without the steps knowing: -debug
// pauses, -on-error=ask prompts, progress events.
type Hooks struct {
	// BeforeStep is called before each step runs; an error stops the run
	// (the step is not run and not cleaned up).
	BeforeStep func(ctx context.Context, name string) error
	// AskOnError is consulted when OnError is OnErrorAsk.
	AskOnError func(ctx context.Context, name string, err error) Decision
	// OnStepError is called once with the failure before cleanups run (for
	// the error-cleanup-provisioner).
	OnStepError func(ctx context.Context, name string, err error)
	// OnAbort is called when a failed run skips its cleanups (abort,
	// run-cleanup-provisioner), with the failed step and the steps whose
	// cleanups are skipped, last first.
	OnAbort func(failed string, skipped []string)
}

// Runner runs steps.
type Runner[S any] struct {
	Steps   []Step[S]
	OnError OnError
	Hooks   Hooks
	// CleanupTimeout bounds all cleanups together; cleanups run on a context
	// detached from the cancelled build context. Zero means 15 minutes.
	CleanupTimeout time.Duration
	// CleanupContext, when set, is the parent of the cleanup context, so
	// that a second Ctrl-C can stop cleanups.
	CleanupContext context.Context
	Log            *slog.Logger
}

// StepError says which step failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// ErrAborted is wrapped in the result when cleanup was skipped on purpose.
var ErrAborted = errors.New("cleanup skipped (-on-error=abort or run-cleanup-provisioner): temporary resources were left in place")

// Run runs every step in order until one fails or ctx is done, then runs
// the cleanups of all steps that ran, in reverse order. It returns the
// step's error (as *StepError) joined with any cleanup errors.
func (r *Runner[S]) Run(ctx context.Context, state S) error {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	ran := make([]Step[S], 0, len(r.Steps))
	var runErr error
	for _, step := range r.Steps {
		if err := ctx.Err(); err != nil {
			runErr = &StepError{Step: step.Name(), Err: fmt.Errorf("build cancelled before %s: %w", step.Name(), context.Cause(ctx))}
			break
		}
		if r.Hooks.BeforeStep != nil {
			if err := r.Hooks.BeforeStep(ctx, step.Name()); err != nil {
				runErr = &StepError{Step: step.Name(), Err: err}
				break
			}
		}
		ran = append(ran, step)
		start := time.Now()
		log.Debug("step start", "step", step.Name())
		err := step.Run(ctx, state)
		for err != nil && r.OnError == OnErrorAsk && r.Hooks.AskOnError != nil && ctx.Err() == nil {
			d := r.Hooks.AskOnError(ctx, step.Name(), err)
			if d != DecideRetry {
				if d == DecideAbort {
					return errors.Join(&StepError{Step: step.Name(), Err: err}, ErrAborted)
				}
				break
			}
			err = step.Run(ctx, state)
		}
		log.Debug("step end", "step", step.Name(), "elapsed", time.Since(start), "err", err)
		if err != nil {
			runErr = &StepError{Step: step.Name(), Err: err}
			break
		}
	}
	if runErr != nil {
		var se *StepError
		if errors.As(runErr, &se) && r.Hooks.OnStepError != nil && ctx.Err() == nil {
			r.Hooks.OnStepError(ctx, se.Step, se.Err)
		}
		if r.OnError == OnErrorAbort || r.OnError == OnErrorRunCleanupProvisioner {
			if r.Hooks.OnAbort != nil {
				failed := ""
				if se != nil || errors.As(runErr, &se) {
					failed = se.Step
				}
				skipped := make([]string, 0, len(ran))
				for i := len(ran) - 1; i >= 0; i-- {
					skipped = append(skipped, ran[i].Name())
				}
				r.Hooks.OnAbort(failed, skipped)
			}
			return &abortedError{runErr}
		}
	}
	return errors.Join(runErr, r.cleanup(ran, state))
}

func (r *Runner[S]) cleanup(ran []Step[S], state S) error {
	parent := r.CleanupContext
	if parent == nil {
		parent = context.Background()
	}
	timeout := r.CleanupTimeout
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var errs []error
	for i := len(ran) - 1; i >= 0; i-- {
		if err := ran[i].Cleanup(ctx, state); err != nil {
			errs = append(errs, fmt.Errorf("clean up after %s: %w", ran[i].Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Func adapts functions to a Step; handy for small steps and tests.
type Func[S any] struct {
	StepName  string
	RunFunc   func(ctx context.Context, state S) error
	CleanFunc func(ctx context.Context, state S) error
}

func (f Func[S]) Name() string { return f.StepName }
func (f Func[S]) Run(ctx context.Context, s S) error {
	if f.RunFunc == nil {
		return nil
	}
	return f.RunFunc(ctx, s)
}
func (f Func[S]) Cleanup(ctx context.Context, s S) error {
	if f.CleanFunc == nil {
		return nil
	}
	return f.CleanFunc(ctx, s)
}

// If returns step when cond holds, and a step that does nothing otherwise.
func If[S any](cond bool, step Step[S]) Step[S] {
	if cond {
		return step
	}
	return Func[S]{StepName: "skip " + step.Name()}
}

// abortedError is a failure whose cleanups were skipped: its message is
// the failure's alone (as Packer reports it), and it matches ErrAborted.
type abortedError struct{ err error }

func (e *abortedError) Error() string   { return e.err.Error() }
func (e *abortedError) Unwrap() []error { return []error{e.err, ErrAborted} }
