package template

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}, {Name: "nullable"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true}, {Name: "error_message", Required: true},
	},
}

// validation is one variable validation rule.
type validation struct {
	condition hcl.Expression
	message   hcl.Expression
	rng       hcl.Range
}

// Env variable prefixes that set HCL2 variables; AMIBAKE_VAR_ wins.
var varEnvPrefixes = []string{"PKR_VAR_", "AMIBAKE_VAR_"}

func (l *hcl2Loader) decodeVariables() hcl.Diagnostics {
	var diags hcl.Diagnostics
	// env() is allowed in defaults only, as in Packer.
	defCtx := &hcl.EvalContext{Functions: map[string]function.Function{}}
	for k, f := range l.funcs {
		defCtx.Functions[k] = f
	}
	defCtx.Functions["env"] = envFunc(l.opts.Env)

	declare := func(v *Variable, rng hcl.Range) {
		if prev, ok := l.vars[v.Name]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate variable",
				Detail:   fmt.Sprintf("A variable named %q was already declared at %s. Variable names must be unique.", v.Name, prev.DeclRange),
				Subject:  rng.Ptr(),
			})
			return
		}
		if !hclsyntax.ValidIdentifier(v.Name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable name",
				Detail:   "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
				Subject:  rng.Ptr(),
			})
			return
		}
		l.vars[v.Name] = v
		l.tmpl.Variables = append(l.tmpl.Variables, v)
	}
	for _, blk := range l.blocks {
		switch blk.Type {
		case "variables":
			attrs, d := blk.Body.JustAttributes()
			diags = append(diags, d...)
			for _, a := range sortedAttrs(attrs) {
				val, d := a.Expr.Value(defCtx)
				diags = append(diags, d...)
				declare(&Variable{Name: a.Name, Type: cty.DynamicPseudoType, Default: val, Value: val, DeclRange: a.NameRange}, a.NameRange)
			}
		case "variable":
			v, d := decodeVariable(blk, defCtx)
			diags = append(diags, d...)
			if v != nil && d.HasErrors() {
				v.broken = true
			}
			if v != nil {
				declare(v, blk.DefRange)
			}
		}
	}
	return diags
}

func decodeVariable(blk *hcl.Block, defCtx *hcl.EvalContext) (*Variable, hcl.Diagnostics) {
	c, diags := blk.Body.Content(variableSchema)
	v := &Variable{Name: blk.Labels[0], Type: cty.DynamicPseudoType, DeclRange: blk.DefRange}
	typed := false
	if a, ok := c.Attributes["type"]; ok {
		ty, d := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Type, typed = ty, true
		}
	}
	if a, ok := c.Attributes["description"]; ok {
		dv, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() && dv.Type() == cty.String && !dv.IsNull() {
			v.Description = dv.AsString()
		}
	}
	if a, ok := c.Attributes["sensitive"]; ok {
		diags = append(diags, decodeBool(a, &v.Sensitive)...)
	}
	if a, ok := c.Attributes["default"]; ok {
		dv, d := a.Expr.Value(defCtx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if typed {
				cv, err := convert.Convert(dv, v.Type)
				if err != nil {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid default value for variable",
						Detail:   fmt.Sprintf("This default value is not compatible with the variable's type constraint: %s.", convertErr(err)),
						Subject:  a.Expr.Range().Ptr(),
					})
					cv = cty.DynamicVal
				}
				dv = cv
			} else if !dv.IsNull() {
				v.Type = dv.Type()
			}
			v.Default, v.Value = dv, dv
		}
	}
	for _, vb := range c.Blocks {
		vc, d := vb.Body.Content(validationSchema)
		diags = append(diags, d...)
		if vc.Attributes["condition"] != nil && vc.Attributes["error_message"] != nil {
			v.validations = append(v.validations, &validation{
				condition: vc.Attributes["condition"].Expr,
				message:   vc.Attributes["error_message"].Expr,
				rng:       vb.DefRange,
			})
		}
	}
	return v, diags
}

// collectValues applies, in Packer's order of precedence: defaults <
// environment < *.auto.pkrvars.* < -var-file (in order) < -var.
func (l *hcl2Loader) collectValues(autoVarFiles []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := make([]string, 0, len(l.vars))
	for n := range l.vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, prefix := range varEnvPrefixes {
		for _, n := range names {
			raw := l.opts.env(prefix + n)
			if raw == "" {
				continue
			}
			val, d := parseRawValue(raw, l.vars[n].Type, prefix+n)
			diags = append(diags, d...)
			if !d.HasErrors() {
				diags = append(diags, l.assign(n, val, nil)...)
			}
		}
	}
	for _, f := range autoVarFiles {
		diags = append(diags, l.applyVarFile(f)...)
	}
	for _, f := range l.opts.VarFiles {
		diags = append(diags, l.applyVarFile(f)...)
	}
	cliNames := make([]string, 0, len(l.opts.Vars))
	for n := range l.opts.Vars {
		cliNames = append(cliNames, n)
	}
	sort.Strings(cliNames)
	for _, n := range cliNames {
		v, ok := l.vars[n]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Undefined -var variable",
				Detail:   fmt.Sprintf("A %q variable was passed in the command line but was not found in known variables.", n) + suggestion(n, names) + fmt.Sprintf(" To declare variable %q, place this block in one of your .pkr.hcl files:\n\nvariable %q {\n  type = string\n}", n, n),
			})
			continue
		}
		val, d := parseRawValue(l.opts.Vars[n], v.Type, "-var "+n)
		diags = append(diags, d...)
		if !d.HasErrors() {
			diags = append(diags, l.assign(n, val, nil)...)
		}
	}
	for _, n := range names {
		v := l.vars[n]
		if v.Value == cty.NilVal && v.broken {
			continue
		}
		if v.Value == cty.NilVal {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unset variable " + fmt.Sprintf("%q", n),
				Detail:   fmt.Sprintf("A used variable must be set or have a default value. Set it with -var %s=..., a -var-file, or the environment variable PKR_VAR_%s.", n, n),
				Subject:  v.DeclRange.Ptr(),
			})
			continue
		}
		if v.Sensitive {
			l.tmpl.Sensitive = append(l.tmpl.Sensitive, sensitiveStrings(v.Value)...)
		}
	}
	return diags
}

// assign converts val to the variable's type and sets it.
func (l *hcl2Loader) assign(name string, val cty.Value, subject *hcl.Range) hcl.Diagnostics {
	v := l.vars[name]
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value given for variable %q is not compatible with its type constraint %s: %s.", name, typeexpr.TypeString(v.Type), convertErr(err)),
			Subject:  subject,
		}}
	}
	v.Value = cv
	return nil
}

func (l *hcl2Loader) applyVarFile(path string) hcl.Diagnostics {
	f, diags := parseChecked(l.parser, path, maxVarFileSize, "Failed to read variables file")
	if diags.HasErrors() || f == nil {
		return diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	names := make([]string, 0, len(l.vars))
	for n := range l.vars {
		names = append(names, n)
	}
	for _, a := range sortedAttrs(attrs) {
		if _, ok := l.vars[a.Name]; !ok {
			// A warning, as in Terraform: var files are often shared
			// between templates that declare different variables.
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Undefined variable",
				Detail:   fmt.Sprintf("A %q variable was set but was not declared in the template; the value is ignored.", a.Name) + suggestion(a.Name, names),
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			diags = append(diags, l.assign(a.Name, val, a.Expr.Range().Ptr())...)
		}
	}
	return diags
}

// parseRawValue reads a -var or environment value: a string variable
// takes it as is, other types parse it as an HCL expression ("[1, 2]").
func parseRawValue(raw string, ty cty.Type, what string) (cty.Value, hcl.Diagnostics) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	if ty.IsPrimitiveType() {
		v, err := convert.Convert(cty.StringVal(raw), ty)
		if err != nil {
			return cty.NilVal, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("The value of %s, %q, is not a valid %s.", what, raw, typeexpr.TypeString(ty)),
			}}
		}
		return v, nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), what, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value of %s is not a valid %s: %s", what, typeexpr.TypeString(ty), diags[0].Detail),
		}}
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("The value of %s must be a literal %s: %s", what, typeexpr.TypeString(ty), diags[0].Detail),
		}}
	}
	return v, nil
}

// validateVariables runs the validation rules with var.<name> only.
func (l *hcl2Loader) validateVariables() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, v := range l.tmpl.Variables {
		if len(v.validations) == 0 || v.Value == cty.NilVal {
			continue
		}
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.Name: v.Value})},
			Functions: l.funcs,
		}
		for _, r := range v.validations {
			res, d := r.condition.Value(ctx)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if !res.IsKnown() {
				continue
			}
			res, err := convert.Convert(res, cty.Bool)
			if err != nil || res.IsNull() {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid validation result",
					Detail:   "The condition of a validation rule must be true or false.",
					Subject:  r.condition.Range().Ptr(),
				})
				continue
			}
			if res.True() {
				continue
			}
			msg := "The value failed its validation rule."
			if mv, d := r.message.Value(ctx); !d.HasErrors() && mv.Type() == cty.String && mv.IsKnown() && !mv.IsNull() {
				msg = mv.AsString()
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("%s\n\nThis was checked by the validation rule at %s.", msg, r.rng),
				Subject:  v.DeclRange.Ptr(),
			})
		}
	}
	return diags
}

func (l *hcl2Loader) varObject() cty.Value {
	m := map[string]cty.Value{}
	for n, v := range l.vars {
		if v.Value == cty.NilVal {
			m[n] = cty.DynamicVal
		} else {
			m[n] = v.Value
		}
	}
	return cty.ObjectVal(m)
}

// sensitiveStrings lists the string forms of v's primitive parts.
func sensitiveStrings(v cty.Value) []string {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return []string{v.AsString()}
	case ty == cty.Number || ty == cty.Bool:
		s, err := convert.Convert(v, cty.String)
		if err != nil {
			return nil
		}
		return []string{s.AsString()}
	case ty.IsCollectionType() || ty.IsObjectType() || ty.IsTupleType():
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out = append(out, sensitiveStrings(ev)...)
		}
		return out
	}
	return nil
}

// parseTypeString parses a type constraint written as a string.
func parseTypeString(s string) (cty.Type, error) {
	expr, diags := hclsyntax.ParseExpression([]byte(s), "type", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return cty.NilType, fmt.Errorf("invalid type %q: %s", s, diags[0].Detail)
	}
	ty, diags := typeexpr.TypeConstraint(expr)
	if diags.HasErrors() {
		return cty.NilType, fmt.Errorf("invalid type %q: %s", s, diags[0].Detail)
	}
	return ty, nil
}

// convertErr words a cty conversion error for a diagnostic detail.
func convertErr(err error) string {
	if pe, ok := err.(cty.PathError); ok && len(pe.Path) > 0 {
		return fmt.Sprintf("%s (at %s)", pe.Error(), formatPath(pe.Path))
	}
	return err.Error()
}

func formatPath(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			fmt.Fprintf(&b, ".%s", s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&b, "[%q]", s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				fmt.Fprintf(&b, "[%s]", s.Key.AsBigFloat().Text('f', -1))
			}
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}
