package validate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/template"
)

func TestPaths(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.pkr.hcl", benchTemplate)
	other := write("other.pkr.hcl", `
data "consul-key" "k" {
  key = "a"
}
source "docker" "d" {
  image = "ubuntu"
}
build {
  sources = ["source.docker.d"]
}
`)
	broken := write("broken.pkr.hcl", "build {\n")
	cases := []struct {
		name      string
		paths     []string
		hook      bool
		valid     bool
		summaries []string
		checked   int
	}{
		{"valid, structural", []string{good}, false, true, nil, 0},
		{"valid, with plugin hook", []string{good}, true, true, nil, 1},
		{"unsupported types warn", []string{other}, false, true, []string{"Unsupported data source type", "Unsupported builder type"}, 0},
		{"hook sees other builder types", []string{other}, true, true, []string{"Unsupported data source type"}, 1},
		{"one broken of two", []string{good, broken}, true, false, []string{"Unclosed configuration block"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checked := 0
			opts := Options{Load: template.LoadOptions{Cwd: dir}}
			if tc.hook {
				opts.ValidateBuild = func(b *template.Build) hcl.Diagnostics {
					checked++
					return nil
				}
			}
			r := Paths(context.Background(), tc.paths, opts)
			if r.Valid() != tc.valid {
				t.Errorf("Valid() = %v: %v", r.Valid(), r.Diags)
			}
			var got []string
			for _, d := range r.Diags {
				got = append(got, d.Summary)
			}
			if len(got) != len(tc.summaries) {
				t.Fatalf("diagnostics %q, want %q", got, tc.summaries)
			}
			for i := range got {
				if got[i] != tc.summaries[i] {
					t.Errorf("diagnostic %d = %q, want %q", i, got[i], tc.summaries[i])
				}
			}
			if checked != tc.checked {
				t.Errorf("plugin hook called %d times, want %d", checked, tc.checked)
			}
			if len(r.Files) != len(tc.paths) {
				t.Errorf("files = %d, want %d", len(r.Files), len(tc.paths))
			}
			if tc.valid && len(r.Sensitive) == 0 && tc.paths[0] == good {
				t.Error("sensitive default not collected")
			}
		})
	}
}
