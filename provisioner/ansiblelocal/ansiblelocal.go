// Package ansiblelocal is Packer's `ansible-local` provisioner: it uploads
// the playbook and the directories it uses to a staging directory on the
// machine and runs ansible-playbook there, in local mode. Ansible must
// already be on the machine (a shell provisioner usually installs it).
package ansiblelocal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	tmpl "github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// Config is every option Packer's ansible-local provisioner documents.
type Config struct {
	PlaybookFile          string   `hcl:"playbook_file,optional"`
	PlaybookFiles         []string `hcl:"playbook_files,optional"`
	PlaybookDir           string   `hcl:"playbook_dir,optional"`
	PlaybookPaths         []string `hcl:"playbook_paths,optional"`
	RolePaths             []string `hcl:"role_paths,optional"`
	GroupVars             string   `hcl:"group_vars,optional"`
	HostVars              string   `hcl:"host_vars,optional"`
	InventoryGroups       []string `hcl:"inventory_groups,optional"`
	InventoryFile         string   `hcl:"inventory_file,optional"`
	ExtraArguments        []string `hcl:"extra_arguments,optional"`
	Command               string   `hcl:"command,optional"`
	StagingDirectory      string   `hcl:"staging_directory,optional"`
	CleanStagingDirectory bool     `hcl:"clean_staging_directory,optional"`
	GalaxyFile            string   `hcl:"galaxy_file,optional"`
	GalaxyCommand         string   `hcl:"galaxy_command,optional"`
}

// Defaults, as Packer's.
const (
	DefaultCommand       = "ANSIBLE_FORCE_COLOR=1 PYTHONUNBUFFERED=1 ansible-playbook"
	DefaultGalaxyCommand = "ansible-galaxy"
	DefaultStagingRoot   = "/tmp/packer-provisioner-ansible-local"
)

// Provisioner runs Ansible on the machine.
type Provisioner struct {
	cfg Config
}

// New decodes and validates an ansible-local provisioner block.
func New(b *tmpl.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	var cfg Config
	diags := provisioner.ListOrString(b, "playbook_files", "playbook_paths", "role_paths", "inventory_groups", "extra_arguments").Decode(&cfg, build)
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
	if c.StagingDirectory == "" {
		// Packer appends a UUID; any unique name serves.
		c.StagingDirectory = fmt.Sprintf("%s/%016x", DefaultStagingRoot, rand.Uint64())
	}

	const which = `Set playbook_file (one playbook) or playbook_files (a list), not both.`
	switch {
	case c.PlaybookFile == "" && len(c.PlaybookFiles) == 0:
		diags = append(diags, provisioner.Errorf(b, "", which, "Either playbook_file or playbook_files parameter must be specified"))
	case c.PlaybookFile != "" && len(c.PlaybookFiles) > 0:
		diags = append(diags, provisioner.Errorf(b, "playbook_files", which, "Either playbook_file or playbook_files can be specified, not both"))
	}
	if c.PlaybookFile != "" {
		diags = append(diags, provisioner.CheckFile(b, "playbook_file", c.PlaybookFile)...)
	}
	for _, f := range c.PlaybookFiles {
		diags = append(diags, provisioner.CheckFile(b, "playbook_files", f)...)
	}
	if c.InventoryFile != "" {
		diags = append(diags, provisioner.CheckFile(b, "inventory_file", c.InventoryFile)...)
	}
	if c.GalaxyFile != "" {
		diags = append(diags, provisioner.CheckFile(b, "galaxy_file", c.GalaxyFile)...)
	}
	for name, d := range map[string]string{"playbook_dir": c.PlaybookDir, "group_vars": c.GroupVars, "host_vars": c.HostVars} {
		if d != "" {
			diags = append(diags, provisioner.CheckDir(b, name, d)...)
		}
	}
	for _, d := range c.PlaybookPaths {
		diags = append(diags, provisioner.CheckDir(b, "playbook_paths", d)...)
	}
	for _, d := range c.RolePaths {
		diags = append(diags, provisioner.CheckDir(b, "role_paths", d)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// Config returns the decoded configuration with defaults applied.
func (p *Provisioner) Config() Config { return p.cfg }

// InputFiles are the local files and directories uploaded to the machine.
func (p *Provisioner) InputFiles() []provisioner.InputFile {
	c := &p.cfg
	var out []provisioner.InputFile
	add := func(path, role string) {
		if path != "" {
			out = append(out, provisioner.InputFile{Path: path, Role: role})
		}
	}
	add(c.PlaybookDir, "playbook_dir")
	add(c.PlaybookFile, "playbook")
	for _, f := range c.PlaybookFiles {
		add(f, "playbook")
	}
	for _, d := range c.PlaybookPaths {
		add(d, "playbook_paths")
	}
	for _, d := range c.RolePaths {
		add(d, "role_paths")
	}
	add(c.GroupVars, "group_vars")
	add(c.HostVars, "host_vars")
	add(c.InventoryFile, "inventory")
	add(c.GalaxyFile, "galaxy file")
	return out
}

// quote makes s one word for the remote shell.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Provision uploads the files and runs each playbook on the machine.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	c := &p.cfg
	if comm == nil {
		return fmt.Errorf("ansible-local needs a communicator to reach the machine (communicator = \"none\")")
	}
	u.Say("Provisioning with Ansible...")
	stage := c.StagingDirectory
	r := remote{ctx: ctx, u: u, comm: comm}

	if c.PlaybookDir != "" {
		u.Message("Uploading Playbook directory to Ansible staging directory...")
		if err := r.uploadDir(stage, c.PlaybookDir); err != nil {
			return fmt.Errorf("Error uploading playbook_dir directory: %w", err)
		}
	} else {
		u.Message("Creating Ansible staging directory...")
		if err := r.mkdir(stage); err != nil {
			return fmt.Errorf("Error creating staging directory: %w", err)
		}
	}

	// The playbooks, as paths relative to the staging directory.
	var playbooks []string
	if c.PlaybookFile != "" {
		u.Message("Uploading main Playbook file...")
		name := filepath.Base(c.PlaybookFile)
		if err := r.uploadFile(path.Join(stage, name), c.PlaybookFile); err != nil {
			return fmt.Errorf("Error uploading main playbook: %w", err)
		}
		playbooks = append(playbooks, name)
	} else {
		dir := ""
		if c.PlaybookDir != "" {
			dir, _ = filepath.Abs(c.PlaybookDir)
		}
		for _, f := range c.PlaybookFiles {
			abs, _ := filepath.Abs(f)
			if dir != "" {
				if rel, err := filepath.Rel(dir, abs); err == nil && !strings.HasPrefix(rel, "..") {
					playbooks = append(playbooks, filepath.ToSlash(rel)) // already uploaded with playbook_dir
					continue
				}
			}
			rel := filepath.ToSlash(filepath.Clean(f))
			if filepath.IsAbs(f) || strings.HasPrefix(rel, "../") {
				rel = filepath.Base(f) // keep uploads inside the staging directory
			}
			u.Message("Uploading playbook file: " + f)
			dst := path.Join(stage, rel)
			if err := r.mkdir(path.Dir(dst)); err != nil {
				return fmt.Errorf("Error uploading playbook file: %s [%w]", f, err)
			}
			if err := r.uploadFile(dst, f); err != nil {
				return fmt.Errorf("Error uploading playbook: %s [%w]", f, err)
			}
			playbooks = append(playbooks, rel)
		}
	}

	inventory := c.InventoryFile
	if inventory == "" {
		f, err := os.CreateTemp("", "packer-provisioner-ansible-local")
		if err != nil {
			return fmt.Errorf("Error preparing inventory file: %w", err)
		}
		defer os.Remove(f.Name())
		content := "127.0.0.1"
		if len(c.InventoryGroups) > 0 {
			content = ""
			for _, g := range c.InventoryGroups {
				content += fmt.Sprintf("[%s]\n127.0.0.1\n", g)
			}
		}
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("Error preparing inventory file: %w", err)
		}
		inventory = f.Name()
	}
	if c.GalaxyFile != "" {
		u.Message("Uploading galaxy file...")
		if err := r.uploadFile(path.Join(stage, filepath.Base(c.GalaxyFile)), c.GalaxyFile); err != nil {
			return fmt.Errorf("Error uploading galaxy file: %w", err)
		}
	}
	u.Message("Uploading inventory file...")
	remoteInventory := path.Join(stage, filepath.Base(inventory))
	if err := r.uploadFile(remoteInventory, inventory); err != nil {
		return fmt.Errorf("Error uploading inventory file: %w", err)
	}
	if c.GroupVars != "" {
		u.Message("Uploading group_vars directory...")
		if err := r.uploadDir(path.Join(stage, "group_vars"), c.GroupVars); err != nil {
			return fmt.Errorf("Error uploading group_vars directory: %w", err)
		}
	}
	if c.HostVars != "" {
		u.Message("Uploading host_vars directory...")
		if err := r.uploadDir(path.Join(stage, "host_vars"), c.HostVars); err != nil {
			return fmt.Errorf("Error uploading host_vars directory: %w", err)
		}
	}
	if len(c.RolePaths) > 0 {
		u.Message("Uploading role directories...")
		for _, src := range c.RolePaths {
			if err := r.uploadDir(path.Join(stage, "roles", filepath.Base(filepath.Clean(src))), src); err != nil {
				return fmt.Errorf("Error uploading roles: %w", err)
			}
		}
	}
	if len(c.PlaybookPaths) > 0 {
		u.Message("Uploading additional Playbooks...")
		dir := path.Join(stage, "playbooks")
		if err := r.mkdir(dir); err != nil {
			return fmt.Errorf("Error creating playbooks directory: %w", err)
		}
		for _, src := range c.PlaybookPaths {
			if err := r.uploadDir(path.Join(dir, filepath.Base(filepath.Clean(src))), src); err != nil {
				return fmt.Errorf("Error uploading playbooks: %w", err)
			}
		}
	}

	if c.GalaxyFile != "" {
		cmd := fmt.Sprintf("cd %s && %s install -r %s -p %s", quote(stage), c.GalaxyCommand,
			quote(path.Join(stage, filepath.Base(c.GalaxyFile))), quote(path.Join(stage, "roles")))
		u.Message("Executing Ansible Galaxy: " + cmd)
		if err := r.run(cmd); err != nil {
			return fmt.Errorf("Error executing Ansible: Error executing Ansible Galaxy: %w", err)
		}
	}
	extra := fmt.Sprintf(" --extra-vars \"packer_build_name=%s packer_builder_type=%s\" ", buildName(b), builderType(b))
	if len(c.ExtraArguments) > 0 {
		extra += strings.Join(c.ExtraArguments, " ")
	}
	for _, pb := range playbooks {
		cmd := fmt.Sprintf("cd %s && %s %s%s -c local -i %s", quote(stage), c.Command, quote(path.Join(stage, pb)), extra, quote(remoteInventory))
		u.Message("Executing Ansible: " + cmd)
		if err := r.run(cmd); err != nil {
			if ee := exitError(0); errors.As(err, &ee) && ee == 127 {
				return fmt.Errorf("Error executing Ansible: %s could not be found. Verify that it is available on the\nPATH after connecting to the machine.", c.Command)
			}
			return fmt.Errorf("Error executing Ansible: %w", err)
		}
	}
	if c.CleanStagingDirectory {
		u.Message("Removing staging directory...")
		if err := r.run("rm -rf " + quote(stage)); err != nil {
			return fmt.Errorf("Error removing staging directory: %w", err)
		}
	}
	return nil
}

func buildName(b *provisioner.Build) string {
	if b == nil {
		return ""
	}
	return b.Name
}

func builderType(b *provisioner.Build) string {
	if b == nil || b.Type == "" {
		return "amazon-ebs"
	}
	return b.Type
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("Non-zero exit status: %d", int(e)) }

// remote runs the provisioner's commands and uploads on the machine.
type remote struct {
	ctx  context.Context
	u    ui.UI
	comm communicator.Communicator
	// fails keeps the lines in which Ansible says why it failed.
	fails []string
}

// ansiEscape matches the colour codes Ansible prints with
// ANSIBLE_FORCE_COLOR (ansible-local's default command sets it).
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func (r *remote) see(l string) {
	t := strings.TrimSpace(ansiEscape.ReplaceAllString(l, ""))
	if (strings.HasPrefix(t, "fatal:") || strings.HasPrefix(t, "ERROR!") || strings.HasPrefix(t, "failed:")) && len(r.fails) < 5 {
		r.fails = append(r.fails, t)
	}
}

func (r *remote) run(command string) error {
	r.fails = nil
	stdout := &provisioner.LineWriter{Emit: func(l string) { r.see(l); r.u.Message(l) }}
	stderr := &provisioner.LineWriter{Emit: func(l string) { r.see(l); r.u.Error(l) }}
	res, err := r.comm.Run(r.ctx, &communicator.Cmd{Command: command, Stdout: stdout, Stderr: stderr})
	stdout.Flush()
	stderr.Flush()
	if err != nil {
		return err
	}
	if res.Disconnected {
		return fmt.Errorf("the connection dropped while running %q", command)
	}
	if res.ExitStatus != 0 {
		if len(r.fails) > 0 {
			return fmt.Errorf("%w: %s", exitError(res.ExitStatus), strings.Join(r.fails, "; "))
		}
		return exitError(res.ExitStatus)
	}
	return nil
}

func (r *remote) mkdir(dir string) error {
	r.u.Message("Creating directory: " + dir)
	return r.run("mkdir -p " + quote(dir))
}

func (r *remote) uploadFile(dst, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("Error opening: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := r.comm.Upload(r.ctx, dst, f, fi); err != nil {
		return fmt.Errorf("Error uploading %s: %w", src, err)
	}
	return nil
}

// uploadDir copies the contents of src into dst.
func (r *remote) uploadDir(dst, src string) error {
	if err := r.mkdir(dst); err != nil {
		return err
	}
	if !strings.HasSuffix(src, "/") {
		src += "/"
	}
	return r.comm.UploadDir(r.ctx, dst, src, nil)
}

var (
	_ provisioner.Provisioner = (*Provisioner)(nil)
	_ provisioner.InputLister = (*Provisioner)(nil)
)
