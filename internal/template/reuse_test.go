package template

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHCL2BuildReuse(t *testing.T) {
	const src = `source "amazon-ebs" "x" {
  region = "us-east-1"
}
`
	cases := []struct {
		name, attr string
		want       bool
		wantErr    string
	}{
		{"absent", "", false, ""},
		{"true", "reuse = true", true, ""},
		{"false", "reuse = false", false, ""},
		{"expression", `reuse = "yes" == "yes"`, true, ""},
		{"not a bool", `reuse = "maybe"`, false, "bool required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			body := src + "build {\n  " + tc.attr + "\n  sources = [\"source.amazon-ebs.x\"]\n}\n"
			path := filepath.Join(dir, "t.pkr.hcl")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			tmpl, diags := Load(path, LoadOptions{Now: fixedNow})
			if tc.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.wantErr) || !strings.Contains(diags.Error(), "t.pkr.hcl:5") {
					t.Fatalf("diags = %v, want an error at t.pkr.hcl:5 containing %q", diags, tc.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := tmpl.Builds[0].Reuse; got != tc.want {
				t.Errorf("Reuse = %v, want %v", got, tc.want)
			}
		})
	}
}
