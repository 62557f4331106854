package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/plan"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

func init() { commands = append(commands, newPlanCmd) }

func newPlanCmd(f *factory) *cobra.Command {
	var (
		tf     templateFlags
		asJSON bool
		color  bool
		popts  plan.Options
	)
	cmd := &cobra.Command{
		Use:   "plan [flags] TEMPLATE",
		Short: "Show what a build would do, without creating anything",
		Long: `Resolve a template's variables and each build's source AMI, and print per build
the AMI it would create, the regions, the temporary resources (key pair, security
group and the CIDRs it would open), the provisioners with the files they would
upload, the input digest and whether an AMI with that digest already exists in
each region (reuse, copy or bake). Only read-only AWS calls are made.

Packer's single-dash flags (-var, -var-file, -only, -except) work. The plan is for
a build with the same --reuse and --rebuild flags, and says why it would reuse,
copy or bake.`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a versioned JSON document (for CI)")
	cmd.Flags().BoolVar(&color, "color", true, "colour the output (NO_COLOR also disables it)")
	cmd.Flags().BoolVar(&popts.Reuse, "reuse", false, "plan as `build --reuse` would run: reuse an AMI with the same input digest")
	cmd.Flags().BoolVar(&popts.Rebuild, "rebuild", false, "plan as `build --rebuild` would run: bake even when an AMI with the same input digest exists")
	cmd.RunE = runPacker(func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return &usageError{fmt.Errorf("plan needs exactly one template path\nSee '%s --help'.", cmd.CommandPath())}
		}
		if !color {
			f.IO.SetColorEnabled(false)
		}
		return runPlan(cmd.Context(), f, &tf, asJSON, popts, args[0])
	})
	return cmd
}

func runPlan(ctx context.Context, f *factory, tf *templateFlags, asJSON bool, popts plan.Options, path string) error {
	lo, err := tf.loadOptions(f)
	if err != nil {
		return err
	}
	if evaluateDataSource != nil {
		// One AWS state for the data sources and the plan's lookups.
		popts.Shared = awsclient.NewShared()
		lo.EvaluateDataSources, lo.DataSource = true, amazonebs.DataSources(popts.Shared)
	}
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	t, diags := template.LoadContext(ctx, path, lo)
	if t != nil {
		f.Secrets.Add(t.Sensitive...)
	}
	if t != nil && !diags.HasErrors() {
		// Check every build offline first, so a bad option is reported
		// with its position before any AWS call.
		for _, b := range t.Builds {
			diags = append(diags, plugins.ValidateBuild(b)...)
		}
	}
	if diags.HasErrors() {
		files := map[string]*hcl.File{}
		if t != nil {
			files = t.Files
		}
		_ = template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled())
		return &exitError{code: 1}
	}
	popts.Getenv = f.Getenv
	doc, err := plan.Make(ctx, t, popts)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s", f.Secrets.Mask(err.Error()))}
	}
	out := &ui.MaskingWriter{W: f.IO.Out, Secrets: f.Secrets}
	if asJSON {
		return doc.WriteJSON(out)
	}
	return doc.WriteText(out)
}
