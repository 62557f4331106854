package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// Keys the template layer handles itself; they never reach a plugin.
var (
	jsonBuilderKeys     = []string{"type", "name"}
	jsonProvisionerKeys = []string{"type", "name", "only", "except", "override", "pause_before", "max_retries", "timeout"}
	jsonPostKeys        = []string{"type", "name", "only", "except", "keep_input_artifact"}
	jsonRootKeys        = []string{"description", "min_packer_version", "variables", "sensitive-variables", "builders", "provisioners", "post-processors", "error-cleanup-provisioner"}
)

// jsonLoader holds the state of loading one legacy JSON template.
type jsonLoader struct {
	path  string
	src   []byte
	opts  LoadOptions
	now   time.Time
	tmpl  *Template
	diags hcl.Diagnostics

	tmplDir string // {{template_dir}}: the template's absolute directory
	vars    map[string]string
	// volatileVars are the variables whose values read the clock or
	// randomness ({{timestamp}} in a default).
	volatileVars map[string]bool
	varDecl      map[string]*Variable
	builders     []*jsonBuilder
	provs        []jsonItemsAt
	errCleanup   *jsonItemsAt // "error-cleanup-provisioner"
	posts        [][]jsonItemsAt
	buildName    map[string]bool
}

type jsonBuilder struct {
	typ, name string
	expr      hcl.Expression
	items     []jsonItem
}

// jsonItemsAt is a provisioner or post-processor object (or a bare string
// post-processor type, with items nil).
type jsonItemsAt struct {
	expr  hcl.Expression
	items []jsonItem
	typ   string
}

// loadJSON loads a legacy Packer JSON template. Every diagnostic carries
// the file:line:col of the JSON value it is about.
func loadJSON(path string, src []byte, opts LoadOptions) (*Template, hcl.Diagnostics) {
	l := &jsonLoader{
		path:         path,
		src:          src,
		opts:         opts,
		now:          opts.now(),
		tmpl:         &Template{Path: path, Format: FormatJSON, Files: map[string]*hcl.File{}},
		vars:         map[string]string{},
		volatileVars: map[string]bool{},
		varDecl:      map[string]*Variable{},
		buildName:    map[string]bool{},
	}
	l.tmpl.Files[path] = &hcl.File{Body: hcl.EmptyBody(), Bytes: src}
	abs := path
	if !filepath.IsAbs(abs) && opts.Cwd != "" {
		abs = filepath.Join(opts.Cwd, abs)
	}
	l.tmplDir = absDir(abs)
	if d := checkSource(path, src, false); d.HasErrors() {
		return l.tmpl, d
	}
	root, diags := hcljson.ParseExpression(src, path)
	if diags.HasErrors() {
		return l.tmpl, fixSyntaxDiags(path, src, diags)
	}
	items, ok := jsonItems(root)
	if !ok {
		return l.tmpl, hcl.Diagnostics{l.typeDiag(root, "The template must be a JSON object", "object")}
	}
	if opts.SyntaxOnly {
		return l.tmpl, nil
	}
	// Keep going after errors where the next phase does not depend on what
	// failed, so that one validate run reports as much as it can.
	l.root(items)
	before := len(l.diags.Errs())
	l.resolveVariables()
	if len(l.diags.Errs()) == before {
		l.builds()
	}
	l.tmpl.Sensitive = dedupeStrings(l.tmpl.Sensitive)
	for _, b := range l.tmpl.Builds {
		setSensitive(b, l.tmpl.Sensitive)
	}
	l.diags = uniqueDiags(l.diags)
	for _, d := range l.diags {
		if d.Severity == hcl.DiagWarning {
			l.tmpl.Warnings = append(l.tmpl.Warnings, d)
		}
	}
	return l.tmpl, l.diags
}

func (l *jsonLoader) errorf(subject hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

func (l *jsonLoader) typeDiag(expr hcl.Expression, what, want string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Incorrect JSON value type",
		Detail:   fmt.Sprintf("%s; found %s, expected %s.", what, article(jsonKind(expr)), article(want)),
		Subject:  expr.StartRange().Ptr(),
	}
}

// root reads the top-level keys; keys starting with "_" are comments, as
// in Packer.
func (l *jsonLoader) root(items []jsonItem) {
	seen := map[string]hcl.Range{}
	var sensitive jsonItem
	for _, it := range items {
		if strings.HasPrefix(it.Name, "_") {
			continue
		}
		if prev, dup := seen[it.Name]; dup {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate key",
				Detail:   fmt.Sprintf("The key %q was already set at %s.", it.Name, prev),
				Subject:  it.NameRange.Ptr(),
			})
			continue
		}
		seen[it.Name] = it.NameRange
		switch it.Name {
		case "description":
			if s, ok := l.str(it, "description"); ok {
				l.tmpl.Description = s
			}
		case "min_packer_version":
			if s, ok := l.str(it, "min_packer_version"); ok {
				l.tmpl.RequiredVersion = s
			}
		case "variables":
			l.declareVariables(it)
		case "sensitive-variables":
			sensitive = it
		case "builders":
			l.readBuilders(it)
		case "provisioners":
			l.readProvisioners(it)
		case "post-processors":
			l.readPostProcessors(it)
		case "error-cleanup-provisioner":
			// Packer's legacy templates take one provisioner object here
			// (template.Template.CleanupProvisioner); it runs when a build
			// fails, as the HCL2 error-cleanup-provisioner block.
			if items, ok := l.objectItems(it.Expr, "error-cleanup-provisioner"); ok {
				l.errCleanup = &jsonItemsAt{expr: it.Expr, items: items, typ: l.typeOf(it.Expr, items, "error-cleanup-provisioner")}
			}
		default:
			detail := fmt.Sprintf("%q is not a top-level key of a Packer JSON template.", it.Name)
			if s := legacySuggest(it.Name, jsonRootKeys); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += " Keys starting with \"_\" are comments."
			}
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported key", Detail: detail, Subject: it.NameRange.Ptr()})
		}
	}
	if sensitive.Expr != nil {
		l.markSensitive(sensitive)
	}
	if _, ok := seen["builders"]; !ok {
		l.errorf(hcl.Range{Filename: l.path, Start: hcl.InitialPos, End: hcl.InitialPos}, "Missing builders",
			"A template needs at least one builder in \"builders\".")
	}
}

// str reads a string value.
func (l *jsonLoader) str(it jsonItem, what string) (string, bool) {
	v, _ := it.Expr.Value(nil)
	if v.IsNull() || v.Type() != cty.String {
		l.diags = append(l.diags, l.typeDiag(it.Expr, fmt.Sprintf("Invalid value for %q", what), "string"))
		return "", false
	}
	return v.AsString(), true
}

func (l *jsonLoader) strList(it jsonItem) []string {
	elems, ok := jsonList(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, fmt.Sprintf("Invalid value for %q", it.Name), "array of strings"))
		return nil
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		v, _ := e.Value(nil)
		if v.IsNull() || v.Type() != cty.String {
			l.diags = append(l.diags, l.typeDiag(e, fmt.Sprintf("Invalid element in %q", it.Name), "string"))
			continue
		}
		out = append(out, v.AsString())
	}
	return out
}

// declareVariables reads "variables": each default is a string, or null for
// a required variable; numbers and booleans are weakly converted as
// Packer's decoder does.
func (l *jsonLoader) declareVariables(it jsonItem) {
	items, ok := jsonItems(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"variables\"", "object of name to default value"))
		return
	}
	seen := map[string]hcl.Range{}
	for _, v := range items {
		if prev, dup := seen[v.Name]; dup {
			l.errorf(v.NameRange, "Duplicate variable", "The variable %q was already declared at %s.", v.Name, prev)
			continue
		}
		seen[v.Name] = v.NameRange
		decl := &Variable{Name: v.Name, Type: cty.String, DeclRange: v.rng()}
		val, _ := v.Expr.Value(nil)
		switch {
		case val.IsNull():
			decl.Default = cty.NilVal
		case val.Type() == cty.String:
			decl.Default = val
		case val.Type() == cty.Number:
			decl.Default = cty.StringVal(val.AsBigFloat().Text('f', -1))
		case val.Type() == cty.Bool:
			s := "0"
			if val.True() {
				s = "1"
			}
			decl.Default = cty.StringVal(s)
		default:
			l.diags = append(l.diags, l.typeDiag(v.Expr, fmt.Sprintf("Invalid default for variable %q: legacy JSON variables are strings (null makes the variable required)", v.Name), "string"))
			continue
		}
		l.varDecl[v.Name] = decl
		l.tmpl.Variables = append(l.tmpl.Variables, decl)
	}
}

func (l *jsonLoader) markSensitive(it jsonItem) {
	elems, ok := jsonList(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"sensitive-variables\"", "array of variable names"))
		return
	}
	for _, e := range elems {
		v, _ := e.Value(nil)
		if v.IsNull() || v.Type() != cty.String {
			l.diags = append(l.diags, l.typeDiag(e, "Invalid element in \"sensitive-variables\"", "string"))
			continue
		}
		decl := l.varDecl[v.AsString()]
		if decl == nil {
			detail := fmt.Sprintf("%q is listed in \"sensitive-variables\" but not declared in \"variables\".", v.AsString())
			if s := legacySuggest(v.AsString(), l.varNames()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undefined sensitive variable", Detail: detail, Subject: e.Range().Ptr()})
			continue
		}
		decl.Sensitive = true
	}
}

func (l *jsonLoader) varNames() []string {
	names := make([]string, 0, len(l.varDecl))
	for n := range l.varDecl {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolveVariables applies, lowest first: defaults, -var-file files in
// order, -var. Packer reads no PKR_VAR_ environment for JSON templates.
// Then {{ }} in values are rendered, a value may use {{user}} of another.
func (l *jsonLoader) resolveVariables() {
	raw := map[string]string{}
	origin := map[string]hcl.Range{}
	for _, v := range l.tmpl.Variables {
		if v.Default != cty.NilVal {
			raw[v.Name] = v.Default.AsString()
		}
		origin[v.Name] = v.DeclRange
	}
	for _, f := range l.opts.VarFiles {
		l.readVarFile(f, raw, origin)
	}
	for _, k := range sortedKeys(l.opts.Vars) {
		if l.varDecl[k] == nil {
			detail := fmt.Sprintf("-var %s=... sets a variable that the template does not declare in \"variables\".", k)
			if s := legacySuggest(k, l.varNames()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Undefined -var variable", Detail: detail})
			continue
		}
		raw[k] = l.opts.Vars[k]
	}
	before := len(l.diags.Errs())
	for _, v := range l.tmpl.Variables {
		if _, ok := raw[v.Name]; !ok {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unset required variable",
				Detail:   fmt.Sprintf("The variable %q has no default (null) and was given no value; set it with -var '%s=...' or in a -var-file.", v.Name, v.Name),
				Subject:  v.DeclRange.Ptr(),
			})
		}
	}
	if len(l.diags.Errs()) > before {
		return
	}

	pending := map[string]bool{}
	for k, v := range raw {
		if strings.Contains(v, "{{") {
			pending[k] = true
		} else {
			l.vars[k] = v
		}
	}
	env := &legacyEnv{vars: l.vars, env: l.opts.env, enableEnv: true, tmplDir: l.tmplDir, now: l.now,
		file: l.path, src: l.src, pending: pending, cwd: l.opts.Cwd, volatileVars: l.volatileVars}
	for len(pending) > 0 {
		progress := false
		for _, k := range sortedKeys(pending) {
			out, volatile, err := env.renderVolatile(raw[k])
			if te, ok := err.(*templateError); ok && te.pending {
				continue
			}
			delete(pending, k)
			progress = true
			if err != nil {
				l.diags = append(l.diags, env.templateDiag(err, raw[k], l.valueRange(k, origin)))
				continue
			}
			l.vars[k] = out
			if volatile {
				l.volatileVars[k] = true
			}
		}
		if !progress {
			for _, k := range sortedKeys(pending) {
				l.errorf(origin[k], "Variable cycle", "The value of %q uses {{user}} of a variable that, directly or not, uses %q.", k, k)
			}
			break
		}
	}
	for _, v := range l.tmpl.Variables {
		if s, ok := l.vars[v.Name]; ok {
			v.Value = cty.StringVal(s)
			if v.Sensitive && s != "" {
				l.tmpl.Sensitive = append(l.tmpl.Sensitive, s)
			}
		}
	}
}

// valueRange points at a variable's value when it is in the template.
func (l *jsonLoader) valueRange(name string, origin map[string]hcl.Range) hcl.Range {
	return origin[name]
}

// readVarFile reads a legacy -var-file: a JSON object of strings.
func (l *jsonLoader) readVarFile(path string, raw map[string]string, origin map[string]hcl.Range) {
	src, err := readRegular(path, maxVarFileSize)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Failed to read variable file", Detail: sentence(err.Error())})
		return
	}
	if strings.HasSuffix(path, ".hcl") {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Wrong variable file format",
			Detail: fmt.Sprintf("%s is an HCL2 variable file; legacy JSON templates read JSON variable files ({\"name\": \"value\"}), as Packer does.", path)})
		return
	}
	l.tmpl.Files[path] = &hcl.File{Body: hcl.EmptyBody(), Bytes: src}
	if d := checkSource(path, src, false); d.HasErrors() {
		l.diags = append(l.diags, d...)
		return
	}
	expr, diags := hcljson.ParseExpression(src, path)
	if diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return
	}
	items, ok := jsonItems(expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(expr, "A variable file must be a JSON object", "object"))
		return
	}
	for _, it := range items {
		if l.varDecl[it.Name] == nil {
			// Packer's legacy templates still let {{user}} read it.
			detail := fmt.Sprintf("The template declares no variable %q in \"variables\"; {{user `%s`}} still reads this value, as in Packer.", it.Name, it.Name)
			if s := legacySuggest(it.Name, l.varNames()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Undefined variable", Detail: detail, Subject: it.NameRange.Ptr()})
		}
		v, _ := it.Expr.Value(nil)
		switch {
		case v.IsNull():
			raw[it.Name] = "" // Packer reads null as ""
		case !v.IsNull() && v.Type() == cty.String:
			raw[it.Name] = v.AsString()
		case !v.IsNull() && v.Type() == cty.Number:
			raw[it.Name] = v.AsBigFloat().Text('f', -1)
		case !v.IsNull() && v.Type() == cty.Bool:
			raw[it.Name] = strconv.FormatBool(v.True())
		default:
			l.diags = append(l.diags, l.typeDiag(it.Expr, fmt.Sprintf("Invalid value for variable %q", it.Name), "string"))
			continue
		}
		origin[it.Name] = it.rng()
	}
}

func (l *jsonLoader) objectItems(expr hcl.Expression, what string) ([]jsonItem, bool) {
	items, ok := jsonItems(expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(expr, "Invalid "+what, "object"))
	}
	return items, ok
}

// typeOf reads the required "type" key of a plugin object.
func (l *jsonLoader) typeOf(expr hcl.Expression, items []jsonItem, what string) string {
	for _, it := range items {
		if it.Name == "type" {
			s, _ := l.str(it, "type")
			if s == "" {
				l.errorf(it.Expr.Range(), "Missing "+what+" type", "The \"type\" of a %s must be a non-empty string.", what)
			}
			return s
		}
	}
	l.errorf(expr.StartRange(), "Missing "+what+" type", "Every %s needs a \"type\", such as \"amazon-ebs\".", what)
	return ""
}

func (l *jsonLoader) readBuilders(it jsonItem) {
	elems, ok := jsonList(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"builders\"", "array of builder objects"))
		return
	}
	if len(elems) == 0 {
		l.errorf(it.Expr.Range(), "Missing builders", "A template needs at least one builder in \"builders\".")
	}
	seen := map[string]hcl.Range{}
	for _, e := range elems {
		items, ok := l.objectItems(e, "builder")
		if !ok {
			continue
		}
		b := &jsonBuilder{expr: e, items: items, typ: l.typeOf(e, items, "builder")}
		b.name = b.typ
		nameRange := e.StartRange()
		for _, kv := range items {
			if kv.Name == "name" {
				if s, ok := l.str(kv, "name"); ok && s != "" {
					b.name, nameRange = s, kv.Expr.Range()
				}
			}
		}
		if b.name == "" {
			continue
		}
		if prev, dup := seen[b.name]; dup {
			l.errorf(nameRange, "Duplicate builder name", "A builder named %q is already defined at %s; give each builder a unique \"name\".", b.name, prev)
			continue
		}
		seen[b.name] = nameRange
		l.buildName[b.name] = true
		l.builders = append(l.builders, b)
	}
}

func (l *jsonLoader) readProvisioners(it jsonItem) {
	elems, ok := jsonList(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"provisioners\"", "array of provisioner objects"))
		return
	}
	for _, e := range elems {
		if items, ok := l.objectItems(e, "provisioner"); ok {
			l.provs = append(l.provs, jsonItemsAt{expr: e, items: items, typ: l.typeOf(e, items, "provisioner")})
		}
	}
}

// readPostProcessors reads "post-processors": each element is a type name,
// an object, or an array of those forming a chain.
func (l *jsonLoader) readPostProcessors(it jsonItem) {
	elems, ok := jsonList(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"post-processors\"", "array"))
		return
	}
	one := func(e hcl.Expression) (jsonItemsAt, bool) {
		if items, ok := jsonItems(e); ok {
			return jsonItemsAt{expr: e, items: items, typ: l.typeOf(e, items, "post-processor")}, true
		}
		v, _ := e.Value(nil)
		if !v.IsNull() && v.Type() == cty.String {
			return jsonItemsAt{expr: e, typ: v.AsString()}, true
		}
		l.diags = append(l.diags, l.typeDiag(e, "Invalid post-processor", "type name string or an object"))
		return jsonItemsAt{}, false
	}
	for _, e := range elems {
		if chainElems, ok := jsonList(e); ok {
			var chain []jsonItemsAt
			for _, ce := range chainElems {
				if _, nested := jsonList(ce); nested {
					l.diags = append(l.diags, l.typeDiag(ce, "Invalid post-processor in a chain (chains cannot nest)", "type name string or an object"))
					continue
				}
				if p, ok := one(ce); ok {
					chain = append(chain, p)
				}
			}
			if len(chain) > 0 {
				l.posts = append(l.posts, chain)
			}
			continue
		}
		if p, ok := one(e); ok {
			l.posts = append(l.posts, []jsonItemsAt{p})
		}
	}
}

// pluginItems drops the keys Packer handles itself.
func pluginItems(items []jsonItem, hidden []string) []jsonItem {
	out := make([]jsonItem, 0, len(items))
	for _, it := range items {
		skip := false
		for _, h := range hidden {
			if it.Name == h {
				skip = true
				break
			}
		}
		if !skip {
			out = append(out, it)
		}
	}
	return out
}

// buildFilter holds a provisioner's or post-processor's only/except.
type buildFilter struct {
	only, except []string
}

func (f buildFilter) match(name string) bool {
	if len(f.only) > 0 {
		for _, o := range f.only {
			if o == name {
				return true
			}
		}
		return false
	}
	for _, x := range f.except {
		if x == name {
			return false
		}
	}
	return true
}

// filterOf reads only/except and checks that they name builders.
func (l *jsonLoader) filterOf(items []jsonItem) buildFilter {
	var f buildFilter
	var onlyItem, exceptItem *jsonItem
	for i, it := range items {
		switch it.Name {
		case "only":
			f.only, onlyItem = l.strList(it), &items[i]
		case "except":
			f.except, exceptItem = l.strList(it), &items[i]
		default:
			continue
		}
		for j, name := range l.strListQuiet(it) {
			if !l.buildName[name] {
				elems, _ := jsonList(it.Expr)
				detail := fmt.Sprintf("%q in %q is not the name of a builder.", name, it.Name)
				if s := legacySuggest(name, sortedKeys(l.buildName)); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown build name", Detail: detail, Subject: elems[j].Range().Ptr()})
			}
		}
	}
	if onlyItem != nil && exceptItem != nil {
		l.errorf(exceptItem.NameRange, "Conflicting only and except", "Only one of \"only\" and \"except\" may be set (only is at %s).", onlyItem.NameRange)
	}
	return f
}

// strListQuiet is strList without diagnostics (already reported).
func (l *jsonLoader) strListQuiet(it jsonItem) []string {
	elems, _ := jsonList(it.Expr)
	out := make([]string, len(elems))
	for i, e := range elems {
		if v, _ := e.Value(nil); !v.IsNull() && v.Type() == cty.String {
			out[i] = v.AsString()
		}
	}
	return out
}

func (l *jsonLoader) duration(it jsonItem) time.Duration {
	s, ok := l.str(it, it.Name)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.errorf(it.Expr.Range(), "Invalid duration", "%q is not a duration for %q; use a number with a unit, such as \"30s\", \"5m\" or \"1h30m\".", s, it.Name)
	}
	return d
}

func (l *jsonLoader) intValue(it jsonItem) int {
	v, _ := it.Expr.Value(nil)
	var s string
	switch {
	case !v.IsNull() && v.Type() == cty.Number:
		s = v.AsBigFloat().Text('f', -1)
	case !v.IsNull() && v.Type() == cty.String:
		s = v.AsString()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		l.errorf(it.Expr.Range(), "Invalid number", "%q must be a whole number of at least 0.", it.Name)
	}
	return n
}

func (l *jsonLoader) env(b *jsonBuilder) *legacyEnv {
	return &legacyEnv{vars: l.vars, env: l.opts.env, buildName: b.name, buildType: b.typ, tmplDir: l.tmplDir,
		now: l.now, file: l.path, src: l.src, cwd: l.opts.Cwd, volatileVars: l.volatileVars}
}

// block makes a plugin block; its DefRange is the "type" property, the
// nearest thing JSON has to a block header.
func (l *jsonLoader) block(typ, name string, expr hcl.Expression, all, items []jsonItem, env *legacyEnv) Block {
	def := expr.Range()
	if all != nil {
		def = expr.StartRange()
	}
	for _, it := range all {
		if it.Name == "type" {
			def = it.rng()
		}
	}
	return Block{
		Type:     typ,
		Name:     name,
		Body:     newLegacyBody(expr, items, env),
		Ctx:      &hcl.EvalContext{},
		DefRange: def,
	}
}

// builds makes one Build per builder, with the provisioners and
// post-processors that apply to it, each rendered for that build.
func (l *jsonLoader) builds() {
	type provMeta struct {
		filter      buildFilter
		override    map[string]jsonOverride
		pause, tout time.Duration
		retries     int
		name        string
	}
	provs := l.provs
	if l.errCleanup != nil {
		provs = append(slices.Clip(provs), *l.errCleanup) // the last: see below
	}
	metas := make([]provMeta, len(provs))
	for i, p := range provs {
		m := provMeta{filter: l.filterOf(p.items)}
		for _, it := range p.items {
			switch it.Name {
			case "name":
				m.name, _ = l.str(it, "name")
			case "pause_before":
				m.pause = l.duration(it)
			case "timeout":
				m.tout = l.duration(it)
			case "max_retries":
				m.retries = l.intValue(it)
			case "override":
				m.override = l.overrides(it)
			}
		}
		metas[i] = m
	}
	postFilters := make([][]buildFilter, len(l.posts))
	for i, chain := range l.posts {
		for _, p := range chain {
			postFilters[i] = append(postFilters[i], l.filterOf(p.items))
		}
	}
	for _, b := range l.builders {
		env := l.env(b)
		build := &Build{Name: b.name, PackerName: b.name}
		if b.name != b.typ {
			build.Label = b.typ + "." + b.name // Packer 1.16's prefix for named JSON builders
		}
		src := l.block(b.typ, b.name, b.expr, b.items, pluginItems(b.items, jsonBuilderKeys), env)
		build.Source = &src
		l.check(src.Body)
		for i, p := range provs {
			m := metas[i]
			if !m.filter.match(b.name) {
				continue
			}
			items := pluginItems(p.items, jsonProvisionerKeys)
			prov := &Provisioner{Only: m.filter.only, Except: m.filter.except, PauseBefore: m.pause, MaxRetries: m.retries, Timeout: m.tout}
			prov.Block = l.block(p.typ, m.name, p.expr, p.items, items, env)
			l.check(prov.Body)
			// Packer merges the override's keys over the provisioner's for
			// that build; the plugin registry applies Override that way.
			for name, ov := range m.override {
				if prov.Override == nil {
					prov.Override = map[string]hcl.Body{}
				}
				body := &legacyBody{items: ov.items, rng: ov.rng, env: env}
				prov.Override[name] = body
				if name == b.name {
					l.check(body)
				}
			}
			if l.errCleanup != nil && i == len(provs)-1 {
				build.ErrorCleanupProvisioner = prov
				continue
			}
			build.Provisioners = append(build.Provisioners, prov)
		}
		for i, chain := range l.posts {
			var out []*PostProcessor
			for j, p := range chain {
				f := postFilters[i][j]
				if !f.match(b.name) {
					continue
				}
				pp := &PostProcessor{Only: f.only, Except: f.except}
				var name string
				for _, it := range p.items {
					switch it.Name {
					case "name":
						name, _ = l.str(it, "name")
					case "keep_input_artifact":
						if v, _ := it.Expr.Value(nil); !v.IsNull() && v.Type() == cty.Bool {
							keep := v.True()
							pp.KeepInputArtifact = &keep
						} else {
							l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"keep_input_artifact\"", "bool"))
						}
					}
				}
				pp.Block = l.block(p.typ, name, p.expr, p.items, pluginItems(p.items, jsonPostKeys), env)
				l.check(pp.Body)
				out = append(out, pp)
			}
			if len(out) > 0 {
				build.PostProcessors = append(build.PostProcessors, out)
			}
		}
		l.tmpl.Builds = append(l.tmpl.Builds, build)
	}
}

// check renders every string of a body now, so that validate reports bad
// {{ }} without the plugin decoding its settings.
func (l *jsonLoader) check(body hcl.Body) {
	lb := body.(*legacyBody)
	for _, it := range lb.items {
		_, d := lb.env.value(it.Expr)
		l.diags = append(l.diags, d...)
	}
}

// overrides reads a provisioner's "override": build name to settings.
type jsonOverride struct {
	items []jsonItem
	rng   hcl.Range
}

func (l *jsonLoader) overrides(it jsonItem) map[string]jsonOverride {
	items, ok := jsonItems(it.Expr)
	if !ok {
		l.diags = append(l.diags, l.typeDiag(it.Expr, "Invalid \"override\"", "object of build name to settings"))
		return nil
	}
	out := map[string]jsonOverride{}
	for _, o := range items {
		if !l.buildName[o.Name] {
			detail := fmt.Sprintf("%q in \"override\" is not the name of a builder.", o.Name)
			if s := legacySuggest(o.Name, sortedKeys(l.buildName)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown build name", Detail: detail, Subject: o.NameRange.Ptr()})
			continue
		}
		settings, ok := jsonItems(o.Expr)
		if !ok {
			l.diags = append(l.diags, l.typeDiag(o.Expr, fmt.Sprintf("Invalid override for %q", o.Name), "object"))
			continue
		}
		out[o.Name] = jsonOverride{items: pluginItems(settings, jsonProvisionerKeys), rng: o.Expr.Range()}
	}
	return out
}

// article prefixes a noun with "a" or "an".
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func dedupeStrings(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// uniqueDiags drops repeats: a provisioner is rendered once per build.
func uniqueDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		key := d.Summary + "\x00" + d.Detail
		if d.Subject != nil {
			key += "\x00" + d.Subject.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	return out
}

// fixSyntaxDiags replaces the JSON parser's syntax errors by one from
// encoding/json, whose offset is exactly where the input goes wrong (HCL's
// parser points past its error recovery, possibly lines further down).
func fixSyntaxDiags(path string, src []byte, diags hcl.Diagnostics) hcl.Diagnostics {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(src, &v); !errors.As(err, &se) {
		return diags
	}
	off := int(se.Offset) - 1
	summary, detail := "Invalid JSON", "The template is not valid JSON: "+se.Error()+"."
	msg := se.Error()
	switch {
	case strings.Contains(msg, "after object key:value pair"), strings.Contains(msg, "after array element"):
		summary, detail = "Missing comma", "A comma must separate the items of a JSON object or array; one is missing before this."
	case strings.Contains(msg, "looking for beginning of object key string"):
		summary, detail = "Invalid object key", "A JSON object key must be a double-quoted string here (JSON allows no trailing comma and no comments)."
	case strings.Contains(msg, "looking for beginning of value"):
		summary, detail = "Invalid JSON value", "A JSON value (string in double quotes, number, true, false, null, object or array) was expected here (JSON allows no trailing comma)."
	case strings.Contains(msg, "unexpected end of JSON input"):
		summary, detail = "Unexpected end of file", "The template ends before every object and array is closed."
		off = len(src) - 1
	}
	off = max(0, min(off, len(src)))
	pos := hcl.Pos{Byte: off, Line: 1, Column: 1}
	for _, c := range string(src[:off]) {
		if c == '\n' {
			pos.Line++
			pos.Column = 1
		} else {
			pos.Column++
		}
	}
	end := pos
	if off < len(src) {
		end.Byte++
		end.Column++
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  &hcl.Range{Filename: path, Start: pos, End: end},
	}}
}
