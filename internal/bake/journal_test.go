package bake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/ui"
)

// TestJournalKeepsArtifacts: the AMIs and snapshots a run reports are
// recorded as kept (a failed build's leftovers are not), each AMI is
// released with its snapshots, and the journal reads back with them.
func TestJournalKeepsArtifacts(t *testing.T) {
	dir := t.TempDir()
	j, err := StartJournal(dir, "hello.pkr.hcl", &ui.Secrets{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !ledger.ValidRunID(j.RunID()) || j.Path() != filepath.Join(dir, j.RunID()+".jsonl") {
		t.Fatalf("run id %q, path %q", j.RunID(), j.Path())
	}
	rec := j.ForBuildAt("app", ledger.Location{Account: "111122223333"})
	for kind, id := range map[ledger.Kind]string{ledger.KindInstance: "i-1", ledger.KindImage: "ami-1", ledger.KindSnapshot: "snap-1"} {
		e, err := rec.Intend(kind, "us-east-1", "token-"+id)
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.Created(e, id); err != nil {
			t.Fatal(err)
		}
	}
	res := &Result{Builds: []*BuildResult{
		{Name: "app", Artifacts: []*artifact.Artifact{{
			AMIs:      map[string]string{"us-east-1": "ami-1", "eu-west-1": "ami-2"},
			Snapshots: map[string][]string{"us-east-1": {"snap-1"}, "eu-west-1": {"snap-2", "snap-3"}},
		}}},
		{Name: "broken", Err: errors.New("provisioner failed")},
	}}
	type release struct {
		build, region string
		ids           []string
	}
	var released []release
	j.Keep(res, func(build, region string, ids []string) { released = append(released, release{build, region, ids}) })
	want := []release{{"app", "eu-west-1", []string{"ami-2", "snap-2", "snap-3"}}, {"app", "us-east-1", []string{"ami-1", "snap-1"}}}
	if !reflect.DeepEqual(released, want) {
		t.Errorf("released %+v, want %+v", released, want)
	}
	status, err := j.End(context.Background(), res, nil)
	if err != nil || status != ledger.StatusFailed {
		t.Fatalf("End = %q, %v; want failed (a build failed)", status, err)
	}
	run, err := j.Read()
	if err != nil {
		t.Fatal(err)
	}
	if run.Template != "hello.pkr.hcl" || run.Status != ledger.StatusFailed {
		t.Errorf("read back template %q, status %q", run.Template, run.Status)
	}
	for _, id := range []string{"ami-1", "ami-2", "snap-1", "snap-2", "snap-3"} {
		if !run.Kept[id] {
			t.Errorf("%s not recorded as kept: %v", id, run.Kept)
		}
	}
	// The instance is what the failed run left; its AMI and snapshot stay.
	if left := run.Left(); len(left) != 1 || left[0].ID != "i-1" {
		t.Errorf("left %+v, want only the instance", left)
	}
	j.Keep(nil, nil) // a run that never got to build keeps nothing
}

// TestJournalEnd: how the run's outcome maps to the journal's status.
func TestJournalEnd(t *testing.T) {
	ok := &Result{Builds: []*BuildResult{{Name: "a"}}}
	failed := &Result{Builds: []*BuildResult{{Name: "a"}, {Name: "b", Err: errors.New("boom")}}}
	for _, tc := range []struct {
		name        string
		res         *Result
		err         error
		interrupted bool
		want        ledger.Status
	}{
		{"every build succeeded", ok, nil, false, ledger.StatusSucceeded},
		// Interrupted during the last cleanups: the builds are done.
		{"interrupt after every build succeeded", ok, nil, true, ledger.StatusSucceeded},
		{"a build failed", failed, nil, false, ledger.StatusFailed},
		{"interrupted", failed, nil, true, ledger.StatusInterrupted},
		{"cannot start", nil, ErrPreflight, false, ledger.StatusFailed},
		{"run error, interrupted", nil, errors.New("cancelled"), true, ledger.StatusInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j, err := StartJournal(dir, "t.json", &ui.Secrets{})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.interrupted {
				cancel()
			}
			got, err := j.End(ctx, tc.res, tc.err)
			if err != nil || got != tc.want {
				t.Fatalf("End = %q, %v; want %q", got, err, tc.want)
			}
			if run, err := ledger.Read(dir, j.RunID()); err != nil || run.Status != tc.want {
				t.Errorf("read back status %v (%v), want %q", run, err, tc.want)
			}
		})
	}
}

// TestStartJournalErrors: a journal that cannot be opened says so.
func TestStartJournalErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := StartJournal(file, "t.json", &ui.Secrets{}); err == nil || !strings.HasPrefix(err.Error(), "open the run journal: ") {
		t.Errorf("err = %v", err)
	}
}

// TestJournalMasksSecrets: nothing secret reaches the journal file, even a
// template path that carries one.
func TestJournalMasksSecrets(t *testing.T) {
	dir := t.TempDir()
	secrets := &ui.Secrets{}
	secrets.Add("s3cr3t-token")
	j, err := StartJournal(dir, "templates/s3cr3t-token.json", secrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.End(context.Background(), &Result{}, nil); err != nil {
		t.Fatal(err)
	}
	_ = j.Close()
	b, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cr3t-token") {
		t.Errorf("the journal holds the secret:\n%s", b)
	}
}
