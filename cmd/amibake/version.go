package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/ui"
)

func init() { commands = append(commands, newVersionCmd) }

func newVersionCmd(f *factory) *cobra.Command {
	var machine bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print amibake's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line := fmt.Sprintf("amibake %s (%s %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if machine {
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
		},
	}
	cmd.Flags().BoolVar(&machine, "machine-readable", false, "print Packer's machine-readable version lines")
	return cmd
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
