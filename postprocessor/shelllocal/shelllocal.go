// Package shelllocal is Packer's `shell-local` post-processor: it runs
// commands on the local host after a build, with the artifact in their
// environment.
package shelllocal

import (
	"context"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/postprocessor"
	"github.com/amibake/amibake/provisioner/shelllocal"
)

// Config is the same as the shell-local provisioner's.
type Config = shelllocal.Config

// PostProcessor runs local commands with the artifact.
type PostProcessor struct {
	*shelllocal.Runner
}

// New decodes and validates a shell-local post-processor block. As in
// Packer, an execute_command of one element is the old string form and
// runs under "sh -c".
func New(b *template.Block, build map[string]cty.Value) (*PostProcessor, hcl.Diagnostics) {
	r, diags := shelllocal.NewRunner(b, build, shelllocal.Options{LegacyExecuteCommand: true})
	if r == nil {
		return nil, diags
	}
	return &PostProcessor{r}, diags
}

// Env is the environment a post-processor script gets: Packer's
// PACKER_BUILD_NAME and PACKER_BUILDER_TYPE, and amibake's
// PACKER_ARTIFACT_ID ("region:ami-...,region:ami-...", the manifest's
// artifact_id), which Packer leaves to a manifest and jq.
func Env(a *artifact.Artifact) map[string]string {
	return map[string]string{
		"PACKER_BUILD_NAME":   a.BuildName,
		"PACKER_BUILDER_TYPE": a.BuilderType,
		"PACKER_ARTIFACT_ID":  a.ID(),
	}
}

// PostProcess runs the scripts and passes the artifact on. The input is
// always kept: a local script has no artifact of its own to replace it.
func (p *PostProcessor) PostProcess(ctx context.Context, u ui.UI, in *artifact.Artifact) (*artifact.Artifact, bool, error) {
	generated := map[string]string{"ArtifactID": in.ID()}
	for k, v := range in.Data {
		if _, ok := generated[k]; !ok {
			generated[k] = v
		}
	}
	if err := p.Run(ctx, u, Env(in), generated); err != nil {
		return nil, false, err
	}
	return in, true, nil
}

var _ postprocessor.PostProcessor = (*PostProcessor)(nil)
