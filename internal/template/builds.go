package template

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/dynblock"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var buildSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "description"}, {Name: "sources"}, {Name: "reuse"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "source", LabelNames: []string{"reference"}},
		{Type: "provisioner", LabelNames: []string{"type"}},
		{Type: "error-cleanup-provisioner", LabelNames: []string{"type"}},
		{Type: "post-processor", LabelNames: []string{"type"}},
		{Type: "post-processors"},
		{Type: "hcp_packer_registry"},
	},
}

var provisionerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "only"}, {Name: "except"}, {Name: "override"},
		{Name: "pause_before"}, {Name: "max_retries"}, {Name: "timeout"},
	},
}

var postProcessorSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "only"}, {Name: "except"}, {Name: "keep_input_artifact"}, {Name: "name"},
	},
}

var postProcessorsSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "post-processor", LabelNames: []string{"type"}}},
}

// BuildFields are the attributes of HCL2's `build` object (Packer's
// amazon-ebs generated data), known only while the build runs.
var BuildFields = []string{
	"ID", "Host", "Port", "User", "Password", "ConnType", "PackerRunUUID",
	"PackerHTTPIP", "PackerHTTPPort", "PackerHTTPAddr", "SSHPublicKey", "SSHPrivateKey",
	"SourceAMI", "SourceAMIName", "SourceAMIOwner", "SourceAMIOwnerName",
	"SourceAMICreationDate", "BuildRegion", "WinRMPassword",
}

// unknownBuildObject stands for `build` at load time: its fields are
// unknown, but a misspelt one is reported with a suggestion.
var unknownBuildObject = func() cty.Value {
	attrs := make(map[string]cty.Value, len(BuildFields))
	for _, f := range BuildFields {
		attrs[f] = cty.UnknownVal(cty.String)
	}
	return cty.ObjectVal(attrs)
}()

// sourceUse is one source a build runs, possibly with in-build settings.
type sourceUse struct {
	typ, name string    // the top-level source's labels
	rename    string    // `name` set in the in-build block
	extra     hcl.Body  // in-build settings, nil without an in-build block
	rng       hcl.Range // where the build refers to the source
}

func (u sourceUse) effectiveName() string {
	if u.rename != "" {
		return u.rename
	}
	return u.name
}

func (l *hcl2Loader) decodeBuilds() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i, blk := range l.blocks.OfType("build") {
		diags = append(diags, l.decodeBuild(blk, i+1)...)
	}
	l.tmpl.Builds = filterBuilds(l.tmpl.Builds, l.opts.Only, l.opts.Except)
	return diags
}

func (l *hcl2Loader) decodeBuild(blk *hcl.Block, index int) hcl.Diagnostics {
	// dynamic "provisioner" (and post-processor, source) blocks, as
	// Packer expands them; for_each sees variables and locals.
	body := blk.Body
	if hasDynamicBlocks(body) {
		body = dynblock.Expand(body, l.ctx)
	}
	c, diags := body.Content(buildSchema)
	buildName, description := "", ""
	if a, ok := c.Attributes["name"]; ok {
		diags = append(diags, l.evalString(a, &buildName)...)
	}
	if a, ok := c.Attributes["description"]; ok {
		diags = append(diags, l.evalString(a, &description)...)
	}
	reuse := false
	if a, ok := c.Attributes["reuse"]; ok {
		diags = append(diags, decodeBoolCtx(a, l.ctx, &reuse)...)
	}
	var uses []sourceUse
	refCount := 0
	seen := map[string]hcl.Range{}
	addUse := func(u sourceUse) {
		key := u.typ + "." + u.effectiveName()
		if prev, ok := seen[key]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate source",
				Detail:   fmt.Sprintf("Source %q is already used in this build at %s. Give the in-build source a distinct `name` to run it twice.", key, prev),
				Subject:  u.rng.Ptr(),
			})
			return
		}
		seen[key] = u.rng
		uses = append(uses, u)
	}
	if a, ok := c.Attributes["sources"]; ok {
		v, d := evalExpr(a.Expr, l.ctx)
		v, _ = v.UnmarkDeep() // a build's sources are not settings
		diags = append(diags, d...)
		var refs []string
		if !d.HasErrors() {
			lv, err := convert.Convert(v, cty.List(cty.String))
			if err != nil || lv.IsNull() || !lv.IsWhollyKnown() {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid sources",
					Detail:   `The sources argument must be a list of source references such as ["source.amazon-ebs.example"].`,
					Subject:  a.Expr.Range().Ptr(),
				})
			} else {
				for _, ev := range lv.AsValueSlice() {
					refs = append(refs, ev.AsString())
				}
			}
		}
		for _, ref := range refs {
			refCount++
			typ, name, d := l.resolveSource(ref, a.Expr.Range())
			diags = append(diags, d...)
			if !d.HasErrors() {
				addUse(sourceUse{typ: typ, name: name, rng: a.Expr.Range()})
			}
		}
	}
	for _, sb := range c.Blocks.OfType("source") {
		refCount++
		typ, name, d := l.resolveSource(sb.Labels[0], sb.LabelRanges[0])
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		sc, rest, d := sb.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "name"}}})
		diags = append(diags, d...)
		diags = append(diags, duplicateArgs(l.sources[typ+"."+name].Body, rest)...)
		u := sourceUse{typ: typ, name: name, extra: rest, rng: sb.DefRange}
		if a, ok := sc.Attributes["name"]; ok {
			diags = append(diags, l.evalString(a, &u.rename)...)
		}
		addUse(u)
	}
	if refCount == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Build without sources",
			Detail:   `A build block needs at least one source: sources = ["source.amazon-ebs.example"] or a source "amazon-ebs.example" {} block.`,
			Subject:  blk.DefRange.Ptr(),
		})
	}
	for _, hb := range c.Blocks.OfType("hcp_packer_registry") {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "HCP Packer registry is not supported",
			Detail:   "amibake does not publish to HCP Packer; this block is ignored.",
			Subject:  hb.DefRange.Ptr(),
		})
	}

	for _, u := range uses {
		top := l.sources[u.typ+"."+u.name]
		srcName := u.effectiveName()
		srcObj := cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(srcName), "type": cty.StringVal(u.typ)})
		sctx := l.ctx.NewChild()
		sctx.Variables = map[string]cty.Value{"source": srcObj}
		body := top.Body
		if u.extra != nil {
			// In-build settings fill unset fields; setting one twice is
			// a "Duplicate argument" error, as in Packer.
			body = hcl.MergeBodies([]hcl.Body{top.Body, u.extra})
			diags = append(diags, checkExprs(u.extra, sctx)...)
		}
		diags = append(diags, checkExprs(top.Body, sctx)...)
		name := u.typ + "." + srcName
		if buildName != "" {
			name = buildName + "." + name
		}
		src := l.block(top, u.typ, srcName, sctx, body)
		b := &Build{Name: name, PackerName: srcName, BuildName: buildName, Description: description, Reuse: reuse, Source: &src, block: index}

		pctx := sctx.NewChild()
		pctx.Variables = map[string]cty.Value{"build": unknownBuildObject}
		for _, pb := range c.Blocks {
			switch pb.Type {
			case "provisioner":
				p, d := l.decodeProvisioner(pb, pctx, b, u)
				diags = append(diags, d...)
				if p != nil {
					b.Provisioners = append(b.Provisioners, p)
				}
			case "error-cleanup-provisioner":
				if b.ErrorCleanupProvisioner != nil {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Duplicate error-cleanup-provisioner",
						Detail:   "A build can have only one error-cleanup-provisioner block.",
						Subject:  pb.DefRange.Ptr(),
					})
					continue
				}
				p, d := l.decodeProvisioner(pb, pctx, b, u)
				diags = append(diags, d...)
				b.ErrorCleanupProvisioner = p
			case "post-processor":
				pp, d := l.decodePostProcessor(pb, pctx, b, u)
				diags = append(diags, d...)
				if pp != nil {
					b.PostProcessors = append(b.PostProcessors, []*PostProcessor{pp})
				}
			case "post-processors":
				pc, d := pb.Body.Content(postProcessorsSchema)
				diags = append(diags, d...)
				var chain []*PostProcessor
				for _, ppb := range pc.Blocks {
					pp, d := l.decodePostProcessor(ppb, pctx, b, u)
					diags = append(diags, d...)
					if pp != nil {
						chain = append(chain, pp)
					}
				}
				if len(chain) > 0 {
					b.PostProcessors = append(b.PostProcessors, chain)
				}
			}
		}
		l.tmpl.Builds = append(l.tmpl.Builds, b)
	}
	return diags
}

// resolveSource turns "amazon-ebs.x" or "source.amazon-ebs.x" into the
// labels of a declared source.
func (l *hcl2Loader) resolveSource(ref string, rng hcl.Range) (typ, name string, diags hcl.Diagnostics) {
	parts := strings.Split(trimSourcePrefix(ref), ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid source reference",
			Detail:   fmt.Sprintf("%q is not a source reference; write \"source.<type>.<name>\", for example \"source.amazon-ebs.example\".", ref),
			Subject:  rng.Ptr(),
		}}
	}
	key := parts[0] + "." + parts[1]
	if _, ok := l.sources[key]; !ok {
		known := make([]string, 0, len(l.sources))
		for k := range l.sources {
			known = append(known, k)
		}
		sort.Strings(known)
		return "", "", hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unknown source",
			Detail:   fmt.Sprintf("There is no source %q declared in this template.", key) + suggestion(key, known),
			Subject:  rng.Ptr(),
		}}
	}
	return parts[0], parts[1], nil
}

func (l *hcl2Loader) decodeProvisioner(pb *hcl.Block, ctx *hcl.EvalContext, b *Build, u sourceUse) (*Provisioner, hcl.Diagnostics) {
	c, rest, diags := pb.Body.PartialContent(provisionerSchema)
	p := &Provisioner{}
	if a, ok := c.Attributes["only"]; ok {
		diags = append(diags, l.evalStrings(a, &p.Only)...)
	}
	if a, ok := c.Attributes["except"]; ok {
		diags = append(diags, l.evalStrings(a, &p.Except)...)
	}
	if a, ok := c.Attributes["pause_before"]; ok {
		diags = append(diags, l.evalDuration(a, &p.PauseBefore)...)
	}
	if a, ok := c.Attributes["timeout"]; ok {
		diags = append(diags, l.evalDuration(a, &p.Timeout)...)
	}
	if a, ok := c.Attributes["max_retries"]; ok {
		diags = append(diags, l.evalInt(a, &p.MaxRetries)...)
	}
	if a, ok := c.Attributes["override"]; ok {
		ov, d := l.decodeOverride(a)
		diags = append(diags, d...)
		p.Override = map[string]hcl.Body{}
		for k, vals := range ov {
			p.Override[k] = staticBody{vals: vals, rng: a.Expr.Range()}
		}
	}
	if !selected(p.Only, p.Except, b.Name, u.typ+"."+u.effectiveName()) {
		return nil, diags
	}
	diags = append(diags, checkExprs(rest, ctx)...)
	p.Block = l.block(pb, pb.Labels[0], "", ctx, rest)
	p.buildRefs = true
	return p, diags
}

func (l *hcl2Loader) decodePostProcessor(pb *hcl.Block, ctx *hcl.EvalContext, b *Build, u sourceUse) (*PostProcessor, hcl.Diagnostics) {
	c, rest, diags := pb.Body.PartialContent(postProcessorSchema)
	pp := &PostProcessor{}
	if a, ok := c.Attributes["only"]; ok {
		diags = append(diags, l.evalStrings(a, &pp.Only)...)
	}
	if a, ok := c.Attributes["except"]; ok {
		diags = append(diags, l.evalStrings(a, &pp.Except)...)
	}
	name := ""
	if a, ok := c.Attributes["name"]; ok {
		diags = append(diags, l.evalString(a, &name)...)
	}
	if a, ok := c.Attributes["keep_input_artifact"]; ok {
		var keep bool
		if d := decodeBoolCtx(a, ctx, &keep); d.HasErrors() {
			diags = append(diags, d...)
		} else {
			pp.KeepInputArtifact = &keep
		}
	}
	if !selected(pp.Only, pp.Except, b.Name, u.typ+"."+u.effectiveName()) {
		return nil, diags
	}
	diags = append(diags, checkExprs(rest, ctx)...)
	pp.Block = l.block(pb, pb.Labels[0], name, ctx, rest)
	pp.buildRefs = true
	return pp, diags
}

func (l *hcl2Loader) decodeOverride(a *hcl.Attribute) (map[string]map[string]cty.Value, hcl.Diagnostics) {
	v, diags := evalExpr(a.Expr, l.ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	bad := hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid override",
		Detail:   `override must map source names to objects of settings: override = { "amazon-ebs.example" = { inline = ["..."] } }.`,
		Subject:  a.Expr.Range().Ptr(),
	}}
	// Marks on the two outer levels (volatile values) move down to the
	// settings, where Decode finds them.
	v, vm := v.Unmark()
	if v.IsNull() || !v.IsWhollyKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, bad
	}
	out := map[string]map[string]cty.Value{}
	for k, ov := range v.AsValueMap() {
		ov, om := ov.Unmark()
		if ov.IsNull() || !(ov.Type().IsObjectType() || ov.Type().IsMapType()) {
			return nil, bad
		}
		set := ov.AsValueMap()
		for name, sv := range set {
			set[name] = sv.WithMarks(vm, om)
		}
		out[k] = set
	}
	return out, nil
}

// selected applies a provisioner's only/except to one build.
func selected(only, except []string, names ...string) bool {
	match := func(globs []string) bool {
		for _, g := range globs {
			for _, n := range names {
				if ok, _ := path.Match(g, n); ok || trimSourcePrefix(g) == n {
					return true
				}
			}
		}
		return false
	}
	if len(only) > 0 && !match(only) {
		return false
	}
	return !match(except)
}

// filterBuilds applies -only and -except: globs on the build name or on
// its "type.name" part.
func filterBuilds(builds []*Build, only, except []string) []*Build {
	if len(only) == 0 && len(except) == 0 {
		return builds
	}
	var out []*Build
	for _, b := range builds {
		names := []string{b.Name}
		if b.Source != nil {
			names = append(names, b.Source.Type+"."+b.Source.Name)
		}
		if selected(only, except, names...) {
			out = append(out, b)
		}
	}
	return out
}

func (l *hcl2Loader) evalString(a *hcl.Attribute, dst *string) hcl.Diagnostics {
	v, diags := evalExpr(a.Expr, l.ctx)
	v, _ = v.UnmarkDeep()
	if diags.HasErrors() {
		return diags
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() {
		return typeDiag(a, "string")
	}
	if sv.IsKnown() {
		*dst = sv.AsString()
	}
	return nil
}

func (l *hcl2Loader) evalStrings(a *hcl.Attribute, dst *[]string) hcl.Diagnostics {
	v, diags := evalExpr(a.Expr, l.ctx)
	v, _ = v.UnmarkDeep()
	if diags.HasErrors() {
		return diags
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || lv.IsNull() || !lv.IsWhollyKnown() {
		return typeDiag(a, "list of string")
	}
	for _, ev := range lv.AsValueSlice() {
		*dst = append(*dst, ev.AsString())
	}
	return nil
}

func (l *hcl2Loader) evalDuration(a *hcl.Attribute, dst *time.Duration) hcl.Diagnostics {
	var s string
	if d := l.evalString(a, &s); d.HasErrors() {
		return d
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail:   fmt.Sprintf("%q is not a duration; write a number with a unit, such as \"30s\", \"5m\" or \"1h30m\".", s),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	*dst = dur
	return nil
}

func (l *hcl2Loader) evalInt(a *hcl.Attribute, dst *int) hcl.Diagnostics {
	var s string
	if d := l.evalString(a, &s); d.HasErrors() {
		return d
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return typeDiag(a, "non-negative whole number")
	}
	*dst = n
	return nil
}

func decodeBoolCtx(a *hcl.Attribute, ctx *hcl.EvalContext, dst *bool) hcl.Diagnostics {
	v, diags := a.Expr.Value(ctx)
	v, _ = v.UnmarkDeep()
	if diags.HasErrors() {
		return diags
	}
	bv, err := convert.Convert(v, cty.Bool)
	if err != nil || bv.IsNull() {
		return typeDiag(a, "bool")
	}
	if bv.IsKnown() {
		*dst = bv.True()
	}
	return nil
}

func typeDiag(a *hcl.Attribute, want string) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Incorrect attribute value type",
		Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s required.", a.Name, want),
		Subject:  a.Expr.Range().Ptr(),
	}}
}

// staticBody is a body of known attribute values: one build's settings
// in a provisioner's `override`. The plugins registry lays it over the
// provisioner's Body for that build.
type staticBody struct {
	vals map[string]cty.Value
	rng  hcl.Range
}

func (b staticBody) attr(k string) *hcl.Attribute {
	return &hcl.Attribute{Name: k, Expr: hcl.StaticExpr(b.vals[k], b.rng), Range: b.rng, NameRange: b.rng}
}

func (b staticBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c := &hcl.BodyContent{Attributes: hcl.Attributes{}, MissingItemRange: b.rng}
	rest := staticBody{vals: map[string]cty.Value{}, rng: b.rng}
	inSchema := map[string]bool{}
	for _, as := range s.Attributes {
		inSchema[as.Name] = true
	}
	for k, v := range b.vals {
		if inSchema[k] {
			c.Attributes[k] = b.attr(k)
		} else {
			rest.vals[k] = v
		}
	}
	return c, rest, nil
}

func (b staticBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, rest, _ := b.PartialContent(s)
	var diags hcl.Diagnostics
	var names []string
	for _, as := range s.Attributes {
		names = append(names, as.Name)
	}
	for _, k := range sortedNames(rest.(staticBody).vals) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   fmt.Sprintf("An argument named %q is not expected here.", k) + suggestion(k, names),
			Subject:  b.rng.Ptr(),
		})
	}
	return c, diags
}

func (b staticBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	attrs := hcl.Attributes{}
	for k := range b.vals {
		attrs[k] = b.attr(k)
	}
	return attrs, nil
}

func (b staticBody) MissingItemRange() hcl.Range { return b.rng }

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// duplicateArgs reports in-build source settings that the top-level
// source already sets: in-build blocks may only fill unset fields.
func duplicateArgs(top, extra hcl.Body) hcl.Diagnostics {
	tb, ok1 := top.(*hclsyntax.Body)
	eb, ok2 := extra.(*hclsyntax.Body)
	if !ok1 || !ok2 {
		return nil // MergeBodies reports it when the body is decoded
	}
	var diags hcl.Diagnostics
	for _, a := range sortedSyntaxAttrs(eb.Attributes) {
		if prev, ok := tb.Attributes[a.Name]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate argument",
				Detail:   fmt.Sprintf("The argument %q is already set at %s by the source block. A source block inside a build can only set fields the top-level source leaves unset.", a.Name, prev.NameRange),
				Subject:  a.NameRange.Ptr(),
			})
		}
	}
	return diags
}

// trimSourcePrefix drops "source." or "sources." from a source reference:
// Packer takes both in build { sources = [...] } (early HCL2 templates and
// docs wrote "sources.amazon-ebs.x").
func trimSourcePrefix(ref string) string {
	if r, ok := strings.CutPrefix(ref, "sources."); ok {
		return r
	}
	return strings.TrimPrefix(ref, "source.")
}

// hasDynamicBlocks reports whether a body has dynamic blocks: only such
// bodies are wrapped, so that the others keep their syntax types (which
// later checks inspect).
func hasDynamicBlocks(body hcl.Body) bool {
	c, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "dynamic", LabelNames: []string{"type"}}}})
	return c != nil && len(c.Blocks) > 0
}
