package reaper

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/amibake/amibake/internal/ledger"
)

// Outcome is what the reaper did with one resource.
type Outcome string

const (
	Removed     Outcome = "removed"
	WouldRemove Outcome = "would remove" // --dry-run
	AlreadyGone Outcome = "already gone"
	Kept        Outcome = "kept"    // an available AMI: an artifact, not a leftover
	Skipped     Outcome = "skipped" // not amibake's, too young, or its run is alive
	Failed      Outcome = "failed"
	// NotVerified: cleanup could not ask the right account and region
	// whether the resource exists, so it stays in the ledger; Detail says
	// why and which command verifies it.
	NotVerified Outcome = "not verified"
)

// Item is one resource the reaper looked at.
type Item struct {
	Run     string
	Region  string
	Kind    ledger.Kind
	ID      string
	Name    string // key pair or group name, AMI name, file path
	Outcome Outcome
	Detail  string // why it was skipped or kept, or the error
	Err     error
}

// RunNote says why a whole run was not cleaned.
type RunNote struct {
	Run, Detail string
}

// Report is what a cleanup did, for the command to print.
type Report struct {
	DryRun  bool
	Items   []Item
	Skipped []RunNote // runs left alone (still running)
	Notes   []RunNote // what to do about runs not fully cleaned
	Clean   int       // runs in the ledger that had nothing left
	// OnDisk is how many journals the ledger directory holds after
	// Pruned were removed (--all).
	OnDisk int
	Pruned []string
	// Files are the local temporary files of dead runs that were removed.
	Files int
}

func (r *Report) add(it Item) { r.Items = append(r.Items, it) }

// Count returns how many items had outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, it := range r.Items {
		if it.Outcome == o {
			n++
		}
	}
	return n
}

// Err joins the errors of the items that failed or could not be
// verified.
func (r *Report) Err() error {
	var errs []error
	for _, it := range r.Items {
		switch it.Outcome {
		case Failed:
			errs = append(errs, it.Err)
		case NotVerified:
			errs = append(errs, fmt.Errorf("%s %s in %s not verified: %s", it.Kind, orDash(it.ID+it.nameIfNoID()), it.Region, it.Detail))
		}
	}
	return errors.Join(errs...)
}

func (it Item) nameIfNoID() string {
	if it.ID == "" {
		return it.Name
	}
	return ""
}

// String renders the report as a table with a summary line.
func (r *Report) String() string {
	var b strings.Builder
	if len(r.Items) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tREGION\tKIND\tID\tOUTCOME")
		for _, it := range r.Items {
			id := it.ID
			if it.Name != "" && it.Name != it.ID {
				if id == "" {
					id = it.Name
				} else {
					id += " (" + it.Name + ")"
				}
			}
			region := it.Region
			if region == "" {
				region = "local"
			}
			out := string(it.Outcome)
			if it.Detail != "" {
				out += ": " + it.Detail
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(it.Run), region, it.Kind, id, out)
		}
		tw.Flush()
	}
	for _, n := range r.Skipped {
		fmt.Fprintf(&b, "run %s skipped: %s\n", n.Run, n.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "run %s: %s\n", n.Run, n.Detail)
	}
	if r.DryRun {
		fmt.Fprintf(&b, "Dry run: %d resource(s) would be removed, %d kept, %d skipped.\n", r.Count(WouldRemove), r.Count(Kept), r.Count(Skipped))
	} else {
		nv := ""
		if n := r.Count(NotVerified); n > 0 {
			nv = fmt.Sprintf(", %d not verified", n)
		}
		fmt.Fprintf(&b, "%d removed, %d already gone, %d kept, %d skipped, %d failed%s.\n", r.Count(Removed), r.Count(AlreadyGone), r.Count(Kept), r.Count(Skipped), r.Count(Failed), nv)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
