package interrupt

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/amibake/amibake/internal/ledger"
)

// CleanupCommand is the command that removes what run left.
func CleanupCommand(runID string) string { return "amibake cleanup --run-id " + runID }

// LeftReport says what run left behind and how to remove it: what amibake
// prints when a second signal stops its cleanup. The run is read from the
// ledger after the cleanup stopped, so it lists exactly what is left.
func LeftReport(run *ledger.Run) string {
	return leftReport(run, "Cleanup was interrupted")
}

// AbortReport is LeftReport after -on-error=abort (or
// run-cleanup-provisioner) left a failed build's resources on purpose.
func AbortReport(run *ledger.Run, mode string) string {
	return leftReport(run, "Cleanup was skipped (-on-error="+mode+") so that you can inspect what failed")
}

func leftReport(run *ledger.Run, why string) string {
	left := run.Left()
	var b strings.Builder
	if len(left) == 0 {
		fmt.Fprintf(&b, "%s; the ledger of run %s lists nothing left to remove.\n", why, run.ID)
		return b.String()
	}
	fmt.Fprintf(&b, "%s. Run %s left %d resource(s):\n", why, run.ID, len(left))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  REGION\tKIND\tID\tBUILD")
	for _, r := range left {
		region, id, build := r.Region, r.ID, r.Build
		if region == "" {
			region = "local"
		}
		if id == "" {
			// The create call was in flight: cleanup finds it by tags.
			id = "unknown (create call in flight"
			if r.Token != "" {
				id += ", token " + r.Token
			}
			id += ")"
		}
		if build == "" {
			build = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", region, r.Kind, id, build)
	}
	tw.Flush()
	fmt.Fprintf(&b, "Remove them with:\n  %s\n", CleanupCommand(run.ID))
	return b.String()
}
