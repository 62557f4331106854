package prune

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// FormatVersion is the version of the JSON document.
const FormatVersion = 1

// Document is the JSON form of a prune (--json).
type Document struct {
	FormatVersion int                `json:"format_version"`
	DryRun        bool               `json:"dry_run"`
	Regions       []string           `json:"regions"`
	Images        []Decision         `json:"images"`
	Snapshots     []SnapshotDecision `json:"snapshots"`
	// Resumed holds what interrupted prunes had left and this run finished.
	Resumed *Plan   `json:"resumed,omitempty"`
	Summary Summary `json:"summary"`
}

// Summary counts a plan.
type Summary struct {
	KeptImages       int `json:"kept_images"`
	DeletedImages    int `json:"deleted_images"`
	DeprecatedImages int `json:"deprecated_images"`
	DeletedSnapshots int `json:"deleted_snapshots"`
	KeptSnapshots    int `json:"kept_snapshots"`
	Failed           int `json:"failed"`
}

// NewDocument describes a result for --json.
func NewDocument(r *Result, dryRun bool) *Document {
	p := r.Plan
	if p == nil {
		p = &Plan{}
	}
	d := &Document{FormatVersion: FormatVersion, DryRun: dryRun, Regions: p.Regions, Images: p.Images, Snapshots: p.Snapshots, Resumed: r.Resumed}
	if d.Regions == nil {
		d.Regions = []string{}
	}
	if d.Images == nil {
		d.Images = []Decision{}
	}
	if d.Snapshots == nil {
		d.Snapshots = []SnapshotDecision{}
	}
	c := countOf(p, dryRun)
	d.Summary = Summary{
		KeptImages: c.kept, DeletedImages: c.deleted, DeprecatedImages: c.deprecated,
		DeletedSnapshots: c.snapshots, KeptSnapshots: len(p.Snapshots) - c.snapshots, Failed: len(r.Failed()),
	}
	return d
}

// WriteJSON writes the document, indented.
func (d *Document) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(d)
}

// WriteTable writes the plan as a table: every AMI with what happens to it
// and why, then the snapshots of the AMIs that go. dryRun words it as
// what would happen.
func WriteTable(w io.Writer, p *Plan, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tAMI\tNAME\tCREATED\tACTION\tWHY")
	for _, d := range p.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Region, d.ImageID, d.Name, d.Created.UTC().Format(time.RFC3339), actionWord(d.Action, d.Result, dryRun), why(d.Reason, d.Result))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Snapshots) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "REGION\tSNAPSHOT\tOF AMI\tACTION\tWHY")
		for _, s := range p.Snapshots {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Region, s.SnapshotID, s.ImageID, actionWord(s.Action, s.Result, dryRun), why(s.Reason, s.Result))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, Summarize(p, dryRun))
	return err
}

// counts are what a plan does (a dry run) or did (a real run).
type counts struct{ deleted, deprecated, snapshots, kept int }

func countOf(p *Plan, dryRun bool) counts {
	done := func(action, want, result string) bool {
		if dryRun {
			return action == want
		}
		return action == want && (result == ResultDeleted || result == ResultGone || result == ResultDeprecated)
	}
	var c counts
	for _, d := range p.Images {
		switch {
		case d.Action == ActionKeep:
			c.kept++
		case done(d.Action, ActionDelete, d.Result):
			c.deleted++
		case done(d.Action, ActionDeprecate, d.Result):
			c.deprecated++
		}
	}
	for _, s := range p.Snapshots {
		if done(s.Action, ActionDelete, s.Result) {
			c.snapshots++
		}
	}
	return c
}

// Summarize is the one-line summary of a plan: what it would do (dryRun)
// or what it did.
func Summarize(p *Plan, dryRun bool) string {
	c := countOf(p, dryRun)
	verb := "Deleted"
	if dryRun {
		verb = "Would delete"
	}
	var parts []string
	if c.deprecated > 0 || p.Count(ActionDeprecate) > 0 {
		v := "Deprecated"
		if dryRun {
			v = "Would deprecate"
		}
		parts = append(parts, fmt.Sprintf("%s %d AMI(s)", v, c.deprecated))
	}
	if c.deleted > 0 || p.Count(ActionDeprecate) == 0 {
		parts = append(parts, fmt.Sprintf("%s %d AMI(s) and %d snapshot(s)", verb, c.deleted, c.snapshots))
	}
	s := strings.Join(parts, "; ") + fmt.Sprintf(" in %s; kept %d AMI(s).", strings.Join(p.Regions, ", "), c.kept)
	if dryRun {
		s += " Dry run: nothing was changed."
	}
	if n := len(p.Failed()); n > 0 {
		s += fmt.Sprintf(" %d could not be removed.", n)
	}
	return s
}

func actionWord(action, result string, dryRun bool) string {
	if dryRun || result == "" || action == ActionKeep {
		return action
	}
	if strings.HasPrefix(result, ResultFailed) || strings.HasPrefix(result, "kept") {
		return strings.SplitN(result, ":", 2)[0]
	}
	return result
}

// why is the reason, with what went wrong when a real run failed.
func why(reason, result string) string {
	if _, detail, ok := strings.Cut(result, ": "); ok && (strings.HasPrefix(result, ResultFailed) || strings.HasPrefix(result, "kept")) {
		return reason + "; " + detail
	}
	return reason
}
