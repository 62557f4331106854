// Package examples_test checks that every example template validates with
// the real plugins, and that every JSON example upgraded to HCL2 validates
// and configures the amazon-ebs builder exactly as the JSON does.
package examples_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
)

var now = time.Date(2026, 11, 25, 23, 44, 41, 0, time.UTC)

// loadOpts loads as `amibake validate` run in this directory does.
func loadOpts() template.LoadOptions {
	return template.LoadOptions{Now: now, Env: func(string) string { return "" }}
}

func examples(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples match %s", pattern)
	}
	return files
}

// validate loads a template and validates its builds as `amibake validate`
// does; it returns the template and every error rendered.
func validate(t *testing.T, path string) (*template.Template, string) {
	t.Helper()
	tp, diags := template.Load(path, loadOpts())
	if !diags.HasErrors() {
		for _, b := range tp.Builds {
			diags = append(diags, plugins.ValidateBuild(b)...)
		}
	}
	if !diags.HasErrors() {
		return tp, ""
	}
	var b strings.Builder
	var files map[string]*hcl.File
	if tp != nil {
		files = tp.Files
	}
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	template.WriteDiagnostics(&b, files, errs, false)
	return tp, b.String()
}

func TestExamplesValidate(t *testing.T) {
	files := append(examples(t, "*/*.json"), examples(t, "*/*.pkr.hcl")...)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, errs := validate(t, f); errs != "" {
				t.Errorf("%s does not validate:\n%s", f, errs)
			}
		})
	}
}

// tutorialSHA256 pins the reference tutorial templates
// (shared/reference/tutorial), so that the comparison runs where the
// reference does not stand beside the repository (a bare clone).
var tutorialSHA256 = map[string]string{
	"hello_ami.json":             "9a5aa227b2f9a39512951ffb7461e049fd330400ff2b3972009860557dfdc98a",
	"hello_ami_provisioned.json": "33fe90c84b6ec08ec3538131fa0e11a4deb89dcd58366cc1fb6cfe0b86f1fd51",
}

// TestTutorialUnchanged keeps the tutorial templates byte for byte those of
// the reference: amibake must run them unchanged.
func TestTutorialUnchanged(t *testing.T) {
	for name, want := range tutorialSHA256 {
		got, err := os.ReadFile(filepath.Join("tutorial", name))
		if err != nil {
			t.Fatal(err)
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(got)); sum != want {
			t.Errorf("tutorial/%s differs from the reference: SHA-256 %s, want %s", name, sum, want)
		}
		// Where the reference stands beside the repository (developers'
		// machines, CI), the pin is checked against it too.
		ref, err := os.ReadFile(filepath.Join("..", "..", "shared", "reference", "tutorial", name))
		if err != nil {
			t.Logf("reference tutorial not beside the repository, the pin alone checked: %v", err)
			continue
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(ref)); sum != want {
			t.Errorf("the reference's %s has SHA-256 %s, the pin says %s", name, sum, want)
		}
	}
}

func upgradeSettings(kind, typ string) any {
	if kind == "builder" && typ == "amazon-ebs" {
		return &amazonebs.Config{}
	}
	return nil
}

// copyDir copies an example directory, so that the upgraded template sits
// next to the JSON with its scripts and files (template_dir = path.root).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExamplesUpgradeRoundTrip upgrades each JSON example and compares the
// amazon-ebs configuration both templates give. {{timestamp}} (Unix
// seconds) and HCL2's local.timestamp (compact UTC) are the one allowed
// difference.
func TestExamplesUpgradeRoundTrip(t *testing.T) {
	for _, f := range examples(t, "*/*.json") {
		t.Run(f, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, filepath.Dir(f), dir)
			jsonPath := filepath.Join(dir, filepath.Base(f))
			src, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			out, diags := template.UpgradeJSON(jsonPath, src, template.UpgradeOptions{Settings: upgradeSettings, WithAnnotations: true})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			for _, d := range diags {
				t.Errorf("upgrade warning: %s: %s", d.Summary, d.Detail)
			}
			hclPath := strings.TrimSuffix(jsonPath, ".json") + ".upgraded.pkr.hcl"
			if err := os.WriteFile(hclPath, out, 0o644); err != nil {
				t.Fatal(err)
			}
			jt, errs := validate(t, jsonPath)
			if errs != "" {
				t.Fatalf("JSON does not validate:\n%s", errs)
			}
			ht, errs := validate(t, hclPath)
			if errs != "" {
				t.Fatalf("upgraded template does not validate:\n%s\n%s", errs, out)
			}
			if len(jt.Builds) != len(ht.Builds) {
				t.Fatalf("%d JSON builds, %d HCL2 builds", len(jt.Builds), len(ht.Builds))
			}
			norm := strings.NewReplacer("1795650281", "<TIMESTAMP>", "20261125234441", "<TIMESTAMP>")
			for i := range jt.Builds {
				jc, d := plugins.NewBuilderConfig(jt.Builds[i])
				if d.HasErrors() {
					t.Fatal(d)
				}
				hc, d := plugins.NewBuilderConfig(ht.Builds[i])
				if d.HasErrors() {
					t.Fatal(d)
				}
				js, err := json.MarshalIndent(jc, "", " ")
				if err != nil {
					t.Fatal(err)
				}
				hs, _ := json.MarshalIndent(hc, "", " ")
				if a, b := norm.Replace(string(js)), norm.Replace(string(hs)); a != b {
					t.Errorf("build %d: configurations differ\nJSON: %s\nHCL2: %s", i, a, b)
				}
				if len(jt.Builds[i].Provisioners) != len(ht.Builds[i].Provisioners) || len(jt.Builds[i].PostProcessors) != len(ht.Builds[i].PostProcessors) {
					t.Errorf("build %d: provisioners %d vs %d, post-processor chains %d vs %d", i,
						len(jt.Builds[i].Provisioners), len(ht.Builds[i].Provisioners), len(jt.Builds[i].PostProcessors), len(ht.Builds[i].PostProcessors))
				}
			}
		})
	}
}
