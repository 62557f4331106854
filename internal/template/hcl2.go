package template

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/dynblock"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// PackerVersion is the Packer version amibake behaves like, for
// packer.version and required_version.
const PackerVersion = "1.11.2"

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "packer"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "variables"},
		{Type: "locals"},
		{Type: "local", LabelNames: []string{"name"}},
		{Type: "source", LabelNames: []string{"type", "name"}},
		{Type: "data", LabelNames: []string{"type", "name"}},
		{Type: "build"},
	},
}

var packerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "required_version"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "required_plugins"}},
}

// hcl2Loader holds the state of one HCL2 load.
type hcl2Loader struct {
	ctx0   context.Context // the load's, for data sources
	opts   LoadOptions
	parser *hclparse.Parser
	tmpl   *Template
	root   string
	funcs  map[string]function.Function

	blocks  hcl.Blocks // top-level blocks of every file, in file order
	vars    map[string]*Variable
	ctx     *hcl.EvalContext // var, local, data, path, packer
	sources map[string]*hcl.Block
}

func loadHCL2(ctx context.Context, path, root string, files, autoVarFiles []string, opts LoadOptions) (*Template, hcl.Diagnostics) {
	l := &hcl2Loader{
		ctx0:    ctx,
		opts:    opts,
		parser:  hclparse.NewParser(),
		root:    root,
		tmpl:    &Template{Path: path, Format: FormatHCL2},
		vars:    map[string]*Variable{},
		sources: map[string]*hcl.Block{},
	}
	diags := l.parse(files)
	l.tmpl.Files = l.parser.Files()
	if diags.HasErrors() || opts.SyntaxOnly {
		return l.tmpl, diags
	}
	absRoot := root
	if !filepath.IsAbs(absRoot) {
		absRoot = filepath.Join(opts.Cwd, root)
	}
	l.funcs = Functions(absRoot, opts.now())

	diags = append(diags, l.decodePacker()...)
	diags = append(diags, l.decodeVariables()...)
	diags = append(diags, l.collectValues(autoVarFiles)...)
	l.tmpl.Files = l.parser.Files()
	if diags.HasErrors() {
		return l.tmpl, diags
	}
	diags = append(diags, l.validateVariables()...)
	l.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":    l.varObject(),
			"path":   cty.ObjectVal(map[string]cty.Value{"root": cty.StringVal(root), "cwd": cty.StringVal(opts.Cwd)}),
			"packer": cty.ObjectVal(map[string]cty.Value{"version": cty.StringVal(PackerVersion)}),
		},
		Functions: l.funcs,
	}
	diags = append(diags, l.evalLocalsAndData()...)
	if diags.HasErrors() {
		return l.tmpl, diags
	}
	diags = append(diags, l.decodeSources()...)
	diags = append(diags, l.decodeBuilds()...)
	l.tmpl.Sensitive = dedupe(l.tmpl.Sensitive)
	for _, b := range l.tmpl.Builds {
		setSensitive(b, l.tmpl.Sensitive)
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			l.tmpl.Warnings = append(l.tmpl.Warnings, d)
		}
	}
	return l.tmpl, diags
}

func (l *hcl2Loader) parse(files []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range files {
		f, d := parseChecked(l.parser, name, MaxTemplateSize, "Failed to read template")
		diags = append(diags, d...)
		if f == nil || d.HasErrors() {
			continue
		}
		content, d := f.Body.Content(topSchema)
		diags = append(diags, d...)
		l.blocks = append(l.blocks, content.Blocks...)
	}
	return diags
}

func (l *hcl2Loader) decodePacker() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, blk := range l.blocks.OfType("packer") {
		c, d := blk.Body.Content(packerSchema)
		diags = append(diags, d...)
		if a, ok := c.Attributes["required_version"]; ok {
			v, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			if !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
				l.tmpl.RequiredVersion = v.AsString()
			}
		}
		// required_plugins: nothing to install, amazon-ebs is built in.
		for _, rp := range c.Blocks {
			_, d := rp.Body.JustAttributes()
			diags = append(diags, d...)
		}
	}
	return diags
}

// evalLocalsAndData evaluates locals and data sources in dependency
// order: either may refer to the other.
func (l *hcl2Loader) evalLocalsAndData() hcl.Diagnostics {
	var diags hcl.Diagnostics
	type node struct {
		kind  string // "local" or "data"
		name  string // local name or "type.name"
		expr  hcl.Expression
		blk   *hcl.Block
		sens  bool
		rng   hcl.Range
		deps  []string
		value cty.Value
	}
	var nodes []*node
	seen := map[string]hcl.Range{}
	add := func(n *node) {
		key := n.kind + "." + n.name
		if prev, ok := seen[key]; ok {
			what := "local value"
			if n.kind == "data" {
				what = "data source"
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate " + what,
				Detail:   fmt.Sprintf("A %s named %q was already declared at %s. Names must be unique.", what, n.name, prev),
				Subject:  n.rng.Ptr(),
			})
			return
		}
		seen[key] = n.rng
		nodes = append(nodes, n)
	}
	for _, blk := range l.blocks {
		switch blk.Type {
		case "locals":
			attrs, d := blk.Body.JustAttributes()
			diags = append(diags, d...)
			for _, a := range sortedAttrs(attrs) {
				add(&node{kind: "local", name: a.Name, expr: a.Expr, rng: a.NameRange})
			}
		case "local":
			c, d := blk.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
				{Name: "expression", Required: true}, {Name: "sensitive"},
			}})
			diags = append(diags, d...)
			a, ok := c.Attributes["expression"]
			if !ok {
				continue
			}
			n := &node{kind: "local", name: blk.Labels[0], expr: a.Expr, rng: blk.LabelRanges[0]}
			if s, ok := c.Attributes["sensitive"]; ok {
				diags = append(diags, decodeBool(s, &n.sens)...)
			}
			add(n)
		case "data":
			add(&node{kind: "data", name: blk.Labels[0] + "." + blk.Labels[1], blk: blk, rng: blk.DefRange})
		}
	}
	for _, n := range nodes {
		var trs []hcl.Traversal
		if n.expr != nil {
			trs = n.expr.Variables()
		} else {
			trs = bodyTraversals(n.blk.Body)
		}
		for _, tr := range trs {
			switch tr.RootName() {
			case "local":
				if len(tr) > 1 {
					if a, ok := tr[1].(hcl.TraverseAttr); ok {
						n.deps = append(n.deps, "local."+a.Name)
					}
				}
			case "data":
				if len(tr) > 2 {
					a1, ok1 := tr[1].(hcl.TraverseAttr)
					a2, ok2 := tr[2].(hcl.TraverseAttr)
					if ok1 && ok2 {
						n.deps = append(n.deps, "data."+a1.Name+"."+a2.Name)
					}
				}
			}
		}
	}
	locals := map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	done := map[string]bool{}
	setCtx := func() {
		l.ctx.Variables["local"] = cty.ObjectVal(locals)
		dv := map[string]cty.Value{}
		for t, m := range data {
			dv[t] = cty.ObjectVal(m)
		}
		l.ctx.Variables["data"] = cty.ObjectVal(dv)
	}
	setCtx()
	for remaining := len(nodes); remaining > 0; {
		progress := false
		for _, n := range nodes {
			key := n.kind + "." + n.name
			if done[key] {
				continue
			}
			ready := true
			for _, dep := range n.deps {
				if _, declared := seen[dep]; declared && !done[dep] {
					ready = false
					break
				}
			}
			if !ready {
				continue
			}
			done[key] = true
			remaining--
			progress = true
			if n.kind == "local" {
				v, d := evalExpr(n.expr, l.ctx)
				diags = append(diags, d...)
				if d.HasErrors() {
					v = cty.DynamicVal
				}
				// The context keeps the marks (volatile values); what
				// inspect shows does not need them.
				locals[n.name] = v
				shown, _ := v.UnmarkDeep()
				l.tmpl.Locals = append(l.tmpl.Locals, &Local{Name: n.name, Value: shown, Sensitive: n.sens, DeclRange: n.rng})
				if n.sens {
					l.tmpl.Sensitive = append(l.tmpl.Sensitive, sensitiveStrings(shown)...)
				}
			} else {
				ds := &DataSource{Block: l.block(n.blk, n.blk.Labels[0], n.blk.Labels[1], l.ctx, n.blk.Body), Value: cty.DynamicVal}
				if l.opts.EvaluateDataSources {
					if l.opts.DataSource == nil {
						diags = append(diags, &hcl.Diagnostic{
							Severity: hcl.DiagError,
							Summary:  "Cannot evaluate data source",
							Detail:   fmt.Sprintf("No evaluator for data source %q is available here.", n.blk.Labels[0]),
							Subject:  n.blk.DefRange.Ptr(),
						})
					} else {
						v, d := l.opts.DataSource(l.ctx0, &ds.Block)
						diags = append(diags, d...)
						if !d.HasErrors() {
							ds.Value = v
						}
					}
				} else {
					diags = append(diags, checkExprs(n.blk.Body, l.ctx)...)
				}
				l.tmpl.DataSources = append(l.tmpl.DataSources, ds)
				if data[n.blk.Labels[0]] == nil {
					data[n.blk.Labels[0]] = map[string]cty.Value{}
				}
				data[n.blk.Labels[0]][n.blk.Labels[1]] = ds.Value
			}
			setCtx()
		}
		if !progress {
			var names []string
			var subject *hcl.Range
			for _, n := range nodes {
				if key := n.kind + "." + n.name; !done[key] {
					names = append(names, key)
					if subject == nil {
						subject = n.rng.Ptr()
					}
				}
			}
			sort.Strings(names)
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Dependency cycle",
				Detail:   "These values refer to each other, so none can be evaluated first: " + strings.Join(names, ", ") + ".",
				Subject:  subject,
			})
			break
		}
	}
	return diags
}

// block makes a Block whose body has dynamic blocks expanded.
func (l *hcl2Loader) block(blk *hcl.Block, typ, name string, ctx *hcl.EvalContext, body hcl.Body) Block {
	return Block{
		Type:     typ,
		Name:     name,
		Body:     dynblock.Expand(body, ctx),
		Ctx:      ctx,
		DefRange: blk.DefRange,
		Unknowns: !l.opts.EvaluateDataSources && len(l.tmpl.DataSources) > 0,
	}
}

func (l *hcl2Loader) decodeSources() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, blk := range l.blocks.OfType("source") {
		key := blk.Labels[0] + "." + blk.Labels[1]
		if prev, ok := l.sources[key]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate source block",
				Detail:   fmt.Sprintf("A source %q was already declared at %s. Source names must be unique per type.", key, prev.DefRange),
				Subject:  blk.DefRange.Ptr(),
			})
			continue
		}
		if !hclsyntax.ValidIdentifier(blk.Labels[1]) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid source name",
				Detail:   "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
				Subject:  blk.LabelRanges[1].Ptr(),
			})
		}
		l.sources[key] = blk
	}
	return diags
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Range.Filename != out[j].Range.Filename {
			return out[i].Range.Filename < out[j].Range.Filename
		}
		return out[i].Range.Start.Byte < out[j].Range.Start.Byte
	})
	return out
}

func decodeBool(a *hcl.Attribute, dst *bool) hcl.Diagnostics {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for attribute %q: bool required.", a.Name),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	*dst = v.True()
	return nil
}

// bodyTraversals lists the variables an HCL native body refers to,
// including nested blocks; JSON bodies report none.
func bodyTraversals(body hcl.Body) []hcl.Traversal {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []hcl.Traversal
	for _, a := range sb.Attributes {
		out = append(out, a.Expr.Variables()...)
	}
	for _, b := range sb.Blocks {
		out = append(out, bodyTraversals(b.Body)...)
	}
	return out
}

// checkExprs evaluates every attribute of an HCL native body, so that an
// undeclared variable or a failing function call is reported even when
// no plugin decodes the body (validate without plugin checks). Contents
// of dynamic blocks refer to iterators and are skipped.
func checkExprs(body hcl.Body, ctx *hcl.EvalContext) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	for _, a := range sortedSyntaxAttrs(sb.Attributes) {
		_, d := evalExpr(a.Expr, ctx)
		diags = append(diags, d...)
	}
	for _, b := range sb.Blocks {
		if b.Type == "dynamic" {
			continue
		}
		diags = append(diags, checkExprs(b.Body, ctx)...)
	}
	return diags
}

func sortedSyntaxAttrs(attrs hclsyntax.Attributes) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func setSensitive(b *Build, s []string) {
	if len(s) == 0 {
		return
	}
	b.Source.Sensitive = s
	for _, p := range b.Provisioners {
		p.Sensitive = s
	}
	if b.ErrorCleanupProvisioner != nil {
		b.ErrorCleanupProvisioner.Sensitive = s
	}
	for _, chain := range b.PostProcessors {
		for _, pp := range chain {
			pp.Sensitive = s
		}
	}
}
