package main

import (
	"context"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// inspectOptions are the parsed flags and argument of `amibake inspect`.
type inspectOptions struct {
	tf      templateFlags
	machine bool
	path    string // the template
}

// newInspectCmd is `amibake inspect`; runF, when set, runs instead of the
// inspection (tests of flag parsing).
func newInspectCmd(f *factory, runF func(context.Context, *inspectOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(_ context.Context, o *inspectOptions) error { return runInspect(f, o) }
	}
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [flags] TEMPLATE",
		Short: "Show a template's variables, sources, builds, provisioners and post-processors",
		Long: `Show what a template declares: input variables with their values (sensitive ones
masked), locals, data sources, and each build's sources, provisioners and
post-processors. Nothing is built and nothing is contacted.`,
		DisableFlagParsing: true,
	}
	o.tf.register(cmd)
	cmd.Flags().BoolVar(&o.machine, "machine-readable", false, "print Packer's machine-readable lines (template-variable, template-builder, template-provisioner for JSON templates)")
	cmd.RunE = runPacker(wantArgs(1, 1, "inspect takes exactly one template path"), func(cmd *cobra.Command, args []string) error {
		o.path = args[0]
		return runF(cmd.Context(), o)
	})
	return cmd
}

func runInspect(f *factory, o *inspectOptions) error {
	lo, err := o.tf.loadOptions(f)
	if err != nil {
		return err
	}
	t, diags := template.Load(o.path, lo)
	if t != nil {
		f.Secrets.Add(t.Sensitive...)
	}
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	var files = map[string]*hcl.File{}
	if t != nil {
		files = t.Files
	}
	if diags.HasErrors() {
		_ = template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled())
		return &exitError{code: 1}
	}
	if len(diags) > 0 {
		_ = template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled())
	}
	if o.machine {
		events, err := template.InspectMachine(t)
		if err != nil {
			return err
		}
		root := ui.New(f.IO, ui.Options{MachineReadable: true, Secrets: f.Secrets})
		for _, e := range events {
			if e.Kind == "say" {
				root.Say(e.Args[0])
			} else {
				root.Machine(e.Kind, e.Args...)
			}
		}
		return nil
	}
	return template.WriteInspect(&ui.MaskingWriter{W: f.IO.Out, Secrets: f.Secrets}, t)
}
