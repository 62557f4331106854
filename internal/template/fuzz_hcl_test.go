package template

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadHCL loads arbitrary HCL2 templates: the loader and the
// diagnostics printers must never panic. Seeds: every HCL file under
// testdata plus the corpus in testdata/fuzz/FuzzLoadHCL.
func FuzzLoadHCL(f *testing.F) {
	for _, pattern := range []string{"testdata/diag/*.pkr.hcl", "testdata/hcl2/*/*.pkr.hcl", "testdata/fmt/*.pkr.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			src, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.pkr.hcl")
	opts := LoadOptions{
		Now:  fixedNow,
		Cwd:  dir,
		Vars: map[string]string{},
		Env:  mapEnv(map[string]string{"PKR_VAR_region": "[1, 2"}),
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		// Functions that read the file system (file("/dev/zero"), fileset
		// over /) or burn CPU by design (bcrypt, range(1e9)) do what the
		// template asks; they are not the loader's bugs.
		for _, slow := range []string{"file", "bcrypt", "range", "pathexpand", "abspath", "/dev", "rsadecrypt"} {
			if bytes.Contains(src, []byte(slow)) {
				return
			}
		}
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		tmpl, diags := Load(path, opts)
		files := filesOf(tmpl)
		_ = WriteDiagnostics(io.Discard, files, diags, false)
		_ = WriteDiagnostics(io.Discard, files, diags, true)
		_ = WriteDiagnosticsJSON(io.Discard, files, diags)
		if tmpl == nil || diags.HasErrors() {
			return
		}
		_ = WriteInspect(io.Discard, tmpl)
		for _, b := range tmpl.Builds {
			var anything struct {
				Rest any `hcl:",remain"`
			}
			_ = b.Source.Decode(&anything, nil)
		}
		if out, d := FormatHCL(src, "x.pkr.hcl"); !d.HasErrors() {
			_ = UnifiedDiff("x", src, out)
		}
	})
}
