package template

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadInput feeds what was tried adversarially in issue 11: each case
// must end in a clear error, quickly, without a crash, a hang or a huge
// message.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.pkr.hcl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoJSON := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifoJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	good := write("good.json", []byte(`{"builders": [{"type": "amazon-ebs", "ami_name": "x"}]}`))
	goodHCL := `source "amazon-ebs" "x" {
  ami_name = %s
}
build {
  sources = ["source.amazon-ebs.x"]
}
`
	huge := make([]byte, MaxTemplateSize+10)
	for i := range huge {
		huge[i] = ' '
	}
	for _, tc := range []struct {
		name, path string
		opts       LoadOptions
		want       string
	}{
		{"HCL nested 100k deep", write("deep.pkr.hcl", []byte("locals {\n  x = "+strings.Repeat("[", 100000)+"\n}\n")), LoadOptions{}, "Nesting too deep"},
		{"JSON nested 200k deep", write("deep.json", []byte(`{"builders": `+strings.Repeat("[", 200000))), LoadOptions{}, "Nesting too deep"},
		{"HCL nested through ${} in strings", write("interp.pkr.hcl", []byte("locals {\n  x = \""+strings.Repeat("${", 5000)+"\"\n}\n")), LoadOptions{}, "Nesting too deep"},
		{"/dev/zero as a JSON template", link("zero.json", "/dev/zero"), LoadOptions{}, "character device"},
		{"/dev/zero as an HCL template", link("zero.pkr.hcl", "/dev/zero"), LoadOptions{}, "character device"},
		{"/dev/zero as an HCL -var-file", write("v.pkr.hcl", []byte(strings.Replace(goodHCL, "%s", `"x"`, 1))), LoadOptions{VarFiles: []string{"/dev/zero"}}, "character device"},
		{"a FIFO as a template", fifo, LoadOptions{}, "named pipe (FIFO)"},
		{"a FIFO as a JSON template", fifoJSON, LoadOptions{}, "named pipe (FIFO)"},
		{"/dev/zero as a -var-file (JSON template)", good, LoadOptions{VarFiles: []string{"/dev/zero"}}, "character device"},
		{"/dev/zero through file()", write("file.pkr.hcl", []byte(strings.Replace(goodHCL, "%s", `file("/dev/zero")`, 1))), LoadOptions{}, "character device"},
		{"a FIFO through file()", write("fifo-file.pkr.hcl", []byte(strings.Replace(goodHCL, "%s", `file("`+fifo+`")`, 1))), LoadOptions{}, "named pipe (FIFO)"},
		{"a template over the size cap", write("huge.json", huge), LoadOptions{}, "more than the 16.0 MiB"},
		{"a UTF-8 BOM in a JSON template", write("bom.json", append([]byte{0xEF, 0xBB, 0xBF}, `{"builders": []}`...)), LoadOptions{}, "UTF-8 byte order mark"},
		{"a UTF-8 BOM in an HCL template", write("bom.pkr.hcl", append([]byte{0xEF, 0xBB, 0xBF}, "locals {}\n"...)), LoadOptions{}, "UTF-8 byte order mark"},
		{"a missing .hcl -var-file with a JSON template", good, LoadOptions{VarFiles: []string{filepath.Join(dir, "nope.pkrvars.hcl")}}, "no such file or directory"},
		{"a missing -var-file with an HCL template", write("ok.pkr.hcl", []byte(strings.Replace(goodHCL, "%s", `"x"`, 1))), LoadOptions{VarFiles: []string{filepath.Join(dir, "nope.pkrvars.hcl")}}, "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var out string
			go func() {
				defer close(done)
				tp, diags := Load(tc.path, tc.opts)
				var buf bytes.Buffer
				if tp != nil {
					_ = WriteDiagnostics(&buf, tp.Files, diags, false)
				} else {
					_ = WriteDiagnostics(&buf, nil, diags, false)
				}
				if !diags.HasErrors() {
					buf.WriteString("NO ERROR")
				}
				out = buf.String()
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Load hung")
			}
			if !strings.Contains(out, tc.want) || strings.Contains(out, "NO ERROR") {
				t.Errorf("diagnostics lack %q:\n%.2000s", tc.want, out)
			}
			if len(out) > 8000 {
				t.Errorf("the diagnostics are %d bytes long", len(out))
			}
		})
	}
}

func TestNestingDepth(t *testing.T) {
	for _, tc := range []struct {
		src  string
		hcl  bool
		want int
	}{
		// A string counts as a level: the parsers recurse into it.
		{`{"a": [1, {"b": "[[[["}]}`, false, 4},
		{"x = [\"]]]]\", 1]", true, 2},
		{"# [[[[\nx = {}", true, 1},
		{"/* [[[ */ x = ()", true, 1},
		{"x = <<EOF\n[[[[\nEOF\ny = [[1]]", true, 2},
		{`x = "a ${ [1, "${b}"] } c"`, true, 5},
		{`x = "$${[[[" `, true, 1},
	} {
		if got, _ := nestingDepth([]byte(tc.src), tc.hcl); got != tc.want {
			t.Errorf("nestingDepth(%q) = %d, want %d", tc.src, got, tc.want)
		}
	}
}

// TestHugeValueMakesASmallError: a 10 MB value on one line is shown as a
// window of the line, and details are clipped.
func TestHugeValueMakesASmallError(t *testing.T) {
	line := `"ami_name": "` + strings.Repeat("é", 5<<20) + `",`
	got, from, to := clipLine(line, 12, len(line)-1)
	if len(got) > 2*maxSnippetLine || from < 0 || to > len(got) || from > to {
		t.Errorf("clipLine: %d bytes, [%d, %d)", len(got), from, to)
	}
	if d := clipText(strings.Repeat("x", 1<<20), maxDetail); len(d) > maxDetail+40 {
		t.Errorf("clipText: %d bytes", len(d))
	}
}

// FuzzCheckSource: the pre-parse check never panics, and whatever it
// lets through parses without overflowing the stack (the parsers see at
// most MaxNesting levels).
func FuzzCheckSource(f *testing.F) {
	for _, s := range []string{
		"x = [[[1]]]", `x = "${ [ "${a}" ] }"`, "x = <<EOF\n[[[\nEOF\n", "# [[[\n/* ((( */", `{"a": [{"b": "[["}]}`,
		"\xEF\xBB\xBF{}", "x = \"$${\"", "x = \"%%{\"", "<<", "<<-X\nX", "\"\\", "/*", "[" + strings.Repeat("{", 1200),
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, src []byte, hclSyntax bool) {
		d, at := nestingDepth(src, hclSyntax)
		if d > MaxNesting && (at < 0 || at > len(src)) {
			t.Fatalf("depth %d over the limit at %d of %d bytes", d, at, len(src))
		}
		diags := checkSource("f", src, hclSyntax)
		if d > MaxNesting && !diags.HasErrors() {
			t.Fatalf("depth %d passed the check", d)
		}
	})
}
