package template

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestHCL2Diagnostics renders the diagnostics of every broken template
// in testdata/diag and compares them with the .golden files: one per
// diagnostic class.
func TestHCL2Diagnostics(t *testing.T) {
	cases := []struct {
		file      string
		golden    string
		opts      LoadOptions
		wantError bool
	}{
		{file: "syntax_error.pkr.hcl", wantError: true},
		{file: "unsupported_argument.pkr.hcl", wantError: true},
		{file: "unsupported_block.pkr.hcl", wantError: true},
		{file: "unsupported_top_level.pkr.hcl", wantError: true},
		{file: "wrong_type.pkr.hcl", wantError: true},
		{file: "wrong_type_attr.pkr.hcl", wantError: true},
		{file: "missing_required.pkr.hcl", wantError: true},
		{file: "undeclared_variable.pkr.hcl", wantError: true},
		{file: "undeclared_local.pkr.hcl", wantError: true},
		{file: "validation_failed.pkr.hcl", wantError: true},
		{file: "duplicate_variable.pkr.hcl", wantError: true},
		{file: "duplicate_source.pkr.hcl", wantError: true},
		{file: "duplicate_in_build_argument.pkr.hcl", wantError: true},
		{file: "unknown_source.pkr.hcl", wantError: true},
		{file: "local_cycle.pkr.hcl", wantError: true},
		{file: "unset_variable.pkr.hcl", wantError: true},
		{file: "invalid_duration.pkr.hcl", wantError: true},
		{file: "env_outside_default.pkr.hcl", wantError: true},
		{file: "build_without_sources.pkr.hcl", wantError: true},
		{file: "function_error.pkr.hcl", wantError: true},
		{file: "invalid_variable_name.pkr.hcl", wantError: true},
		{file: "tabs_and_unicode.pkr.hcl", wantError: true},
		{file: "build_field_typo.pkr.hcl", wantError: true},
		{file: "vars.pkr.hcl", golden: "undefined_cli_var", opts: LoadOptions{Vars: map[string]string{"regon": "x"}}, wantError: true},
		{file: "vars.pkr.hcl", golden: "cli_var_wrong_type", opts: LoadOptions{Vars: map[string]string{"count": "many"}}, wantError: true},
		{file: "vars.pkr.hcl", golden: "var_file_undeclared", opts: LoadOptions{VarFiles: []string{"testdata/diag/extra.pkrvars.hcl"}}},
		{file: "vars.pkr.hcl", golden: "var_file_wrong_type", opts: LoadOptions{VarFiles: []string{"testdata/diag/badtype.pkrvars.hcl"}}, wantError: true},
		{file: "vars.pkr.hcl", golden: "var_file_missing", opts: LoadOptions{VarFiles: []string{"testdata/diag/nope.pkrvars.hcl"}}, wantError: true},
		{file: "vars.pkr.hcl", golden: "env_var_wrong_type", opts: LoadOptions{Env: mapEnv(map[string]string{"PKR_VAR_count": "[1"})}, wantError: true},
		{file: "no_such_file.pkr.hcl", wantError: true},
	}
	for _, tc := range cases {
		name := tc.golden
		if name == "" {
			name = strings.TrimSuffix(tc.file, ".pkr.hcl")
		}
		t.Run(name, func(t *testing.T) {
			tc.opts.Now = fixedNow
			tc.opts.Cwd = "/srv/project"
			tmpl, diags := Load(filepath.Join("testdata/diag", tc.file), tc.opts)
			if got := diags.HasErrors(); got != tc.wantError {
				t.Fatalf("HasErrors() = %v, want %v: %v", got, tc.wantError, diags)
			}
			if len(diags) == 0 {
				t.Fatal("no diagnostics")
			}
			var buf bytes.Buffer
			var files = filesOf(tmpl)
			if err := WriteDiagnostics(&buf, files, diags, false); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata/diag", name+".golden"), buf.Bytes())
		})
	}
}

func filesOf(t *Template) map[string]*hcl.File {
	if t == nil {
		return nil
	}
	return t.Files
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestDiagnosticsJSON checks the versioned JSON document.
func TestDiagnosticsJSON(t *testing.T) {
	tmpl, diags := Load("testdata/diag/undeclared_variable.pkr.hcl", LoadOptions{Now: fixedNow})
	var buf bytes.Buffer
	if err := WriteDiagnosticsJSON(&buf, tmpl.Files, diags); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/diag/undeclared_variable.json.golden", buf.Bytes())
}

// TestDiagnosticsColor checks that color output underlines the subject
// instead of printing carets.
func TestDiagnosticsColor(t *testing.T) {
	tmpl, diags := Load("testdata/diag/unsupported_argument.pkr.hcl", LoadOptions{Now: fixedNow})
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, tmpl.Files, diags, true); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "\x1b[1m\x1b[31mError: Unsupported argument\x1b[0m") {
		t.Errorf("severity not colored:\n%q", out)
	}
	if !strings.Contains(out, "\x1b[4mdefualt\x1b[0m") {
		t.Errorf("subject not underlined:\n%q", out)
	}
	if strings.Contains(out, "^") {
		t.Errorf("carets in color output:\n%q", out)
	}
}
