// Package postprocessor defines what a post-processor is. They live in
// sub-packages: manifest, shelllocal, amazonamimanagement.
package postprocessor

import (
	"context"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/ui"
)

// PostProcessor runs after a build with its artifact. It returns the
// artifact for the next post-processor in the chain (often the same one)
// and whether the input artifact must be kept (Packer's keep_input_artifact
// semantics; AMIs are always kept by amibake, so this is informational).
type PostProcessor interface {
	PostProcess(ctx context.Context, u ui.UI, in *artifact.Artifact) (out *artifact.Artifact, keep bool, err error)
}
