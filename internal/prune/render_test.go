package prune

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update to accept):\n%s", name, got)
	}
}

func samplePlan() *Plan {
	at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC) }
	return &Plan{
		Regions: []string{"eu-west-1", "us-east-1"},
		Images: []Decision{
			{Region: "us-east-1", ImageID: "ami-0000000000000000c", Name: "web 1795600000", Created: at(3), Group: "web *", Release: "web 1795600000", Action: ActionKeep, Reason: "release 1 of 3: among the 1 newest", Snapshots: []string{"snap-0000000000000000c"}},
			{Region: "us-east-1", ImageID: "ami-0000000000000000b", Name: "web 1795500000", Created: at(2), Group: "web *", Release: "web 1795500000", Action: ActionKeep, Reason: "in use by instance i-00000000000000001 (running)", Snapshots: []string{"snap-0000000000000000b"}},
			{Region: "eu-west-1", ImageID: "ami-1000000000000000b", Name: "web 1795500000", Created: at(2), Group: "web *", Release: "web 1795500000", Action: ActionDelete, Reason: "release 2 of 3: not among the 1 newest", Snapshots: []string{"snap-1000000000000000b"}},
			{Region: "us-east-1", ImageID: "ami-0000000000000000a", Name: "web 1795400000", Created: at(1), Group: "web *", Release: "web 1795400000", Action: ActionDelete, Reason: "release 3 of 3: not among the 1 newest", Snapshots: []string{"snap-0000000000000000a"}},
		},
		Snapshots: []SnapshotDecision{
			{Region: "eu-west-1", SnapshotID: "snap-1000000000000000b", ImageID: "ami-1000000000000000b", Action: ActionDelete, Reason: "its AMI ami-1000000000000000b goes"},
			{Region: "us-east-1", SnapshotID: "snap-0000000000000000a", ImageID: "ami-0000000000000000a", Action: ActionKeep, Reason: "also used by ami-0000000000000000f"},
		},
	}
}

func TestTableGolden(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, samplePlan(), true); err != nil {
		t.Fatal(err)
	}
	golden(t, "dry-run.golden", b.String())

	// After a real run: results, and what went wrong.
	p := samplePlan()
	p.Images[2].Result = ResultDeleted
	p.Images[3].Result = ResultFailed + ": UnauthorizedOperation: You are not authorized to perform this operation."
	p.Snapshots[0].Result = ResultDeleted
	b.Reset()
	if err := WriteTable(&b, p, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "run.golden", b.String())

	b.Reset()
	if err := NewDocument(&Result{Plan: p}, false).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "run.json.golden", b.String())
}
