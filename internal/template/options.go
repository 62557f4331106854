package template

import (
	"context"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// LoadOptions are the inputs of Load besides the template itself. Both
// loaders (HCL2 and legacy JSON) take the same options.
type LoadOptions struct {
	// Vars are -var name=value pairs, the highest precedence.
	Vars map[string]string
	// VarFiles are -var-file paths (.pkrvars.hcl, .pkrvars.json or legacy
	// .json), applied in order; later files win.
	VarFiles []string
	// Env looks up environment variables: PKR_VAR_name / AMIBAKE_VAR_name
	// for variables, and env() / {{env}} in variable defaults. nil means
	// no environment.
	Env func(string) string
	// Only and Except are globs on build names (-only, -except).
	Only, Except []string
	// SyntaxOnly stops after parsing: no variables, no evaluation.
	SyntaxOnly bool
	// EvaluateDataSources evaluates data blocks; otherwise their values are
	// unknown, which is enough to validate a template offline.
	EvaluateDataSources bool
	// DataSource evaluates one data block (its Type, e.g. "amazon-ami",
	// and Body) when EvaluateDataSources is set, with LoadContext's
	// context; the builder package provides it, so that loading stays free
	// of AWS code. Each data block is evaluated once per load.
	DataSource func(ctx context.Context, b *Block) (cty.Value, hcl.Diagnostics)
	// Now is timestamp()'s value; the zero value means time.Now().
	Now time.Time
	// Cwd is path.cwd and the base of relative paths; "" means os.Getwd.
	Cwd string
}

// env returns the value of an environment variable, "" without Env.
func (o *LoadOptions) env(name string) string {
	if o.Env == nil {
		return ""
	}
	return o.Env(name)
}

// now returns the load time, fixed once per load.
func (o *LoadOptions) now() time.Time {
	if o.Now.IsZero() {
		return time.Now().UTC()
	}
	return o.Now.UTC()
}
