package shelllocal

import (
	"context"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

var amis = &artifact.Artifact{
	BuildName:   "amazon-ebs.ubuntu",
	BuilderType: "amazon-ebs",
	AMIs:        map[string]string{"us-east-1": "ami-0b", "eu-west-1": "ami-0a"},
	Data:        map[string]string{"SourceAMI": "ami-src"},
}

func TestPostProcess(t *testing.T) {
	tests := []struct {
		name    string
		block   func(t *testing.T) *template.Block
		lines   []string
		wantErr string
	}{
		{
			name: "environment",
			block: func(t *testing.T) *template.Block {
				return provisionertest.HCL(t, "shell-local", `inline = [
  "echo \"$PACKER_BUILD_NAME $PACKER_BUILDER_TYPE\"",
  "echo \"$PACKER_ARTIFACT_ID\"",
]`, nil)
			},
			lines: []string{"message: amazon-ebs.ubuntu amazon-ebs", "message: eu-west-1:ami-0a,us-east-1:ami-0b"},
		},
		{
			name: "legacy string execute_command runs under sh -c",
			block: func(t *testing.T) *template.Block {
				return provisionertest.JSON(t, "shell-local",
					`{"execute_command": "echo from {{.SourceAMI}} {{.ArtifactID}}; {{.Vars}} {{.Script}}", "command": "echo ok"}`)
			},
			lines: []string{"message: from ami-src eu-west-1:ami-0a,us-east-1:ami-0b", "message: ok"},
		},
		{
			name: "failure",
			block: func(t *testing.T) *template.Block {
				return provisionertest.HCL(t, "shell-local", `inline = ["exit 7"]`, nil)
			},
			wantErr: "Script exited with non-zero exit status: 7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := New(tt.block(t), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			u := &provisionertest.UI{}
			out, keep, err := p.PostProcess(context.Background(), u, amis)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, u.Text())
			}
			if out != amis || !keep {
				t.Errorf("artifact not passed on: %v %v", out, keep)
			}
			for _, l := range tt.lines {
				if !u.Has(l) {
					t.Errorf("missing %q in\n%s", l, u.Text())
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	_, diags := New(provisionertest.HCL(t, "shell-local", "\nkeep_input = true", nil), nil)
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("got %v", diags)
	}
	_, diags = New(provisionertest.HCL(t, "shell-local", `env = {}`, nil), nil)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "cannot all be empty") {
		t.Fatalf("got %v", diags)
	}
}
