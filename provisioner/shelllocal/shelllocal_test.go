package shelllocal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
	"github.com/amibake/amibake/provisioner/shell"
)

var build = &provisioner.Build{Name: "amazon-ebs.ubuntu", Type: "amazon-ebs", InstanceID: "i-0123", Host: "127.0.0.1", Port: 22}

func TestNewValidation(t *testing.T) {
	script := filepath.Join(t.TempDir(), "s.sh")
	os.WriteFile(script, []byte("echo hi\n"), 0o755)
	tests := []struct {
		name, hcl, json string
		wantErr         string
		wantWarn        string
		line            int
	}{
		{name: "command", hcl: `command = "echo hi"`, json: `{"command": "echo hi"}`},
		{name: "inline string in JSON", json: `{"inline": "echo hi"}`},
		{name: "script", hcl: fmt.Sprintf("script = %q", script)},
		{name: "nothing", hcl: `env = {}`, wantErr: "Command, Inline, Script and Scripts options cannot all be empty", line: 1},
		{name: "two", hcl: "command = \"x\"\ninline = [\"y\"]", json: `{"command":"x","inline":["y"]}`,
			wantErr: "You may only specify one of the following options: Command, Inline, Script or Scripts"},
		{name: "bad script", hcl: "\nscript = \"/nonexistent.sh\"", wantErr: "Bad script '/nonexistent.sh'", line: 2},
		{name: "bad only_on", hcl: "inline = [\"x\"]\nonly_on = [\"linux\", \"plan9\"]",
			wantErr: "Invalid OS specified in only_on: 'plan9'", line: 2},
		{name: "bad env", hcl: "inline = [\"x\"]\nenvironment_vars = [\"NOVALUE\"]",
			wantErr: "Environment variable not in format 'key=value': NOVALUE", line: 2},
		{name: "bad execute_command", hcl: "inline = [\"x\"]\nexecute_command = [\"/bin/sh\", \"-c\", \"{{.Path}}\"]",
			wantErr: "Invalid execute_command", line: 2},
		{name: "linux pathing with inline", hcl: "inline = [\"x\"]\nuse_linux_pathing = true",
			wantErr: "unable to use the Command and Inline features", line: 2},
		{name: "linux pathing off windows", hcl: fmt.Sprintf("script = %q\nuse_linux_pathing = true", script),
			wantWarn: "use_linux_pathing has no effect"},
	}
	for _, tt := range tests {
		for _, format := range []string{"hcl", "json"} {
			src := map[string]string{"hcl": tt.hcl, "json": tt.json}[format]
			if src == "" {
				continue
			}
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				var b *template.Block
				if format == "hcl" {
					b = provisionertest.HCL(t, "shell-local", src, nil)
				} else {
					b = provisionertest.JSON(t, "shell-local", src)
				}
				p, diags := New(b, nil)
				if tt.wantErr == "" {
					if diags.HasErrors() || p == nil {
						t.Fatal(diags.Error())
					}
					if tt.wantWarn != "" && (len(diags) != 1 || diags[0].Severity != hcl.DiagWarning ||
						!strings.Contains(diags[0].Summary, tt.wantWarn)) {
						t.Errorf("want warning %q, got %v", tt.wantWarn, diags)
					}
					return
				}
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("want %q, got %v", tt.wantErr, diags)
				}
				if tt.line > 0 && diags[0].Subject.Start.Line != tt.line {
					t.Errorf("line %d want %d", diags[0].Subject.Start.Line, tt.line)
				}
			})
		}
	}
}

func provision(t *testing.T, hcl string) (*provisionertest.UI, error) {
	t.Helper()
	p, diags := New(provisionertest.HCL(t, "shell-local", hcl, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	return u, p.Provision(context.Background(), u, nil, build)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"script sees $GREETING\"\n"), 0o755)
	tests := []struct {
		name    string
		hcl     string
		lines   []string
		wantErr string
	}{
		{name: "inline with env", hcl: `
environment_vars = ["GREETING=it's me", "OVER=vars"]
env = { OVER = "env" }
inline = ["echo \"$GREETING $OVER\"", "echo \"$PACKER_BUILD_NAME/$PACKER_BUILDER_TYPE\"", "echo oops >&2"]`,
			lines: []string{"message: it's me env", "message: amazon-ebs.ubuntu/amazon-ebs", "error: oops"}},
		{name: "command", hcl: `command = "echo one; echo two"`, lines: []string{"message: one", "message: two"}},
		{name: "script", hcl: fmt.Sprintf("script = %q\nenvironment_vars = [\"GREETING=hi\"]", script),
			lines: []string{"say: Running local shell script: " + script, "message: script sees hi"}},
		{name: "exit code", hcl: `inline = ["exit 4"]`,
			wantErr: "Script exited with non-zero exit status: 4. Allowed exit codes are: [0]"},
		{name: "valid exit code", hcl: "inline = [\"exit 4\"]\nvalid_exit_codes = [0, 4]"},
		{name: "-e by default", hcl: `inline = ["false", "echo unreachable"]`, wantErr: "non-zero exit status: 1"},
		{name: "custom shebang", hcl: "inline_shebang = \"/bin/sh\"\ninline = [\"false\", \"echo reached\"]",
			lines: []string{"message: reached"}},
		{name: "only_on another OS", hcl: fmt.Sprintf("inline = [\"exit 1\"]\nonly_on = [%q]", otherOS()),
			lines: []string{"say: Skipping shell-local due to runtime OS"}},
		{name: "only_on this OS", hcl: fmt.Sprintf("inline = [\"echo ran\"]\nonly_on = [%q]", runtime.GOOS),
			lines: []string{"message: ran"}},
		{name: "execute_command with build data", hcl: `
inline = ["true"]
execute_command = ["/bin/sh", "-c", "echo {{.ID}} {{.Host}}:{{.Port}}; {{.Vars}} {{.Script}}"]`,
			lines: []string{"message: i-0123 127.0.0.1:22"}},
		{name: "tempfile extension", hcl: "inline = [\"echo \\\"$0\\\"\"]\ntempfile_extension = \".bash\"",
			lines: []string{}},
		{name: "missing interpreter", hcl: "inline = [\"true\"]\nexecute_command = [\"/nonexistent/sh\", \"{{.Script}}\"]",
			wantErr: "Error executing script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := provision(t, tt.hcl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, u.Text())
			}
			for _, l := range tt.lines {
				if !u.Has(l) {
					t.Errorf("missing %q in\n%s", l, u.Text())
				}
			}
			if tt.name == "tempfile extension" && !strings.HasSuffix(u.Lines[0], ".bash") {
				t.Errorf("script name %q", u.Lines[0])
			}
		})
	}
}

func otherOS() string {
	if runtime.GOOS == "linux" {
		return "darwin"
	}
	return "linux"
}

func TestInlineFileRemoved(t *testing.T) {
	u, err := provision(t, `inline = ["true"]`)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Lines[0], "say: Running local shell script: ")
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary script %s left behind (%v)", name, err)
	}
}

// Cancelling kills the script and its children instead of waiting for them.
func TestCancelKillsChildren(t *testing.T) {
	p, _ := New(provisionertest.HCL(t, "shell-local", `inline = ["sleep 30 & sleep 30"]`, nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Provision(ctx, &provisionertest.UI{}, nil, build)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %s to stop", d)
	}
}

func TestCheckExitCodeShared(t *testing.T) {
	var ec *shell.ExitCodeError
	_, err := provision(t, `inline = ["exit 2"]`)
	if !errors.As(err, &ec) || ec.Code != 2 {
		t.Fatalf("got %v", err)
	}
}

func TestLinuxPath(t *testing.T) {
	for in, want := range map[string]string{
		`C:\Users\me\x.sh`:  "/mnt/c/Users/me/x.sh",
		"D:/scripts/a b.sh": "/mnt/d/scripts/a b.sh",
		"/already/linux":    "",
		"relative/x.sh":     "",
	} {
		got, err := LinuxPath(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("LinuxPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The inline script is named after the run, so that `amibake cleanup`
// finds it if the run is killed while it exists.
func TestInlineFileNamedAfterRun(t *testing.T) {
	p, diags := New(provisionertest.HCL(t, "shell-local", `inline = ["true"]`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	b := *build
	b.TempPrefix = "amibake-20261202T000000Z-abcdef-"
	if err := p.Provision(context.Background(), u, nil, &b); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Lines[0], "say: Running local shell script: ")
	if !strings.HasPrefix(filepath.Base(name), b.TempPrefix+"packer-shell") {
		t.Errorf("inline script %s is not named after the run", name)
	}
}
