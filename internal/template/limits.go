package template

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Limits on what amibake reads, so that hostile or mistaken input (a
// device, a FIFO, a huge or deeply nested file) gets an error instead of
// exhausting memory, hanging, or overflowing the stack of the recursive
// HCL and JSON parsers (Go aborts the process on a stack overflow; it
// cannot be recovered).
const (
	MaxTemplateSize = 16 << 20 // a template file
	maxVarFileSize  = 16 << 20 // a -var-file or *.auto.pkrvars.* file
	maxFileFuncSize = 64 << 20 // what file(), filebase64() and templatefile() read
	// MaxNesting is the deepest nesting of brackets, braces, parentheses
	// and ${ } a template may have; real templates stay under 20.
	MaxNesting = 1000
)

var bom = []byte{0xEF, 0xBB, 0xBF}

// checkRegular refuses what is not a regular file of at most limit bytes.
func checkRegular(path string, fi os.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		kind := "not a regular file"
		switch m := fi.Mode(); {
		case m&os.ModeNamedPipe != 0:
			kind = "a named pipe (FIFO)"
		case m&os.ModeCharDevice != 0:
			kind = "a character device"
		case m&os.ModeDevice != 0:
			kind = "a device"
		case m&os.ModeSocket != 0:
			kind = "a socket"
		}
		return fmt.Errorf("%s is %s; amibake reads only regular files", path, kind)
	}
	if fi.Size() > limit {
		return fmt.Errorf("%s is %s, more than the %s amibake reads", path, byteSize(fi.Size()), byteSize(limit))
	}
	return nil
}

// readRegular reads a regular file of at most limit bytes. It checks the
// file before opening it: opening a FIFO blocks until a writer comes.
func readRegular(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, osErrText(err))
	}
	if err := checkRegular(path, fi, limit); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, osErrText(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", path, osErrText(err))
	}
	if int64(len(b)) > limit { // it grew since Stat
		return nil, fmt.Errorf("%s is more than the %s amibake reads", path, byteSize(limit))
	}
	return b, nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkSource is run on every template and variable file before it is
// parsed: it names a UTF-8 byte order mark (which the parsers report as
// an unexpected character at column 1) and refuses nesting deeper than
// MaxNesting.
func checkSource(path string, src []byte, hclSyntax bool) hcl.Diagnostics {
	start := hcl.Pos{Line: 1, Column: 1}
	if bytes.HasPrefix(src, bom) {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "UTF-8 byte order mark",
			Detail:   fmt.Sprintf("%s starts with a UTF-8 byte order mark (bytes EF BB BF), which JSON and HCL do not allow (Packer refuses it too). Save the file as UTF-8 without a BOM.", path),
			Subject:  &hcl.Range{Filename: path, Start: start, End: hcl.Pos{Line: 1, Column: 2, Byte: 3}},
		}}
	}
	depth, at := nestingDepth(src, hclSyntax)
	if depth > MaxNesting {
		pos := posAt(src, at)
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Nesting too deep",
			Detail:   fmt.Sprintf("Brackets, braces and parentheses are nested more than %d levels deep here; no template needs that many. The file was not parsed.", MaxNesting),
			Subject:  &hcl.Range{Filename: path, Start: pos, End: hcl.Pos{Line: pos.Line, Column: pos.Column + 1, Byte: pos.Byte + 1}},
		}}
	}
	return nil
}

// nestingDepth returns the deepest nesting in src, and the offset where it
// first went over MaxNesting. Strings, comments and heredocs (HCL) are
// skipped, except for the ${ } and %{ } inside strings, which nest.
func nestingDepth(src []byte, hclSyntax bool) (int, int) {
	const (
		code = iota
		str
		interp // code inside ${ } of a string: its } returns to the string
	)
	stack := []int{code}
	maxDepth, overAt := 0, -1
	push := func(m, at int) {
		stack = append(stack, m)
		if d := len(stack) - 1; d > maxDepth {
			maxDepth = d
			if d > MaxNesting && overAt < 0 {
				overAt = at
			}
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		top := stack[len(stack)-1]
		if top == str {
			switch {
			case c == '\\':
				i++
			case c == '"':
				stack = stack[:len(stack)-1]
			case hclSyntax && (c == '$' || c == '%') && i+2 < len(src) && src[i+1] == c && src[i+2] == '{':
				i += 2 // $${ and %%{ are literals
			case hclSyntax && (c == '$' || c == '%') && i+1 < len(src) && src[i+1] == '{':
				push(interp, i)
				i++
			}
			continue
		}
		switch c {
		case '"':
			push(str, i)
		case '{', '[', '(':
			push(code, i)
		case '}', ']', ')':
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case '#':
			if hclSyntax {
				i = skipLine(src, i)
			}
		case '/':
			if !hclSyntax || i+1 >= len(src) {
				continue
			}
			switch src[i+1] {
			case '/':
				i = skipLine(src, i)
			case '*':
				if j := bytes.Index(src[i+2:], []byte("*/")); j >= 0 {
					i += j + 3
				} else {
					i = len(src)
				}
			}
		case '<':
			if hclSyntax && i+1 < len(src) && src[i+1] == '<' {
				i = skipHeredoc(src, i)
			}
		}
	}
	return maxDepth, overAt
}

func skipLine(src []byte, i int) int {
	if j := bytes.IndexByte(src[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(src)
}

// skipHeredoc skips <<EOF ... EOF (and <<-EOF); anything else after << is
// left to the parser.
func skipHeredoc(src []byte, i int) int {
	j := i + 2
	if j < len(src) && src[j] == '-' {
		j++
	}
	k := j
	for k < len(src) && (src[k] == '_' || src[k] >= 'A' && src[k] <= 'Z' || src[k] >= 'a' && src[k] <= 'z' || src[k] >= '0' && src[k] <= '9') {
		k++
	}
	if k == j || k >= len(src) || (src[k] != '\n' && src[k] != '\r') {
		return i + 1
	}
	marker := string(src[j:k])
	for p := k; p < len(src); {
		nl := bytes.IndexByte(src[p:], '\n')
		if nl < 0 {
			return len(src)
		}
		p += nl + 1
		end := p
		for end < len(src) && src[end] != '\n' {
			end++
		}
		if strings.TrimSpace(strings.TrimSuffix(string(src[p:end]), "\r")) == marker {
			return end - 1
		}
	}
	return len(src)
}

func posAt(src []byte, off int) hcl.Pos {
	if off < 0 || off > len(src) {
		off = 0
	}
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	col := off - (bytes.LastIndexByte(src[:off], '\n') + 1) + 1
	return hcl.Pos{Line: line, Column: col, Byte: off}
}

// guardFileFunc wraps file(), filebase64() and templatefile() so that the
// file they read must be a regular file of at most maxFileFuncSize bytes:
// file("/dev/zero") would otherwise read until memory runs out, and a
// FIFO would block forever.
func guardFileFunc(baseDir string, f function.Function) function.Function {
	spec := &function.Spec{
		Params:   f.Params(),
		VarParam: f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 0 && args[0].IsKnown() && !args[0].IsNull() && args[0].Type() == cty.String {
				p := args[0].AsString()
				if strings.HasPrefix(p, "~") {
					if home, err := os.UserHomeDir(); err == nil {
						p = filepath.Join(home, strings.TrimPrefix(p, "~"))
					}
				}
				if !filepath.IsAbs(p) {
					p = filepath.Join(baseDir, p)
				}
				if fi, err := os.Stat(p); err == nil {
					if err := checkRegular(p, fi, maxFileFuncSize); err != nil {
						return cty.NilVal, err
					}
				}
			}
			return f.Call(args)
		},
	}
	return function.New(spec)
}

// parseChecked reads an HCL2 template or variable file as a regular file
// of at most limit bytes, checks it (checkSource), and parses it.
func parseChecked(p *hclparse.Parser, path string, limit int64, summary string) (*hcl.File, hcl.Diagnostics) {
	src, err := readRegular(path, limit)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: sentence(err.Error())}}
	}
	if d := checkSource(path, src, true); d.HasErrors() {
		return nil, d
	}
	if strings.HasSuffix(path, ".json") {
		return p.ParseJSON(src, path)
	}
	return p.ParseHCL(src, path)
}

// sentence capitalises a message and ends it with a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
