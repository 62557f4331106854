package ansible_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/ansible"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

// stubTree writes a playbook tree like Kubernetes image-builder's
// (ansible/node.yml with roles/ beside it, a galaxy requirements file),
// with the playbooks stubbed, and makes it the working directory.
func stubTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ansible/node.yml":                      "- hosts: all\n  roles: [node]\n",
		"ansible/roles/node/tasks/main.yml":     "- ansible.builtin.debug: msg=stub\n",
		"ansible/group_vars/all.yml":            "x: 1\n",
		"ansible/requirements.yml":              "collections:\n  - name: community.general\n",
		"ansible/inventory/group_vars/all.yml":  "y: 2\n",
		"ansible/ansible.cfg":                   "[defaults]\n",
		"ansible/shared-roles/common/README.md": "stub\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

// imageBuilderJSON is shaped like image-builder's packer/ami/packer.json
// ansible provisioner (its user variables already substituted).
const imageBuilderJSON = `{
  "playbook_file": "./ansible/node.yml",
  "user": "ubuntu",
  "ansible_env_vars": [
    "ANSIBLE_SSH_ARGS='-o HostkeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa'",
    "ANSIBLE_REMOTE_TEMP='/tmp/.ansible/'",
    "ANSIBLE_ROLES_PATH=./ansible/shared-roles"
  ],
  "extra_arguments": [
    "--extra-vars", "containerd_version=1.7.20 kubernetes_semver=v1.30.2",
    "--extra-vars", "",
    "--scp-extra-args", "-O"
  ],
  "galaxy_file": "./ansible/requirements.yml",
  "roles_path": "./ansible/roles",
  "collections_path": "./ansible/collections",
  "galaxy_force_install": true
}`

func TestValidatePublicTemplateStyle(t *testing.T) {
	stubTree(t)
	p, diags := ansible.New(provisionertest.JSON(t, "ansible", imageBuilderJSON), nil)
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %s", diags.Error())
	}
	c := p.Config()
	if c.PlaybookFile != "./ansible/node.yml" || c.User != "ubuntu" || len(c.AnsibleEnvVars) != 3 ||
		len(c.ExtraArguments) != 6 || c.GalaxyFile == "" || c.RolesPath == "" || c.CollectionsPath == "" || !c.GalaxyForceInstall {
		t.Errorf("config = %+v", c)
	}
	if c.Command != "ansible-playbook" || c.GalaxyCommand != "ansible-galaxy" || c.HostAlias != "default" {
		t.Errorf("defaults = %q %q %q", c.Command, c.GalaxyCommand, c.HostAlias)
	}
}

// Every option the issue lists is accepted in HCL; the proxy's own options
// warn that they have no effect.
func TestEveryOptionAccepted(t *testing.T) {
	dir := stubTree(t)
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `
playbook_file          = "./ansible/node.yml"
command                = "ansible-playbook"
extra_arguments        = ["-v"]
ansible_env_vars       = ["ANSIBLE_NOCOLOR=True"]
ansible_ssh_extra_args = ["-o IdentitiesOnly=yes"]
groups                 = ["web", "k8s"]
empty_groups           = ["db"]
host_alias             = "node"
inventory_directory    = "./ansible/inventory"
keep_inventory_file    = true
user                   = "admin"
galaxy_file            = "./ansible/requirements.yml"
galaxy_command         = "ansible-galaxy"
galaxy_force_install   = true
galaxy_force_with_deps = true
roles_path             = "./roles"
collections_path       = "./collections"
use_proxy              = false
use_sftp               = true
skip_version_check     = true
inventory_file_template = "{{ .HostAlias }} ansible_host={{ .Host }} ansible_user={{ .User }} ansible_port={{ .Port }} id={{ .ID }}\n"
local_port             = 2222
sftp_command           = "/usr/lib/openssh/sftp-server -e"
`, nil), nil)
	if diags.HasErrors() || p == nil {
		for _, d := range diags {
			t.Errorf("%s: %s", d.Summary, d.Detail)
		}
		t.FailNow()
	}
	var warned []string
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			warned = append(warned, d.Summary)
		}
	}
	if strings.Join(warned, "|") != "local_port has no effect in amibake|sftp_command has no effect in amibake" {
		t.Errorf("warnings = %q", warned)
	}
	_ = dir
}

func TestRefused(t *testing.T) {
	stubTree(t)
	for _, tt := range []struct{ src, want string }{
		{`playbook_file = "./ansible/node.yml"
use_proxy = true`, "use_proxy = true is not supported by amibake"},
		{`playbook_file = "./ansible/node.yml"
ansible_winrm_use_http = true`, "ansible_winrm_use_http is not supported"},
		{`user = "x"`, "playbook_file must be specified"},
		{`playbook_file = "./missing.yml"`, "playbook_file: ./missing.yml is invalid"},
		{`playbook_file = "./ansible"`, "must point to a file"},
		{`playbook_file = "./ansible/node.yml"
galaxy_file = "nope.yml"`, "galaxy_file: nope.yml is invalid"},
		{`playbook_file = "./ansible/node.yml"
inventory_directory = "./ansible/node.yml"`, "must point to a directory"},
		{`playbook_file = "./ansible/node.yml"
ansible_env_vars = ["NOEQUALS"]`, `"NOEQUALS" is not NAME=value`},
		{`playbook_file = "./ansible/node.yml"
local_port = 70000`, "local_port: 70000 must be a valid port"},
		{`playbook_file = "./ansible/node.yml"
inventory_file_template = "{{ .Nope }}"`, "Invalid inventory_file_template"},
		{`playbook_file = "./ansible/node.yml"
ssh_host_key_file = "x"`, ""}, // a warning, not an error
		{`playbook_file = "./ansible/node.yml"
unknown_option = 1`, "Unsupported argument"},
		{`playbook_file = "./ansible/node.yml"
ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]`, ""},
		{`playbook_file = "./ansible/node.yml"
ansible_ssh_extra_args = ["-o StrictHostKeyChecking=no"]`, ""},
		{`playbook_file = "./ansible/node.yml"
ansible_env_vars = ["ANSIBLE_SSH_ARGS='-o UserKnownHostsFile=/dev/null'"]`, ""},
	} {
		_, diags := ansible.New(provisionertest.HCL(t, "ansible", tt.src, nil), nil)
		if tt.want == "" {
			if diags.HasErrors() || len(diags) != 1 {
				t.Errorf("%s: diags = %v", tt.src, diags)
			}
			continue
		}
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("%s: diags = %v, want %q", tt.src, diags, tt.want)
		}
	}
}

func TestInputFiles(t *testing.T) {
	stubTree(t)
	p, diags := ansible.New(provisionertest.JSON(t, "ansible", imageBuilderJSON), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var got []string
	for _, f := range p.InputFiles() {
		got = append(got, f.Role+"="+f.Path)
	}
	want := []string{
		"playbook=./ansible/node.yml",
		"playbook ansible.cfg=ansible/ansible.cfg",
		"playbook roles=ansible/roles",
		"playbook group_vars=ansible/group_vars",
		"galaxy file=./ansible/requirements.yml",
		"roles_path=./ansible/shared-roles",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("InputFiles =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var _ provisioner.InputLister = p
}

func TestKnownHostsLine(t *testing.T) {
	for _, tt := range []struct {
		host string
		port int
		want string
	}{
		{"10.0.0.5", 22, "10.0.0.5 ssh-ed25519 AAAA\n"},
		{"127.0.0.7", 2222, "[127.0.0.7]:2222 ssh-ed25519 AAAA\n"},
	} {
		if got := ansible.KnownHostsLine(tt.host, tt.port, "ssh-ed25519 AAAA\n"); got != tt.want {
			t.Errorf("KnownHostsLine(%s, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}
