package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ui"
)

// A sensitive variable that a provisioner echoes, in the environment, on
// stderr and in the manifest's custom_data, must not appear in any output
// of the build, in any output mode, nor in the manifest or the run journal.
func TestBuildNeverShowsSecrets(t *testing.T) {
	const secret = "s3cr3t-Pa55word-xyz"
	for _, mode := range [][]string{{"-color=false"}, {"-machine-readable"}} {
		t.Run(mode[0], func(t *testing.T) {
			buildEnv(t, false)
			t.Setenv("AMIBAKE_LOG", "debug")
			dir := t.TempDir()
			tmpl := filepath.Join(dir, "secret.pkr.hcl")
			manifest := filepath.Join(dir, "manifest.json")
			src := `
variable "db_password" {
  type      = string
  sensitive = true
}
source "amazon-ebs" "app" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "secret-test"
}
build {
  sources = ["source.amazon-ebs.app"]
  provisioner "shell" {
    environment_vars = ["DB_PASSWORD=${var.db_password}"]
    inline           = ["echo password is $DB_PASSWORD", "echo ${var.db_password} >&2"]
  }
  post-processor "manifest" {
    output      = "` + manifest + `"
    custom_data = { pw = var.db_password }
  }
}
`
			if err := os.WriteFile(tmpl, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{}, mode...), "-var", "db_password="+secret, tmpl)
			code, out, errOut := runBuildCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			if !strings.Contains(out+errOut, "password is") {
				t.Fatalf("the provisioner's output is missing, so the check proves nothing:\n%s", out)
			}
			files := map[string]string{"stdout": out, "stderr": errOut}
			m, err := os.ReadFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			files["manifest"] = string(m)
			journals, _ := filepath.Glob(filepath.Join(os.Getenv("HOME"), ".local/state/amibake/runs/*"))
			if len(journals) == 0 {
				t.Fatal("no run journal written")
			}
			for _, j := range journals {
				b, _ := os.ReadFile(j)
				files[j] = string(b)
			}
			for name, text := range files {
				if strings.Contains(text, secret) {
					t.Errorf("the secret reached %s:\n%s", name, text)
				}
			}
		})
	}
}

func TestEnvironmentCredentialsAreMasked(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret-key-value")
	t.Setenv("AWS_SESSION_TOKEN", "env-session-token-value")
	ios, _, _, _ := ui.Test()
	f := newFactory(ios)
	for _, s := range []string{"env-secret-key-value", "env-session-token-value"} {
		if got := f.Secrets.Mask("error: " + s); strings.Contains(got, s) {
			t.Errorf("%q is not masked: %q", s, got)
		}
	}
}
