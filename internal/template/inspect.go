package template

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Masked is what inspect and other outputs print for a sensitive value.
const Masked = "<sensitive>"

// WriteInspect prints a template's variables (values, sensitive ones
// masked), locals, data sources and builds in Packer's inspect layout.
func WriteInspect(w io.Writer, t *Template) error {
	bw := bufio.NewWriter(w)
	mode := "HCL2"
	if t.Format == FormatJSON {
		mode = "legacy JSON"
	}
	fmt.Fprintf(bw, "amibake inspect: %s mode\n\n", mode)
	if t.Description != "" {
		fmt.Fprintf(bw, "Description:\n\n  %s\n\n", strings.ReplaceAll(t.Description, "\n", "\n  "))
	}
	fmt.Fprint(bw, "> input-variables:\n\n")
	for _, v := range t.Variables {
		val := v.Value
		if val == cty.NilVal {
			val = v.Default
		}
		shown := renderValue(val)
		if v.Sensitive {
			shown = `"` + Masked + `"`
		}
		fmt.Fprintf(bw, "var.%s: %s\n", v.Name, shown)
	}
	if len(t.Variables) > 0 {
		fmt.Fprintln(bw)
	}
	if len(t.Locals) > 0 {
		fmt.Fprint(bw, "> local-variables:\n\n")
		for _, l := range t.Locals {
			shown := renderValue(l.Value)
			if l.Sensitive {
				shown = `"` + Masked + `"`
			}
			fmt.Fprintf(bw, "local.%s: %s\n", l.Name, shown)
		}
		fmt.Fprintln(bw)
	}
	if len(t.DataSources) > 0 {
		fmt.Fprint(bw, "> data-sources:\n\n")
		for _, d := range t.DataSources {
			fmt.Fprintf(bw, "data.%s.%s: %s\n", d.Type, d.Name, renderValue(d.Value))
		}
		fmt.Fprintln(bw)
	}
	fmt.Fprint(bw, "> builds:\n\n")
	unnamed := 0
	for i := 0; i < len(t.Builds); {
		// The builds of one HCL2 build block print together.
		j := i + 1
		for t.Format == FormatHCL2 && j < len(t.Builds) && t.Builds[i].block != 0 && t.Builds[j].block == t.Builds[i].block {
			j++
		}
		group := t.Builds[i:j]
		b := group[0]
		title := b.BuildName
		if t.Format == FormatJSON {
			title = b.Name
		}
		if title == "" {
			title = fmt.Sprintf("<unnamed build %d>", unnamed)
			unnamed++
		}
		fmt.Fprintf(bw, "  > %s:\n\n", title)
		if b.Description != "" {
			fmt.Fprintf(bw, "    description:\n\n      %s\n\n", b.Description)
		}
		fmt.Fprint(bw, "    sources:\n\n")
		for _, gb := range group {
			if gb.Source != nil {
				fmt.Fprintf(bw, "      %s\n", sourceLabel(gb))
			}
		}
		fmt.Fprint(bw, "\n    provisioners:\n\n")
		if len(b.Provisioners) == 0 {
			fmt.Fprint(bw, "      <no provisioner>\n")
		}
		for _, p := range b.Provisioners {
			fmt.Fprintf(bw, "      %s\n", p.Type)
		}
		if p := b.ErrorCleanupProvisioner; p != nil {
			fmt.Fprintf(bw, "\n    error-cleanup-provisioner:\n\n      %s\n", p.Type)
		}
		fmt.Fprint(bw, "\n    post-processors:\n\n")
		if len(b.PostProcessors) == 0 {
			fmt.Fprint(bw, "      <no post-processor>\n")
		}
		for n, chain := range b.PostProcessors {
			var names []string
			for _, pp := range chain {
				names = append(names, pp.Type)
			}
			fmt.Fprintf(bw, "      %d: %s\n", n, strings.Join(names, " -> "))
		}
		fmt.Fprintln(bw)
		i = j
	}
	if len(t.Builds) == 0 {
		fmt.Fprint(bw, "  <no build>\n\n")
	}
	return bw.Flush()
}

func sourceLabel(b *Build) string {
	if b.Source.Name == "" || b.Source.Name == b.Source.Type {
		return b.Source.Type
	}
	return b.Source.Type + "." + b.Source.Name
}

// renderValue prints a value as HCL; unknown values (unevaluated data
// sources) as <unknown>.
func renderValue(v cty.Value) string {
	switch {
	case v == cty.NilVal:
		return "<required>"
	case !v.IsWhollyKnown():
		return "<unknown>"
	}
	return strings.TrimSpace(string(hclwrite.TokensForValue(v).Bytes()))
}

// InspectEvent is one line of `inspect -machine-readable`: Kind "say" is
// a ui,say line (Args[0] its text); the others are Packer's typed lines
// for legacy JSON templates: template-variable NAME DEFAULT 0|1 (1:
// required), template-builder NAME TYPE, template-provisioner TYPE.
type InspectEvent struct {
	Kind string
	Args []string
}

// InspectMachine returns the machine-readable inspect of t: Packer's
// typed lines for JSON templates, then the human text as one ui,say line.
func InspectMachine(t *Template) ([]InspectEvent, error) {
	var out []InspectEvent
	if t.Format == FormatJSON {
		for _, v := range t.Variables {
			def, required := "", "1"
			if v.Default != cty.NilVal {
				required = "0"
				if !v.Default.IsNull() && v.Default.Type() == cty.String {
					def = v.Default.AsString()
				}
			}
			if v.Sensitive {
				def = Masked
			}
			out = append(out, InspectEvent{"template-variable", []string{v.Name, def, required}})
		}
		seen := map[string]bool{}
		for _, b := range t.Builds {
			typ := ""
			if b.Source != nil {
				typ = b.Source.Type
			}
			out = append(out, InspectEvent{"template-builder", []string{b.Name, typ}})
			for _, p := range b.Provisioners {
				key := p.Type + "\x00" + p.Name
				if !seen[key] {
					seen[key] = true
					out = append(out, InspectEvent{"template-provisioner", []string{p.Type}})
				}
			}
		}
	}
	var b strings.Builder
	if err := WriteInspect(&b, t); err != nil {
		return nil, err
	}
	return append(out, InspectEvent{"say", []string{strings.TrimRight(b.String(), "\n")}}), nil
}
