package ansible_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/ansible"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

// These tests run Debian's ansible-playbook against a real OpenSSH server
// on loopback (root needed; `make test` runs them in a loopback-only
// netns). The "machine" is this host, so the playbooks write only into the
// test's temporary directory.

func needAnsible(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatalf("ansible-playbook is not on PATH (apt-get install ansible): %v", err)
	}
}

func connect(t *testing.T, srv *sshtest.Server) *ssh.Comm {
	t.Helper()
	c, err := ssh.Connect(context.Background(), ssh.Config{
		Host: srv.Host, Port: srv.Port, User: srv.User, PrivateKey: srv.ClientKeyPEM, Timeout: 20 * time.Second,
		HostKey: ssh.PinnedHostKeys(fingerprints(srv.HostKeys)...),
	})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, srv.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func fingerprints(keys []gossh.PublicKey) []ssh.Fingerprint {
	var out []ssh.Fingerprint
	for _, k := range keys {
		out = append(out, ssh.FingerprintOf(k))
	}
	return out
}

// ansibleEnv keeps Ansible's own files (~/.ansible) in the test's
// directory.
func ansibleEnv(t *testing.T, dir string) {
	t.Setenv("HOME", dir)
	t.Setenv("ANSIBLE_LOCAL_TEMP", filepath.Join(dir, "local-tmp"))
	t.Setenv("ANSIBLE_REMOTE_TMP", filepath.Join(dir, "remote-tmp"))
	t.Setenv("SSH_AUTH_SOCK", "")
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOverSSH(t *testing.T) {
	needAnsible(t)
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	out := filepath.Join(dir, "machine")
	write(t, "play/site.yml", fmt.Sprintf(`- hosts: web
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: %s/greeting
        content: "{{ greeting }} {{ inventory_hostname }} {{ group_names | join(',') }} {{ packer_build_name }}\n"
    - ansible.builtin.include_role:
        name: stamp
`, out))
	write(t, "play/roles/stamp/tasks/main.yml", fmt.Sprintf(`- ansible.builtin.template:
    src: stamp.j2
    dest: %s/stamp
`, out))
	write(t, "play/roles/stamp/templates/stamp.j2", "stamped by {{ ansible_user }}\n")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("inv", 0o755); err != nil {
		t.Fatal(err)
	}
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `
playbook_file       = "./play/site.yml"
groups              = ["web"]
empty_groups        = ["db"]
host_alias          = "box"
inventory_directory = "./inv"
keep_inventory_file = true
extra_arguments     = ["--extra-vars", "greeting=hi db_password=hunter2"]
ansible_env_vars    = ["ANSIBLE_NOCOLOR=True"]
`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	b := &provisioner.Build{Name: "amazon-ebs.box", Type: "amazon-ebs", SSHPrivateKey: string(srv.ClientKeyPEM)}
	if err := provisioner.Run(context.Background(), u, comm, b, p, provisioner.Common{}); err != nil {
		t.Fatalf("%v\n%s\n%s", err, u.Text(), srv.Log())
	}
	for f, want := range map[string]string{
		"greeting": "hi box web amazon-ebs.box\n",
		"stamp":    "stamped by root\n",
	} {
		if got, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", f, got, err, want)
		}
	}
	text := u.Text()
	if !strings.Contains(text, "db_password=*****") || strings.Contains(text, "hunter2") {
		t.Errorf("the password in extra_arguments was not masked:\n%s", text)
	}
	// The kept inventory is Packer's, with this connection.
	inv, _ := filepath.Glob("inv/packer-provisioner-ansible*")
	if len(inv) != 1 {
		t.Fatalf("inventory files = %v", inv)
	}
	got, _ := os.ReadFile(inv[0])
	line := fmt.Sprintf("box ansible_host=%s ansible_user=root ansible_port=%d\n", srv.Host, srv.Port)
	if want := line + "[web]\n" + line + "[db]\n"; string(got) != want {
		t.Errorf("inventory =\n%s\nwant\n%s", got, want)
	}
	// The key and known_hosts are gone, and so are the persistent ssh
	// masters Ansible started in that directory.
	work := workDir(t, text)
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", work, err)
	}
	if procs := processesMentioning(work); len(procs) > 0 {
		t.Errorf("processes left running: %v", procs)
	}
}

// workDir is the provisioner's temporary directory, from the command it
// printed.
func workDir(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, os.TempDir()+"/amibake-ansible-")
	if i < 0 {
		t.Fatalf("no work directory in\n%s", text)
	}
	rest := text[i:]
	return rest[:len(os.TempDir()+"/amibake-ansible-")+strings.IndexAny(rest[len(os.TempDir()+"/amibake-ansible-"):], "/ \n")]
}

// processesMentioning lists the command lines that contain s.
// A master told to exit (ssh -O exit) answers first and then exits: a
// process still there a moment later is let go for up to 5 s, far below
// Ansible's ControlPersist of 60 s that a forgotten master would live.
func processesMentioning(s string) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []string
		m, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err == nil && strings.Contains(string(b), s) {
				out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cancelling the build (Ctrl-C) stops Ansible at once and removes the key.
func TestCancel(t *testing.T) {
	needAnsible(t)
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	write(t, "site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: sleep 300\n")
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `playbook_file = "site.yml"`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &notifyUI{line: "TASK [ansible.builtin.command] *************************************************", on: cancel}
	b := &provisioner.Build{Name: "x", SSHPrivateKey: string(srv.ClientKeyPEM)}
	start := time.Now()
	err := p.Provision(ctx, u, comm, b)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %v\n%s", err, u.Text())
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %s to stop", d)
	}
	work := workDir(t, u.Text())
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", work, err)
	}
	if procs := processesMentioning(work); len(procs) > 0 {
		t.Errorf("processes left running: %v", procs)
	}
}

// notifyUI calls on when a message line appears.
type notifyUI struct {
	provisionertest.UI
	once sync.Once
	line string
	on   func()
}

func (n *notifyUI) Message(msg string) {
	n.UI.Message(msg)
	if msg == n.line {
		n.once.Do(n.on)
	}
}

// pinned is a communicator that reports another host key than the server's.
type pinned struct {
	communicator.Communicator
	key gossh.PublicKey
}

func (p pinned) SSHEndpoint() (communicator.SSHEndpoint, error) {
	ep, err := p.Communicator.(communicator.SSHEndpointer).SSHEndpoint()
	ep.HostKey = string(gossh.MarshalAuthorizedKey(p.key))
	return ep, err
}

// Ansible must refuse a machine whose host key is not the one amibake
// verified.
func TestHostKeyPinned(t *testing.T) {
	needAnsible(t)
	srv := sshtest.Start(t, sshtest.Options{})
	other := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	write(t, "site.yml", fmt.Sprintf("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.file: {path: %s/touched, state: touch}\n", dir))
	b := &provisioner.Build{Name: "x", Type: "amazon-ebs", SSHPrivateKey: string(srv.ClientKeyPEM)}
	// Also when the template, written for Packer's proxy, turns Ansible's
	// host key checking off.
	for _, src := range []string{`playbook_file = "site.yml"`, `
playbook_file    = "site.yml"
ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]`} {
		p, diags := ansible.New(provisionertest.HCL(t, "ansible", src, nil), nil)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		u := &provisionertest.UI{}
		err := provisioner.Run(context.Background(), u, pinned{comm, other.HostKeys[0]}, b, p, provisioner.Common{})
		if err == nil || !strings.Contains(err.Error(), "Host key verification failed") {
			t.Fatalf("%s: err = %v\n%s", src, err, u.Text())
		}
		if _, err := os.Stat(filepath.Join(dir, "touched")); err == nil {
			t.Fatalf("%s: the playbook ran on a host with the wrong key", src)
		}
	}
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `playbook_file = "site.yml"`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var u *provisionertest.UI
	// With the key amibake verified, the same run works.
	u = &provisionertest.UI{}
	if err := provisioner.Run(context.Background(), u, comm, b, p, provisioner.Common{}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	if _, err := os.Stat(filepath.Join(dir, "touched")); err != nil {
		t.Errorf("the playbook did not run: %v\n%s", err, u.Text())
	}
}

func TestNoKeyNoAgent(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	write(t, "site.yml", "- hosts: all\n  tasks: []\n")
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `
playbook_file = "site.yml"
skip_version_check = true`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	err := p.Provision(context.Background(), &provisionertest.UI{}, comm, &provisioner.Build{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "neither a private key nor an SSH agent") {
		t.Errorf("err = %v", err)
	}
	if err := p.Provision(context.Background(), &provisionertest.UI{}, nil, &provisioner.Build{Name: "x"}); err == nil ||
		!strings.Contains(err.Error(), "needs an SSH communicator") {
		t.Errorf("without a communicator: %v", err)
	}
}

func TestGalaxy(t *testing.T) {
	needAnsible(t)
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	// A role from a local tarball: ansible-galaxy installs it offline.
	write(t, "src/greet/meta/main.yml", "galaxy_info: {author: x, description: x, license: MIT, min_ansible_version: '2.9', platforms: []}\n")
	write(t, "src/greet/tasks/main.yml", fmt.Sprintf("- ansible.builtin.copy: {dest: %s/galaxy, content: \"from galaxy\\n\"}\n", dir))
	if out, err := exec.Command("tar", "-czf", "greet.tar.gz", "-C", "src", "greet").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	write(t, "requirements.yml", "roles:\n  - src: file://"+filepath.Join(dir, "greet.tar.gz")+"\n    name: greet\n")
	write(t, "site.yml", "- hosts: all\n  gather_facts: false\n  roles: [greet]\n")
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `
playbook_file        = "site.yml"
galaxy_file          = "requirements.yml"
roles_path           = "galaxy-roles"
galaxy_force_install = true
ansible_env_vars     = ["ANSIBLE_ROLES_PATH=galaxy-roles"]
`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	b := &provisioner.Build{Name: "x", SSHPrivateKey: string(srv.ClientKeyPEM)}
	if err := provisioner.Run(context.Background(), u, comm, b, p, provisioner.Common{}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	if got, err := os.ReadFile(filepath.Join(dir, "galaxy")); err != nil || string(got) != "from galaxy\n" {
		t.Errorf("galaxy role did not run: %q %v\n%s", got, err, u.Text())
	}
	if !u.Has("message: Executing Ansible Galaxy") {
		t.Errorf("no galaxy run in\n%s", u.Text())
	}
}

// user is the login user; Packer's proxy logged in as ssh_username
// whatever it said, so a different one is pointed out.
func TestUserDiffersFromSSHUsername(t *testing.T) {
	needAnsible(t)
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	dir := t.TempDir()
	ansibleEnv(t, dir)
	t.Chdir(dir)
	write(t, "site.yml", "- hosts: all\n  gather_facts: false\n  tasks: [{ansible.builtin.ping: {}}]\n")
	p, diags := ansible.New(provisionertest.HCL(t, "ansible", `
playbook_file = "site.yml"
user          = "nobody"`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	err := p.Provision(context.Background(), u, comm, &provisioner.Build{Name: "x", SSHPrivateKey: string(srv.ClientKeyPEM)})
	if err == nil || !strings.Contains(err.Error(), "UNREACHABLE") {
		t.Errorf("err = %v (nobody may not log in)", err)
	}
	if !strings.Contains(u.Text(), `Warning: Ansible logs in as user "nobody"`) || !strings.Contains(u.Text(), `logged in as "root" (ssh_username)`) {
		t.Errorf("no warning in\n%s", u.Text())
	}
}
