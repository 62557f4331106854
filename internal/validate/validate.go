// Package validate checks templates offline: loading (syntax, variables,
// references, functions) and, when a plugin registry is supplied, each
// build's plugin settings. It never touches the network or AWS config.
package validate

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/template"
)

// SupportedBuilders are the builder types amibake runs.
var SupportedBuilders = map[string]bool{"amazon-ebs": true}

// SupportedDataSources are the data source types amibake evaluates.
var SupportedDataSources = map[string]bool{"amazon-ami": true}

// Options configure a validation.
type Options struct {
	Load template.LoadOptions
	// ValidateBuild checks a build's plugin settings (the builder's and
	// every provisioner's and post-processor's Config). nil means
	// structural validation only.
	ValidateBuild func(b *template.Build) hcl.Diagnostics
}

// Result is the outcome of validating one or more templates.
type Result struct {
	Templates []*template.Template
	// Files are every source file read, for printing Diags.
	Files map[string]*hcl.File
	Diags hcl.Diagnostics
	// Sensitive values to mask in any output.
	Sensitive []string
}

// Valid reports whether no error was found.
func (r *Result) Valid() bool { return !r.Diags.HasErrors() }

// Paths validates each template path in turn.
func Paths(ctx context.Context, paths []string, opts Options) *Result {
	r := &Result{Files: map[string]*hcl.File{}}
	for _, p := range paths {
		t, diags := template.LoadContext(ctx, p, opts.Load)
		if t != nil {
			r.Templates = append(r.Templates, t)
			for name, f := range t.Files {
				r.Files[name] = f
			}
			r.Sensitive = append(r.Sensitive, t.Sensitive...)
		}
		r.Diags = append(r.Diags, diags...)
		if t == nil || diags.HasErrors() || opts.Load.SyntaxOnly {
			continue
		}
		r.Diags = append(r.Diags, Builds(t, opts.ValidateBuild)...)
	}
	return r
}

// Builds checks each build of a loaded template with validateBuild. With
// no validateBuild, a builder type other than amazon-ebs is still
// reported as a warning (build refuses it).
func Builds(t *template.Template, validateBuild func(*template.Build) hcl.Diagnostics) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, d := range t.DataSources {
		if !SupportedDataSources[d.Type] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Unsupported data source type",
				Detail:   fmt.Sprintf("amibake evaluates only amazon-ami data sources; data %q %q cannot be evaluated, so `amibake build` will fail on it.", d.Type, d.Name),
				Subject:  d.DefRange.Ptr(),
			})
		}
	}
	for _, b := range t.Builds {
		if b.Source == nil {
			continue
		}
		if validateBuild != nil {
			diags = append(diags, validateBuild(b)...)
			continue
		}
		if !SupportedBuilders[b.Source.Type] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Unsupported builder type",
				Detail: fmt.Sprintf("amibake only runs amazon-ebs builds; %q (build %q) is not checked and `amibake build` will refuse it unless it is excluded with -only or -except.",
					b.Source.Type, b.Name),
				Subject: b.Source.DefRange.Ptr(),
			})
		}
	}
	return diags
}
