package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Run is what a journal says about one run.
type Run struct {
	ID, Path string
	PID      int
	Host     string
	Started  time.Time
	Template string
	// TempDir is the directory the run's local temporary files go to
	// (named after the run: see TempPattern).
	TempDir string
	Status  Status // empty while running or when the process died
	Ended   time.Time
	Running bool // a live process holds the run's lock
	LastPID int  // the last process that took the run (build or cleanup)
	Swept   bool // a cleanup searched the run's tags since its last intent

	// Resources holds every create intent, in order, with what became of it.
	Resources []Resource
	// Kept are the ids recorded as staying on purpose (the AMIs and
	// snapshots of the run's successful builds).
	Kept map[string]bool
}

// Resource is one create intent and its outcome.
type Resource struct {
	Entry    string
	Kind     Kind
	Region   string
	Build    string
	Token    string // ClientToken or name given to the create call
	ID       string // empty: the call was in flight, or failed, when the run stopped
	Intended time.Time
	Deleted  bool
	Kept     bool // stays on purpose (an AMI that became available)
	Resolved bool // a cleanup found nothing for an intent without id
	// Location is where the resource lives beyond its region.
	Location Location
}

// Locations returns the distinct access locations (Location.Access) of
// the run's resources, in the order first seen.
func (r *Run) Locations() []Location {
	seen := map[Location]bool{}
	var out []Location
	for _, res := range r.Resources {
		if res.Kind == KindLocalFile {
			continue
		}
		a := res.Location.Access()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Accounts returns the accounts the run's resources of access location
// loc were recorded in (one, unless the credentials changed mid-run).
func (r *Run) Accounts(loc Location) []string {
	seen := map[string]bool{}
	var out []string
	for _, res := range r.Resources {
		if res.Kind != KindLocalFile && res.Location.Access() == loc && !seen[res.Location.Account] {
			seen[res.Location.Account] = true
			out = append(out, res.Location.Account)
		}
	}
	sort.Strings(out)
	return out
}

// Dead reports whether the run's process is gone while the ledger still
// lists resources it did not remove: what a new build warns about.
func (r *Run) Dead() bool { return !r.Running && len(r.Left()) > 0 }

// Left returns what the run created, or may have created, and did not
// remove. The AMIs of a run that succeeded are its artifacts, not leftovers.
func (r *Run) Left() []Resource {
	var left []Resource
	for _, res := range r.Resources {
		if res.Deleted || res.Kept || res.Resolved {
			continue
		}
		if r.Status == StatusSucceeded && (res.Kind == KindImage || res.Kind == KindSnapshot) {
			continue
		}
		left = append(left, res)
	}
	return left
}

// Regions returns the regions the run's intents name, sorted.
func (r *Run) Regions() []string {
	seen := map[string]bool{}
	var out []string
	for _, res := range r.Resources {
		if res.Region != "" && !seen[res.Region] {
			seen[res.Region] = true
			out = append(out, res.Region)
		}
	}
	sort.Strings(out)
	return out
}

// Read reads the journal of runID in dir.
func Read(dir, runID string) (*Run, error) {
	if !ValidRunID(runID) {
		return nil, fmt.Errorf("read ledger: invalid run id %q", runID)
	}
	return readFile(filepath.Join(dir, runID+".jsonl"), runID)
}

// List reads every journal in dir, oldest run first. A journal it cannot
// read is left out and named in the returned error; the others are returned.
func List(dir string) ([]*Run, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", dir, err)
	}
	var runs []*Run
	var errs []error
	for _, e := range ents {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".jsonl")
		if !ok || e.IsDir() || !ValidRunID(id) {
			continue
		}
		r, err := readFile(filepath.Join(dir, name), id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		runs = append(runs, r)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].Started.Equal(runs[j].Started) {
			return runs[i].Started.Before(runs[j].Started)
		}
		return runs[i].ID < runs[j].ID
	})
	return runs, errors.Join(errs...)
}

func readFile(path, runID string) (*Run, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s: %w (looked for %s)", runID, ErrNoRun, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer f.Close()
	recs, err := parse(f, path)
	if err != nil {
		return nil, err
	}
	run := &Run{ID: runID, Path: path, Running: locked(path)}
	byEntry := map[string]int{}
	type key struct {
		kind       Kind
		region, id string
	}
	deleted, kept := map[key]bool{}, map[key]bool{}
	for _, r := range recs {
		switch r.T {
		case recStart:
			if run.Started.IsZero() {
				run.PID, run.Host, run.Started, run.Template, run.TempDir = r.PID, r.Host, r.Time, r.Template, r.TempDir
			}
			run.LastPID = r.PID
		case recReap:
			run.LastPID = r.PID
		case recSwept:
			run.Swept = true
		case recIntent:
			run.Swept = false
			byEntry[r.Entry] = len(run.Resources)
			run.Resources = append(run.Resources, Resource{Entry: r.Entry, Kind: r.Kind, Region: r.Region, Build: r.Build, Token: r.Token, Intended: r.Time, Location: r.Location})
		case recCreated:
			if i, ok := byEntry[r.Entry]; ok {
				if r.ID == "" {
					run.Resources[i].Resolved = true
				} else {
					run.Resources[i].ID = r.ID
				}
			}
		case recDeleted:
			deleted[key{r.Kind, r.Region, r.ID}] = true
		case recKept:
			kept[key{r.Kind, r.Region, r.ID}] = true
			if run.Kept == nil {
				run.Kept = map[string]bool{}
			}
			run.Kept[r.ID] = true
		case recEnd:
			run.Status, run.Ended = r.Status, r.Time
		}
	}
	for i := range run.Resources {
		res := &run.Resources[i]
		if res.ID == "" {
			continue
		}
		k := key{res.Kind, res.Region, res.ID}
		res.Deleted, res.Kept = deleted[k], kept[k]
	}
	return run, nil
}
