// Command amibake bakes Amazon Machine Images from Packer templates.
// This package is wiring only: flags, streams and exit codes. The logic
// lives in internal/, builder/, provisioner/ and postprocessor/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/amibake/amibake/internal/ui"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], ui.System()))
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, ios *ui.IOStreams) int {
	f := newFactory(ios)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(f)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(err)
}
