// Package ansible is Packer's `ansible` provisioner: it runs
// ansible-playbook on the host amibake runs on, against the machine being
// built.
//
// Packer puts an SSH proxy (its "adapter") between Ansible and the machine
// by default. amibake does not: Ansible connects straight to the machine
// with the connection amibake already has (address, port, user, private
// key or agent), and with the host key amibake verified pinned in a
// known_hosts file and StrictHostKeyChecking=yes. Packer's proxy makes
// Ansible trust any host key (it sets ANSIBLE_HOST_KEY_CHECKING=False);
// the direct connection keeps amibake's host-key check. So use_proxy =
// true is refused, and the options that only configure the proxy
// (local_port, sftp_command, ssh_host_key_file, ssh_authorized_key_file,
// ansible_proxy_key_type) are accepted with a warning that they have no
// effect. `user` is the user Ansible logs in as; it defaults to the
// communicator's ssh_username (Packer's proxy defaulted it to the local
// user, a name only the proxy saw).
package ansible

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	tmpl "github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// Config is every option Packer's ansible provisioner documents.
type Config struct {
	PlaybookFile        string   `hcl:"playbook_file,optional"`
	Command             string   `hcl:"command,optional"`
	ExtraArguments      []string `hcl:"extra_arguments,optional"`
	AnsibleEnvVars      []string `hcl:"ansible_env_vars,optional"`
	AnsibleSSHExtraArgs []string `hcl:"ansible_ssh_extra_args,optional"`
	Groups              []string `hcl:"groups,optional"`
	EmptyGroups         []string `hcl:"empty_groups,optional"`
	HostAlias           string   `hcl:"host_alias,optional"`
	// User is ansible_user; it defaults to the communicator's ssh_username
	// (Ansible connects directly, as Packer's use_proxy = false does).
	User                  string `hcl:"user,optional"`
	InventoryFile         string `hcl:"inventory_file,optional"`
	InventoryDirectory    string `hcl:"inventory_directory,optional"`
	InventoryFileTemplate string `hcl:"inventory_file_template,optional"`
	KeepInventoryFile     bool   `hcl:"keep_inventory_file,optional"`
	GalaxyFile            string `hcl:"galaxy_file,optional"`
	GalaxyCommand         string `hcl:"galaxy_command,optional"`
	GalaxyForceInstall    bool   `hcl:"galaxy_force_install,optional"`
	GalaxyForceWithDeps   bool   `hcl:"galaxy_force_with_deps,optional"`
	RolesPath             string `hcl:"roles_path,optional"`
	CollectionsPath       string `hcl:"collections_path,optional"`
	UseSFTP               bool   `hcl:"use_sftp,optional"`
	SkipVersionCheck      bool   `hcl:"skip_version_check,optional"`
	// UseProxy: only false (or unset) is accepted; see the package comment.
	UseProxy *bool `hcl:"use_proxy,optional"`

	// Options of Packer's proxy adapter, which amibake does not run.
	LocalPort            int    `hcl:"local_port,optional"`
	SFTPCommand          string `hcl:"sftp_command,optional"`
	SSHHostKeyFile       string `hcl:"ssh_host_key_file,optional"`
	SSHAuthorizedKeyFile string `hcl:"ssh_authorized_key_file,optional"`
	ProxyKeyType         string `hcl:"ansible_proxy_key_type,optional"`

	// WinRMUseHTTP is for Windows machines, which amibake does not build.
	WinRMUseHTTP bool `hcl:"ansible_winrm_use_http,optional"`
}

// Defaults, as Packer's.
const (
	DefaultCommand       = "ansible-playbook"
	DefaultGalaxyCommand = "ansible-galaxy"
	DefaultHostAlias     = "default"
	// DefaultInventoryTemplate is Packer's line for Ansible 2 and later.
	DefaultInventoryTemplate = "{{ .HostAlias }} ansible_host={{ .Host }} ansible_user={{ .User }} ansible_port={{ .Port }}\n"
)

// proxyOnly are the options that configure Packer's SSH proxy.
var proxyOnly = []string{"local_port", "sftp_command", "ssh_host_key_file", "ssh_authorized_key_file", "ansible_proxy_key_type"}

// Provisioner runs ansible-playbook against the machine.
type Provisioner struct {
	cfg       Config
	inventory *template.Template
}

// New decodes and validates an ansible provisioner block.
func New(b *tmpl.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	var cfg Config
	diags := provisioner.ListOrString(b, "extra_arguments", "ansible_env_vars", "ansible_ssh_extra_args", "groups", "empty_groups").Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Provisioner{cfg: cfg}
	c := &p.cfg
	if c.Command == "" {
		c.Command = DefaultCommand
	}
	if c.GalaxyCommand == "" {
		c.GalaxyCommand = DefaultGalaxyCommand
	}
	if c.HostAlias == "" {
		c.HostAlias = DefaultHostAlias
	}
	if c.InventoryFileTemplate == "" {
		c.InventoryFileTemplate = DefaultInventoryTemplate
	}

	if c.PlaybookFile == "" {
		diags = append(diags, provisioner.Errorf(b, "", `Set playbook_file to the playbook to run, such as "./playbook.yml".`, "playbook_file must be specified."))
	} else {
		diags = append(diags, provisioner.CheckFile(b, "playbook_file", c.PlaybookFile)...)
	}
	if c.GalaxyFile != "" {
		diags = append(diags, provisioner.CheckFile(b, "galaxy_file", c.GalaxyFile)...)
	}
	if c.InventoryFile != "" {
		if _, err := os.Stat(c.InventoryFile); err != nil {
			diags = append(diags, provisioner.Errorf(b, "inventory_file",
				"inventory_file is a path relative to the directory amibake runs in.",
				"inventory_file: %s is invalid: %s", c.InventoryFile, err))
		}
	}
	if c.InventoryDirectory != "" {
		diags = append(diags, provisioner.CheckDir(b, "inventory_directory", c.InventoryDirectory)...)
	}
	if c.LocalPort < 0 || c.LocalPort > 65535 {
		diags = append(diags, provisioner.Errorf(b, "local_port", "A port is between 0 and 65535.", "local_port: %d must be a valid port", c.LocalPort))
	}
	for _, kv := range c.AnsibleEnvVars {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			diags = append(diags, provisioner.Errorf(b, "ansible_env_vars",
				`Each entry must look like "NAME=value", such as "ANSIBLE_NOCOLOR=True".`,
				"ansible_env_vars: %q is not NAME=value", kv))
		}
	}
	if c.UseProxy != nil && *c.UseProxy {
		diags = append(diags, provisioner.Errorf(b, "use_proxy",
			"amibake always connects Ansible directly to the machine, with the host key amibake verified pinned; "+
				"Packer's SSH proxy would make Ansible trust any host key. Remove use_proxy (or set it to false).",
			"use_proxy = true is not supported by amibake"))
	}
	if c.WinRMUseHTTP {
		diags = append(diags, provisioner.Errorf(b, "ansible_winrm_use_http",
			"amibake builds Linux machines over SSH; remove ansible_winrm_use_http.",
			"ansible_winrm_use_http is not supported by amibake (no WinRM communicator)"))
	}
	for _, name := range proxyOnly {
		if provisioner.Has(b, name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  name + " has no effect in amibake",
				Detail: "It configures Packer's SSH proxy adapter. amibake connects Ansible directly to the machine " +
					"(as Packer's use_proxy = false does), with the host key amibake verified; remove " + name + ".",
				Subject: provisioner.AttrRange(b, name).Ptr(),
			})
		}
	}
	diags = append(diags, hostKeyWarnings(b, c)...)
	t, err := template.New("inventory_file_template").Option("missingkey=error").Parse(c.InventoryFileTemplate)
	if err == nil {
		err = t.Execute(&bytes.Buffer{}, inventoryData(nil, "default", "host", "user", 22))
	}
	if err != nil {
		diags = append(diags, provisioner.Errorf(b, "inventory_file_template",
			`The template may use {{ .HostAlias }}, {{ .Host }}, {{ .User }}, {{ .Port }} and the build's data, as in "`+
				strings.TrimSuffix(DefaultInventoryTemplate, "\n")+`".`,
			"Invalid inventory_file_template: %s", err))
	}
	p.inventory = t
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// weakening are ssh options that turn off the host key check amibake
// pins; ssh keeps the first value of an option, and Ansible puts
// ANSIBLE_SSH_ARGS and ANSIBLE_HOST_KEY_CHECKING=False before the pin.
var weakening = regexp.MustCompile(`(?i)StrictHostKeyChecking[= ]+(no|off|accept-new)|UserKnownHostsFile[= ]+/dev/null`)

// hostKeyWarnings explains what happens to settings copied from Packer
// templates that turn host key checking off (Packer's proxy needed them).
func hostKeyWarnings(b *tmpl.Block, c *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, kv := range c.AnsibleEnvVars {
		k, v, _ := strings.Cut(kv, "=")
		if k == "ANSIBLE_HOST_KEY_CHECKING" && !truthy(v) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "ANSIBLE_HOST_KEY_CHECKING=" + v + " is overridden by amibake",
				Detail: "Packer's SSH proxy made Ansible need it. amibake connects Ansible directly and pins the host key it verified, " +
					"so Ansible checks host keys (ANSIBLE_HOST_KEY_CHECKING=True); remove the setting.",
				Subject: provisioner.AttrRange(b, "ansible_env_vars").Ptr(),
			})
		}
	}
	check := func(name string, values []string) {
		for _, v := range values {
			if weakening.MatchString(v) {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Host key checking turned off in " + name,
					Detail: fmt.Sprintf("%q makes ssh accept any host key, so the key amibake verified and pinned for Ansible is not checked; "+
						"amibake connects Ansible directly, so remove it.", v),
					Subject: provisioner.AttrRange(b, name).Ptr(),
				})
			}
		}
	}
	check("ansible_env_vars", c.AnsibleEnvVars)
	check("ansible_ssh_extra_args", c.AnsibleSSHExtraArgs)
	check("extra_arguments", c.ExtraArguments)
	return diags
}

func truthy(v string) bool {
	switch strings.ToLower(strings.Trim(v, `'" `)) {
	case "1", "true", "yes", "on", "y", "t":
		return true
	}
	return false
}

// Config returns the decoded configuration with defaults applied.
func (p *Provisioner) Config() Config { return p.cfg }

// conventional are the files and directories Ansible reads next to a
// playbook (or an inventory) by convention.
var conventional = []string{"ansible.cfg", "roles", "group_vars", "host_vars", "templates", "files", "vars", "tasks", "handlers", "library", "module_utils", "filter_plugins", "collections"}

// InputFiles are the local files the run reads: the playbook, the
// directories Ansible looks in next to it, the galaxy file, the inventory
// file or directory, and the paths ANSIBLE_ROLES_PATH,
// ANSIBLE_COLLECTIONS_PATH(S) and ANSIBLE_CONFIG in ansible_env_vars name.
func (p *Provisioner) InputFiles() []provisioner.InputFile {
	c := &p.cfg
	var out []provisioner.InputFile
	add := func(path, role string) {
		for _, f := range out {
			if f.Path == path {
				return
			}
		}
		out = append(out, provisioner.InputFile{Path: path, Role: role})
	}
	addConventional := func(dir string) {
		for _, n := range conventional {
			path := filepath.Join(dir, n)
			if _, err := os.Stat(path); err == nil {
				add(path, "playbook "+n)
			}
		}
	}
	if c.PlaybookFile != "" {
		add(c.PlaybookFile, "playbook")
		addConventional(filepath.Dir(c.PlaybookFile))
	}
	if c.GalaxyFile != "" {
		add(c.GalaxyFile, "galaxy file")
	}
	if c.InventoryFile != "" {
		add(c.InventoryFile, "inventory")
	}
	if c.InventoryDirectory != "" {
		for _, n := range []string{"group_vars", "host_vars"} {
			if path := filepath.Join(c.InventoryDirectory, n); exists(path) {
				add(path, "inventory "+n)
			}
		}
	}
	for _, kv := range c.AnsibleEnvVars {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS":
			for _, d := range filepath.SplitList(strings.Trim(v, `'"`)) {
				if exists(d) {
					add(d, strings.ToLower(strings.TrimPrefix(k, "ANSIBLE_")))
				}
			}
		case "ANSIBLE_CONFIG":
			if v = strings.Trim(v, `'"`); exists(v) {
				add(v, "ansible.cfg")
			}
		}
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// generatedKeys are the build data inventory_file_template may use, as
// Packer's generated data; unknown ones are "".
var generatedKeys = []string{"ID", "PackerRunUUID", "SourceAMI", "SourceAMIName", "BuildRegion", "ConnType"}

func inventoryData(generated map[string]string, alias, host, user string, port int) map[string]any {
	d := map[string]any{}
	for _, k := range generatedKeys {
		d[k] = ""
	}
	for k, v := range generated {
		d[k] = v
	}
	d["HostAlias"], d["Host"], d["User"], d["Port"] = alias, host, user, port
	return d
}

// Provision runs the playbook against the machine comm is connected to.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	c := &p.cfg
	u.Say("Provisioning with Ansible...")
	ep, err := endpoint(comm)
	if err != nil {
		return err
	}
	if ep.Port == 0 {
		ep.Port = 22
	}
	if !c.SkipVersionCheck {
		v, err := version(ctx, c.Command)
		if err != nil {
			return err
		}
		slog.Debug("ansible version", "command", c.Command, "version", v)
	}
	user := c.User
	if user == "" {
		user = ep.User
	} else if user != ep.User && c.UseProxy == nil {
		u.Message(fmt.Sprintf("Warning: Ansible logs in as user %q (the user option). Packer's default SSH proxy logged in as %q (ssh_username) "+
			"whatever user said; amibake connects Ansible directly, as Packer's use_proxy = false does.", user, ep.User))
	}

	dir, err := os.MkdirTemp("", "amibake-ansible-")
	if err != nil {
		return fmt.Errorf("Error preparing the Ansible run: %w", err)
	}
	defer os.RemoveAll(dir) // the private key, known_hosts, control sockets
	var keyFile string
	if b != nil && b.SSHPrivateKey != "" {
		keyFile = filepath.Join(dir, "key")
		if err := os.WriteFile(keyFile, []byte(b.SSHPrivateKey), 0o600); err != nil {
			return fmt.Errorf("Error writing the private key for Ansible: %w", err)
		}
	} else if os.Getenv("SSH_AUTH_SOCK") == "" {
		return errors.New("Error executing Ansible: amibake has neither a private key nor an SSH agent (SSH_AUTH_SOCK) to give Ansible; " +
			"use ssh_private_key_file, a temporary key pair or ssh_agent_auth (password logins are not passed to Ansible)")
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(KnownHostsLine(ep.Host, ep.Port, ep.HostKey)), 0o600); err != nil {
		return fmt.Errorf("Error writing known_hosts for Ansible: %w", err)
	}
	if !ep.HostKeyChecked {
		u.Message("Warning: amibake did not check the host key (ssh_host_key_checking = \"off\"); Ansible is pinned to the key amibake's connection accepted")
	}

	inventory := c.InventoryFile
	if inventory == "" {
		data := inventoryData(generatedData(b), c.HostAlias, ep.Host, user, ep.Port)
		inventory, err = p.writeInventory(data)
		if err != nil {
			return err
		}
		if c.KeepInventoryFile {
			u.Message("Keeping the inventory file " + inventory)
		} else {
			defer os.Remove(inventory)
		}
	}

	env := append(os.Environ(), c.AnsibleEnvVars...)
	// Last wins: Ansible checks the host key amibake pinned (validate
	// warns about a template's ANSIBLE_HOST_KEY_CHECKING=False).
	env = append(env, "ANSIBLE_HOST_KEY_CHECKING=True")
	if !c.UseSFTP {
		env = append(env, "ANSIBLE_SCP_IF_SSH=True")
	}
	if !hasVar(c.AnsibleEnvVars, "ANSIBLE_SSH_CONTROL_PATH_DIR") {
		// Our own directory, so that the persistent ssh masters Ansible
		// starts (ControlPersist) are found and stopped afterwards.
		env = append(env, "ANSIBLE_SSH_CONTROL_PATH_DIR="+filepath.Join(dir, "cp"))
	}
	defer stopMasters(filepath.Join(dir, "cp"))

	if c.GalaxyFile != "" {
		if err := p.galaxy(ctx, u, env); err != nil {
			return fmt.Errorf("Error executing Ansible Galaxy: %w", err)
		}
	}
	args := p.args(b, inventory, keyFile, knownHosts)
	u.Message("Executing Ansible: " + maskArgs(c.Command, args))
	if err := run(ctx, u, c.Command, args, env); err != nil {
		return fmt.Errorf("Error executing Ansible: %w", err)
	}
	return nil
}

func endpoint(comm communicator.Communicator) (communicator.SSHEndpoint, error) {
	e, ok := comm.(communicator.SSHEndpointer)
	if comm == nil || !ok {
		return communicator.SSHEndpoint{}, errors.New("Error executing Ansible: the ansible provisioner needs an SSH communicator (communicator = \"none\" gives it no machine to reach)")
	}
	ep, err := e.SSHEndpoint()
	if err != nil {
		return ep, fmt.Errorf("Error executing Ansible: %w", err)
	}
	if ep.Bastion {
		return ep, errors.New("Error executing Ansible: amibake cannot yet pass an SSH bastion (ssh_bastion_host) to Ansible; use ansible-local, or reach the instance directly")
	}
	return ep, nil
}

// KnownHostsLine is the known_hosts entry pinning key for host:port.
func KnownHostsLine(host string, port int, key string) string {
	name := host
	if port != 22 {
		name = "[" + host + "]:" + strconv.Itoa(port)
	}
	return name + " " + strings.TrimSpace(key) + "\n"
}

func generatedData(b *provisioner.Build) map[string]string {
	if b == nil {
		return nil
	}
	return map[string]string{
		"ID": b.InstanceID, "PackerRunUUID": b.RunUUID, "SourceAMI": b.SourceAMI,
		"SourceAMIName": b.SourceAMIName, "BuildRegion": b.Region, "ConnType": "ssh",
	}
}

func (p *Provisioner) writeInventory(data map[string]any) (string, error) {
	c := &p.cfg
	var host bytes.Buffer
	if err := p.inventory.Execute(&host, data); err != nil {
		return "", fmt.Errorf("Error generating inventory file from template: %w", err)
	}
	var w bytes.Buffer
	w.Write(host.Bytes())
	for _, g := range c.Groups {
		fmt.Fprintf(&w, "[%s]\n%s", g, host.Bytes())
	}
	for _, g := range c.EmptyGroups {
		fmt.Fprintf(&w, "[%s]\n", g)
	}
	f, err := os.CreateTemp(c.InventoryDirectory, "packer-provisioner-ansible")
	if err != nil {
		return "", fmt.Errorf("Error preparing inventory file: %w", err)
	}
	_, err = f.Write(w.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("Error preparing inventory file: %w", err)
	}
	return f.Name(), nil
}

// args builds ansible-playbook's arguments as Packer does, plus the pinned
// host key.
func (p *Provisioner) args(b *provisioner.Build, inventory, keyFile, knownHosts string) []string {
	c := &p.cfg
	var args []string
	if b != nil && b.Name != "" {
		args = append(args, "-e", fmt.Sprintf("packer_build_name=%q", b.Name))
	}
	typ := "amazon-ebs"
	if b != nil && b.Type != "" {
		typ = b.Type
	}
	args = append(args, "-e", "packer_builder_type="+typ)
	// The host key amibake verified; later -o values do not override
	// earlier ones in ssh, and Ansible puts common args before extra args.
	args = append(args, "--ssh-common-args", fmt.Sprintf("-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes", knownHosts))
	if keyFile != "" {
		if len(c.AnsibleSSHExtraArgs) > 0 {
			args = append(args, "--ssh-extra-args", "'"+strings.Join(c.AnsibleSSHExtraArgs, "' '")+"'")
		} else {
			args = append(args, "--ssh-extra-args", "'-o IdentitiesOnly=yes'")
		}
	}
	args = append(args, c.ExtraArguments...)
	if keyFile != "" && !hasArg(args, "ansible_password") {
		args = append(args, "-e", "ansible_ssh_private_key_file="+keyFile)
	}
	playbook, err := filepath.Abs(c.PlaybookFile)
	if err != nil {
		playbook = c.PlaybookFile
	}
	return append(args, "-i", inventory, playbook)
}

func hasArg(args []string, name string) bool {
	for _, a := range args {
		if strings.Contains(a, name) {
			return true
		}
	}
	return false
}

func hasVar(vars []string, name string) bool {
	for _, kv := range vars {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// secretArg matches an extra-vars value whose name says it is a secret,
// which Packer hides when it prints the command.
var secretArg = regexp.MustCompile(`(?i)([\w.-]*(?:secret|password)[\w.-]*=)(\S+)`)

func maskArgs(command string, args []string) string {
	return secretArg.ReplaceAllString(command+" "+strings.Join(args, " "), "${1}*****")
}

func (p *Provisioner) galaxy(ctx context.Context, u ui.UI, env []string) error {
	c := &p.cfg
	data, err := os.ReadFile(c.GalaxyFile)
	if err != nil {
		return err
	}
	roleArgs := []string{"install", "-r", c.GalaxyFile}
	collArgs := []string{"collection", "install", "-r", c.GalaxyFile}
	if c.GalaxyForceInstall {
		roleArgs, collArgs = append(roleArgs, "-f"), append(collArgs, "-f")
	}
	if c.GalaxyForceWithDeps {
		roleArgs, collArgs = append(roleArgs, "--force-with-deps"), append(collArgs, "--force-with-deps")
	}
	if c.RolesPath != "" {
		roleArgs = append(roleArgs, "-p", c.RolesPath)
	}
	if c.CollectionsPath != "" {
		collArgs = append(collArgs, "-p", c.CollectionsPath)
	}
	hasRoles := regexp.MustCompile(`(?m)^roles:`).Match(data)
	hasColls := regexp.MustCompile(`(?m)^collections:`).Match(data)
	if hasRoles || !hasColls {
		u.Message("Executing Ansible Galaxy")
		if err := run(ctx, u, c.GalaxyCommand, roleArgs, env); err != nil {
			return err
		}
	}
	if hasColls {
		u.Message("Executing Ansible Galaxy")
		if err := run(ctx, u, c.GalaxyCommand, collArgs, env); err != nil {
			return err
		}
	}
	return nil
}

var versionRe = regexp.MustCompile(`\w (\d+\.\d+[.\d+]*)`)

// version runs `command --version` (Packer does this in validate; amibake
// waits for the build, so that validate and plan do not need Ansible).
func version(ctx context.Context, command string) (string, error) {
	out, err := exec.CommandContext(ctx, command, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("Error running \"%s --version\": %w (install Ansible, e.g. apt-get install ansible, or set skip_version_check)", command, err)
	}
	m := versionRe.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("Could not find %s version in output:\n%s", command, out)
	}
	return m[1], nil
}

// failureLines keeps the lines in which Ansible says why it failed, for
// the error.
type failureLines struct {
	lines []string
}

// ansiEscape matches the colour codes Ansible prints with
// ANSIBLE_FORCE_COLOR (ansible-local's default command sets it).
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func (f *failureLines) see(line string) {
	t := strings.TrimSpace(ansiEscape.ReplaceAllString(line, ""))
	if strings.HasPrefix(t, "fatal:") || strings.HasPrefix(t, "ERROR!") || strings.HasPrefix(t, "failed:") {
		if len(f.lines) < 5 {
			f.lines = append(f.lines, t)
		}
	}
}

// run runs a local command with its output streamed to u.
func run(ctx context.Context, u ui.UI, command string, args, env []string) error {
	cmd := exec.CommandContext(ctx, command, args...)
	cmd.Env = append(env, "PYTHONUNBUFFERED=1")
	var fails failureLines
	stdout := &provisioner.LineWriter{Emit: func(l string) { fails.see(l); u.Message(l) }}
	stderr := &provisioner.LineWriter{Emit: func(l string) { fails.see(l); u.Error(l) }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	killGroup(cmd)
	err := cmd.Run()
	stdout.Flush()
	stderr.Flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", command, context.Cause(ctx))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := fmt.Sprintf("Non-zero exit status: %s", err)
		if len(fails.lines) > 0 {
			msg += ": " + strings.Join(fails.lines, "; ")
		}
		return errors.New(msg)
	}
	return fmt.Errorf("start %s: %w", command, err)
}

// stopMasters asks each persistent ssh master left in dir to exit.
func stopMasters(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		sock := filepath.Join(dir, e.Name())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+sock, "-O", "exit", "amibake-ansible").CombinedOutput()
		cancel()
		if err != nil {
			slog.Debug("stop ssh master", "socket", sock, "err", err, "out", string(out))
		}
	}
}

var (
	_ provisioner.Provisioner = (*Provisioner)(nil)
	_ provisioner.InputLister = (*Provisioner)(nil)
)
