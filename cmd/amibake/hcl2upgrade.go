package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// upgradeSettings tells hcl2-upgrade which settings of a plugin are blocks,
// from the plugin's own settings struct.
func upgradeSettings(kind, typ string) any {
	if kind == "builder" && typ == "amazon-ebs" {
		return &amazonebs.Config{}
	}
	return nil
}

// hcl2UpgradeOptions are the parsed flags and argument of
// `amibake hcl2-upgrade`.
type hcl2UpgradeOptions struct {
	output   string
	annotate bool
	path     string // the JSON template
}

// newHCL2UpgradeCmd is `amibake hcl2-upgrade`; runF, when set, runs instead
// of the translation (tests of flag parsing).
func newHCL2UpgradeCmd(f *factory, runF func(context.Context, *hcl2UpgradeOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(_ context.Context, o *hcl2UpgradeOptions) error { return runHCL2Upgrade(f, o) }
	}
	o := &hcl2UpgradeOptions{}
	cmd := &cobra.Command{
		Use:     "hcl2-upgrade [-output-file FILE] [-with-annotations] TEMPLATE.json",
		Aliases: []string{"hcl2_upgrade"},
		Short:   "Translate a legacy JSON template into HCL2",
		Long: `Write an HCL2 template (.pkr.hcl) equivalent to a legacy JSON template:
variables, sources, a build with its provisioners and post-processors.

Unlike Packer's, the translation covers clean_resource_name (regex_replace),
isotime (formatdate, or legacy_isotime for layouts formatdate cannot express),
user, env, timestamp, uuid, build_name and template_dir. Build-time fields such
as {{ .SourceAMIName }} stay as they are: amibake renders them in HCL2 too.
What cannot be translated is reported and marked with a TODO comment.

The output goes to TEMPLATE.json.pkr.hcl unless -output-file is given
("-" for standard output).`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
	}
	cmd.Flags().StringVar(&o.output, "output-file", "", "write the HCL2 template here (default TEMPLATE.json.pkr.hcl, - for stdout)")
	cmd.Flags().BoolVar(&o.annotate, "with-annotations", false, "explain each part of the output in comments")
	cmd.RunE = runPacker(wantArgs(1, 1, "hcl2-upgrade needs exactly one JSON template"), func(cmd *cobra.Command, args []string) error {
		o.path = args[0]
		return runF(cmd.Context(), o)
	})
	return cmd
}

func runHCL2Upgrade(f *factory, o *hcl2UpgradeOptions) error {
	in := o.path
	src, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read template: %w", err)
	}
	out, diags := template.UpgradeJSON(in, src, template.UpgradeOptions{WithAnnotations: o.annotate, Settings: upgradeSettings})
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	files := map[string]*hcl.File{in: {Body: hcl.EmptyBody(), Bytes: src}}
	if err := template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled()); err != nil {
		return err
	}
	if diags.HasErrors() {
		return &exitError{code: 1}
	}
	output := o.output
	if output == "-" {
		_, err := f.IO.Out.Write(out)
		return err
	}
	if output == "" {
		output = in + ".pkr.hcl"
	}
	if err := os.WriteFile(output, out, 0o644); err != nil {
		return fmt.Errorf("write HCL2 template: %w", err)
	}
	fmt.Fprintf(f.IO.Out, "Successfully created %s.\n", output)
	return nil
}
