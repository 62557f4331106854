// Package plugins maps the plugin types a template names ("amazon-ebs",
// "shell", "manifest", ...) to their constructors, and validates a build
// offline by decoding every block through them, so `validate` and `build`
// check a template the same way.
package plugins

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/postprocessor"
	"github.com/amibake/amibake/provisioner"
)

// BuilderAmazonEBS is the one builder type amibake runs.
const BuilderAmazonEBS = "amazon-ebs"

// ProvisionerFactory builds a provisioner from its block. build holds the
// evaluation-context variables of HCL2's `build` object (see BuildVars).
type ProvisionerFactory func(b *template.Block, build map[string]cty.Value) (provisioner.Provisioner, hcl.Diagnostics)

// PostProcessorFactory builds a post-processor from its block.
type PostProcessorFactory func(b *template.Block, build map[string]cty.Value) (postprocessor.PostProcessor, hcl.Diagnostics)

var (
	provisioners   = map[string]ProvisionerFactory{}
	postProcessors = map[string]PostProcessorFactory{}
)

// registerProvisioner adapts a plugin package's typed New function.
func registerProvisioner[T provisioner.Provisioner](name string, newFn func(*template.Block, map[string]cty.Value) (T, hcl.Diagnostics)) {
	provisioners[name] = func(b *template.Block, build map[string]cty.Value) (provisioner.Provisioner, hcl.Diagnostics) {
		p, diags := newFn(b, build)
		if diags.HasErrors() {
			return nil, diags
		}
		return p, diags
	}
}

func registerPostProcessor[T postprocessor.PostProcessor](name string, newFn func(*template.Block, map[string]cty.Value) (T, hcl.Diagnostics)) {
	postProcessors[name] = func(b *template.Block, build map[string]cty.Value) (postprocessor.PostProcessor, hcl.Diagnostics) {
		p, diags := newFn(b, build)
		if diags.HasErrors() {
			return nil, diags
		}
		return p, diags
	}
}

// ProvisionerTypes and PostProcessorTypes list the registered types.
func ProvisionerTypes() []string   { return keys(provisioners) }
func PostProcessorTypes() []string { return keys(postProcessors) }

// NewProvisioner builds the provisioner p for the named build, with the
// provisioner's override for that build applied.
func NewProvisioner(p *template.Provisioner, buildName string, build map[string]cty.Value) (provisioner.Provisioner, hcl.Diagnostics) {
	f, ok := provisioners[p.Type]
	if !ok {
		return nil, hcl.Diagnostics{unknownType("provisioner", p.Type, ProvisionerTypes(), p.DefRange)}
	}
	b := p.Block
	if o := overrideFor(p.Override, buildName); o != nil {
		b.Body = overrideBody{base: b.Body, over: o}
	}
	return f(&b, build)
}

// NewPostProcessor builds a post-processor.
func NewPostProcessor(pp *template.PostProcessor, build map[string]cty.Value) (postprocessor.PostProcessor, hcl.Diagnostics) {
	f, ok := postProcessors[pp.Type]
	if !ok {
		return nil, hcl.Diagnostics{unknownType("post-processor", pp.Type, PostProcessorTypes(), pp.DefRange)}
	}
	return f(&pp.Block, build)
}

// NewBuilderConfig decodes and validates the build's source. A builder type
// other than amazon-ebs is reported as a warning: amibake cannot run it, but
// a template that also has other builders is still valid.
func NewBuilderConfig(b *template.Build) (*amazonebs.Config, hcl.Diagnostics) {
	if b.Source == nil {
		return nil, nil
	}
	if b.Source.Type != BuilderAmazonEBS {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagWarning,
			Summary:  fmt.Sprintf("Builder type %q is not supported", b.Source.Type),
			Detail:   fmt.Sprintf("amibake only runs amazon-ebs builders; build %q cannot be built by amibake (exclude it with -except).", b.Name),
			Subject:  b.Source.DefRange.Ptr(),
		}}
	}
	return amazonebs.NewConfig(b.Source)
}

// ValidateBuild decodes the builder, every provisioner (with its override
// for this build) and every post-processor of b, offline: without a `build`
// variable, template.Block.Decode stands placeholders in for the values the
// build only knows later (the instance's address, ...).
func ValidateBuild(b *template.Build) hcl.Diagnostics {
	_, diags := NewBuilderConfig(b)
	var vars map[string]cty.Value
	for _, p := range b.Provisioners {
		_, d := NewProvisioner(p, b.Name, vars)
		diags = append(diags, d...)
	}
	if p := b.ErrorCleanupProvisioner; p != nil {
		_, d := NewProvisioner(p, b.Name, vars)
		diags = append(diags, d...)
	}
	for _, chain := range b.PostProcessors {
		for _, pp := range chain {
			_, d := NewPostProcessor(pp, vars)
			diags = append(diags, d...)
		}
	}
	return diags
}

func unknownType(kind, typ string, known []string, r hcl.Range) *hcl.Diagnostic {
	detail := fmt.Sprintf("amibake has no %s named %q. Known %ss: %s.", kind, typ, kind, strings.Join(known, ", "))
	if s := suggest(typ, known); s != "" {
		detail = fmt.Sprintf("amibake has no %s named %q. Did you mean %q?", kind, typ, s)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Unknown %s type %q", kind, typ),
		Detail:   detail,
		Subject:  r.Ptr(),
	}
}

// suggest returns the known name closest to s, if it is close enough to be
// a typo.
func suggest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := levenshtein.Distance(s, k, nil); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
