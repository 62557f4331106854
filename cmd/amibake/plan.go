package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/plan"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// planOptions are the parsed flags and argument of `amibake plan`.
type planOptions struct {
	tf             templateFlags
	asJSON         bool
	color          bool
	reuse, rebuild bool
	path           string // the template
}

// newPlanCmd is `amibake plan`; runF, when set, runs instead of the plan
// (tests of flag parsing).
func newPlanCmd(f *factory, runF func(context.Context, *planOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(ctx context.Context, o *planOptions) error {
			if !o.color {
				f.IO.SetColorEnabled(false)
			}
			return runPlan(ctx, f, &o.tf, o.asJSON, plan.Options{Reuse: o.reuse, Rebuild: o.rebuild, Shared: f.awsShared()}, o.path)
		}
	}
	o := &planOptions{}
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
	o.tf.register(cmd)
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print a versioned JSON document (for CI)")
	cmd.Flags().BoolVar(&o.color, "color", true, "colour the output (NO_COLOR also disables it)")
	cmd.Flags().BoolVar(&o.reuse, "reuse", false, "plan as `build --reuse` would run: reuse an AMI with the same input digest")
	cmd.Flags().BoolVar(&o.rebuild, "rebuild", false, "plan as `build --rebuild` would run: bake even when an AMI with the same input digest exists")
	cmd.RunE = runPacker(wantArgs(1, 1, "plan needs exactly one template path"), func(cmd *cobra.Command, args []string) error {
		o.path = args[0]
		return runF(cmd.Context(), o)
	})
	return cmd
}

func runPlan(ctx context.Context, f *factory, tf *templateFlags, asJSON bool, popts plan.Options, path string) error {
	lo, err := tf.loadOptions(f)
	if err != nil {
		return err
	}
	// One AWS state for the data sources and the plan's lookups.
	if popts.Shared == nil {
		popts.Shared = f.awsShared()
	}
	lo.EvaluateDataSources, lo.DataSource = true, amazonebs.DataSources(popts.Shared)
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
