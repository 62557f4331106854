package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are stamped by the linker (make dist):
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha>".
var (
	version = "0.1.0-dev"
	commit  = ""
)

func init() { commands = append(commands, newVersionCmd) }

// versionLine is what `amibake version` and `amibake --version` print. A
// binary built by `go install ...@v1.2.3` is not stamped but knows its
// module version.
func versionLine() string {
	v, c := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "0.1.0-dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if c == "" {
		c = "unknown commit"
	}
	return fmt.Sprintf("amibake %s (%s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print amibake's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(f.IO.Out, versionLine())
			return err
		},
	}
}
