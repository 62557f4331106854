package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/internal/validate"
)

// validateBuild checks a build's plugin settings through the plugin
// registry; a variable so that tests can swap it.
var validateBuild = plugins.ValidateBuild

// templateFlags are the flags validate, build and inspect share.
type templateFlags struct {
	vars     []string
	varFiles []string
	only     []string
	except   []string
}

func (t *templateFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&t.vars, "var", nil, "set a template variable: -var name=value (repeatable)")
	fs.StringArrayVar(&t.varFiles, "var-file", nil, "read variables from a .pkrvars.hcl or JSON file (repeatable)")
	fs.StringSliceVar(&t.only, "only", nil, "only these builds (globs on build names, comma-separated)")
	fs.StringSliceVar(&t.except, "except", nil, "all builds except these (globs on build names)")
}

// loadOptions turns the flags into template.LoadOptions.
func (t *templateFlags) loadOptions(f *factory) (template.LoadOptions, error) {
	opts := template.LoadOptions{Env: f.Getenv, VarFiles: t.varFiles, Only: t.only, Except: t.except}
	if len(t.vars) > 0 {
		opts.Vars = map[string]string{}
	}
	for _, kv := range t.vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return opts, &usageError{fmt.Errorf("invalid -var %q: expected name=value", kv)}
		}
		opts.Vars[k] = v
	}
	return opts, nil
}

// validateOptions are the parsed flags and arguments of `amibake validate`.
type validateOptions struct {
	tf          templateFlags
	syntaxOnly  bool
	asJSON      bool
	evalData    bool
	noColor     bool
	noWarnUndef bool
	machine     bool
	sequential  bool
	paths       []string // the templates
}

// newValidateCmd is `amibake validate`; runF, when set, runs instead of the
// validation (tests of flag parsing).
func newValidateCmd(f *factory, runF func(context.Context, *validateOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(ctx context.Context, o *validateOptions) error { return runValidate(ctx, f, o) }
	}
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [flags] TEMPLATE...",
		Short: "Check that templates are valid, offline",
		Long: `Check templates (legacy JSON files, HCL2 files or directories of HCL2 files)
without network or credentials: syntax, variables, references, functions and the
settings of every builder, provisioner and post-processor. Several templates can
be given at once, as pre-commit passes them. Exit status 0 when valid, 1 when not.

Packer's single-dash flags (-var, -var-file, -only, -except, -syntax-only) work.`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
	}
	o.tf.register(cmd)
	cmd.Flags().BoolVar(&o.syntaxOnly, "syntax-only", false, "only check syntax; do not evaluate")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print a JSON document with every diagnostic")
	cmd.Flags().BoolVar(&o.evalData, "evaluate-datasources", false, "evaluate data sources (contacts AWS)")
	cmd.Flags().BoolVar(&o.noColor, "no-color", false, "disable colors")
	cmd.Flags().BoolVar(&o.noWarnUndef, "no-warn-undeclared-var", false, "do not warn about variables set in var files but not declared")
	cmd.Flags().BoolVar(&o.machine, "machine-readable", false, "print Packer's machine-readable output (ui,say / ui,error lines)")
	cmd.Flags().BoolVar(&o.sequential, "use-sequential-evaluation", false, "accepted for Packer compatibility: amibake evaluates locals and data sources in dependency order, which gives the same values")
	cmd.RunE = runPacker(wantArgs(1, -1, "validate needs at least one template path"), func(cmd *cobra.Command, paths []string) error {
		o.paths = paths
		return runF(cmd.Context(), o)
	})
	return cmd
}

func runValidate(ctx context.Context, f *factory, o *validateOptions) error {
	lo, err := o.tf.loadOptions(f)
	if err != nil {
		return err
	}
	lo.SyntaxOnly = o.syntaxOnly
	lo.EvaluateDataSources = o.evalData
	// --evaluate-datasources: the amazon-ami data source, through the
	// factory's AWS configuration and under the command's context.
	lo.DataSource = amazonebs.DataSources(f.awsShared())
	res := validate.Paths(ctx, o.paths, validate.Options{Load: lo, ValidateBuild: validateBuild})
	f.Secrets.Add(res.Sensitive...)
	if o.noWarnUndef {
		res.Diags = dropUndeclaredWarnings(res.Diags)
	}
	out := &ui.MaskingWriter{W: f.IO.Out, Secrets: f.Secrets}
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	switch {
	case o.asJSON:
		if err := template.WriteDiagnosticsJSON(out, res.Files, res.Diags); err != nil {
			return err
		}
	case o.machine:
		// Packer's: every message on stdout as a ui line.
		root := ui.New(f.IO, ui.Options{MachineReadable: true, Secrets: f.Secrets})
		for _, d := range res.Diags {
			var b strings.Builder
			_ = template.WriteDiagnostics(&b, res.Files, hcl.Diagnostics{d}, false)
			if d.Severity == hcl.DiagError {
				root.Error(strings.TrimRight(b.String(), "\n"))
			} else {
				root.Say(strings.TrimRight(b.String(), "\n"))
			}
		}
		if res.Valid() {
			root.Say("The configuration is valid.")
		}
	default:
		color := f.IO.ColorEnabled() && !o.noColor
		if err := template.WriteDiagnostics(errOut, res.Files, res.Diags, color); err != nil {
			return err
		}
		if res.Valid() {
			fmt.Fprintln(out, "The configuration is valid.")
		}
	}
	if !res.Valid() {
		return &exitError{code: 1}
	}
	return nil
}

// dropUndeclaredWarnings removes "Undefined variable" warnings, as
// Packer's -no-warn-undeclared-var does.
func dropUndeclaredWarnings(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning && d.Summary == "Undefined variable" {
			continue
		}
		out = append(out, d)
	}
	return out
}
