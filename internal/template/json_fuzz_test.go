package template

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// FuzzLoadJSON loads arbitrary bytes as a legacy JSON template, decodes
// every block and upgrades it to HCL2: no input may panic, and every
// error must say where it is.
func FuzzLoadJSON(f *testing.F) {
	for _, glob := range []string{"testdata/json/*.json", "testdata/upgrade/*.json", "../../examples/*/*.json"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			if src, err := os.ReadFile(p); err == nil {
				f.Add(src)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		tp, diags := loadJSON("fuzz.json", src, testLoadOptions())
		if tp == nil {
			t.Fatal("nil template")
		}
		for _, d := range diags {
			if d.Subject == nil && !strings.Contains(d.Summary, "-var") {
				t.Fatalf("diagnostic without position: %s: %s", d.Summary, d.Detail)
			}
		}
		if !diags.HasErrors() {
			for _, b := range tp.Builds {
				var ebs testEBS
				b.Source.Decode(&ebs, nil)
				var rest testGeneric
				b.Source.Decode(&rest, nil)
				for _, p := range b.Provisioners {
					var sh testShell
					p.Decode(&sh, nil)
					for _, o := range p.Override {
						gohclDecode(o, &sh)
					}
				}
				for _, c := range b.PostProcessors {
					for _, pp := range c {
						pp.Body.JustAttributes()
					}
				}
			}
		}
		out, udiags := UpgradeJSON("fuzz.json", src, UpgradeOptions{})
		if !udiags.HasErrors() && out == nil {
			t.Fatal("upgrade gave no output and no error")
		}
		for _, d := range udiags {
			if d.Severity == hcl.DiagError && d.Summary == "Upgrade produced invalid HCL2" {
				t.Fatalf("upgrade produced invalid HCL2: %s", d.Detail)
			}
		}
	})
}

// FuzzLegacyTemplate renders arbitrary {{ }} strings at load time and at
// build time: errors are fine, panics are not, and a string without "{{"
// is returned unchanged.
func FuzzLegacyTemplate(f *testing.F) {
	seeds := []string{
		"hello_ami {{timestamp}}", "{{user `region`}}", "{{ .SourceAMIName | clean_resource_name }}",
		"{{isotime \"2006-01-02\"}}", "{{split \"a-b\" \"-\" 1}}", "{{if .SourceAMI}}x{{end}}",
		"{{ printf \"%s\" (user `region`) .SourceAMI }}", "{{define \"x\"}}{{end}}", "{{", "}}{{", "{{/* c */}}",
		"{{$x := .SourceAMI}}{{$x}}", "{{ build `ID` }}", "a {{- timestamp -}} b", "{{env `HOME`}}",
		"{{ \"}}\" }}{{.BuildRegion}}", "{{range .SourceAMITags}}{{.}}{{end}}", "{{template \"x\"}}",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	data := BuildTimeData{SourceAMI: "ami-1", SourceAMIName: "n", SourceAMITags: map[string]string{"a": "b"}}
	f.Fuzz(func(t *testing.T, s string) {
		e := testEnv()
		out, err := e.render(s)
		if !strings.Contains(s, "{{") && (err != nil || out != s) {
			t.Fatalf("plain string changed: %q -> %q, %v", s, out, err)
		}
		if err == nil {
			RenderBuildTime(out, data)
		}
		e.enableEnv = true
		e.render(s)
		u := &upgrader{l: &jsonLoader{}, refs: map[string]string{"region": "var.region"}, labels: map[string]string{}}
		expr := u.str(s, strCtx{})
		u.tokens(expr, hcl.Range{})
		for _, d := range u.diags {
			if d.Severity == hcl.DiagError {
				t.Fatalf("translation of %q is not HCL2: %s", s, d.Detail)
			}
		}
	})
}
