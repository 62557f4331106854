package bake

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// needAnsible fails the test when Debian's ansible is not installed (.ci/run
// and make setup install it).
func needAnsible(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatalf("ansible-playbook is not on PATH (apt-get install ansible): %v", err)
	}
}

// ansibleDir copies testdata/ansible to a fresh working directory: the
// template's paths are relative to where amibake runs, as in Packer.
func ansibleDir(t *testing.T) string {
	t.Helper()
	src := abs(t, "testdata/ansible")
	dir := chdir(t)
	if out, err := exec.Command("cp", "-a", src+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy testdata: %v\n%s", err, out)
	}
	return dir
}

// TestAnsibleBake bakes a template with both Ansible provisioners on the
// simulator's Debian machines, then launches the AMI and checks what the
// playbooks did: packages from the mirror, templated files, roles from a
// roles path (ansible) and from role_paths (ansible-local).
func TestAnsibleBake(t *testing.T) {
	needAnsible(t)
	// A private temporary folder: the leftover check below must not see
	// the files of tests running at the same time in other packages.
	t.Setenv("TMPDIR", t.TempDir())
	e := newEnv(t, ec2sim.ZeroLatency())
	dir := ansibleDir(t)
	before := tempDirs()
	r := e.buildMasked(t, filepath.Join(dir, "ansible.pkr.hcl"))
	all := r.out.String() + r.err.String()
	if r.runErr != nil || !r.res.OK() {
		t.Fatalf("build failed: %v\n%s", r.runErr, all)
	}
	for _, want := range []string{
		"amazon-ebs.debian: Provisioning with Ansible...",
		"TASK [Install jq from the mirror]",
		"TASK [motd : Render the message of the day]",
		"TASK [greeter : Greet]",
		"-o StrictHostKeyChecking=yes",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "BEGIN OPENSSH PRIVATE KEY") {
		t.Error("the private key reached the output")
	}
	// The sensitive variable, in the command and in Ansible's own output.
	if strings.Contains(all, "tok-0123456789-secret") || !strings.Contains(all, "api_token=") || !strings.Contains(all, `"msg": "token `) {
		t.Errorf("the sensitive token was not masked (or not shown at all):\n%s", all)
	}
	// The key, known_hosts and inventories are gone.
	for p := range tempDirs() {
		if !before[p] {
			t.Errorf("left behind: %s", p)
		}
	}
	var ami, region string
	for _, b := range r.res.Builds {
		for _, a := range b.Artifacts {
			for rg, id := range a.AMIs {
				region, ami = rg, id
			}
		}
	}
	if ami == "" {
		t.Fatalf("no AMI:\n%s", all)
	}
	checkLaunch(t, e, region, ami, "admin", "jq --version && cat /etc/amibake-ansible.txt /etc/motd.d-amibake",
		"jq-1.6\nhello from ansible on box (web) built by amazon-ebs\nrole motd rendered for Debian 12")
	checkLaunch(t, e, region, ami, "admin", "htop --version | head -1 && cat /etc/amibake-ansible-local.txt && ls /tmp/packer-provisioner-ansible-local | wc -l",
		"greeted by ansible-local in local\n0")
}

// tempDirs lists the files the Ansible provisioners create in the
// temporary directory (other tests running at the same time may add some:
// the packages run one at a time under go test ./...).
func tempDirs() map[string]bool {
	out := map[string]bool{}
	for _, pat := range []string{"amibake-ansible-*", "packer-provisioner-ansible*"} {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), pat))
		for _, p := range m {
			out[p] = true
		}
	}
	return out
}

// TestAnsibleFailingTask: a failing task fails the build with Ansible's
// message, and nothing is left in the cloud (newEnv checks) or on disk.
func TestAnsibleFailingTask(t *testing.T) {
	needAnsible(t)
	// A private temporary folder: the leftover check below must not see
	// the files of tests running at the same time in other packages.
	t.Setenv("TMPDIR", t.TempDir())
	e := newEnv(t, ec2sim.ZeroLatency())
	dir := ansibleDir(t)
	before := tempDirs()
	r := e.build(t, filepath.Join(dir, "failing.pkr.hcl"), template.LoadOptions{}, Options{})
	all := r.out.String() + r.err.String()
	if r.runErr != nil || r.res.OK() {
		t.Fatalf("want a failed build, got %v\n%s", r.runErr, all)
	}
	berr := r.res.Builds[0].Err
	if berr == nil || !strings.Contains(berr.Error(), "Error executing Ansible: Non-zero exit status") ||
		!strings.Contains(berr.Error(), "the disk is not ready") {
		t.Errorf("build error = %v\n%s", berr, all)
	}
	if !strings.Contains(all, "fatal: [default]: FAILED!") {
		t.Errorf("Ansible's failure not streamed:\n%s", all)
	}
	for p := range tempDirs() {
		if !before[p] {
			t.Errorf("left behind: %s", p)
		}
	}
}

// buildMasked is env.build with the template's sensitive values masked in
// the UI, as cmd/amibake sets it up.
func (e *env) buildMasked(t *testing.T, path string) *run {
	t.Helper()
	tmpl, diags := template.Load(path, template.LoadOptions{Env: e.getenv})
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", path, diags)
	}
	ios, _, out, errOut := ui.Test()
	secrets := &ui.Secrets{}
	secrets.Add(tmpl.Sensitive...)
	root := ui.New(ios, ui.Options{Secrets: secrets})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, bdiags, err := Run(ctx, tmpl, root, Options{Getenv: e.getenv, RunID: "run-test"})
	if err != nil {
		err = fmt.Errorf("%w: %s", err, bdiags.Error())
	}
	return &run{res: res, out: out, err: errOut, runErr: err}
}
