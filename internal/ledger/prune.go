package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Count returns how many journals dir holds: every run-id.jsonl file,
// readable or not, so that what cleanup prints is what is on disk.
func Count(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count runs in %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && !e.IsDir() && ValidRunID(id) {
			n++
		}
	}
	return n, nil
}

// Finished reports whether nothing of the run is left to do: its process
// is gone, the ledger lists nothing it did not remove, and a cleanup has
// searched its tags since its last create (or it never created anything).
func (r *Run) Finished() bool {
	return !r.Running && len(r.Left()) == 0 && (r.Swept || len(r.Regions()) == 0)
}

// LastActivity is the time of the run's last record (its end, else its
// last intent, else its start).
func (r *Run) LastActivity() time.Time {
	t := r.Started
	if r.Ended.After(t) {
		t = r.Ended
	}
	for _, res := range r.Resources {
		if res.Intended.After(t) {
			t = res.Intended
		}
	}
	return t
}

// Prune removes the journals of finished runs (Run.Finished) whose last
// activity is older than keep, and returns their ids. A journal is
// removed only while its lock is held, so a run being cleaned up or built
// at that moment stays.
func Prune(dir string, keep time.Duration, now time.Time) ([]string, error) {
	runs, listErr := List(dir)
	var pruned []string
	var errs []error
	if listErr != nil {
		errs = append(errs, listErr)
	}
	for _, r := range runs {
		if !r.Finished() || now.Sub(r.LastActivity()) < keep {
			continue
		}
		j, err := Open(dir, r.ID)
		if err != nil {
			continue // in use: next time
		}
		// Read again under the lock: a cleanup may have just taken it.
		again, err := Read(dir, r.ID)
		if err == nil {
			again.Running = false // the lock Read saw is ours
		}
		if err == nil && again.Finished() {
			if rerr := os.Remove(filepath.Join(dir, r.ID+".jsonl")); rerr != nil {
				errs = append(errs, fmt.Errorf("prune run %s: %w", r.ID, rerr))
			} else {
				pruned = append(pruned, r.ID)
			}
		}
		j.Close()
	}
	return pruned, errors.Join(errs...)
}
