package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ui"
)

// factory carries what every command needs, so that tests can swap it.
type factory struct {
	IO      *ui.IOStreams
	Secrets *ui.Secrets
	Getenv  func(string) string
	Log     *slog.Logger
	// AWSConfig loads the AWS SDK's configuration (environment, shared
	// files, AWS_ENDPOINT_URL) for every session a command opens; a test
	// hands the commands its own here.
	AWSConfig awsclient.ConfigLoader
}

func newFactory(ios *ui.IOStreams) *factory {
	secrets := &ui.Secrets{}
	// Credentials from the environment (the usual CI set-up) are masked
	// from the start; the template's own secret_key/token are added when a
	// build decodes them.
	secrets.Add(os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN"))
	f := &factory{IO: ios, Secrets: secrets, Getenv: os.Getenv, Log: newLogger(ios, secrets), AWSConfig: config.LoadDefaultConfig}
	// Prompts look for CI in the command's environment, read when asked,
	// so that a test's Getenv counts.
	ios.SetGetenv(func(k string) string { return f.Getenv(k) })
	return f
}

// awsShared is the AWS state of one command's sessions, configured through
// the factory's AWSConfig.
func (f *factory) awsShared() *awsclient.Shared { return awsclient.NewSharedWith(f.AWSConfig) }

// newRootCmd is the amibake command with every subcommand, in the order
// of a bake's life: check and look, bake, then tidy up.
func newRootCmd(f *factory) *cobra.Command {
	return rootWith(f,
		newValidateCmd(f, nil),
		newFmtCmd(f, nil),
		newInspectCmd(f, nil),
		newHCL2UpgradeCmd(f, nil),
		newPlanCmd(f, nil),
		newBuildCmd(f, nil),
		newPruneCmd(f, nil),
		newCleanupCmd(f, nil),
		newVersionCmd(f, nil),
	)
}

// rootWith is the root command with the given subcommands (tests give
// one whose run function captures its options).
func rootWith(f *factory, cmds ...*cobra.Command) *cobra.Command {
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
	for _, c := range cmds {
		if c.ValidArgsFunction == nil && takesTemplates[c.Name()] {
			c.ValidArgsFunction = completeTemplates
		}
		root.AddCommand(c)
	}
	// Made now rather than when executing, so that their argument checks
	// are wrapped below too (`amibake completion bash extra`).
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	wrapArgs(root)
	return root
}

// wrapArgs makes every argument check in the tree return a *usageError.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		c.Args = usageArgs(c.Args)
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// usageArgs wraps an argument check so that its complaint is a usage
// error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return err
			}
			return &usageError{err}
		}
		return nil
	}
}

// execute runs a command line (Packer's single-dash flags included) and
// returns its error, mistakes on the command line as a *usageError.
func execute(ctx context.Context, root *cobra.Command, args []string) error {
	args = normalizeCommandLine(root, args)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ue *usageError
	var ee *exitError
	if err != nil && cmd == root && !errors.As(err, &ue) && !errors.As(err, &ee) {
		// The root runs nothing itself and its flag errors are typed
		// already; cobra's Find rejecting the subcommand's name is the
		// unknown command.
		if _, _, ferr := root.Find(args); ferr != nil {
			err = &usageError{err}
		}
	}
	return err
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
	if errors.As(err, &ue) {
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
