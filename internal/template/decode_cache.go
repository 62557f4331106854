package template

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// This file is gohcl.DecodeBody with the per-type work done once: gohcl
// re-reads every struct tag of the target (and of each nested block type)
// on every decode, which for amazon-ebs's large Config was half of
// `amibake validate`'s CPU time. The decoding rules, diagnostics and panics
// on malformed tags are gohcl's (hcl/v2 gohcl/decode.go, schema.go).

var (
	exprType  = reflect.TypeFor[hcl.Expression]()
	bodyType  = reflect.TypeFor[hcl.Body]()
	attrType  = reflect.TypeFor[*hcl.Attribute]()
	attrsType = reflect.TypeFor[hcl.Attributes]()
)

// structLayout is what decoding into one struct type needs to know.
type structLayout struct {
	schema  *hcl.BodySchema
	partial bool // has a ",remain" field

	body, remain int // field indexes, -1 when absent
	attrs        []attrField
	blocks       []blockField
	labels       []labelField
	defRange     int
	typeRange    int
}

type attrField struct {
	name                           string
	embed                          int // the embedded struct's field index, -1 when none
	idx                            int
	rangeIdx, nameRangeIdx, valIdx int // -1 when absent
	isAttr, isExpr                 bool
	required                       bool
}

type blockField struct {
	name           string
	embed          int // as attrField's
	idx            int
	ty             reflect.Type // field type
	elem           reflect.Type // struct type after slice and pointer
	isSlice, isPtr bool
}

type labelField struct {
	idx, rangeIdx int
	name          string
}

var (
	layouts      sync.Map // reflect.Type -> *structLayout
	impliedTypes sync.Map // reflect.Type -> cty.Type
)

func layoutOf(ty reflect.Type) *structLayout {
	if l, ok := layouts.Load(ty); ok {
		return l.(*structLayout)
	}
	l := buildLayout(ty)
	actual, _ := layouts.LoadOrStore(ty, l)
	return actual.(*structLayout)
}

func buildLayout(ty reflect.Type) *structLayout {
	l := &structLayout{schema: &hcl.BodySchema{}, body: -1, remain: -1, defRange: -1, typeRange: -1}
	attrIdx := map[string]int{}
	optional := map[string]bool{}
	blockIdx := map[string]int{}
	ranges := map[string]map[string]int{}
	labelRange := map[string]int{}
	single := func(p *int, kind string) {
		if *p != -1 {
			panic(fmt.Sprintf("only one '%s' tag is permitted", kind))
		}
	}
	var embeds []int
	for i := range ty.NumField() {
		field := ty.Field(i)
		tag := field.Tag.Get("hcl")
		if tag == "" {
			// An untagged embedded struct's options are the outer block's
			// own (amibake's shared AccessConfig).
			if field.Anonymous && field.Type.Kind() == reflect.Struct {
				embeds = append(embeds, i)
			}
			continue
		}
		name, kind, ok := strings.Cut(tag, ",")
		if !ok {
			kind = "attr"
		}
		switch kind {
		case "attr":
			attrIdx[name] = i
		case "optional":
			attrIdx[name] = i
			optional[name] = true
		case "block":
			blockIdx[name] = i
		case "label":
			l.labels = append(l.labels, labelField{idx: i, rangeIdx: -1, name: name})
		case "remain":
			single(&l.remain, kind)
			l.remain = i
		case "body":
			single(&l.body, kind)
			l.body = i
		case "def_range":
			single(&l.defRange, kind)
			l.defRange = i
		case "type_range":
			single(&l.typeRange, kind)
			l.typeRange = i
		case "label_range":
			labelRange[name] = i
		case "attr_range", "attr_name_range", "attr_value_range":
			if ranges[kind] == nil {
				ranges[kind] = map[string]int{}
			}
			ranges[kind][name] = i
		default:
			panic(fmt.Sprintf("invalid hcl field tag kind %q on %s %q", kind, field.Type.String(), field.Name))
		}
	}
	lookup := func(m map[string]int, name string) int {
		if i, ok := m[name]; ok {
			return i
		}
		return -1
	}
	for i := range l.labels {
		l.labels[i].rangeIdx = lookup(labelRange, l.labels[i].name)
	}
	for _, name := range sortedKeys(attrIdx) {
		i := attrIdx[name]
		ft := ty.Field(i).Type
		// As gohcl.ImpliedBodySchema: an expression can stand for absence.
		required := !ft.AssignableTo(exprType) && ft.Kind() != reflect.Pointer && !optional[name]
		l.attrs = append(l.attrs, attrField{
			name: name, embed: -1, idx: i, required: required,
			rangeIdx:     lookup(ranges["attr_range"], name),
			nameRangeIdx: lookup(ranges["attr_name_range"], name),
			valIdx:       lookup(ranges["attr_value_range"], name),
			isAttr:       attrType.AssignableTo(ft),
			isExpr:       exprType.AssignableTo(ft),
		})
	}
	for _, name := range sortedKeys(blockIdx) {
		i := blockIdx[name]
		b := blockField{name: name, embed: -1, idx: i, ty: ty.Field(i).Type}
		b.elem = b.ty
		if b.elem.Kind() == reflect.Slice {
			b.isSlice = true
			b.elem = b.elem.Elem()
		}
		if b.elem.Kind() == reflect.Pointer {
			b.isPtr = true
			b.elem = b.elem.Elem()
		}
		if b.elem.Kind() != reflect.Struct {
			panic(fmt.Sprintf("hcl 'block' tag kind cannot be applied to %s field %s: struct required", b.ty.String(), ty.Field(i).Name))
		}
		l.blocks = append(l.blocks, b)
	}
	if len(embeds) > 0 {
		l.embed(ty, embeds)
	}
	for _, a := range l.attrs {
		l.schema.Attributes = append(l.schema.Attributes, hcl.AttributeSchema{Name: a.name, Required: a.required})
	}
	for _, b := range l.blocks {
		l.schema.Blocks = append(l.schema.Blocks, hcl.BlockHeaderSchema{Type: b.name, LabelNames: labelNames(b.elem)})
	}
	l.partial = l.remain >= 0
	return l
}

// embed adds the attributes and blocks of the embedded struct fields
// embeds to l, in the order of their names as if declared in ty.
func (l *structLayout) embed(ty reflect.Type, embeds []int) {
	seen := map[string]bool{}
	for _, a := range l.attrs {
		seen[a.name] = true
	}
	for _, b := range l.blocks {
		seen[b.name] = true
	}
	for _, i := range embeds {
		sub := buildLayout(ty.Field(i).Type)
		if sub.body >= 0 || sub.remain >= 0 || len(sub.labels) > 0 || sub.defRange >= 0 || sub.typeRange >= 0 {
			panic(fmt.Sprintf("embedded %s may hold only attributes and blocks", ty.Field(i).Type))
		}
		for _, a := range sub.attrs {
			if seen[a.name] || a.embed >= 0 {
				panic(fmt.Sprintf("%s: option %q declared twice, or embedded twice over", ty, a.name))
			}
			seen[a.name] = true
			a.embed = i
			l.attrs = append(l.attrs, a)
		}
		for _, b := range sub.blocks {
			if seen[b.name] || b.embed >= 0 {
				panic(fmt.Sprintf("%s: block %q declared twice, or embedded twice over", ty, b.name))
			}
			seen[b.name] = true
			b.embed = i
			l.blocks = append(l.blocks, b)
		}
	}
	sort.Slice(l.attrs, func(i, j int) bool { return l.attrs[i].name < l.attrs[j].name })
	sort.Slice(l.blocks, func(i, j int) bool { return l.blocks[i].name < l.blocks[j].name })
}

// in is the struct that holds a field of the layout: val, or the embedded
// struct embed of val.
func in(val reflect.Value, embed int) reflect.Value {
	if embed < 0 {
		return val
	}
	return val.Field(embed)
}

// labelNames lists a block struct's ",label" fields, without building the
// block type's whole layout (a block type may contain itself).
func labelNames(ty reflect.Type) []string {
	var names []string
	for i := range ty.NumField() {
		if name, kind, _ := strings.Cut(ty.Field(i).Tag.Get("hcl"), ","); kind == "label" {
			names = append(names, name)
		}
	}
	return names
}

// decodeBody is gohcl.DecodeBody with cached type layouts.
func decodeBody(body hcl.Body, ctx *hcl.EvalContext, val any) hcl.Diagnostics {
	return decodeBodyTracked(body, ctx, val, nil)
}

// decodeBodyTracked is decodeBody that records volatile values on tr
// (nil records nothing).
func decodeBodyTracked(body hcl.Body, ctx *hcl.EvalContext, val any, tr *trail) hcl.Diagnostics {
	rv := reflect.ValueOf(val)
	if rv.Kind() != reflect.Pointer {
		panic(fmt.Sprintf("target value must be a pointer, not %s", rv.Type().String()))
	}
	return decodeBodyToValue(body, ctx, rv.Elem(), tr)
}

func decodeBodyToValue(body hcl.Body, ctx *hcl.EvalContext, val reflect.Value, tr *trail) hcl.Diagnostics {
	switch val.Kind() {
	case reflect.Struct:
		return decodeBodyToStruct(body, ctx, val, tr)
	case reflect.Map:
		return decodeBodyToMap(body, ctx, val, tr)
	default:
		panic(fmt.Sprintf("target value must be pointer to struct or map, not %s", val.Type().String()))
	}
}

func decodeBodyToStruct(body hcl.Body, ctx *hcl.EvalContext, val reflect.Value, tr *trail) hcl.Diagnostics {
	l := layoutOf(val.Type())
	var content *hcl.BodyContent
	var leftovers hcl.Body
	var diags hcl.Diagnostics
	if l.partial {
		content, leftovers, diags = body.PartialContent(l.schema)
	} else {
		content, diags = body.Content(l.schema)
	}
	if content == nil {
		return diags
	}

	if l.body >= 0 {
		fieldV := val.Field(l.body)
		if bodyType.AssignableTo(fieldV.Type()) {
			fieldV.Set(reflect.ValueOf(body))
		} else {
			diags = append(diags, decodeBodyToValue(body, ctx, fieldV, tr)...)
		}
	}

	if l.remain >= 0 {
		fieldV := val.Field(l.remain)
		switch ft := fieldV.Type(); {
		case bodyType.AssignableTo(ft):
			fieldV.Set(reflect.ValueOf(leftovers))
		case attrsType.AssignableTo(ft):
			attrs, attrsDiags := leftovers.JustAttributes()
			diags = append(diags, attrsDiags...)
			fieldV.Set(reflect.ValueOf(attrs))
		default:
			diags = append(diags, decodeBodyToValue(leftovers, ctx, fieldV, tr)...)
		}
	}

	for _, af := range l.attrs {
		attr := content.Attributes[af.name]
		holder := in(val, af.embed)
		fieldV := holder.Field(af.idx)
		if attr == nil {
			if af.isExpr {
				// As gohcl: a missing hcl.Expression field gets a null
				// expression, so callers can handle absence in cty.
				fieldV.Set(reflect.ValueOf(hcl.StaticExpr(cty.NullVal(cty.DynamicPseudoType), body.MissingItemRange())))
			}
			continue
		}
		if af.rangeIdx >= 0 {
			holder.Field(af.rangeIdx).Set(reflect.ValueOf(attr.Range))
		}
		if af.nameRangeIdx >= 0 {
			holder.Field(af.nameRangeIdx).Set(reflect.ValueOf(attr.NameRange))
		}
		if af.valIdx >= 0 {
			holder.Field(af.valIdx).Set(reflect.ValueOf(attr.Expr.Range()))
		}
		switch {
		case af.isAttr:
			fieldV.Set(reflect.ValueOf(attr))
		case af.isExpr:
			fieldV.Set(reflect.ValueOf(attr.Expr))
		default:
			diags = append(diags, decodeExpression(attr.Expr, ctx, fieldV, tr.attr(af.name))...)
		}
	}

	if len(l.blocks) == 0 {
		return diags
	}
	blocksByType := content.Blocks.ByType()
	for _, bf := range l.blocks {
		blocks := blocksByType[bf.name]
		fieldV := in(val, bf.embed).Field(bf.idx)
		if len(blocks) > 1 && !bf.isSlice {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s block", bf.name),
				Detail: fmt.Sprintf(
					"Only one %s block is allowed. Another was defined at %s.",
					bf.name, blocks[0].DefRange.String(),
				),
				Subject: &blocks[1].DefRange,
			})
			continue
		}
		if len(blocks) == 0 {
			if bf.isSlice || bf.isPtr {
				if fieldV.IsNil() {
					fieldV.Set(reflect.Zero(bf.ty))
				}
			} else {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Missing %s block", bf.name),
					Detail:   fmt.Sprintf("A %s block is required.", bf.name),
					Subject:  body.MissingItemRange().Ptr(),
				})
			}
			continue
		}
		switch {
		case bf.isSlice:
			sli := fieldV
			if sli.IsNil() {
				sli = reflect.MakeSlice(bf.ty, len(blocks), len(blocks))
			}
			for i, block := range blocks {
				if bf.isPtr {
					if i >= sli.Len() {
						sli = reflect.Append(sli, reflect.New(bf.elem))
					}
					v := sli.Index(i)
					if v.IsNil() {
						v = reflect.New(bf.elem)
					}
					diags = append(diags, decodeBlockToValue(block, ctx, v.Elem(), tr.attr(bf.name).index(i))...)
					sli.Index(i).Set(v)
				} else {
					if i >= sli.Len() {
						sli = reflect.Append(sli, reflect.New(bf.elem).Elem())
					}
					diags = append(diags, decodeBlockToValue(block, ctx, sli.Index(i), tr.attr(bf.name).index(i))...)
				}
			}
			if sli.Len() > len(blocks) {
				sli.SetLen(len(blocks))
			}
			fieldV.Set(sli)
		case bf.isPtr:
			v := fieldV
			if v.IsNil() {
				v = reflect.New(bf.elem)
			}
			diags = append(diags, decodeBlockToValue(blocks[0], ctx, v.Elem(), tr.attr(bf.name))...)
			fieldV.Set(v)
		default:
			diags = append(diags, decodeBlockToValue(blocks[0], ctx, fieldV, tr.attr(bf.name))...)
		}
	}
	return diags
}

func decodeBodyToMap(body hcl.Body, ctx *hcl.EvalContext, v reflect.Value, tr *trail) hcl.Diagnostics {
	attrs, diags := body.JustAttributes()
	if attrs == nil {
		return diags
	}
	et := v.Type().Elem()
	mv := reflect.MakeMap(v.Type())
	for k, attr := range attrs {
		switch {
		case attrType.AssignableTo(et):
			mv.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(attr))
		case exprType.AssignableTo(et):
			mv.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(attr.Expr))
		default:
			ev := reflect.New(et).Elem()
			diags = append(diags, decodeExpression(attr.Expr, ctx, ev, tr.attr(k))...)
			mv.SetMapIndex(reflect.ValueOf(k), ev)
		}
	}
	v.Set(mv)
	return diags
}

func decodeBlockToValue(block *hcl.Block, ctx *hcl.EvalContext, v reflect.Value, tr *trail) hcl.Diagnostics {
	diags := decodeBodyToValue(block.Body, ctx, v, tr)
	l := layoutOf(v.Type())
	for li, lv := range block.Labels {
		lf := l.labels[li]
		v.Field(lf.idx).Set(reflect.ValueOf(lv))
		if lf.rangeIdx >= 0 {
			v.Field(lf.rangeIdx).Set(reflect.ValueOf(block.LabelRanges[li]))
		}
	}
	if l.typeRange >= 0 {
		v.Field(l.typeRange).Set(reflect.ValueOf(block.TypeRange))
	}
	if l.defRange >= 0 {
		v.Field(l.defRange).Set(reflect.ValueOf(block.DefRange))
	}
	return diags
}

// decodeExpression is gohcl.DecodeExpression into the addressable v, with
// the cty type implied by v's Go type cached; it records the value's
// volatile parts on tr (nil records nothing).
func decodeExpression(expr hcl.Expression, ctx *hcl.EvalContext, v reflect.Value, tr *trail) hcl.Diagnostics {
	srcVal, diags := expr.Value(ctx)
	target := v.Addr().Interface()
	convTy := impliedType(v.Type(), target)
	if isLegacy(expr) {
		u, marks := srcVal.Unmark()
		srcVal = weakValue(u, convTy).WithMarks(marks)
	}
	// A null value leaves the option unset, as in Packer (HCL2: a
	// variable whose default is null; JSON: null, or "" for a bool).
	if srcVal.IsKnown() && srcVal.IsNull() {
		return diags
	}
	srcVal, err := convert.Convert(srcVal, convTy)
	if err == nil {
		// Marks (volatile values) only say where a value came from; Go
		// values carry none. Taken after the conversion, their paths are
		// those of the option's type (map keys, list indices).
		var marks []cty.PathValueMarks
		srcVal, marks = srcVal.UnmarkDeepWithPaths()
		if err = gocty.FromCtyValue(srcVal, target); err == nil {
			tr.record(marks, srcVal)
		}
	}
	if err != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsuitable value type",
			Detail:   fmt.Sprintf("Unsuitable value: %s", err.Error()),
			Subject:  expr.StartRange().Ptr(),
			Context:  expr.Range().Ptr(),
		})
	}
	return diags
}

func impliedType(ty reflect.Type, target any) cty.Type {
	if t, ok := impliedTypes.Load(ty); ok {
		return t.(cty.Type)
	}
	t, err := gocty.ImpliedType(target)
	if err != nil {
		panic(fmt.Sprintf("unsuitable DecodeExpression target: %s", err))
	}
	impliedTypes.Store(ty, t)
	return t
}

// isLegacy reports whether expr is a legacy JSON template value.
func isLegacy(expr hcl.Expression) bool {
	_, ok := hcl.UnwrapExpressionUntil(expr, func(e hcl.Expression) bool {
		_, ok := e.(*legacyExpr)
		return ok
	}).(*legacyExpr)
	return ok
}

// weakValue applies the weak decoding Packer's legacy JSON templates get
// from mapstructure (packer-plugin-sdk template/config.Decode: weakly typed
// input with a StringToSliceHookFunc(",") hook): a string where a list is
// expected is split on commas ("" is the empty list), and "" where a bool
// or a number is expected is unset. Other conversions (the string "true"
// to a bool, 42 to "42") are cty's own.
func weakValue(v cty.Value, ty cty.Type) cty.Value {
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return v
	}
	s := v.AsString()
	switch {
	case (ty.IsListType() || ty.IsSetType()) && ty.ElementType().IsPrimitiveType():
		if s == "" {
			return cty.ListValEmpty(ty.ElementType())
		}
		parts := strings.Split(s, ",")
		vals := make([]cty.Value, len(parts))
		for i, p := range parts {
			vals[i] = cty.StringVal(p)
		}
		return cty.TupleVal(vals)
	case (ty == cty.Bool || ty == cty.Number) && s == "":
		return cty.NullVal(ty)
	}
	return v
}
