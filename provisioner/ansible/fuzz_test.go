package ansible_test

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner/ansible"
	"github.com/amibake/amibake/provisioner/ansiblelocal"
)

// FuzzNew checks that no ansible or ansible-local block, HCL2 or JSON,
// makes New panic, and that an accepted one has its defaults.
func FuzzNew(f *testing.F) {
	f.Add(`playbook_file = "fuzz_test.go"`, false)
	f.Add(`playbook_file = "fuzz_test.go"
inventory_file_template = "{{ .HostAlias }} {{ if .Port }}x{{ end }}"
groups = "web"
use_proxy = false
ansible_env_vars = ["A=B", "ANSIBLE_HOST_KEY_CHECKING=False"]`, false)
	f.Add(`{"playbook_file": "fuzz_test.go", "extra_arguments": "-v", "local_port": 99999, "use_proxy": true}`, true)
	f.Add(`{"playbook_files": ["fuzz_test.go"], "role_paths": "testdata", "inventory_groups": ["a"]}`, true)
	f.Fuzz(func(t *testing.T, src string, isJSON bool) {
		var body hcl.Body
		if isJSON {
			file, diags := hcljson.Parse([]byte(src), "f.json")
			if diags.HasErrors() {
				return
			}
			body = file.Body
		} else {
			file, diags := hclsyntax.ParseConfig([]byte(src), "f.pkr.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				return
			}
			body = file.Body
		}
		if p, diags := ansible.New(&template.Block{Type: "ansible", Body: body, Ctx: &hcl.EvalContext{}}, nil); !diags.HasErrors() {
			if c := p.Config(); c.Command == "" || c.HostAlias == "" || c.PlaybookFile == "" {
				t.Errorf("accepted ansible config without defaults: %+v", c)
			}
			_ = p.InputFiles()
		}
		if p, diags := ansiblelocal.New(&template.Block{Type: "ansible-local", Body: body, Ctx: &hcl.EvalContext{}}, nil); !diags.HasErrors() {
			if c := p.Config(); c.Command == "" || c.StagingDirectory == "" {
				t.Errorf("accepted ansible-local config without defaults: %+v", c)
			}
			_ = p.InputFiles()
		}
	})
}
