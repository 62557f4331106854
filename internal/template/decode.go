package template

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Decode decodes the block's body into v, a pointer to a struct with gohcl
// tags (`hcl:"ami_name,optional"`, `hcl:"source_ami_filter,block"`).
// extra adds variables to the evaluation context, such as HCL2's `build`
// object for provisioners. Unknown arguments are reported with a
// "Did you mean" suggestion and the file:line:col of the argument.
//
// While build.* (no "build" in extra) or data sources are not known yet,
// as in validate, unknown values decode as placeholders: "" becomes
// "unknown", numbers 0, bools false, collections empty.
func (b *Block) Decode(v any, extra map[string]cty.Value) hcl.Diagnostics {
	ctx := b.Ctx
	if ctx == nil {
		ctx = &hcl.EvalContext{}
	}
	if len(extra) > 0 {
		ctx = ctx.NewChild()
		ctx.Variables = extra
	}
	body := b.Body
	_, haveBuild := extra["build"]
	if b.Unknowns || (b.buildRefs && !haveBuild) {
		body = knownBody{body}
	}
	var tr *trail
	if b.vol != nil {
		tr = &trail{vol: b.vol}
	}
	return decodeBodyTracked(body, ctx, v, tr)
}

// UnknownPlaceholder is the string an unknown value decodes to.
const UnknownPlaceholder = "unknown"

// knownBody replaces unknown values with placeholders of the same type.
type knownBody struct{ hcl.Body }

func (b knownBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := b.Body.Content(s)
	return wrapContent(c), diags
}

func (b knownBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c, rest, diags := b.Body.PartialContent(s)
	if rest != nil {
		rest = knownBody{rest}
	}
	return wrapContent(c), rest, diags
}

func (b knownBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	attrs, diags := b.Body.JustAttributes()
	return wrapAttrs(attrs), diags
}

func wrapContent(c *hcl.BodyContent) *hcl.BodyContent {
	if c == nil {
		return nil
	}
	out := *c
	out.Attributes = wrapAttrs(c.Attributes)
	out.Blocks = make(hcl.Blocks, len(c.Blocks))
	for i, blk := range c.Blocks {
		nb := *blk
		nb.Body = knownBody{blk.Body}
		out.Blocks[i] = &nb
	}
	return &out
}

func wrapAttrs(attrs hcl.Attributes) hcl.Attributes {
	if attrs == nil {
		return nil
	}
	out := make(hcl.Attributes, len(attrs))
	for k, a := range attrs {
		na := *a
		na.Expr = knownExpr{a.Expr}
		out[k] = &na
	}
	return out
}

type knownExpr struct{ hcl.Expression }

func (e knownExpr) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	v, diags := e.Expression.Value(ctx)
	return placeholder(v), diags
}

// UnwrapExpression lets hcl.ExprList and friends see the real expression.
func (e knownExpr) UnwrapExpression() hcl.Expression { return e.Expression }

// placeholder returns v with unknown parts replaced by typed stand-ins.
func placeholder(v cty.Value) cty.Value {
	if v == cty.NilVal || v.IsWhollyKnown() {
		return v
	}
	if v.IsMarked() {
		u, marks := v.Unmark()
		return placeholder(u).WithMarks(marks)
	}
	if !v.IsKnown() {
		return zeroOf(v.Type())
	}
	ty := v.Type()
	switch {
	case ty.IsObjectType():
		m := map[string]cty.Value{}
		for k, ev := range v.AsValueMap() {
			m[k] = placeholder(ev)
		}
		return cty.ObjectVal(m)
	case ty.IsTupleType():
		var l []cty.Value
		for _, ev := range v.AsValueSlice() {
			l = append(l, placeholder(ev))
		}
		return cty.TupleVal(l)
	case ty.IsMapType():
		m := map[string]cty.Value{}
		for k, ev := range v.AsValueMap() {
			m[k] = placeholder(ev)
		}
		if len(m) == 0 {
			return cty.MapValEmpty(ty.ElementType())
		}
		return cty.MapVal(m)
	case ty.IsListType() || ty.IsSetType():
		var l []cty.Value
		for _, ev := range v.AsValueSlice() {
			l = append(l, placeholder(ev))
		}
		if len(l) == 0 {
			return cty.ListValEmpty(ty.ElementType())
		}
		return cty.ListVal(l)
	}
	return v
}

func zeroOf(ty cty.Type) cty.Value {
	switch {
	case ty == cty.String || ty == cty.DynamicPseudoType:
		return cty.StringVal(UnknownPlaceholder)
	case ty == cty.Number:
		return cty.Zero
	case ty == cty.Bool:
		return cty.False
	case ty.IsListType():
		return cty.ListValEmpty(ty.ElementType())
	case ty.IsSetType():
		return cty.SetValEmpty(ty.ElementType())
	case ty.IsMapType():
		return cty.MapValEmpty(ty.ElementType())
	case ty.IsObjectType():
		m := map[string]cty.Value{}
		for k, at := range ty.AttributeTypes() {
			m[k] = zeroOf(at)
		}
		return cty.ObjectVal(m)
	case ty.IsTupleType():
		var l []cty.Value
		for _, et := range ty.TupleElementTypes() {
			l = append(l, zeroOf(et))
		}
		return cty.TupleVal(l)
	}
	return cty.NullVal(ty)
}
