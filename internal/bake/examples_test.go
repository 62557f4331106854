package bake

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
)

// chdir runs the rest of the test in a fresh directory (manifests and
// debug keys are written to the working directory).
func chdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })
	return dir
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	wd, _ := os.Getwd()
	return wd + "/" + rel
}

// exampleChecks: what an instance launched from each example's AMIs must
// show (user, command, expected output), by build name suffix.
var exampleChecks = map[string][]struct{ build, user, cmd, want string }{
	"tutorial/hello_ami.json":             {{"", "root", "cloud-init status", "status: done"}},
	"tutorial/hello_ami.pkr.hcl":          {{"", "root", "cloud-init status", "status: done"}},
	"tutorial/hello_ami_provisioned.json": {{"", "root", "redis-server --version", "Redis server v=7"}},
	"ubuntu-noble/ubuntu-noble.json":      {{"", "ubuntu", "test -s /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_Release && echo updated", "updated"}},
	"web-server/web-server.json":          {{"", "ubuntu", "sudo nginx -t 2>&1 && grep healthz /etc/nginx/conf.d/site.conf && systemctl is-enabled nginx", "location /healthz"}},
	"web-server/web-server.pkr.hcl":       {{"", "ubuntu", "sudo nginx -t 2>&1 && grep healthz /etc/nginx/conf.d/site.conf && systemctl is-enabled nginx", "enabled"}},
	"multi-builder/multi-builder.json": {
		{"ubuntu", "ubuntu", "dpkg -s ca-certificates | grep Status", "install ok installed"},
		{"debian", "admin", "curl --version | head -1", "curl 7."},
	},
	"multi-source/multi-source.pkr.hcl": {
		{"ubuntu", "ubuntu", "dpkg -s ca-certificates | grep Status", "install ok installed"},
		{"debian", "admin", "curl --version | head -1", "curl 7."},
	},
}

// TestExamples bakes every template under examples/ (the tutorial's
// provisioned template among them, byte for byte the reference's) on the
// simulator, as a user would with a default AWS profile, then launches an
// instance of each AMI and checks what provisioning installed.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*/*.json")
	hcl, _ := filepath.Glob("../../examples/*/*.pkr.hcl")
	files = append(files, hcl...)
	sort.Strings(files)
	if len(files) < len(exampleChecks) {
		t.Fatalf("found %d examples, want at least %d", len(files), len(exampleChecks))
	}
	for _, path := range files {
		name := strings.TrimPrefix(path, "../../examples/")
		checks, ok := exampleChecks[name]
		if !ok {
			t.Errorf("%s: no check of what it installs; add one to exampleChecks", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			p := abs(t, path)
			e := newEnv(t, ec2sim.ZeroLatency())
			dir := chdir(t)
			// multi-builder names profile "default", as most users have.
			cfg := filepath.Join(dir, "aws-config")
			creds := filepath.Join(dir, "aws-credentials")
			if err := os.WriteFile(cfg, []byte("[default]\nregion = us-east-1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIDSIMULATOR\naws_secret_access_key = simulator-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CONFIG_FILE", cfg)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
			r := e.build(t, p, template.LoadOptions{}, Options{})
			if r.runErr != nil || !r.res.OK() {
				t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
			}
			if _, err := os.Stat("manifest.json"); err == nil {
				var m struct {
					Builds []struct {
						Name       string `json:"name"`
						ArtifactID string `json:"artifact_id"`
					} `json:"builds"`
				}
				b, _ := os.ReadFile("manifest.json")
				if err := json.Unmarshal(b, &m); err != nil || len(m.Builds) == 0 {
					t.Errorf("manifest: %v\n%s", err, b)
				}
			}
			for _, c := range checks {
				found := false
				for _, b := range r.res.Builds {
					if c.build != "" && !strings.HasSuffix(b.Name, c.build) {
						continue
					}
					for _, a := range b.Artifacts {
						for region, ami := range a.AMIs {
							found = true
							checkLaunch(t, e, region, ami, c.user, c.cmd, c.want)
						}
					}
				}
				if !found {
					t.Errorf("no AMI from build %q", c.build)
				}
			}
		})
	}
}

// What a template meets on a real image when a package does not exist, or
// when cloud-init reports an error: the build fails with the instance's
// own message and leaves nothing behind (newEnv checks the inventory).
func TestInstanceErrorsFailTheBuild(t *testing.T) {
	for _, tt := range []struct{ name, inline, want string }{
		{"unknown package", `"sudo apt-get update", "sudo apt-get install -y amibake-no-such-package"`, "Unable to locate package amibake-no-such-package"},
		{"user data failed", `"cloud-init status --wait --long"`, "status: error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ec2sim.ZeroLatency())
			dir := chdir(t)
			tmpl := filepath.Join(dir, "bad.pkr.hcl")
			src := `source "amazon-ebs" "bad" {
  region        = "us-east-1"
  source_ami_filter {
    filters     = { name = "debian-12-amd64-*" }
    owners      = ["136693071363"]
    most_recent = true
  }
  instance_type = "t3.micro"
  ssh_username  = "admin"
  ami_name      = "never-made"
  user_data     = "#!/bin/sh\necho the user data failed\nexit 7\n"
}

build {
  sources = ["source.amazon-ebs.bad"]
  provisioner "shell" {
    inline = [` + tt.inline + `]
  }
}
`
			if err := os.WriteFile(tmpl, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.build(t, tmpl, template.LoadOptions{}, Options{})
			if r.runErr == nil && r.res.OK() {
				t.Fatalf("build succeeded:\n%s", r.out)
			}
			if all := r.out.String() + r.err.String(); !strings.Contains(all, tt.want) {
				t.Errorf("output lacks the instance's %q:\n%s", tt.want, all)
			}
		})
	}
}
