package ledger

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLocationRecordedPerResource(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, "run-loc")
	if err != nil {
		t.Fatal(err)
	}
	prod := Location{Account: "111111111111", Caller: "arn:aws:iam::111111111111:user/ci", Profile: "prod", RoleARN: "arn:aws:iam::111111111111:role/bake"}
	sim := Location{Account: "222222222222", Endpoint: "http://127.0.0.1:9999", STSEndpoint: "http://127.0.0.1:9999"}
	j.Start("t")
	e, _ := j.ForBuildAt("a", prod).Intend(KindInstance, "us-east-1", "tok-a")
	j.Created(e, "i-1")
	e, _ = j.ForBuildAt("b", sim).Intend(KindKeyPair, "eu-west-1", "key-b")
	j.Created(e, "key-b")
	j.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "run-loc.jsonl"))
	for _, secret := range []string{"secret", "AKIA"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("journal holds %q:\n%s", secret, b)
		}
	}
	r, err := Read(dir, "run-loc")
	if err != nil {
		t.Fatal(err)
	}
	if r.Resources[0].Location != prod || r.Resources[1].Location != sim {
		t.Errorf("locations read back: %+v / %+v", r.Resources[0].Location, r.Resources[1].Location)
	}
	if got := r.Locations(); len(got) != 2 || got[0] != prod.Access() || got[1] != sim.Access() {
		t.Errorf("Locations = %+v", got)
	}
	if got := r.Accounts(prod.Access()); !slices.Equal(got, []string{"111111111111"}) {
		t.Errorf("Accounts = %v", got)
	}
	if r.TempDir != os.TempDir() {
		t.Errorf("TempDir = %q, want %q", r.TempDir, os.TempDir())
	}
	if got := prod.String(); got != "account 111111111111 (profile prod, role arn:aws:iam::111111111111:role/bake)" {
		t.Errorf("String = %q", got)
	}
}

func TestPruneAndCount(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	mk := func(id string, ago time.Duration, finish func(j *Journal)) {
		j, err := Open(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		j.now = func() time.Time { return now.Add(-ago) }
		j.Start("t")
		finish(j)
		j.Close()
	}
	// Old and finished: pruned.
	mk("old-swept", 30*24*time.Hour, func(j *Journal) {
		e, _ := j.Intend(KindKeyPair, "us-east-1", "k")
		j.Created(e, "k")
		j.Deleted(KindKeyPair, "us-east-1", "k")
		j.End(StatusSucceeded)
		j.Swept()
	})
	mk("old-nothing", 30*24*time.Hour, func(j *Journal) { j.End(StatusFailed) })
	// Old but not swept since its last create: kept for cleanup.
	mk("old-unswept", 30*24*time.Hour, func(j *Journal) {
		e, _ := j.Intend(KindKeyPair, "us-east-1", "k")
		j.Created(e, "k")
		j.Deleted(KindKeyPair, "us-east-1", "k")
	})
	// Old with something left: kept.
	mk("old-left", 30*24*time.Hour, func(j *Journal) {
		e, _ := j.Intend(KindInstance, "us-east-1", "t")
		j.Created(e, "i-1")
	})
	// Finished but recent: kept.
	mk("new-swept", time.Hour, func(j *Journal) { j.End(StatusSucceeded) })
	// A file that is not a journal is not counted.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	// An unreadable journal is counted: it is on disk.
	os.WriteFile(filepath.Join(dir, "broken.jsonl"), []byte("not json\n"), 0o600)
	// A live run is never pruned.
	live, _ := Open(dir, "old-live")
	live.now = func() time.Time { return now.Add(-30 * 24 * time.Hour) }
	live.Start("t")
	defer live.Close()

	if n, _ := Count(dir); n != 7 {
		t.Errorf("Count = %d, want 7", n)
	}
	pruned, _ := Prune(dir, 7*24*time.Hour, now)
	slices.Sort(pruned)
	if !slices.Equal(pruned, []string{"old-nothing", "old-swept"}) {
		t.Errorf("pruned %v", pruned)
	}
	if n, _ := Count(dir); n != 5 {
		t.Errorf("Count after prune = %d, want 5", n)
	}
}
