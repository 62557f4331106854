package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func goldenFile(t *testing.T, path string, got []byte) {
	t.Helper()
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update creates it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// runTemplateCmd runs the CLI in-process with a fixed environment.
func runTemplateCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := ui.Test()
	f := newFactory(ios)
	f.Getenv = func(k string) string { return env[k] }
	code := exitCode(errOut, f.Secrets, execute(context.Background(), newRootCmd(f), args))
	return code, out.String(), errOut.String()
}

func TestValidateCommand(t *testing.T) {
	dir := "testdata/validate"
	cases := []struct {
		name      string
		args      []string
		env       map[string]string
		structure bool // without plugin settings checks
		code      int
		golden    string
	}{
		{name: "valid", args: []string{"validate", dir + "/good.pkr.hcl"}, code: 0, golden: "valid"},
		{name: "typo with suggestion", args: []string{"validate", dir + "/typo.pkr.hcl"}, code: 1, golden: "typo"},
		{name: "several templates", args: []string{"validate", dir + "/good.pkr.hcl", dir + "/typo.pkr.hcl"}, code: 1, golden: "typo"},
		{name: "unset variables", args: []string{"validate", dir + "/needs_var.pkr.hcl"}, structure: true, code: 1, golden: "unset"},
		{name: "packer single-dash flags", args: []string{"validate", "-var", "region=us-east-1", "-var=secret=x", "-var", "size=4", dir + "/needs_var.pkr.hcl"}, structure: true, code: 1, golden: "validation_rule"},
		{name: "double-dash flags and env", args: []string{"validate", "--var", "region=us-east-1", dir + "/needs_var.pkr.hcl"}, env: map[string]string{"PKR_VAR_secret": "from-env"}, structure: true, code: 0, golden: "valid"},
		{name: "syntax only", args: []string{"validate", "-syntax-only", dir + "/needs_var.pkr.hcl"}, code: 0, golden: "valid"},
		{name: "other builder type warns", args: []string{"validate", dir + "/docker.pkr.hcl"}, structure: true, code: 0, golden: "docker"},
		{name: "except other builder", args: []string{"validate", "-except", "docker.*", dir + "/docker.pkr.hcl"}, structure: true, code: 0, golden: "valid"},
		{name: "undeclared var-file variable warns", args: []string{"validate", "-var-file", dir + "/extra.pkrvars.hcl", dir + "/good.pkr.hcl"}, code: 0, golden: "undeclared_warning"},
		{name: "no-warn-undeclared-var", args: []string{"validate", "-no-warn-undeclared-var", "-var-file", dir + "/extra.pkrvars.hcl", dir + "/good.pkr.hcl"}, code: 0, golden: "valid"},
		{name: "missing file", args: []string{"validate", dir + "/nope.pkr.hcl"}, code: 1, golden: "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.structure {
				saved := validateBuild
				validateBuild = nil
				defer func() { validateBuild = saved }()
			}
			code, out, errOut := runTemplateCmd(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if strings.Contains(out+errOut, "do-not-print-me") || strings.Contains(out+errOut, "from-env") {
				t.Errorf("sensitive value printed:\n%s%s", out, errOut)
			}
			goldenFile(t, filepath.Join(dir, tc.golden+".golden"), []byte(out+"--- stderr ---\n"+errOut))
		})
	}
}

func TestValidateJSON(t *testing.T) {
	code, out, errOut := runTemplateCmd(t, nil, "validate", "--json", "testdata/validate/typo.pkr.hcl", "testdata/validate/good.pkr.hcl")
	if code != 1 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var doc template.DiagnosticsDocument
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc.FormatVersion != template.DiagnosticsFormatVersion || doc.Valid || doc.ErrorCount != 1 || len(doc.Diagnostics) != 1 {
		t.Fatalf("document = %+v", doc)
	}
	d := doc.Diagnostics[0]
	if d.Summary != "Unsupported argument" || d.Range == nil || d.Range.Filename != "testdata/validate/typo.pkr.hcl" || d.Range.Start.Line != 4 || d.Range.Start.Column != 3 {
		t.Errorf("diagnostic = %+v", d)
	}
	code, out, _ = runTemplateCmd(t, nil, "validate", "-json", "testdata/validate/good.pkr.hcl")
	if code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Errorf("valid template: exit %d\n%s", code, out)
	}
}

func TestValidateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"validate"},
		{"validate", "-var", "novalue", "testdata/validate/good.pkr.hcl"},
		{"validate", "--no-such-flag", "x"},
	} {
		if code, _, _ := runTemplateCmd(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, out, _ := runTemplateCmd(t, nil, "validate", "--help")
	if code != 0 || !strings.Contains(out, "--syntax-only") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

// TestValidatePluginHook checks that validate hands every build to the
// plugin registry's check.
func TestValidatePluginHook(t *testing.T) {
	saved := validateBuild
	defer func() { validateBuild = saved }()
	var seen []string
	validateBuild = func(b *template.Build) hcl.Diagnostics {
		seen = append(seen, b.Name)
		return nil
	}
	if code, _, errOut := runTemplateCmd(t, nil, "validate", "testdata/validate/good.pkr.hcl", "testdata/validate/docker.pkr.hcl"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := []string{"amazon-ebs.x", "docker.d"}; !slices.Equal(seen, want) {
		t.Errorf("validated builds %v, want %v", seen, want)
	}
}

func TestNormalizeFlags(t *testing.T) {
	long := []string{"var", "var-file", "only", "json"}
	cases := []struct{ in, want []string }{
		{[]string{"-var", "a=b", "x"}, []string{"--var", "a=b", "x"}},
		{[]string{"-var=a=b", "-only=x,y"}, []string{"--var=a=b", "--only=x,y"}},
		{[]string{"--var", "a=b"}, []string{"--var", "a=b"}},
		{[]string{"-v", "-x", "-", "-vars"}, []string{"-v", "-x", "-", "-vars"}},
		{[]string{"--", "-var"}, []string{"--", "-var"}},
		{[]string{"-json", "t.json"}, []string{"--json", "t.json"}},
	}
	for _, tc := range cases {
		if got := normalizeFlags(tc.in, long); !slices.Equal(got, tc.want) {
			t.Errorf("normalizeFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
