package bake

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/ui"
)

// Journal is the run journal as a build run keeps it: started with the
// template, handed to Run (Options.Ledger) to record what the builds
// create, told which artifacts stay, and ended with the run's status, so
// that a cleanup knows what the run left.
type Journal struct {
	dir string
	j   *ledger.Journal
}

// StartJournal opens a new run's journal in dir (locked while the run
// lives) and records its start; secrets never reach the file.
func StartJournal(dir, template string, secrets *ui.Secrets) (*Journal, error) {
	j, err := ledger.Open(dir, ledger.NewRunID())
	if err != nil {
		return nil, fmt.Errorf("open the run journal: %w", err)
	}
	j.SetSecrets(secrets)
	if err := j.Start(template); err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("write the run journal: %w", err)
	}
	return &Journal{dir: dir, j: j}, nil
}

// RunID is the run's id (the amibake:run-id tag value).
func (j *Journal) RunID() string { return j.j.RunID() }

// Path is the journal file.
func (j *Journal) Path() string { return j.j.Path() }

// ForBuildAt records what build creates at loc (Options.Ledger).
func (j *Journal) ForBuildAt(build string, loc ledger.Location) ledger.Recorder {
	return j.j.ForBuildAt(build, loc)
}

// Keep records the run's artifacts as staying on purpose: each AMI with its
// snapshots, then calls release (when set) with them, so that the caller
// lifts what else claims them (the run's lease). Artifacts are what the
// run reports as such: a build whose post-processor failed still reports
// its AMI, as Packer does.
func (j *Journal) Keep(res *Result, release func(build, region string, ids []string)) {
	if res == nil {
		return
	}
	for _, b := range res.Builds {
		for _, a := range b.Artifacts {
			for _, region := range slices.Sorted(maps.Keys(a.AMIs)) {
				id := a.AMIs[region]
				_ = j.j.Kept(ledger.KindImage, region, id)
				ids := []string{id}
				for _, sn := range a.Snapshots[region] {
					_ = j.j.Kept(ledger.KindSnapshot, region, sn)
					ids = append(ids, sn)
				}
				if release != nil {
					release(b.Name, region, ids)
				}
			}
		}
	}
}

// End records how the run ended and reports whether it succeeded: every
// build did and Run returned no error. Otherwise it was interrupted when
// ctx (the run's) was cancelled, and failed when not. An interrupt that
// arrives once every build has finished (during their last cleanups)
// changes nothing: the run succeeded and its AMIs are artifacts.
func (j *Journal) End(ctx context.Context, res *Result, runErr error) (ledger.Status, error) {
	status := ledger.StatusSucceeded
	switch {
	case runErr == nil && res != nil && res.OK():
	case ctx.Err() != nil:
		status = ledger.StatusInterrupted
	default:
		status = ledger.StatusFailed
	}
	return status, j.j.End(status)
}

// Read reads the journal back: what the run left, for the report that
// tells how to remove it.
func (j *Journal) Read() (*ledger.Run, error) { return ledger.Read(j.dir, j.RunID()) }

// Close releases the journal's lock.
func (j *Journal) Close() error { return j.j.Close() }
