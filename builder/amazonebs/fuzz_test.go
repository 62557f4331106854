package amazonebs

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/amibake/amibake/internal/template"
)

// FuzzNewConfig checks that no builder configuration, HCL2 or JSON, makes
// NewConfig panic, and that an accepted one is usable.
func FuzzNewConfig(f *testing.F) {
	f.Add(minimal, false)
	f.Add(tutorial, false)
	f.Add(minimal+"source_ami_filter {\n filters = { name = \"x\" }\n owners = [\"self\"]\n}\nlaunch_block_device_mappings {\n device_name = \"/dev/sda1\"\n iops = 3000\n volume_type = \"gp3\"\n}\n", false)
	f.Add(`{"region": "us-east-1", "source_ami": "ami-1", "instance_type": "t3.micro", "ssh_username": "u", "ami_name": "abc", "ssh_timeout": "1h", "tags": {"a": "b"}}`, true)
	f.Add(`{"region": 5, "aws_polling": {"delay_seconds": -1}, "ssh_port": "x"}`, true)
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
		c, diags := NewConfig(&template.Block{Type: "amazon-ebs", Body: body, Ctx: &hcl.EvalContext{}})
		if diags.HasErrors() {
			return
		}
		if c.Region == "" || c.SSHPort == 0 || c.Parsed.SSHTimeout <= 0 {
			t.Errorf("accepted config without defaults: %+v", c)
		}
		_ = c.Unimplemented()
	})
}
