// Command amibake bakes Amazon Machine Images from Packer templates.
// This package is wiring only: flags, streams and exit codes. The logic
// lives in internal/, builder/, provisioner/ and postprocessor/.
package main

import (
	"context"
	"os"

	"github.com/amibake/amibake/internal/interrupt"
	"github.com/amibake/amibake/internal/ui"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], ui.System()))
}

// run executes the command line and returns the process exit code. The
// first SIGINT/SIGTERM cancels the command's context (builds clean up);
// a second cancels the cleanup context that interrupt.Cleanup(ctx) returns.
func run(ctx context.Context, args []string, ios *ui.IOStreams) int {
	f := newFactory(ios)
	runCtx, _, sig, stop := interrupt.Context(ctx)
	defer stop()
	code := exitCode(ios.ErrOut, f.Secrets, execute(runCtx, newRootCmd(f), args))
	if s := sig(); s != nil && code != 0 {
		code = interrupt.ExitCode(s)
	}
	return code
}
