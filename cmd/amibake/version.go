package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/ui"
)

// version and commit are stamped by the linker (make dist):
// -ldflags "-X main.version=v1.2.3 -X main.commit=<sha>".
var (
	version = "0.1.0-dev"
	commit  = ""
)

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

// versionOptions are the parsed flags of `amibake version`.
type versionOptions struct {
	machine bool
}

// newVersionCmd is `amibake version`; runF, when set, runs instead of
// printing (tests of flag parsing).
func newVersionCmd(f *factory, runF func(context.Context, *versionOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(_ context.Context, o *versionOptions) error { return runVersion(f, o) }
	}
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print amibake's version",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runF(cmd.Context(), o) },
	}
	cmd.Flags().BoolVar(&o.machine, "machine-readable", false, "print Packer's machine-readable version lines")
	return cmd
}

func runVersion(f *factory, o *versionOptions) error {
	line := versionLine()
	if o.machine {
		// Packer's lines, its "version-prelease" spelling included.
		root := ui.New(f.IO, ui.Options{MachineReadable: true})
		v, pre, _ := strings.Cut(version, "-")
		root.Machine("version", v)
		root.Machine("version-prelease", pre)
		root.Machine("version-commit", vcsRevision())
		root.Say(line)
		return nil
	}
	_, err := fmt.Fprintln(f.IO.Out, line)
	return err
}

// vcsRevision is the commit the binary was built from, when Go recorded it.
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
