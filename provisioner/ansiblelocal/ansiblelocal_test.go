package ansiblelocal_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/ansiblelocal"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree writes a playbook tree and makes it the working directory; out is
// where the playbooks write (the "machine" is this host).
func tree(t *testing.T) (dir, out string) {
	t.Helper()
	dir = t.TempDir()
	out = filepath.Join(dir, "machine")
	t.Chdir(dir)
	t.Setenv("HOME", dir)
	t.Setenv("ANSIBLE_LOCAL_TEMP", filepath.Join(dir, "tmp"))
	t.Setenv("ANSIBLE_NOCOLOR", "1")
	write(t, "pb/main.yml", fmt.Sprintf(`- hosts: app
  gather_facts: false
  roles: [greeter]
  tasks:
    - ansible.builtin.copy:
        dest: %s/vars
        content: "{{ group_var }} {{ host_var }} {{ who }} {{ packer_build_name }}\n"
`, out))
	write(t, "pb/second.yml", fmt.Sprintf("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy: {dest: %s/second, content: \"second\\n\"}\n", out))
	write(t, "other/extra.yml", fmt.Sprintf("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy: {dest: %s/extra, content: \"extra\\n\"}\n", out))
	write(t, "roles/greeter/tasks/main.yml", fmt.Sprintf("- ansible.builtin.template: {src: hi.j2, dest: %s/greeter}\n", out))
	write(t, "roles/greeter/templates/hi.j2", "hi from {{ inventory_hostname }} in {{ group_names | join(',') }}\n")
	write(t, "gv/all.yml", "group_var: g\n")
	write(t, "hv/127.0.0.1.yml", "host_var: h\n")
	write(t, "books/more/readme.txt", "more\n")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, out
}

func needAnsible(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatalf("ansible-playbook is not on PATH (apt-get install ansible): %v", err)
	}
}

// TestRunsLocally runs Debian's ansible-playbook through a communicator
// that runs commands on this host: the staged layout is Packer's.
func TestRunsLocally(t *testing.T) {
	needAnsible(t)
	dir, out := tree(t)
	stage := filepath.Join(dir, "stage")
	p, diags := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", fmt.Sprintf(`
playbook_dir            = "./pb"
playbook_files          = ["./pb/main.yml", "./other/extra.yml"]
playbook_paths          = ["./books/more"]
role_paths              = ["./roles/greeter"]
group_vars              = "./gv"
host_vars               = "./hv"
inventory_groups        = ["app", "web"]
extra_arguments         = ["--extra-vars", "who=me"]
staging_directory       = %q
`, stage), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	b := &provisioner.Build{Name: "amazon-ebs.app", Type: "amazon-ebs"}
	if err := provisioner.Run(context.Background(), u, provisionertest.Local{}, b, p, provisioner.Common{}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	for f, want := range map[string]string{
		"vars":    "g h me amazon-ebs.app\n",
		"greeter": "hi from 127.0.0.1 in app,web\n",
		"extra":   "extra\n",
	} {
		if got, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q\n%s", f, got, err, want, u.Text())
		}
	}
	if _, err := os.Stat(filepath.Join(out, "second")); err == nil {
		t.Error("second.yml ran, but only playbook_files run")
	}
	for _, f := range []string{"main.yml", "second.yml", "other/extra.yml", "roles/greeter/tasks/main.yml",
		"group_vars/all.yml", "host_vars/127.0.0.1.yml", "playbooks/more/readme.txt"} {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("staged %s: %v", f, err)
		}
	}
}

func TestCleanStagingAndFailure(t *testing.T) {
	needAnsible(t)
	dir, out := tree(t)
	write(t, "fail.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail: {msg: broken on purpose}\n")
	stage := filepath.Join(dir, "stage")
	p, diags := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", fmt.Sprintf(`
playbook_file           = "./pb/second.yml"
staging_directory       = %q
clean_staging_directory = true
`, stage), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, provisionertest.Local{}, &provisioner.Build{Name: "x"}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	if _, err := os.Stat(filepath.Join(out, "second")); err != nil {
		t.Errorf("did not run: %v", err)
	}
	if _, err := os.Stat(stage); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}

	p, diags = ansiblelocal.New(provisionertest.HCL(t, "ansible-local", fmt.Sprintf(`
playbook_file     = "./fail.yml"
staging_directory = %q
`, stage), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u = &provisionertest.UI{}
	err := p.Provision(context.Background(), u, provisionertest.Local{}, &provisioner.Build{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "Error executing Ansible: Non-zero exit status: 2") || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("err = %v\n%s", err, u.Text())
	}

	p, _ = ansiblelocal.New(provisionertest.HCL(t, "ansible-local", fmt.Sprintf(`
playbook_file     = "./fail.yml"
command           = "no-such-ansible-playbook"
staging_directory = %q
`, stage), nil), nil)
	err = p.Provision(context.Background(), &provisionertest.UI{}, provisionertest.Local{}, &provisioner.Build{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "no-such-ansible-playbook could not be found") {
		t.Errorf("err = %v", err)
	}
}

func TestGalaxyOnTheMachine(t *testing.T) {
	needAnsible(t)
	dir, out := tree(t)
	write(t, "src/greet/meta/main.yml", "galaxy_info: {author: x, description: x, license: MIT, min_ansible_version: '2.9', platforms: []}\n")
	write(t, "src/greet/tasks/main.yml", fmt.Sprintf("- ansible.builtin.copy: {dest: %s/galaxy, content: \"from galaxy\\n\"}\n", out))
	if o, err := exec.Command("tar", "-czf", "greet.tar.gz", "-C", "src", "greet").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, o)
	}
	write(t, "requirements.yml", "- src: file://"+filepath.Join(dir, "greet.tar.gz")+"\n  name: greet\n")
	write(t, "site.yml", "- hosts: all\n  gather_facts: false\n  roles: [greet]\n")
	p, diags := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", fmt.Sprintf(`
playbook_file     = "./site.yml"
galaxy_file       = "./requirements.yml"
staging_directory = %q
`, filepath.Join(dir, "stage")), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, provisionertest.Local{}, &provisioner.Build{Name: "x"}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	if got, err := os.ReadFile(filepath.Join(out, "galaxy")); err != nil || string(got) != "from galaxy\n" {
		t.Errorf("galaxy = %q, %v\n%s", got, err, u.Text())
	}
}

func TestValidate(t *testing.T) {
	tree(t)
	for _, tt := range []struct{ src, want string }{
		{`extra_arguments = ["-v"]`, "Either playbook_file or playbook_files parameter must be specified"},
		{`playbook_file = "pb/main.yml"
playbook_files = ["pb/second.yml"]`, "not both"},
		{`playbook_file = "nope.yml"`, "playbook_file: nope.yml is invalid"},
		{`playbook_file = "pb/main.yml"
playbook_dir = "pb/main.yml"`, "playbook_dir: pb/main.yml must point to a directory"},
		{`playbook_file = "pb/main.yml"
role_paths = ["missing"]`, "role_paths: missing is invalid"},
		{`playbook_file = "pb/main.yml"
group_vars = "missing"`, "group_vars: missing is invalid"},
		{`playbook_file = "pb/main.yml"
galaxy_file = "missing"`, "galaxy_file: missing is invalid"},
		{`playbook_file = "pb/main.yml"
use_proxy = false`, "Unsupported argument"},
	} {
		_, diags := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", tt.src, nil), nil)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("%s: diags = %v, want %q", tt.src, diags, tt.want)
		}
	}
	// Defaults are Packer's; the staging directory is unique per run.
	p, diags := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", `playbook_file = "pb/main.yml"`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	q, _ := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", `playbook_file = "pb/main.yml"`, nil), nil)
	c := p.Config()
	if c.Command != ansiblelocal.DefaultCommand || c.GalaxyCommand != "ansible-galaxy" ||
		!strings.HasPrefix(c.StagingDirectory, "/tmp/packer-provisioner-ansible-local/") || c.StagingDirectory == q.Config().StagingDirectory {
		t.Errorf("defaults = %+v", c)
	}
	var got []string
	r, _ := ansiblelocal.New(provisionertest.HCL(t, "ansible-local", `
playbook_dir = "pb"
playbook_files = ["pb/main.yml"]
role_paths = ["roles/greeter"]
group_vars = "gv"
host_vars = "hv"
playbook_paths = ["books/more"]`, nil), nil)
	for _, f := range r.InputFiles() {
		got = append(got, f.Role+"="+f.Path)
	}
	want := "playbook_dir=pb playbook=pb/main.yml playbook_paths=books/more role_paths=roles/greeter group_vars=gv host_vars=hv"
	if strings.Join(got, " ") != want {
		t.Errorf("InputFiles = %s\nwant %s", strings.Join(got, " "), want)
	}
}
