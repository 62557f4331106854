package plugins

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

type echo struct {
	Text string `hcl:"text"`
}

func (e *echo) Provision(context.Context, ui.UI, communicator.Communicator, *provisioner.Build) error {
	return nil
}

func newEcho(b *template.Block, build map[string]cty.Value) (*echo, hcl.Diagnostics) {
	e := &echo{}
	return e, b.Decode(e, build)
}

func body(t *testing.T, src string) hcl.Body {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.pkr.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Body
}

func block(t *testing.T, typ, src string) template.Block {
	return template.Block{Type: typ, Body: body(t, src), Ctx: &hcl.EvalContext{}}
}

const ebs = `
region = "us-east-1"
source_ami = "ami-1"
instance_type = "t3.micro"
ssh_username = "root"
ami_name = "x {{timestamp}}"
`

func TestValidateBuild(t *testing.T) {
	registerProvisioner("echo-test", newEcho)
	src := block(t, "amazon-ebs", ebs)
	tests := []struct {
		name  string
		build template.Build
		want  []string // substrings of diagnostics, in order
		errs  bool
	}{
		{"ok", template.Build{Name: "amazon-ebs", Source: &src, Provisioners: []*template.Provisioner{
			{Block: block(t, "echo-test", `text = "hi"`)},
		}}, nil, false},
		{"unknown provisioner", template.Build{Name: "amazon-ebs", Source: &src, Provisioners: []*template.Provisioner{
			{Block: block(t, "echo-tset", `text = "hi"`)},
		}}, []string{`Did you mean "echo-test"?`}, true},
		{"bad provisioner arg", template.Build{Name: "amazon-ebs", Source: &src, Provisioners: []*template.Provisioner{
			{Block: block(t, "echo-test", `txet = "hi"`)},
		}}, []string{"txet"}, true},
		{"other builder", template.Build{Name: "docker", Source: &template.Block{Type: "docker", Body: body(t, "")}}, []string{`Builder type "docker" is not supported`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := ValidateBuild(&tt.build)
			if diags.HasErrors() != tt.errs {
				t.Fatalf("HasErrors = %v: %s", diags.HasErrors(), diags)
			}
			for _, w := range tt.want {
				if !strings.Contains(diagText(diags), w) {
					t.Errorf("diagnostics %q lack %q", diagText(diags), w)
				}
			}
		})
	}
}

func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Summary + ": " + d.Detail + "\n")
	}
	return b.String()
}

func TestOverride(t *testing.T) {
	registerProvisioner("echo-test", newEcho)
	p := &template.Provisioner{
		Block:    block(t, "echo-test", `text = "base"`),
		Override: map[string]hcl.Body{"amazon-ebs.b": body(t, `text = "over"`)},
	}
	for name, want := range map[string]string{"app.amazon-ebs.b": "over", "amazon-ebs.a": "base"} {
		got, diags := NewProvisioner(p, name, nil)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got.(*echo).Text != want {
			t.Errorf("%s: text = %q, want %q", name, got.(*echo).Text, want)
		}
	}
}

func TestBuildVars(t *testing.T) {
	v := BuildVars(&provisioner.Build{Host: "127.0.0.5", Port: 22, SourceAMI: "ami-1"}, map[string]string{"SourceAMIOwner": "123"})
	obj := v["build"]
	if obj.GetAttr("Host").AsString() != "127.0.0.5" || obj.GetAttr("Port").AsString() != "22" || obj.GetAttr("SourceAMIOwner").AsString() != "123" {
		t.Errorf("BuildVars = %#v", obj)
	}
}

func TestBuiltinsRegistered(t *testing.T) {
	got := strings.Join(ProvisionerTypes(), ",")
	for _, want := range []string{"breakpoint", "file", "shell", "shell-local"} {
		if !strings.Contains(","+got+",", ","+want+",") {
			t.Errorf("provisioner types %s lack %s", got, want)
		}
	}
	_, diags := NewProvisioner(&template.Provisioner{Block: block(t, "shel", `inline = ["x"]`)}, "amazon-ebs", nil)
	if !strings.Contains(diagText(diags), `Did you mean "shell"?`) {
		t.Errorf("diags = %s", diagText(diags))
	}
}
