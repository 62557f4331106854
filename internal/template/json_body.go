package template

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// jsonItem is one property of a JSON object, with its positions.
type jsonItem struct {
	Name      string
	NameRange hcl.Range
	Expr      hcl.Expression
}

func (it jsonItem) rng() hcl.Range { return hcl.RangeBetween(it.NameRange, it.Expr.Range()) }

type exprMapper interface{ ExprMap() []hcl.KeyValuePair }
type exprLister interface{ ExprList() []hcl.Expression }

// jsonItems returns the properties of a JSON object expression, or nil,
// false when expr is not an object.
func jsonItems(expr hcl.Expression) ([]jsonItem, bool) {
	m, ok := expr.(exprMapper)
	if !ok {
		return nil, false
	}
	kvs := m.ExprMap()
	if kvs == nil {
		return nil, false
	}
	items := make([]jsonItem, 0, len(kvs))
	for _, kv := range kvs {
		k, _ := kv.Key.Value(nil)
		name := ""
		if k.Type() == cty.String && k.IsKnown() && !k.IsNull() {
			name = k.AsString()
		}
		items = append(items, jsonItem{Name: name, NameRange: kv.Key.Range(), Expr: kv.Value})
	}
	return items, true
}

// jsonList returns the elements of a JSON array expression.
func jsonList(expr hcl.Expression) ([]hcl.Expression, bool) {
	l, ok := expr.(exprLister)
	if !ok {
		return nil, false
	}
	elems := l.ExprList()
	return elems, elems != nil
}

// jsonKind names the JSON type of expr for messages: object, array,
// string, number, bool or null.
func jsonKind(expr hcl.Expression) string {
	if _, ok := jsonItems(expr); ok {
		return "object"
	}
	if _, ok := jsonList(expr); ok {
		return "array"
	}
	v, _ := expr.Value(nil)
	switch {
	case v.IsNull():
		return "null"
	case v.Type() == cty.String:
		return "string"
	case v.Type() == cty.Number:
		return "number"
	case v.Type() == cty.Bool:
		return "bool"
	}
	return "value"
}

// legacyBody is a plugin's settings from a legacy JSON template as an
// hcl.Body, so that plugins decode both formats with gohcl. Strings are
// never read as HCL templates; the {{ }} engine is applied instead.
type legacyBody struct {
	items []jsonItem
	rng   hcl.Range // the object, for "missing argument" diagnostics
	env   *legacyEnv
}

var _ hcl.Body = (*legacyBody)(nil)

func newLegacyBody(expr hcl.Expression, items []jsonItem, env *legacyEnv) *legacyBody {
	return &legacyBody{items: items, rng: expr.Range(), env: env}
}

func (b *legacyBody) Content(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, _, diags := b.content(schema, false)
	return c, diags
}

func (b *legacyBody) PartialContent(schema *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	return b.content(schema, true)
}

func (b *legacyBody) content(schema *hcl.BodySchema, partial bool) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrS := map[string]hcl.AttributeSchema{}
	blockS := map[string]hcl.BlockHeaderSchema{}
	var names []string
	for _, a := range schema.Attributes {
		attrS[a.Name] = a
		names = append(names, a.Name)
	}
	for _, bl := range schema.Blocks {
		blockS[bl.Type] = bl
		names = append(names, bl.Type)
	}
	content := &hcl.BodyContent{Attributes: hcl.Attributes{}, MissingItemRange: b.MissingItemRange()}
	rest := &legacyBody{rng: b.rng, env: b.env}
	for _, it := range b.items {
		if _, ok := attrS[it.Name]; ok {
			if prev, dup := content.Attributes[it.Name]; dup {
				diags = append(diags, duplicateArg(it, prev.NameRange))
				continue
			}
			content.Attributes[it.Name] = b.attr(it)
			continue
		}
		if bs, ok := blockS[it.Name]; ok {
			blocks, d := b.blocks(it.Name, it.NameRange, it.Expr, bs.LabelNames, nil, nil)
			diags = append(diags, d...)
			content.Blocks = append(content.Blocks, blocks...)
			continue
		}
		if partial {
			rest.items = append(rest.items, it)
			continue
		}
		detail := fmt.Sprintf("An argument named %q is not expected here.", it.Name)
		if s := legacySuggest(it.Name, names); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   detail,
			Subject:  it.NameRange.Ptr(),
			Context:  it.rng().Ptr(),
		})
	}
	for _, a := range schema.Attributes {
		if _, ok := content.Attributes[a.Name]; a.Required && !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("The argument %q is required, but no definition was found.", a.Name),
				Subject:  b.MissingItemRange().Ptr(),
			})
		}
	}
	return content, rest, diags
}

func duplicateArg(it jsonItem, prev hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate argument",
		Detail:   fmt.Sprintf("The argument %q was already set at %s. Each argument may be set only once.", it.Name, prev),
		Subject:  it.NameRange.Ptr(),
	}
}

func (b *legacyBody) attr(it jsonItem) *hcl.Attribute {
	return &hcl.Attribute{
		Name:      it.Name,
		Expr:      &legacyExpr{inner: it.Expr, env: b.env},
		Range:     it.rng(),
		NameRange: it.NameRange,
	}
}

// blocks unpacks a JSON value into blocks as HCL's JSON syntax does: an
// object is one block, an array of objects several; labels are nested
// object keys.
func (b *legacyBody) blocks(typ string, typeRange hcl.Range, expr hcl.Expression, labelNames, labels []string, labelRanges []hcl.Range) (hcl.Blocks, hcl.Diagnostics) {
	if items, ok := jsonItems(expr); ok {
		if len(labels) < len(labelNames) {
			var out hcl.Blocks
			var diags hcl.Diagnostics
			for _, it := range items {
				bl, d := b.blocks(typ, typeRange, it.Expr, labelNames,
					append(append([]string(nil), labels...), it.Name),
					append(append([]hcl.Range(nil), labelRanges...), it.NameRange))
				out = append(out, bl...)
				diags = append(diags, d...)
			}
			return out, diags
		}
		return hcl.Blocks{{
			Type:        typ,
			Labels:      labels,
			Body:        newLegacyBody(expr, items, b.env),
			DefRange:    expr.StartRange(),
			TypeRange:   typeRange,
			LabelRanges: labelRanges,
		}}, nil
	}
	if elems, ok := jsonList(expr); ok {
		var out hcl.Blocks
		var diags hcl.Diagnostics
		for _, e := range elems {
			if _, ok := jsonItems(e); !ok {
				diags = append(diags, blockTypeDiag(typ, e))
				continue
			}
			bl, d := b.blocks(typ, typeRange, e, labelNames, labels, labelRanges)
			out = append(out, bl...)
			diags = append(diags, d...)
		}
		return out, diags
	}
	if jsonKind(expr) == "null" {
		return nil, nil
	}
	return nil, hcl.Diagnostics{blockTypeDiag(typ, expr)}
}

func blockTypeDiag(typ string, expr hcl.Expression) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Incorrect JSON value type",
		Detail:   fmt.Sprintf("Either a JSON object or a JSON array of objects is required here, for the settings of %q; found a %s.", typ, jsonKind(expr)),
		Subject:  expr.StartRange().Ptr(),
	}
}

func (b *legacyBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrs := hcl.Attributes{}
	for _, it := range b.items {
		if prev, dup := attrs[it.Name]; dup {
			diags = append(diags, duplicateArg(it, prev.NameRange))
			continue
		}
		attrs[it.Name] = b.attr(it)
	}
	return attrs, diags
}

func (b *legacyBody) MissingItemRange() hcl.Range {
	r := b.rng
	end := r.Start
	end.Byte++
	end.Column++
	return hcl.Range{Filename: r.Filename, Start: r.Start, End: end}
}

// legacyExpr is a JSON value whose strings go through the {{ }} engine. The
// EvalContext is ignored: legacy templates have no HCL variables.
type legacyExpr struct {
	inner hcl.Expression
	env   *legacyEnv
}

var _ hcl.Expression = (*legacyExpr)(nil)

func (x *legacyExpr) Value(*hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return x.env.value(x.inner)
}
func (x *legacyExpr) Variables() []hcl.Traversal { return nil }
func (x *legacyExpr) Range() hcl.Range           { return x.inner.Range() }
func (x *legacyExpr) StartRange() hcl.Range      { return x.inner.StartRange() }

// ExprList and ExprMap let hcl.ExprList and hcl.ExprMap (used by some
// decoders for static analysis) see through the wrapper.
func (x *legacyExpr) ExprList() []hcl.Expression {
	elems, _ := jsonList(x.inner)
	out := make([]hcl.Expression, len(elems))
	for i, e := range elems {
		out[i] = &legacyExpr{inner: e, env: x.env}
	}
	if elems == nil {
		return nil
	}
	return out
}

func (x *legacyExpr) ExprMap() []hcl.KeyValuePair {
	m, ok := x.inner.(exprMapper)
	if !ok {
		return nil
	}
	kvs := m.ExprMap()
	if kvs == nil {
		return nil
	}
	out := make([]hcl.KeyValuePair, len(kvs))
	for i, kv := range kvs {
		out[i] = hcl.KeyValuePair{Key: kv.Key, Value: &legacyExpr{inner: kv.Value, env: x.env}}
	}
	return out
}

type cacheKey struct {
	file string
	pos  int
}

type cachedValue struct {
	s        string
	volatile bool
	diags    hcl.Diagnostics
}

// value evaluates a JSON value with every string rendered.
func (e *legacyEnv) value(expr hcl.Expression) (cty.Value, hcl.Diagnostics) {
	if items, ok := jsonItems(expr); ok {
		var diags hcl.Diagnostics
		attrs := make(map[string]cty.Value, len(items))
		seen := map[string]hcl.Range{}
		for _, it := range items {
			if prev, dup := seen[it.Name]; dup {
				diags = append(diags, duplicateArg(it, prev))
				continue
			}
			seen[it.Name] = it.NameRange
			v, d := e.value(it.Expr)
			diags = append(diags, d...)
			attrs[it.Name] = v
		}
		return cty.ObjectVal(attrs), diags
	}
	if elems, ok := jsonList(expr); ok {
		var diags hcl.Diagnostics
		vals := make([]cty.Value, len(elems))
		for i, el := range elems {
			v, d := e.value(el)
			diags = append(diags, d...)
			vals[i] = v
		}
		return cty.TupleVal(vals), diags
	}
	v, diags := expr.Value(nil)
	if v.IsNull() || v.Type() != cty.String || !v.IsKnown() {
		return v, diags
	}
	s, volatile, d := e.renderExpr(v.AsString(), expr.Range())
	if d.HasErrors() {
		// The string as written: the error is reported once, without
		// "unknown value" errors cascading from the plugin's decoding.
		return v, append(diags, d...)
	}
	out := cty.StringVal(s)
	if volatile {
		out = markVolatile(out)
	}
	return out, append(diags, d...)
}

// renderExpr renders one JSON string, once per build: {{uuid}} keeps its
// value however often a plugin decodes its settings. It also reports
// whether the string read the clock or randomness.
func (e *legacyEnv) renderExpr(s string, r hcl.Range) (string, bool, hcl.Diagnostics) {
	if !strings.Contains(s, "{{") {
		return s, false, nil
	}
	key := cacheKey{r.Filename, r.Start.Byte}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.cache[key]; ok {
		return c.s, c.volatile, c.diags
	}
	out, volatile, err := e.renderVolatile(s)
	var diags hcl.Diagnostics
	if err != nil {
		diags = hcl.Diagnostics{e.templateDiag(err, s, r)}
	}
	diags = append(diags, e.takeMissing(r)...)
	if e.cache == nil {
		e.cache = map[cacheKey]cachedValue{}
	}
	e.cache[key] = cachedValue{out, volatile, diags}
	return out, volatile, diags
}

// templateDiag turns an engine error into a diagnostic pointing into the
// JSON string where it can (when the string has no escapes, so source and
// value offsets agree), else at the whole string.
func (e *legacyEnv) templateDiag(err error, s string, r hcl.Range) *hcl.Diagnostic {
	summary, detail := "Invalid template", err.Error()
	subject := r
	if te, ok := err.(*templateError); ok {
		if te.summary != "" {
			summary = te.summary
		}
		detail = te.msg
		raw := ""
		if r.Filename == e.file && r.Start.Byte+1 <= r.End.Byte-1 && r.End.Byte <= len(e.src) {
			raw = string(e.src[r.Start.Byte+1 : r.End.Byte-1])
		}
		if te.hasOffset && raw == s && te.offset <= len(s) && !strings.Contains(s[:te.offset], "\n") {
			start := r.Start
			start.Byte += 1 + te.offset
			start.Column += 1 + utf8.RuneCountInString(s[:te.offset])
			end := start
			end.Byte++
			end.Column++
			subject = hcl.Range{Filename: r.Filename, Start: start, End: end}
		}
	}
	if !strings.HasSuffix(detail, ".") && !strings.HasSuffix(detail, "?") {
		detail += "."
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  subject.Ptr(),
		Context:  r.Ptr(),
	}
}

// takeMissing turns the undeclared {{user}} names the last render used
// into warnings: Packer renders them as "" (a typo there is silent in
// Packer; a warning keeps the template working and says so).
func (e *legacyEnv) takeMissing(r hcl.Range) hcl.Diagnostics {
	e.missingMu.Lock()
	names := e.missing
	e.missing = nil
	e.missingMu.Unlock()
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		detail := fmt.Sprintf("No variable named %q is declared in \"variables\"; {{user `%s`}} is \"\", as in Packer.", name, name)
		known := make([]string, 0, len(e.vars))
		for k := range e.vars {
			known = append(known, k)
		}
		if s := legacySuggest(name, known); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Undefined user variable", Detail: detail, Subject: r.Ptr()})
	}
	return diags
}
