package provisioner_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

func TestApplies(t *testing.T) {
	tests := []struct {
		only, except []string
		build        string
		want         bool
	}{
		{build: "amazon-ebs", want: true},
		{only: []string{"amazon-ebs"}, build: "amazon-ebs", want: true},
		{only: []string{"other"}, build: "amazon-ebs", want: false},
		{except: []string{"amazon-ebs"}, build: "amazon-ebs", want: false},
		{except: []string{"other"}, build: "amazon-ebs", want: true},
		// HCL2: sources are named type.name; the build-block name is optional.
		{only: []string{"amazon-ebs.ubuntu"}, build: "app.amazon-ebs.ubuntu", want: true},
		{only: []string{"amazon-ebs.ubuntu"}, build: "amazon-ebs.ubuntu", want: true},
		{only: []string{"app.amazon-ebs.ubuntu"}, build: "app.amazon-ebs.ubuntu", want: true},
		{only: []string{"ubuntu"}, build: "app.amazon-ebs.ubuntu", want: false},
		{only: []string{"amazon-ebs.debian"}, build: "app.amazon-ebs.ubuntu", want: false},
		// Globs.
		{only: []string{"amazon-ebs.*"}, build: "amazon-ebs.ubuntu", want: true},
		{only: []string{"*.ubuntu"}, build: "app.amazon-ebs.ubuntu", want: true},
		{only: []string{"amazon-ebs.ub?ntu"}, build: "amazon-ebs.ubuntu", want: true},
		{except: []string{"*.ubuntu"}, build: "amazon-ebs.ubuntu", want: false},
		{only: []string{"amazon-ebs.*"}, except: []string{"*.debian"}, build: "amazon-ebs.debian", want: false},
		// A bad pattern still matches itself literally.
		{only: []string{"x[y"}, build: "x[y", want: true},
	}
	for _, tt := range tests {
		if got := provisioner.Applies(tt.only, tt.except, tt.build); got != tt.want {
			t.Errorf("Applies(%q, %q, %q) = %v, want %v", tt.only, tt.except, tt.build, got, tt.want)
		}
	}
}

// flaky fails its first `fails` runs; with block it waits for ctx.
type flaky struct {
	fails int
	runs  int
	block bool
}

func (f *flaky) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	f.runs++
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.runs <= f.fails {
		return fmt.Errorf("attempt %d failed", f.runs)
	}
	return nil
}

func noDelay(int) time.Duration { return 0 }

func TestRun(t *testing.T) {
	build := &provisioner.Build{Name: "amazon-ebs.ubuntu", Type: "amazon-ebs"}
	tests := []struct {
		name      string
		p         *flaky
		opts      provisioner.Common
		wantRuns  int
		wantErr   string
		wantLines []string
	}{
		{name: "plain", p: &flaky{}, wantRuns: 1},
		{name: "skipped by only", p: &flaky{}, opts: provisioner.Common{Only: []string{"amazon-ebs.debian"}}, wantRuns: 0},
		{name: "skipped by except", p: &flaky{}, opts: provisioner.Common{Except: []string{"amazon-ebs.*"}}, wantRuns: 0},
		{name: "fails without retries", p: &flaky{fails: 1}, wantRuns: 1, wantErr: "attempt 1 failed"},
		{name: "retried until success", p: &flaky{fails: 2}, opts: provisioner.Common{MaxRetries: 3}, wantRuns: 3,
			wantLines: []string{
				`say: Provisioner failed with "attempt 1 failed", retrying with 3 trie(s) left`,
				`say: Provisioner failed with "attempt 2 failed", retrying with 2 trie(s) left`,
			}},
		{name: "retry limit", p: &flaky{fails: 5}, opts: provisioner.Common{MaxRetries: 2}, wantRuns: 3, wantErr: "attempt 3 failed",
			wantLines: []string{
				`say: Provisioner failed with "attempt 1 failed", retrying with 2 trie(s) left`,
				`say: Provisioner failed with "attempt 2 failed", retrying with 1 trie(s) left`,
				"say: retry limit reached.",
			}},
		{name: "pause before", p: &flaky{}, opts: provisioner.Common{PauseBefore: 10 * time.Millisecond}, wantRuns: 1,
			wantLines: []string{"say: Pausing 10ms before the next provisioner..."}},
		{name: "timeout", p: &flaky{block: true}, opts: provisioner.Common{Timeout: 20 * time.Millisecond}, wantRuns: 1,
			wantErr: "provisioner timed out after 20ms",
			wantLines: []string{
				"say: Setting a 20ms timeout for the next provisioner...",
				"error: Cancelling provisioner after a timeout...",
			}},
		{name: "timeout per attempt", p: &flaky{block: true}, opts: provisioner.Common{Timeout: 5 * time.Millisecond, MaxRetries: 1},
			wantRuns: 2, wantErr: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &provisionertest.UI{}
			tt.opts.RetryDelay = noDelay
			err := provisioner.Run(context.Background(), u, &provisionertest.Comm{}, build, tt.p, tt.opts)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if tt.p.runs != tt.wantRuns {
				t.Errorf("runs = %d, want %d", tt.p.runs, tt.wantRuns)
			}
			for _, l := range tt.wantLines {
				if !u.Has(l) {
					t.Errorf("missing %q in\n%s", l, u.Text())
				}
			}
		})
	}
}

func TestRunCancelledDuringPause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &flaky{}
	err := provisioner.Run(ctx, &provisionertest.UI{}, &provisionertest.Comm{}, &provisioner.Build{Name: "b"}, p,
		provisioner.Common{PauseBefore: time.Hour})
	if !errors.Is(err, context.Canceled) || p.runs != 0 {
		t.Fatalf("err %v runs %d", err, p.runs)
	}
}

func TestDefaultRetryDelay(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, provisioner.DefaultRetryDelay(n))
	}
	want := []time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 30e9, 30e9, 30e9}
	if !slices.Equal(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &provisioner.LineWriter{Emit: func(s string) { lines = append(lines, s) }}
	fmt.Fprint(w, "a\r\nb")
	fmt.Fprint(w, "c\n\nd")
	w.Flush()
	if want := []string{"a", "bc", "", "d"}; !slices.Equal(lines, want) {
		t.Errorf("got %q want %q", lines, want)
	}
	lines = nil
	// An endless line is emitted before Flush rather than held forever.
	w.Write([]byte(strings.Repeat("x", 70<<10)))
	if len(lines) != 1 || len(lines[0]) != 70<<10 {
		t.Errorf("long line: %d pieces", len(lines))
	}
}
