package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// normalizeFlags rewrites Packer-style single-dash long flags ("-var",
// "-only=x", "-var-file f") to the double-dash form pflag expects, which
// would otherwise parse "-var" as the shorthand cluster -v -a -r. Only the
// names in long are rewritten, and nothing after "--".
func normalizeFlags(args []string, long []string) []string {
	known := make(map[string]bool, len(long))
	for _, l := range long {
		known[l] = true
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if known[name] {
			out[i] = "-" + a
		}
	}
	return out
}

// parsePackerFlags parses the flags of a command that sets
// DisableFlagParsing, after normalizeFlags, and returns the positional
// arguments. errHelpShown means --help was given and help was printed.
func parsePackerFlags(cmd *cobra.Command, args []string) ([]string, error) {
	fs := cmd.Flags()
	var long []string
	fs.VisitAll(func(f *pflag.Flag) { long = append(long, f.Name) })
	if err := fs.Parse(normalizeFlags(args, long)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, errHelpShown
		}
		return nil, &usageError{fmt.Errorf("%w\nSee '%s --help'.", err, cmd.CommandPath())}
	}
	if help, _ := fs.GetBool("help"); help {
		return nil, errHelpShown
	}
	return fs.Args(), nil
}

var errHelpShown = errors.New("help shown")

// runPacker wraps a RunE whose command parses Packer-style flags; check
// validates the positional arguments left after the flags.
func runPacker(check cobra.PositionalArgs, run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	check = usageArgs(check)
	return func(cmd *cobra.Command, args []string) error {
		cmd.InitDefaultHelpFlag()
		// Merge the parents' persistent flags, which cobra skips for
		// commands that parse their own flags.
		_ = cmd.InheritedFlags()
		pos, err := parsePackerFlags(cmd, args)
		if errors.Is(err, errHelpShown) {
			return cmd.Help()
		}
		if err != nil {
			return err
		}
		if err := check(cmd, pos); err != nil {
			return err
		}
		return run(cmd, pos)
	}
}

// wantArgs checks that a command has between min and max positional
// arguments (max < 0: no limit), or says so in msg.
func wantArgs(min, max int, msg string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			return &usageError{fmt.Errorf("%s\nSee '%s --help'.", msg, cmd.CommandPath())}
		}
		return nil
	}
}

// normalizeCommandLine makes Packer's single-dash long flags work on every
// command, including those cobra parses itself (cleanup, version) and the
// root command: "amibake -version" and "amibake -machine-readable version"
// (Packer takes -machine-readable anywhere on the line). Flags are
// rewritten only for the names the command actually has.
func normalizeCommandLine(root *cobra.Command, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := append([]string(nil), args...)
	switch out[0] {
	case "-version", "-v", "--version":
		return append([]string{"--version"}, out[1:]...)
	case "-machine-readable", "--machine-readable":
		// Packer's global flag: move it after the command that takes it.
		if len(out) > 1 {
			out = append(append([]string{out[1]}, "--machine-readable"), out[2:]...)
		}
	}
	cmd, _, err := root.Find(out)
	if err != nil || cmd == root {
		return out
	}
	var long []string
	add := func(f *pflag.Flag) { long = append(long, f.Name) }
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	long = append(long, "help")
	return normalizeFlags(out, long)
}
