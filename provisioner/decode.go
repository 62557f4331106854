package provisioner

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/template"
)

// Helpers shared by the provisioner and post-processor plugins for decoding
// and validating their settings with diagnostics that point at the template.

// AttrRange returns the range of the value of the named attribute in b, or
// b.DefRange when the attribute is absent, so that a diagnostic about an
// option points at the option.
func AttrRange(b *template.Block, name string) hcl.Range {
	if b.Body != nil {
		c, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
		if c != nil {
			if a, ok := c.Attributes[name]; ok {
				return a.Expr.Range()
			}
		}
	}
	return b.DefRange
}

// Has reports whether the block sets the named attribute.
func Has(b *template.Block, name string) bool {
	if b.Body == nil {
		return false
	}
	c, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if c == nil {
		return false
	}
	_, ok := c.Attributes[name]
	return ok
}

// Errorf returns an error diagnostic about the named attribute (or the block
// when name is ""). detail should say what would be right.
func Errorf(b *template.Block, name, detail, summaryFormat string, args ...any) *hcl.Diagnostic {
	r := b.DefRange
	if name != "" {
		r = AttrRange(b, name)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(summaryFormat, args...),
		Detail:   detail,
		Subject:  r.Ptr(),
	}
}

// Duration parses the duration option name ("10s", "5m", "1h30m"); an empty
// value yields def.
func Duration(b *template.Block, name, value string, def time.Duration) (time.Duration, *hcl.Diagnostic) {
	if value == "" {
		return def, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 {
		return def, Errorf(b, name,
			`A duration is a number with a unit, such as "30s", "5m" or "1h30m".`,
			"Invalid %s %q", name, value)
	}
	return d, nil
}

// ListOrString returns a copy of b in which the named list attributes also
// accept a single string, as Packer's JSON decoding did ("inline": "echo hi"
// is common in old templates).
func ListOrString(b *template.Block, names ...string) *template.Block {
	c := *b
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	c.Body = listBody{Body: b.Body, names: set}
	return &c
}

type listBody struct {
	hcl.Body
	names map[string]bool
}

func (lb listBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := lb.Body.Content(s)
	return lb.wrap(c), diags
}

func (lb listBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c, rest, diags := lb.Body.PartialContent(s)
	if rest != nil {
		rest = listBody{Body: rest, names: lb.names}
	}
	return lb.wrap(c), rest, diags
}

func (lb listBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	attrs, diags := lb.Body.JustAttributes()
	return lb.wrapAttrs(attrs), diags
}

func (lb listBody) wrap(c *hcl.BodyContent) *hcl.BodyContent {
	if c == nil {
		return nil
	}
	out := *c
	out.Attributes = lb.wrapAttrs(c.Attributes)
	return &out
}

func (lb listBody) wrapAttrs(attrs hcl.Attributes) hcl.Attributes {
	if attrs == nil {
		return nil
	}
	out := make(hcl.Attributes, len(attrs))
	for k, a := range attrs {
		if lb.names[k] {
			na := *a
			na.Expr = listExpr{a.Expr}
			a = &na
		}
		out[k] = a
	}
	return out
}

type listExpr struct{ hcl.Expression }

func (e listExpr) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	v, diags := e.Expression.Value(ctx)
	if v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
		v = cty.TupleVal([]cty.Value{v})
	}
	return v, diags
}

// UnwrapExpression lets hcl.ExprList and friends see the real expression.
func (e listExpr) UnwrapExpression() hcl.Expression { return e.Expression }

// CheckFile says, on the named option, when path is not a readable file.
func CheckFile(b *template.Block, name, path string) hcl.Diagnostics {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return hcl.Diagnostics{Errorf(b, name, "Paths are relative to the directory amibake runs in.", "%s: %s is invalid: %s", name, path, err)}
	case fi.IsDir():
		return hcl.Diagnostics{Errorf(b, name, "Name a file, not a directory.", "%s: %s must point to a file", name, path)}
	}
	return nil
}

// CheckDir says, on the named option, when path is not a directory.
func CheckDir(b *template.Block, name, path string) hcl.Diagnostics {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return hcl.Diagnostics{Errorf(b, name, "Paths are relative to the directory amibake runs in.", "%s: %s is invalid: %s", name, path, err)}
	case !fi.IsDir():
		return hcl.Diagnostics{Errorf(b, name, "Name a directory.", "%s: %s must point to a directory", name, path)}
	}
	return nil
}
