package template

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
)

// Decode decodes the block's body into v, a pointer to a struct with gohcl
// tags (`hcl:"ami_name,optional"`, `hcl:"source_ami_filter,block"`).
// extra adds variables to the evaluation context, such as HCL2's `build`
// object for provisioners. Unknown arguments are reported with a
// "Did you mean" suggestion and the file:line:col of the argument.
func (b *Block) Decode(v any, extra map[string]cty.Value) hcl.Diagnostics {
	ctx := b.Ctx
	if ctx == nil {
		ctx = &hcl.EvalContext{}
	}
	if len(extra) > 0 {
		ctx = ctx.NewChild()
		ctx.Variables = extra
	}
	return gohcl.DecodeBody(b.Body, ctx, v)
}
