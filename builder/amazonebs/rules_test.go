package amazonebs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/template"
)

// The decoding rules Packer applies to real templates, one test each.
// Packer's behaviour was measured on 29 public templates (issue 11) and
// read from its source: packer-plugin-sdk template/config.Decode (weakly
// typed input, StringToSliceHookFunc(",")), packer-plugin-amazon
// builder/common/block_device.go (iops sent only for io1/io2/gp3), Packer's
// hcl2template functions (Terraform's length, go-cty-yaml's yamldecode).

const ruleBuilder = `"type": "amazon-ebs", "source_ami": "ami-0123456789abcdef0", "instance_type": "t3.micro",
  "ssh_username": "ubuntu", "ami_name": "web {{timestamp}}"`

// loadRule writes files into a temporary directory and loads the first;
// it returns the first build's configuration and every diagnostic.
func loadRule(t *testing.T, files map[string]string, first string, opts template.LoadOptions) (*template.Template, *Config, hcl.Diagnostics) {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range opts.VarFiles {
		opts.VarFiles[i] = filepath.Join(dir, f)
	}
	if opts.Env == nil {
		opts.Env = func(string) string { return "" }
	}
	tp, diags := template.Load(filepath.Join(dir, first), opts)
	if diags.HasErrors() || tp == nil || len(tp.Builds) == 0 {
		return tp, nil, diags
	}
	c, d := NewConfig(tp.Builds[0].Source)
	return tp, c, append(diags, d...)
}

func hasDiag(diags hcl.Diagnostics, sev hcl.DiagnosticSeverity, summary string) bool {
	for _, d := range diags {
		if d.Severity == sev && strings.Contains(d.Summary+" "+d.Detail, summary) {
			return true
		}
	}
	return false
}

func jsonTemplate(vars, builderExtra string) string {
	return `{"variables": {` + vars + `}, "builders": [{` + ruleBuilder + builderExtra + `}]}`
}

func TestPackerDecodingRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		opts  template.LoadOptions
		check func(t *testing.T, tp *template.Template, c *Config, diags hcl.Diagnostics)
	}{
		{"JSON: a {{user}} string where a list is expected is split on commas",
			map[string]string{"t.json": jsonTemplate(`"ami_users": "111122223333,444455556666", "region": "us-east-1"`, `, "region": "{{user `+"`region`"+`}}", "ami_users": "{{user `+"`ami_users`"+`}}"`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if want := []string{"111122223333", "444455556666"}; diags.HasErrors() || !reflect.DeepEqual(c.AMIUsers, want) {
					t.Errorf("ami_users = %q, %v", c.AMIUsers, diags)
				}
			}},
		{"JSON: a string where a list is expected is a one-item list",
			map[string]string{"t.json": jsonTemplate(``, `, "region": "us-east-1", "ami_regions": "us-west-2"`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || !reflect.DeepEqual(c.AMIRegions, []string{"us-west-2"}) {
					t.Errorf("ami_regions = %q, %v", c.AMIRegions, diags)
				}
			}},
		{`JSON: "" for a bool is unset`,
			map[string]string{"t.json": jsonTemplate(`"public": ""`, `, "region": "us-east-1", "associate_public_ip_address": "{{user `+"`public`"+`}}", "encrypt_boot": ""`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AssociatePublicIPAddress != nil || c.EncryptBoot != nil {
					t.Errorf("associate_public_ip_address = %v, encrypt_boot = %v, %v", c.AssociatePublicIPAddress, c.EncryptBoot, diags)
				}
			}},
		{`JSON: "true" for a bool is true`,
			map[string]string{"t.json": jsonTemplate(``, `, "region": "us-east-1", "associate_public_ip_address": "true"`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AssociatePublicIPAddress == nil || !*c.AssociatePublicIPAddress {
					t.Errorf("associate_public_ip_address = %v, %v", c.AssociatePublicIPAddress, diags)
				}
			}},
		{"JSON: null in a -var-file is the empty string",
			map[string]string{"t.json": jsonTemplate(`"desc": "d"`, `, "region": "us-east-1", "ami_description": "x{{user `+"`desc`"+`}}"`), "v.json": `{"desc": null}`},
			template.LoadOptions{VarFiles: []string{"v.json"}},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AMIDescription != "x" {
					t.Errorf("ami_description = %q, %v", c.AMIDescription, diags)
				}
			}},
		{"JSON: a variable set in a -var-file but not declared is usable, with a warning",
			map[string]string{"t.json": jsonTemplate(``, `, "region": "us-east-1", "ami_description": "{{user `+"`extra`"+`}}"`), "v.json": `{"extra": "from the var file"}`},
			template.LoadOptions{VarFiles: []string{"v.json"}},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AMIDescription != "from the var file" || !hasDiag(diags, hcl.DiagWarning, "Undefined variable") {
					t.Errorf("ami_description = %q, %v", c.AMIDescription, diags)
				}
			}},
		{"JSON: an undeclared {{user}} outside variables is the empty string, with a warning",
			map[string]string{"t.json": jsonTemplate(``, `, "region": "us-east-1", "ami_description": "a{{user `+"`nope`"+`}}b"`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AMIDescription != "ab" || !hasDiag(diags, hcl.DiagWarning, "Undefined user variable") {
					t.Errorf("ami_description = %q, %v", c.AMIDescription, diags)
				}
			}},
		{"JSON: an undeclared {{user}} in a variable default stays an error",
			map[string]string{"t.json": jsonTemplate(`"a": "{{user `+"`nope`"+`}}"`, `, "region": "us-east-1"`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, _ *Config, diags hcl.Diagnostics) {
				if !hasDiag(diags, hcl.DiagError, "Undefined user variable") {
					t.Errorf("diags = %v", diags)
				}
			}},
		{"no region: valid (the SDK's region chain fills it at build time)",
			map[string]string{"t.json": jsonTemplate(``, ``)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.Region != "" {
					t.Errorf("region %q, %v", c.Region, diags)
				}
			}},
		{"iops on gp2: dropped with a warning",
			map[string]string{"t.json": jsonTemplate(``, `, "region": "us-east-1", "launch_block_device_mappings": [{"device_name": "/dev/sda1", "volume_type": "gp2", "iops": 3000}]`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.LaunchBlockDevices[0].IOPS != nil || !hasDiag(diags, hcl.DiagWarning, "iops has no effect") {
					t.Errorf("iops = %v, %v", c.LaunchBlockDevices[0].IOPS, diags)
				}
				if m := blockDeviceMappings(c.LaunchBlockDevices); m[0].Ebs.Iops != nil {
					t.Errorf("iops reached the request: %v", *m[0].Ebs.Iops)
				}
			}},
		{"JSON: error-cleanup-provisioner",
			map[string]string{"t.json": `{"builders": [{` + ruleBuilder + `, "region": "us-east-1"}], "provisioners": [{"type": "shell", "inline": ["exit 3"]}], "error-cleanup-provisioner": {"type": "shell", "inline": ["echo cleaning"]}}`}, template.LoadOptions{},
			func(t *testing.T, tp *template.Template, _ *Config, diags hcl.Diagnostics) {
				b := tp.Builds[0]
				if diags.HasErrors() || len(b.Provisioners) != 1 || b.ErrorCleanupProvisioner == nil || b.ErrorCleanupProvisioner.Type != "shell" {
					t.Errorf("provisioners %d, error cleanup %v, %v", len(b.Provisioners), b.ErrorCleanupProvisioner, diags)
				}
			}},
		{"HCL2: length() of a string",
			map[string]string{"t.pkr.hcl": hclRule(`ami_name = "web-${length("abcd")}"`, `sources = ["source.amazon-ebs.one"]`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AMIName != "web-4" {
					t.Errorf("ami_name %q, %v", c.AMIName, diags)
				}
			}},
		{"HCL2: a null variable default assigned to an argument leaves it unset",
			map[string]string{"t.pkr.hcl": `variable "kms" {
  type    = string
  default = null
}
variable "public" {
  type    = bool
  default = null
}
` + hclRule(`ami_name = "web"
  kms_key_id = var.kms
  associate_public_ip_address = var.public`, `sources = ["source.amazon-ebs.one"]`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.KMSKeyID != "" || c.AssociatePublicIPAddress != nil {
					t.Errorf("kms_key_id %q, associate_public_ip_address %v, %v", c.KMSKeyID, c.AssociatePublicIPAddress, diags)
				}
			}},
		{"HCL2: yamldecode",
			map[string]string{"t.pkr.hcl": hclRule(`ami_name = yamldecode("name: web\nsize: 8")["name"]`, `sources = ["source.amazon-ebs.one"]`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, c *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || c.AMIName != "web" {
					t.Errorf("ami_name %q, %v", c.AMIName, diags)
				}
			}},
		{`HCL2: the "sources." prefix in build { sources = [...] }`,
			map[string]string{"t.pkr.hcl": hclRule(`ami_name = "web"`, `sources = ["sources.amazon-ebs.one"]`)}, template.LoadOptions{},
			func(t *testing.T, tp *template.Template, _ *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || len(tp.Builds) != 1 || tp.Builds[0].Name != "amazon-ebs.one" {
					t.Errorf("builds %v, %v", tp.Builds, diags)
				}
			}},
		{`HCL2: dynamic "provisioner"`,
			map[string]string{"t.pkr.hcl": `variable "steps" {
  default = ["echo one", "echo two"]
}
` + hclRule(`ami_name = "web"`, `sources = ["source.amazon-ebs.one"]
  dynamic "provisioner" {
    for_each = var.steps
    labels   = ["shell"]
    content {
      inline = [provisioner.value]
    }
  }`)}, template.LoadOptions{},
			func(t *testing.T, tp *template.Template, _ *Config, diags hcl.Diagnostics) {
				if diags.HasErrors() || len(tp.Builds[0].Provisioners) != 2 {
					t.Fatalf("provisioners %d, %v", len(tp.Builds[0].Provisioners), diags)
				}
				var sh struct {
					Inline []string `hcl:"inline"`
				}
				if d := tp.Builds[0].Provisioners[1].Decode(&sh, nil); d.HasErrors() || !reflect.DeepEqual(sh.Inline, []string{"echo two"}) {
					t.Errorf("second provisioner inline = %q, %v", sh.Inline, d)
				}
			}},
		{"HCL2: aws_secretsmanager is named as not offered",
			map[string]string{"t.pkr.hcl": `locals {
  pw = aws_secretsmanager("db", "password")
}
` + hclRule(`ami_name = "web-${local.pw}"`, `sources = ["source.amazon-ebs.one"]`)}, template.LoadOptions{},
			func(t *testing.T, _ *template.Template, _ *Config, diags hcl.Diagnostics) {
				if !hasDiag(diags, hcl.DiagError, "aws_secretsmanager() is a Packer function amibake does not offer") {
					t.Errorf("diags = %v", diags)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := "t.json"
			if _, ok := tc.files["t.pkr.hcl"]; ok {
				first = "t.pkr.hcl"
			}
			tp, c, diags := loadRule(t, tc.files, first, tc.opts)
			if c == nil && !diags.HasErrors() {
				t.Fatalf("no configuration: %v", diags)
			}
			tc.check(t, tp, c, diags)
		})
	}
}

func hclRule(source, build string) string {
	return `source "amazon-ebs" "one" {
  region        = "us-east-1"
  source_ami    = "ami-0123456789abcdef0"
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
  ` + source + `
}
build {
  ` + build + `
}
`
}
