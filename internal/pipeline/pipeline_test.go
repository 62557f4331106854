package pipeline

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type trace struct{ events []string }

func step(name string, runErr, cleanErr error) Step[*trace] {
	return Func[*trace]{
		StepName: name,
		RunFunc: func(ctx context.Context, t *trace) error {
			t.events = append(t.events, "run "+name)
			return runErr
		},
		CleanFunc: func(ctx context.Context, t *trace) error {
			if ctx.Err() != nil {
				t.events = append(t.events, "cleanup "+name+" on a dead context")
			}
			t.events = append(t.events, "cleanup "+name)
			return cleanErr
		},
	}
}

func TestRunnerCleansUpInReverseOnlyWhatRan(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		steps   []Step[*trace]
		onError OnError
		want    []string
		wantErr string
		failed  string
		aborted bool
	}{
		{
			name:  "success",
			steps: []Step[*trace]{step("a", nil, nil), step("b", nil, nil)},
			want:  []string{"run a", "run b", "cleanup b", "cleanup a"},
		},
		{
			name:    "failure stops the run and cleans up the failed step too",
			steps:   []Step[*trace]{step("a", nil, nil), step("b", boom, nil), step("c", nil, nil)},
			want:    []string{"run a", "run b", "cleanup b", "cleanup a"},
			wantErr: "boom",
			failed:  "b",
		},
		{
			name:    "abort leaves everything",
			steps:   []Step[*trace]{step("a", nil, nil), step("b", boom, nil)},
			onError: OnErrorAbort,
			want:    []string{"run a", "run b"},
			wantErr: "boom", // the failure alone, as Packer prints it; errors.Is(ErrAborted) below
			failed:  "b",
			aborted: true,
		},
		{
			name:    "run-cleanup-provisioner leaves everything too",
			steps:   []Step[*trace]{step("a", nil, nil), step("b", boom, nil)},
			onError: OnErrorRunCleanupProvisioner,
			want:    []string{"run a", "run b"},
			wantErr: "boom",
			failed:  "b",
			aborted: true,
		},
		{
			name:    "cleanup errors are joined and every cleanup still runs",
			steps:   []Step[*trace]{step("a", nil, errors.New("a stuck")), step("b", nil, errors.New("b stuck"))},
			want:    []string{"run a", "run b", "cleanup b", "cleanup a"},
			wantErr: "clean up after b: b stuck\nclean up after a: a stuck",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trace{}
			r := &Runner[*trace]{Steps: tt.steps, OnError: tt.onError}
			err := r.Run(context.Background(), tr)
			if !reflect.DeepEqual(tr.events, tt.want) {
				t.Errorf("events = %q, want %q", tr.events, tt.want)
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrAborted); got != tt.aborted {
				t.Errorf("errors.Is(ErrAborted) = %v", got)
			}
			var se *StepError
			if tt.failed != "" && (!errors.As(err, &se) || se.Step != tt.failed) {
				t.Fatalf("failed step = %v, want %s", se, tt.failed)
			}
		})
	}
}

func TestRunnerCancelledBuildStillCleansUpOnLiveContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &trace{}
	cancelling := Func[*trace]{StepName: "b", RunFunc: func(ctx context.Context, t *trace) error {
		t.events = append(t.events, "run b")
		cancel()
		return ctx.Err()
	}}
	r := &Runner[*trace]{Steps: []Step[*trace]{step("a", nil, nil), cancelling, step("c", nil, nil)}}
	err := r.Run(ctx, tr)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	want := []string{"run a", "run b", "cleanup a"}
	if !reflect.DeepEqual(tr.events, want) {
		t.Fatalf("events = %q, want %q", tr.events, want)
	}
}

func TestRunnerAskRetries(t *testing.T) {
	tr := &trace{}
	attempts := 0
	flaky := Func[*trace]{StepName: "flaky", RunFunc: func(ctx context.Context, t *trace) error {
		attempts++
		if attempts < 3 {
			return errors.New("not yet")
		}
		return nil
	}}
	var asked []string
	r := &Runner[*trace]{
		Steps:   []Step[*trace]{flaky},
		OnError: OnErrorAsk,
		Hooks: Hooks{AskOnError: func(ctx context.Context, name string, err error) Decision {
			asked = append(asked, name+": "+err.Error())
			return DecideRetry
		}},
	}
	if err := r.Run(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || len(asked) != 2 {
		t.Fatalf("attempts=%d asked=%q", attempts, asked)
	}
}

func TestRunnerHooks(t *testing.T) {
	tr := &trace{}
	var before []string
	var failed string
	r := &Runner[*trace]{
		Steps: []Step[*trace]{step("a", nil, nil), step("b", errors.New("x"), nil)},
		Hooks: Hooks{
			BeforeStep:  func(ctx context.Context, name string) error { before = append(before, name); return nil },
			OnStepError: func(ctx context.Context, name string, err error) { failed = name },
		},
	}
	_ = r.Run(context.Background(), tr)
	if !reflect.DeepEqual(before, []string{"a", "b"}) || failed != "b" {
		t.Fatalf("before=%q failed=%q", before, failed)
	}
	stop := &Runner[*trace]{Steps: []Step[*trace]{step("a", nil, nil), step("b", nil, nil)},
		Hooks: Hooks{BeforeStep: func(ctx context.Context, name string) error {
			if name == "b" {
				return errors.New("user quit")
			}
			return nil
		}}}
	tr = &trace{}
	if err := stop.Run(context.Background(), tr); err == nil || !strings.Contains(err.Error(), "user quit") {
		t.Fatalf("err = %v", err)
	}
	if want := []string{"run a", "cleanup a"}; !reflect.DeepEqual(tr.events, want) {
		t.Fatalf("events = %q, want %q", tr.events, want)
	}
}

func TestParseOnError(t *testing.T) {
	for in, want := range map[string]OnError{"": OnErrorCleanup, "cleanup": OnErrorCleanup, "abort": OnErrorAbort, "ask": OnErrorAsk, "run-cleanup-provisioner": OnErrorRunCleanupProvisioner} {
		got, err := ParseOnError(in)
		if err != nil || got != want {
			t.Errorf("ParseOnError(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOnError("explode"); err == nil || !strings.Contains(err.Error(), "want cleanup, abort, ask or run-cleanup-provisioner") {
		t.Errorf("bad value error = %v", err)
	}
}
