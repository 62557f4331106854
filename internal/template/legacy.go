package template

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/google/uuid"
)

// initTime is the process start, as Packer's interpolate.InitTime: every
// {{timestamp}} and {{isotime}} of one run shows the same instant.
var initTime = time.Now().UTC()

// BuildTimeData is what a legacy {{ }} template may read with dot fields in
// ami_name, ami_description, tags, snapshot_tags, run_tags and friends. The
// loader leaves actions that use these fields verbatim, and the builder
// renders them with RenderBuildTime once the source AMI is known.
type BuildTimeData struct {
	BuildRegion           string
	SourceAMI             string
	SourceAMIName         string
	SourceAMIOwner        string
	SourceAMIOwnerName    string
	SourceAMICreationDate string
	SourceAMITags         map[string]string
	// Build answers {{ build `Key` }} (Packer's generated data, e.g. "ID").
	Build map[string]string
}

// RenderBuildTime renders the build-time actions left in s by the loader
// ({{ .SourceAMIName }}, {{ .SourceAMITags.Team | lower }}, ...). It is a
// no-op for strings without "{{", so callers can pass every templated field.
// Pure functions (lower, upper, split, replace, replace_all,
// clean_resource_name, timestamp, isotime, uuid) are available; a missing tag
// renders as "".
func RenderBuildTime(s string, data BuildTimeData) (string, error) {
	return RenderData(s, data)
}

// RenderData renders a legacy template against arbitrary data, for fields a
// plugin renders itself (the shell provisioner's execute_command with
// {{.Path}} and {{.Vars}}).
func RenderData(s string, data any) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	funcs := pureFuncs(initTime)
	funcs["build"] = func(key string) (string, error) {
		if d, ok := data.(BuildTimeData); ok {
			if v, ok := d.Build[key]; ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("build data %q is not available here", key)
	}
	t, err := template.New("legacy").Funcs(funcs).Option("missingkey=zero").Parse(s)
	if err != nil {
		return "", cleanTemplateError(err)
	}
	if len(t.Templates()) > 1 {
		return "", &templateError{summary: "Invalid template", msg: "{{define}} and {{block}} are not supported in Packer templates"}
	}
	if err := checkTree(t.Tree.Root); err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", cleanTemplateError(err)
	}
	return b.String(), nil
}

// legacyEnv is what the {{ }} engine sees while loading one build.
type legacyEnv struct {
	vars      map[string]string
	env       func(string) string
	enableEnv bool // only variable defaults may call env, as in Packer
	buildName string
	buildType string
	tmplDir   string
	now       time.Time
	file      string
	src       []byte          // the template, to narrow diagnostics inside strings
	pending   map[string]bool // variables not resolved yet
	cwd       string

	mu    sync.Mutex
	cache map[cacheKey]cachedValue

	// missing are the undeclared {{user}} names a render used: Packer
	// renders them as "" outside "variables"; we warn (renderExpr).
	missingMu sync.Mutex
	missing   []string

	funcsOnce sync.Once
	funcMap   template.FuncMap
	proto     *template.Template

	// volatileVars are the variables whose values read the clock or
	// randomness; volatile is set while rendering when the string does
	// (renderVolatile).
	volatileVars map[string]bool
	volatile     bool
}

// errPendingVar defers a variable default that reads another variable
// which is not resolved yet.
var errPendingVar = errors.New("pending variable")

// legacyFuncError is an error from one of our functions, as opposed to a
// text/template syntax or execution error.
type legacyFuncError struct {
	summary, detail string
}

func (e *legacyFuncError) Error() string { return e.summary + ": " + e.detail }

// contextFuncs depend on the load (variables, environment, build, clock) and
// are evaluated at load time even inside build-time actions.
var contextFuncs = map[string]bool{
	"user": true, "env": true, "build_name": true, "build_type": true,
	"template_dir": true, "pwd": true, "timestamp": true, "isotime": true,
	"uuid": true, "packer_version": true,
}

func pureFuncs(now time.Time) template.FuncMap {
	return template.FuncMap{
		"clean_resource_name": cleanResourceName,
		"lower":               strings.ToLower,
		"upper":               strings.ToUpper,
		"split": func(s, sep string, i int) (string, error) {
			parts := strings.Split(s, sep)
			if i < 0 || i >= len(parts) {
				return "", &legacyFuncError{"Invalid split index", fmt.Sprintf("split of %q by %q has %d parts; index %d is out of range", s, sep, len(parts), i)}
			}
			return parts[i], nil
		},
		"replace": func(old, new string, n int, s string) string {
			return strings.Replace(s, old, new, n)
		},
		"replace_all": func(old, new, s string) string {
			return strings.ReplaceAll(s, old, new)
		},
		"timestamp": func() string { return strconv.FormatInt(now.Unix(), 10) },
		"isotime": func(layout ...string) (string, error) {
			switch len(layout) {
			case 0:
				return now.Format(time.RFC3339), nil
			case 1:
				return now.Format(layout[0]), nil
			}
			return "", &legacyFuncError{"Invalid isotime call", fmt.Sprintf("isotime takes at most one layout argument, got %d", len(layout))}
		},
		"uuid":           func() string { return uuid.NewString() },
		"printf":         safePrintf,
		"packer_version": func() string { return PackerVersion },
	}
}

// funcs returns the function map, built once per environment.
func (e *legacyEnv) funcs() template.FuncMap {
	e.funcsOnce.Do(func() {
		e.funcMap = e.newFuncs()
		e.proto = template.New("legacy").Funcs(e.funcMap).Option("missingkey=zero")
	})
	return e.funcMap
}

// newTemplate returns an empty template with the functions: a clone of
// one made once, as Funcs checks every function by reflection.
func (e *legacyEnv) newTemplate() (*template.Template, error) {
	e.funcs()
	return e.proto.Clone()
}

func (e *legacyEnv) newFuncs() template.FuncMap {
	f := pureFuncs(e.now)
	// The clock and randomness make a value volatile: it changes every
	// run, and the input digest leaves it out.
	timestamp, isotime, newUUID := f["timestamp"].(func() string), f["isotime"].(func(...string) (string, error)), f["uuid"].(func() string)
	f["timestamp"] = func() string { e.volatile = true; return timestamp() }
	f["isotime"] = func(layout ...string) (string, error) { e.volatile = true; return isotime(layout...) }
	f["uuid"] = func() string { e.volatile = true; return newUUID() }
	getenv := e.env
	if getenv == nil {
		getenv = os.Getenv
	}
	f["user"] = func(name string) (string, error) {
		if e.pending[name] {
			return "", errPendingVar
		}
		v, ok := e.vars[name]
		if e.volatileVars[name] {
			e.volatile = true
		}
		if !ok && !e.enableEnv {
			e.missingMu.Lock()
			e.missing = append(e.missing, name)
			e.missingMu.Unlock()
			return "", nil
		}
		if !ok {
			detail := fmt.Sprintf("No variable named %q is declared in \"variables\".", name)
			names := make([]string, 0, len(e.vars))
			for k := range e.vars {
				names = append(names, k)
			}
			if s := legacySuggest(name, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			return "", &legacyFuncError{"Undefined user variable", detail}
		}
		return v, nil
	}
	f["env"] = func(name string) (string, error) {
		if !e.enableEnv {
			return "", &legacyFuncError{"Function env not allowed here", fmt.Sprintf("{{env `%s`}} may only be used in the default value of a variable in \"variables\"; declare a variable with that default and use {{user `name`}} here.", name)}
		}
		return getenv(name), nil
	}
	f["build_name"] = func() string { return e.buildName }
	f["build_type"] = func() string { return e.buildType }
	f["template_dir"] = func() (string, error) {
		if e.tmplDir == "" {
			return "", &legacyFuncError{"Function template_dir not available", "the template was not read from a file"}
		}
		return e.tmplDir, nil
	}
	f["pwd"] = func() (string, error) {
		if e.cwd != "" {
			return e.cwd, nil
		}
		return os.Getwd()
	}
	// build is answered at build time; at load time it never runs because
	// actions calling it are kept verbatim.
	f["build"] = func(string) (string, error) { return "", nil }
	return f
}

// renderVolatile is render that also reports whether the result read the
// clock or randomness, directly or through a variable. Not for concurrent
// use: callers hold e.mu or own e.
func (e *legacyEnv) renderVolatile(s string) (string, bool, error) {
	e.volatile = false
	out, err := e.render(s)
	return out, e.volatile, err
}

// render applies the {{ }} engine to one string. Actions that read build-time
// data (a dot field, a $variable, the build function) are re-emitted verbatim
// for RenderBuildTime; any load-time function calls inside them are replaced
// by their values first.
func (e *legacyEnv) render(s string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	funcs := e.funcs()
	t, err := e.newTemplate()
	if err == nil {
		_, err = t.Parse(s)
	}
	if err != nil {
		return "", cleanTemplateError(err)
	}
	if len(t.Templates()) > 1 {
		return "", &templateError{summary: "Invalid template", msg: "{{define}} and {{block}} are not supported in Packer templates"}
	}
	if err := checkTree(t.Tree.Root); err != nil {
		return "", err
	}
	root := t.Tree.Root
	if deferred(root) {
		spans, err := nodeSpans(s, root.Nodes)
		if err != nil {
			return "", err
		}
		nodes := make([]parse.Node, len(root.Nodes))
		for i, n := range root.Nodes {
			nodes[i] = n
			if !deferred(n) {
				continue
			}
			text := s[spans[i][0]:spans[i][1]]
			if usesContextFunc(n) {
				c := n.Copy()
				if err := e.substitute(c, funcs); err != nil {
					return "", err
				}
				text = c.String()
			}
			nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: n.Position(), Text: []byte(text)}
		}
		// Work on a copy so the parsed template stays intact for errors.
		t.Tree = t.Tree.Copy()
		t.Tree.Root.Nodes = nodes
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", cleanTemplateError(err)
	}
	return b.String(), nil
}

// deferred reports whether n reads build-time data.
func deferred(n parse.Node) bool {
	found := false
	walkNodes(n, func(n parse.Node) {
		switch n := n.(type) {
		case *parse.FieldNode, *parse.DotNode, *parse.VariableNode, *parse.ChainNode:
			found = true
		case *parse.IdentifierNode:
			if n.Ident == "build" {
				found = true
			}
		}
	})
	return found
}

func usesContextFunc(n parse.Node) bool {
	found := false
	walkNodes(n, func(n parse.Node) {
		if id, ok := n.(*parse.IdentifierNode); ok && contextFuncs[id.Ident] {
			found = true
		}
	})
	return found
}

// substitute replaces each call of a context function inside n by a string
// constant holding its value.
func (e *legacyEnv) substitute(n parse.Node, funcs template.FuncMap) error {
	var err error
	walkNodes(n, func(n parse.Node) {
		cmd, ok := n.(*parse.CommandNode)
		if !ok || err != nil || len(cmd.Args) == 0 {
			return
		}
		id, ok := cmd.Args[0].(*parse.IdentifierNode)
		if !ok || !contextFuncs[id.Ident] {
			return
		}
		var args []string
		for _, a := range cmd.Args[1:] {
			switch a := a.(type) {
			case *parse.StringNode:
				args = append(args, a.Text)
			default:
				err = &templateError{msg: fmt.Sprintf("the arguments of %s must be constant strings when the action also reads build-time data", id.Ident), offset: int(a.Position()), hasOffset: true}
				return
			}
		}
		// Execute the lone call through text/template so argument checking
		// and errors are the same as elsewhere.
		call := "{{" + id.Ident
		for _, a := range args {
			call += " " + strconv.Quote(a)
		}
		call += "}}"
		t, perr := template.New("legacy").Funcs(funcs).Parse(call)
		if perr != nil {
			err = cleanTemplateError(perr)
			return
		}
		var b strings.Builder
		if xerr := t.Execute(&b, nil); xerr != nil {
			err = cleanTemplateError(xerr)
			return
		}
		v := b.String()
		cmd.Args = []parse.Node{&parse.StringNode{NodeType: parse.NodeString, Pos: cmd.Pos, Quoted: strconv.Quote(v), Text: v}}
	})
	return err
}

// walkNodes calls f for n and every node below it.
func walkNodes(n parse.Node, f func(parse.Node)) {
	if n == nil {
		return
	}
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		f(x)
		for _, c := range x.Nodes {
			walkNodes(c, f)
		}
		return
	case *parse.PipeNode:
		if x == nil {
			return
		}
		f(x)
		for _, d := range x.Decl {
			walkNodes(d, f)
		}
		for _, c := range x.Cmds {
			walkNodes(c, f)
		}
		return
	}
	f(n)
	switch x := n.(type) {
	case *parse.ActionNode:
		walkNodes(x.Pipe, f)
	case *parse.CommandNode:
		for _, a := range x.Args {
			walkNodes(a, f)
		}
	case *parse.ChainNode:
		walkNodes(x.Node, f)
	case *parse.IfNode:
		walkNodes(x.Pipe, f)
		walkNodes(x.List, f)
		walkNodes(x.ElseList, f)
	case *parse.RangeNode:
		walkNodes(x.Pipe, f)
		walkNodes(x.List, f)
		walkNodes(x.ElseList, f)
	case *parse.WithNode:
		walkNodes(x.Pipe, f)
		walkNodes(x.List, f)
		walkNodes(x.ElseList, f)
	case *parse.TemplateNode:
		walkNodes(x.Pipe, f)
	}
}

// nodeSpans returns the [start,end) byte span of s that each top-level node
// was parsed from. text/template does not record where an action ends, so
// the string is split into text and {{ }} segments by a small scanner that
// skips quoted strings; a node runs from the segment holding its position
// to the segment before the next node's.
func nodeSpans(s string, nodes []parse.Node) ([][2]int, error) {
	segs := scanSegments(s)
	segOf := func(pos int) int {
		for i, sg := range segs {
			if pos >= sg[0] && pos < sg[1] {
				return i
			}
		}
		return len(segs) - 1
	}
	starts := make([]int, len(nodes))
	for i, n := range nodes {
		starts[i] = segOf(int(n.Position()))
	}
	spans := make([][2]int, len(nodes))
	for i := range nodes {
		first := starts[i]
		last := len(segs) - 1
		if i+1 < len(nodes) {
			last = starts[i+1] - 1
		}
		if last < first {
			return nil, &templateError{msg: "cannot separate build-time actions from the rest of the string; put each {{ }} action on its own"}
		}
		spans[i] = [2]int{segs[first][0], segs[last][1]}
	}
	return spans, nil
}

// scanSegments splits s into alternating text and action segments.
func scanSegments(s string) [][2]int {
	var segs [][2]int
	i, start := 0, 0
	for i < len(s) {
		if !strings.HasPrefix(s[i:], "{{") {
			i++
			continue
		}
		if i > start {
			segs = append(segs, [2]int{start, i})
		}
		j := i + 2
		if strings.HasPrefix(s[j:], "/*") {
			if k := strings.Index(s[j:], "*/"); k >= 0 {
				j += k + 2
			}
		}
	action:
		for j < len(s) {
			switch c := s[j]; c {
			case '"', '\'':
				j++
				for j < len(s) && s[j] != c {
					if s[j] == '\\' {
						j++
					}
					j++
				}
				j++
			case '`':
				j++
				for j < len(s) && s[j] != '`' {
					j++
				}
				j++
			case '}':
				if strings.HasPrefix(s[j:], "}}") {
					j += 2
					break action
				}
				j++
			default:
				j++
			}
		}
		j = min(j, len(s))
		segs = append(segs, [2]int{i, j})
		i, start = j, j
	}
	if start < len(s) {
		segs = append(segs, [2]int{start, len(s)})
	}
	return segs
}

// templateError is a syntax or execution error with the byte offset inside
// the template string where it happened, when known.
type templateError struct {
	summary   string
	msg       string
	offset    int
	hasOffset bool
	pending   bool // a {{user}} of a variable not resolved yet
}

func (e *templateError) Error() string { return e.msg }

// Compiled on first use: most runs never see a template error, and
// compiling at init would cost every command.
var undefinedFuncRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`function "([^"]*)" not defined`) })

var templateErrRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: (?:executing "[^"]*" at <[^>]*>: )?(?:error calling [a-z_]+: )?(.*)$`)
})

// cleanTemplateError turns text/template's "template: legacy:1:3: executing
// ..." into a readable message with an offset.
func cleanTemplateError(err error) error {
	var fe *legacyFuncError
	te := &templateError{summary: "Invalid template", msg: err.Error()}
	if m := templateErrRe().FindStringSubmatch(err.Error()); m != nil {
		te.msg = m[3]
		if m[1] == "1" && m[2] != "" {
			te.offset, _ = strconv.Atoi(m[2])
			te.hasOffset = true
		}
	}
	te.pending = errors.Is(err, errPendingVar)
	if errors.As(err, &fe) {
		te.summary, te.msg = fe.summary, fe.detail
	} else if strings.Contains(te.msg, "function") && strings.Contains(te.msg, "not defined") {
		te.summary = "Unknown template function"
		if m := undefinedFuncRe().FindStringSubmatch(te.msg); m != nil {
			te.msg = fmt.Sprintf("There is no function named %q.", m[1])
			if s := legacySuggest(m[1], legacyFuncNames()); s != "" {
				te.msg += fmt.Sprintf(" Did you mean %q?", s)
			}
		}
	}
	return te
}

func legacyFuncNames() []string {
	names := []string{"user", "env", "build_name", "build_type", "template_dir", "pwd", "build"}
	for k := range pureFuncs(initTime) {
		names = append(names, k)
	}
	return names
}

// cleanResourceName maps every byte AWS does not allow in an AMI name to
// "-", as the amazon plugin's clean_resource_name does (byte-wise, so a
// multi-byte character becomes several dashes).
func cleanResourceName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !amiNameByte(c) {
			b[i] = '-'
		}
	}
	return string(b)
}

func amiNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("()[] ./-'@_", c) >= 0
}

func absDir(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return filepath.Dir(path)
}

// legacySuggest returns the name in candidates closest to given, if close
// enough to be a likely typo.
func legacySuggest(given string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein(given, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// safePrintf is text/template's printf without huge widths or precisions
// ("%999999999s"), which would allocate gigabytes.
func safePrintf(format string, args ...any) (string, error) {
	n := 0
	for _, c := range format {
		if c >= '0' && c <= '9' {
			n = n*10 + int(c-'0')
			if n > 4096 {
				return "", &legacyFuncError{"Invalid printf format", "widths and precisions above 4096 are not supported"}
			}
			continue
		}
		n = 0
	}
	return fmt.Sprintf(format, args...), nil
}

// checkTree refuses what could make a template run unbounded: range over
// anything but build-time data (Go ranges over integers), and the
// template/define/block statements Packer templates do not use.
func checkTree(root *parse.ListNode) error {
	var err error
	walkNodes(root, func(n parse.Node) {
		if err != nil {
			return
		}
		switch n := n.(type) {
		case *parse.RangeNode:
			if !readsData(n.Pipe) {
				err = &templateError{summary: "Invalid template", msg: "range may only iterate over build-time data such as .SourceAMITags", offset: int(n.Position()), hasOffset: true}
			}
		case *parse.TemplateNode:
			err = &templateError{summary: "Invalid template", msg: "{{template}} is not supported in Packer templates", offset: int(n.Position()), hasOffset: true}
		}
	})
	return err
}

// readsData reports whether a range pipeline is a plain field, variable
// or dot: something that holds a collection rather than a computed number.
func readsData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode, *parse.DotNode, *parse.VariableNode, *parse.ChainNode:
		return true
	}
	return false
}
