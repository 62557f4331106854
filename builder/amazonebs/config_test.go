package amazonebs

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/amibake/amibake/internal/template"
)

func hclBlock(t testing.TB, src string) *template.Block {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.pkr.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags)
	}
	return &template.Block{Type: "amazon-ebs", Name: "test", Body: f.Body, Ctx: &hcl.EvalContext{},
		DefRange: hcl.Range{Filename: "test.pkr.hcl", Start: hcl.InitialPos, End: hcl.InitialPos}}
}

const minimal = `
region        = "ap-northeast-1"
source_ami    = "ami-06128816a1c781a57"
instance_type = "t2.micro"
ssh_username  = "root"
ami_name      = "hello_ami 1529395142"
`

func TestNewConfigDefaults(t *testing.T) {
	c, diags := NewConfig(hclBlock(t, minimal))
	if len(diags) != 0 {
		t.Fatalf("diags: %s", diags)
	}
	if c.SSHPort != 22 || c.Parsed.SSHTimeout.String() != "5m0s" || c.TemporaryKeyPairType != "ed25519" || c.Communicator != "ssh" || c.SSHHandshakeAttempts != 10 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if len(c.Unimplemented()) != 0 {
		t.Errorf("Unimplemented = %v", c.Unimplemented())
	}
}

func TestNewConfigMergesBlockForms(t *testing.T) {
	c, diags := NewConfig(hclBlock(t, minimal+`
tags = { Name = "x", OS = "linux" }
tag {
  key   = "Team"
  value = "infra"
}
run_tag {
  key = "Owner"
  value = "me"
}
source_ami_filter {
  filters = { name = "ubuntu/*" }
  filter {
    name  = "root-device-type"
    value = "ebs"
  }
  owners      = ["099720109477"]
  most_recent = true
}
launch_block_device_mappings {
  device_name = "/dev/sda1"
  volume_size = 20
  volume_type = "gp3"
  delete_on_termination = true
}
`))
	if diags.HasErrors() {
		t.Fatalf("diags: %s", diags)
	}
	if got := c.Parsed.AMITags; got["Team"] != "infra" || got["Name"] != "x" || len(got) != 3 {
		t.Errorf("AMITags = %v", got)
	}
	if c.Parsed.RunTags["Owner"] != "me" {
		t.Errorf("RunTags = %v", c.Parsed.RunTags)
	}
	if f := c.Parsed.AMIFilters; f["name"] != "ubuntu/*" || f["root-device-type"] != "ebs" {
		t.Errorf("AMIFilters = %v", f)
	}
	if len(c.LaunchBlockDevices) != 1 || c.LaunchBlockDevices[0].VolumeSize != 20 {
		t.Errorf("LaunchBlockDevices = %+v", c.LaunchBlockDevices)
	}
}

func TestNewConfigErrors(t *testing.T) {
	without := func(key string) string {
		var out []string
		for _, l := range strings.Split(minimal, "\n") {
			if !strings.HasPrefix(l, key+" ") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	tests := []struct {
		name, src, want string
		line            int
	}{
		{"bad region", strings.Replace(minimal, "ap-northeast-1", "tokyo", 1), "Invalid region", 2},
		{"no ami_name", without("ami_name"), "Missing ami_name", 0},
		{"short ami_name", strings.Replace(minimal, "hello_ami 1529395142", "ab", 1), "Invalid ami_name", 6},
		{"bad chars", strings.Replace(minimal, "hello_ami 1529395142", "hello:ami", 1), "Invalid ami_name", 6},
		{"no ssh_username", without("ssh_username"), "Missing ssh_username", 0},
		{"no source", without("source_ami"), "Missing source AMI", 0},
		{"no owners", without("source_ami") + "\nsource_ami_filter {\n  filters = { name = \"x\" }\n}\n", "Missing owners", 0},
		{"bad duration", minimal + `ssh_timeout = "5 minutes"`, "Invalid duration", 7},
		{"spot and instance type", minimal + `spot_instance_types = ["t3.micro"]`, "Conflicting instance types", 7},
		{"bad cidr", minimal + `temporary_security_group_source_cidrs = ["1.2.3.4"]`, "Invalid CIDR", 7},
		{"access without secret", minimal + `access_key = "AKIA"`, "Incomplete static credentials", 7},
		{"key type", minimal + `temporary_key_pair_type = "dsa"`, "Invalid temporary_key_pair_type", 7},
		{"deprecate_at", minimal + `deprecate_at = "tomorrow"`, "Invalid deprecate_at", 7},
		{"keypair without key", minimal + `ssh_keypair_name = "mine"`, "Missing private key", 7},
		{"kms without encrypt", minimal + `kms_key_id = "alias/x"`, "kms_key_id without encrypt_boot", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := NewConfig(hclBlock(t, tt.src))
			if !diags.HasErrors() {
				t.Fatalf("no error, want %q", tt.want)
			}
			var found *hcl.Diagnostic
			for _, d := range diags {
				if strings.Contains(d.Summary, tt.want) {
					found = d
				}
			}
			if found == nil {
				t.Fatalf("diags %s, want %q", diags, tt.want)
			}
			if tt.line != 0 && (found.Subject == nil || found.Subject.Start.Line != tt.line) {
				t.Errorf("diagnostic at %v, want line %d", found.Subject, tt.line)
			}
		})
	}
}

func TestUnimplementedWarns(t *testing.T) {
	c, diags := NewConfig(hclBlock(t, minimal+"vault_aws_engine {\n name = \"x\"\n}\nssh_ciphers = [\"b\"]\n"))
	if diags.HasErrors() {
		t.Fatalf("diags: %s", diags)
	}
	got := c.Unimplemented()
	if strings.Join(got, ",") != "ssh_ciphers,vault_aws_engine" {
		t.Errorf("Unimplemented = %v", got)
	}
	if len(diags) != 2 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("want 2 warnings, got %s", diags)
	}
	for _, d := range diags {
		if d.Subject.Start.Line < 7 {
			t.Errorf("warning %q at %v, want the option's line", d.Summary, d.Subject)
		}
	}
}

func TestUnknownOptionRejected(t *testing.T) {
	_, diags := NewConfig(hclBlock(t, minimal+`ami_nmae = "x"`))
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "ami_nmae") {
		t.Fatalf("want an error about ami_nmae, got %s", diags)
	}
}

func TestNewConfigJSONBody(t *testing.T) {
	src := `{"region": "ap-northeast-1", "source_ami_filter": {"filters": {"name": "u*"}, "owners": ["self"], "most_recent": "true"},
	"instance_type": "t2.micro", "ssh_username": "root", "ami_name": "hello {{ .SourceAMIName }}", "ssh_port": "2222",
	"launch_block_device_mappings": [{"device_name": "/dev/sda1", "volume_size": 10}], "tags": {"A": "b"}}`
	f, diags := hcljson.Parse([]byte(src), "t.json")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c, diags := NewConfig(&template.Block{Type: "amazon-ebs", Body: f.Body, Ctx: &hcl.EvalContext{}})
	if len(diags) != 0 {
		t.Fatalf("diags: %s", diags)
	}
	if !c.SourceAMIFilter.MostRecent || c.SSHPort != 2222 || c.LaunchBlockDevices[0].VolumeSize != 10 || c.Parsed.AMITags["A"] != "b" {
		t.Errorf("decoded %+v", c)
	}
}

func TestOpenToTheWorldWarns(t *testing.T) {
	for _, tt := range []struct {
		cidrs string
		warn  bool
	}{
		{`["0.0.0.0/0"]`, true},
		{`["203.0.113.7/32", "::/0"]`, true},
		{`["203.0.113.0/24"]`, false},
	} {
		_, diags := NewConfig(hclBlock(t, minimal+"temporary_security_group_source_cidrs = "+tt.cidrs+"\n"))
		if diags.HasErrors() {
			t.Fatalf("%s: %s", tt.cidrs, diags)
		}
		got := len(diags) == 1 && diags[0].Severity == hcl.DiagWarning && strings.Contains(diags[0].Summary, "whole internet") && diags[0].Subject != nil
		if got != tt.warn {
			t.Errorf("%s: diags %s, want a warning: %v", tt.cidrs, diags, tt.warn)
		}
	}
}

func TestSSHReadWriteTimeoutDefault(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want time.Duration
	}{
		{"", DefaultSSHReadWriteTimeout},
		{`ssh_read_write_timeout = "90s"`, 90 * time.Second},
		{`ssh_read_write_timeout = "0s"`, 0},
	} {
		c, diags := NewConfig(hclBlock(t, minimal+tt.src+"\n"))
		if diags.HasErrors() {
			t.Fatalf("%s: %s", tt.src, diags)
		}
		if c.Parsed.SSHReadWriteTimeout != tt.want {
			t.Errorf("%q: ssh_read_write_timeout %s, want %s", tt.src, c.Parsed.SSHReadWriteTimeout, tt.want)
		}
	}
}
