package ansible_test

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
)

// Templates shaped like public ones that use Ansible validate, with their
// playbooks stubbed, without errors or warnings: every option they set is
// accepted. (Paths are relative to the directory amibake runs in.)
func TestPublicTemplatesValidate(t *testing.T) {
	for _, path := range []string{"image-builder/packer.json", "infra/infra.pkr.hcl"} {
		t.Run(path, func(t *testing.T) {
			abs, err := filepath.Abs(filepath.Join("testdata/public", path))
			if err != nil {
				t.Fatal(err)
			}
			t.Chdir(filepath.Dir(abs))
			tp, diags := template.Load(abs, template.LoadOptions{})
			if !diags.HasErrors() {
				for _, b := range tp.Builds {
					diags = append(diags, plugins.ValidateBuild(b)...)
				}
			}
			var n int
			for _, b := range tp.Builds {
				for _, p := range b.Provisioners {
					if p.Type == "ansible" || p.Type == "ansible-local" {
						n++
					}
				}
			}
			if n < 2 {
				t.Errorf("%d Ansible provisioners, want at least 2", n)
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError || d.Severity == hcl.DiagWarning {
					t.Errorf("%s: %s", d.Summary, d.Detail)
				}
			}
		})
	}
}
