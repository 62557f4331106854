package template

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// suggestion returns ` Did you mean "x"?` for the closest candidate, as
// HCL does for unsupported arguments, or "".
func suggestion(given string, candidates []string) string {
	best, bestDist := "", 3 // like HCL: at most two edits away
	for _, c := range candidates {
		if d := levenshtein(given, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// checkRefs reports references to undeclared variables, locals and
// attributes in expr, with a suggestion, before expr is evaluated: HCL's
// own "Unsupported attribute" error says nothing about what was meant.
func checkRefs(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		root, ok := lookupVar(ctx, tr.RootName())
		if !ok {
			continue // HCL reports unknown roots itself
		}
		cur := root
		for i, step := range tr[1:] {
			attr, ok := step.(hcl.TraverseAttr)
			if !ok || cur == cty.NilVal || !cur.IsKnown() || cur.IsNull() || !cur.Type().IsObjectType() {
				break
			}
			if cur.Type().HasAttribute(attr.Name) {
				cur = cur.GetAttr(attr.Name)
				continue
			}
			names := sortedNames(cur.Type().AttributeTypes())
			summary, detail := "Unsupported attribute", fmt.Sprintf("This object does not have an attribute named %q.", attr.Name)
			if i == 0 {
				switch tr.RootName() {
				case "var":
					summary, detail = "Undeclared variable", fmt.Sprintf("There is no variable named %q declared in this template.", attr.Name)
				case "local":
					summary, detail = "Undeclared local value", fmt.Sprintf("There is no local value named %q declared in this template.", attr.Name)
				}
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  summary,
				Detail:   detail + suggestion(attr.Name, names),
				Subject:  hcl.RangeBetween(tr[0].SourceRange(), step.SourceRange()).Ptr(),
			})
			break
		}
	}
	return diags
}

func lookupVar(ctx *hcl.EvalContext, name string) (cty.Value, bool) {
	for c := ctx; c != nil; c = c.Parent() {
		if v, ok := c.Variables[name]; ok {
			return v, true
		}
	}
	return cty.NilVal, false
}

// evalExpr evaluates expr after checkRefs.
func evalExpr(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	if d := checkRefs(expr, ctx); d.HasErrors() {
		return cty.DynamicVal, d
	}
	return expr.Value(ctx)
}
