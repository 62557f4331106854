package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/ui"
)

// factory carries what every command needs, so that tests can swap it.
type factory struct {
	IO      *ui.IOStreams
	Secrets *ui.Secrets
	Getenv  func(string) string
	Log     *slog.Logger
}

func newFactory(ios *ui.IOStreams) *factory {
	secrets := &ui.Secrets{}
	// Credentials from the environment (the usual CI set-up) are masked
	// from the start; the template's own secret_key/token are added when a
	// build decodes them.
	secrets.Add(os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))
	return &factory{IO: ios, Secrets: secrets, Getenv: os.Getenv, Log: newLogger(ios, secrets)}
}

// commands are the subcommand constructors; each command's file appends
// its own in init, so commands can be written and tested independently.
var commands []func(*factory) *cobra.Command

func newRootCmd(f *factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "amibake",
		Short: "Bake Amazon Machine Images from Packer templates",
		Long: `amibake builds AMIs from Packer templates (legacy JSON and HCL2) the way
Packer's amazon-ebs builder does: it launches an instance from a source AMI,
provisions it over SSH, creates the AMI and removes everything temporary.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(versionLine() + "\n") // --version prints what `version` does
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	for _, newCmd := range commands {
		c := newCmd(f)
		if c.ValidArgsFunction == nil && takesTemplates[c.Name()] {
			c.ValidArgsFunction = completeTemplates
		}
		root.AddCommand(c)
	}
	return root
}

// takesTemplates are the commands whose arguments are template files or
// directories: shell completion offers those.
var takesTemplates = map[string]bool{
	"build": true, "validate": true, "plan": true, "inspect": true,
	"hcl2-upgrade": true, "fmt": true, "prune": true,
}

func completeTemplates(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"json", "hcl"}, cobra.ShellCompDirectiveFilterFileExt
}

// exitError carries a specific exit code (1 build failed, 130 interrupted...).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Exit codes: 0 success, 1 failure, 2 usage, 130 SIGINT, 143 SIGTERM.
// The error is printed to w with secrets masked.
func exitCode(w io.Writer, secrets *ui.Secrets, err error) int {
	if err == nil {
		return 0
	}
	say := func(err error) { fmt.Fprintln(w, "Error:", secrets.Mask(err.Error())) }
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			say(ee.err)
		}
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") {
		say(err)
		return 2
	}
	say(err)
	return 1
}

// newLogger returns the debug logger: silent unless AMIBAKE_LOG=debug (or
// info/warn), written to stderr with secrets masked.
func newLogger(ios *ui.IOStreams, secrets *ui.Secrets) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(os.Getenv("AMIBAKE_LOG")) {
	case "debug", "trace":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	default:
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(&ui.MaskingWriter{W: ios.ErrOut, Secrets: secrets}, &slog.HandlerOptions{Level: level}))
}
