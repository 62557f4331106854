package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/digest"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/ansiblelocal"
	"github.com/amibake/amibake/provisioner/file"
	"github.com/amibake/amibake/provisioner/shell"
	"github.com/amibake/amibake/provisioner/shelllocal"
)

// Excluded are the amazon-ebs options left out of the input digest because
// they cannot change what ends up on the image: how amibake reaches AWS and
// the instance, how long it waits, who the AMI is shared with, where the
// copies go (each region is looked up on its own), what happens to older
// AMIs, and the temporary resources whose traces differ every run anyway.
// When in doubt an option stays in: a needless rebake costs minutes, a
// wrong reuse ships the wrong image.
var Excluded = []string{
	// Credentials and API access.
	"access_key", "secret_key", "token", "profile", "shared_credentials_file", "assume_role",
	"vault_aws_engine", "custom_endpoint_ec2", "skip_credential_validation", "skip_metadata_api_check",
	"decode_authorization_messages", "insecure_skip_tls_verify", "mfa_code",
	// Retries, polling and timeouts.
	"max_retries", "aws_polling", "ssh_timeout", "ssh_wait_timeout", "ssh_handshake_attempts",
	"ssh_keep_alive_interval", "ssh_read_write_timeout", "ssh_host_key_wait_timeout",
	"pause_before_connecting", "windows_password_timeout", "pause_before_ssm", "winrm_timeout",
	// How the instance is reached (not what runs on it).
	"ssh_host", "ssh_port", "ssh_password", "ssh_private_key_file", "ssh_certificate_file",
	"ssh_agent_auth", "ssh_disable_agent_forwarding", "ssh_ciphers", "ssh_key_exchange_algorithms",
	"ssh_file_transfer_method", "ssh_bastion_host", "ssh_bastion_port", "ssh_bastion_agent_auth",
	"ssh_bastion_username", "ssh_bastion_password", "ssh_bastion_interactive",
	"ssh_bastion_private_key_file", "ssh_bastion_certificate_file", "ssh_proxy_host", "ssh_proxy_port",
	"ssh_proxy_username", "ssh_proxy_password", "ssh_private_ip", "ssh_interface",
	"ssh_host_key_checking", "session_manager_port", "winrm_password", "winrm_host", "winrm_port",
	"winrm_no_proxy", "winrm_insecure",
	// Temporary access resources.
	"temporary_key_pair_name", "temporary_key_pair_type", "temporary_key_pair_bits",
	"temporary_security_group_source_cidrs", "temporary_security_group_source_public_ip",
	"temporary_security_group_source_public_ip_url", "security_group_id", "security_group_ids",
	"security_group_filter",
	// Sharing and distribution.
	"ami_users", "ami_groups", "ami_org_arns", "ami_ou_arns", "snapshot_users", "snapshot_groups",
	"region", "ami_regions", "skip_region_validation", "skip_profile_validation",
	// What happens to older AMIs of the same name.
	"force_deregister", "force_delete_snapshot",
}

// ExcludedProvisionerOptions are left out of a provisioner's settings: the
// fields Packer handles for every provisioner (pause_before, max_retries,
// timeout, only, except) are not settings of the plugin and never enter;
// these are the plugin options that only say how long to wait.
var ExcludedProvisionerOptions = map[string][]string{
	"shell": {"start_retry_timeout", "pause_after"},
}

// Digest is a build's input digest and what went into it.
type Digest struct {
	// Sum is the hex SHA-256 that the AMI's amibake:input-digest tag holds.
	Sum string `json:"sum"`
	// Volatile are the options whose values change every run (timestamp(),
	// uuidv4(), a random default), left out: "ami_name",
	// "provisioner[1].remote_file".
	Volatile []string `json:"volatile"`
	// Parts are the named inputs in order, for `plan --json`.
	Parts []digest.Part `json:"parts"`
	// Provisioners are the provisioners that run for the build, in order,
	// with the local files they upload or run.
	Provisioners []ProvisionerInputs `json:"provisioners"`
}

// ProvisionerInputs is one provisioner's part of the digest.
type ProvisionerInputs struct {
	Type  string `json:"type"`
	Files []File `json:"files,omitempty"`
	// Inline counts inline commands or a content string, when used.
	Inline int `json:"inline,omitempty"`
}

// File is a local file or directory a provisioner uploads or runs.
type File struct {
	Path string `json:"path"`
	// Role is "upload" (file provisioner), "script" (shell, runs on the
	// machine) or "local script" (shell-local), or "user data", or what
	// the provisioner names it (provisioner.InputLister: "playbook", ...).
	Role string `json:"role"`
	Dir  bool   `json:"dir,omitempty"`
	Size int64  `json:"size"`
	// SHA256 is the content's digest (for a directory, of its walk).
	SHA256 string `json:"sha256"`
	// Generated files are created by an earlier step; their content is not
	// known before the build and enters the digest through that step.
	Generated bool `json:"generated,omitempty"`
}

// Input is what DigestBuild needs about a build.
type Input struct {
	// Build is the build as loaded for this run.
	Build *template.Build
	// Config is Build.Source decoded by amazonebs.NewConfig; nil decodes.
	Config *amazonebs.Config
	// SourceAMI is the resolved source AMI id (ResolveSourceAMI).
	SourceAMI string
	// Sensitive are the template's sensitive values (Template.Sensitive);
	// the blocks' own lists are added.
	Sensitive []string
}

// DigestBuild computes a build's input digest: the builder's resolved
// options minus Excluded and minus volatile values (those the load marked
// as read from the clock or randomness: template.Volatile), the source AMI id,
// every provisioner that runs for the build with its options in order, the
// content of every file those provisioners upload or run (and of
// user_data_file), and digest.Version. Values that come from sensitive
// variables enter only through scrypt. Post-processors and the
// error-cleanup-provisioner stay out: they do not change a successful
// image. Generated file-provisioner sources enter by path only.
func DigestBuild(in Input) (*Digest, error) {
	b := in.Build
	if b == nil || b.Source == nil {
		return nil, fmt.Errorf("input digest: the build has no source")
	}
	if in.SourceAMI == "" {
		return nil, fmt.Errorf("input digest of %s: the source AMI is not resolved", b.Name)
	}
	cfg := in.Config
	if cfg == nil {
		var diags hcl.Diagnostics
		if cfg, diags = decodeConfig(b); diags.HasErrors() {
			return nil, fmt.Errorf("input digest of %s: %s", b.Name, diags.Error())
		}
	}
	secrets := append(slices.Clone(in.Sensitive), b.Source.Sensitive...)
	d := &Digest{}
	h := digest.New()

	builder := dropKeys(settings(cfg), Excluded)
	if m, ok := builder.(map[string]any); ok {
		stripDigestTag(m)
	}
	marked, diags := builderVolatile(b)
	if diags.HasErrors() {
		return nil, fmt.Errorf("input digest of %s: %s", b.Name, diags.Error())
	}
	vol, err := digest.Volatile(builder, marked)
	if err != nil {
		return nil, fmt.Errorf("input digest of %s: %w", b.Name, err)
	}
	d.Volatile = append(d.Volatile, vol...)
	if builder, err = digest.Strip(builder, vol); err != nil {
		return nil, fmt.Errorf("input digest of %s: %w", b.Name, err)
	}
	if err := h.AddValue("builder", maskSecrets(builder, secrets)); err != nil {
		return nil, err
	}
	if err := h.AddValue("source_ami", in.SourceAMI); err != nil {
		return nil, err
	}
	if cfg.UserDataFile != "" {
		f, err := addFile(h, "builder.user_data_file", cfg.UserDataFile, "user data")
		if err != nil {
			return nil, fmt.Errorf("input digest of %s: %w", b.Name, err)
		}
		d.Provisioners = append(d.Provisioners, ProvisionerInputs{Type: "user_data_file", Files: []File{f}})
	}

	for i, tp := range applying(b) {
		name := fmt.Sprintf("provisioner[%d]", i)
		// The tracked copy's decode notes the options read from the clock
		// or randomness; the settings are the same as tp's.
		marked := &template.Volatile{}
		tracked := *tp
		tracked.Block = tp.Block.Tracked(marked)
		pi, set, err := provisionerSettings(&tracked, b.Name)
		if err != nil {
			return nil, fmt.Errorf("input digest of %s: %s %s: %w", b.Name, name, tp.Type, err)
		}
		vol, err := digest.Volatile(set, marked.Paths())
		if err != nil {
			return nil, fmt.Errorf("input digest of %s: %s %s: %w", b.Name, name, tp.Type, err)
		}
		for _, v := range vol {
			d.Volatile = append(d.Volatile, name+"."+v)
		}
		if set, err = digest.Strip(set, vol); err != nil {
			return nil, fmt.Errorf("input digest of %s: %s %s: %w", b.Name, name, tp.Type, err)
		}
		set = maskSecrets(set, append(slices.Clone(secrets), tp.Sensitive...))
		if err := h.AddValue(name+"."+tp.Type, map[string]any{"type": tp.Type, "settings": set}); err != nil {
			return nil, err
		}
		for j, f := range pi.Files {
			if f.Generated {
				continue
			}
			got, err := addFile(h, fmt.Sprintf("%s.file[%d]", name, j), f.Path, f.Role)
			if err != nil {
				return nil, fmt.Errorf("input digest of %s: %s %s: %w", b.Name, name, tp.Type, err)
			}
			pi.Files[j] = got
		}
		d.Provisioners = append(d.Provisioners, pi)
	}
	d.Sum = h.Sum()
	d.Parts = h.Parts()
	d.Volatile = uniqueSorted(d.Volatile)
	return d, nil
}

// stripDigestTag keeps the digest's own tag (added to the AMI tags by a
// build that bakes) out of the digest.
func stripDigestTag(m map[string]any) {
	if tags, ok := m["tags"].(map[string]any); ok {
		delete(tags, reuse.TagKey)
		if len(tags) == 0 {
			delete(m, "tags")
		}
	}
}

func addFile(h *digest.Hasher, name, path, role string) (File, error) {
	if err := h.AddPath(name, path); err != nil {
		return File{}, err
	}
	p := h.Parts()
	last := p[len(p)-1]
	f := File{Path: path, Role: role, Size: last.Size, SHA256: last.Digest}
	if fi, err := statDir(path); err == nil && fi {
		f.Dir = true
	}
	return f, nil
}

// builderVolatile decodes the build's source again, tracked, and returns
// the options it read from the clock or randomness (template.Volatile).
func builderVolatile(b *template.Build) ([]string, hcl.Diagnostics) {
	marked := &template.Volatile{}
	src := b.Source.Tracked(marked)
	tracked := *b
	tracked.Source = &src
	if _, diags := decodeConfig(&tracked); diags.HasErrors() {
		return nil, diags
	}
	return marked.Paths(), nil
}

func decodeConfig(b *template.Build) (*amazonebs.Config, hcl.Diagnostics) {
	if b.Source == nil || b.Source.Type != plugins.BuilderAmazonEBS {
		typ := "<none>"
		if b.Source != nil {
			typ = b.Source.Type
		}
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("builder type %q is not amazon-ebs", typ)}}
	}
	return amazonebs.NewConfig(b.Source)
}

// applying returns the provisioners that run for the build, in order.
func applying(b *template.Build) []*template.Provisioner {
	var out []*template.Provisioner
	for _, tp := range b.Provisioners {
		c := provisioner.CommonOf(tp)
		if provisioner.Applies(c.Only, c.Except, b.Name) {
			out = append(out, tp)
		}
	}
	return out
}

// provisionerSettings decodes a provisioner through its plugin (with the
// build's override) and returns its settings and the local files it
// uploads or runs. build.* values are not known before the build and
// decode as fixed placeholders.
func provisionerSettings(tp *template.Provisioner, buildName string) (ProvisionerInputs, any, error) {
	pi := ProvisionerInputs{Type: tp.Type}
	p, diags := plugins.NewProvisioner(tp, buildName, nil)
	if diags.HasErrors() {
		return pi, nil, fmt.Errorf("%s", diags.Error())
	}
	cfg, ok := pluginConfig(p)
	if !ok {
		return pi, nil, fmt.Errorf("amibake cannot read the settings of a %q provisioner to digest them", tp.Type)
	}
	set := dropKeys(settings(cfg), ExcludedProvisionerOptions[tp.Type])
	switch c := cfg.(type) {
	case shell.Config:
		for _, s := range scriptsOf(c.Script, c.Scripts) {
			pi.Files = append(pi.Files, File{Path: s, Role: "script"})
		}
		pi.Inline = len(c.Inline)
		// The default remote file name is random; written, it stays in.
		if m, ok := set.(map[string]any); ok {
			if !provisioner.Has(&tp.Block, "remote_file") && !provisioner.Has(&tp.Block, "remote_path") {
				delete(m, "remote_file")
				delete(m, "remote_path")
			}
		}
	case shelllocal.Config:
		for _, s := range scriptsOf(c.Script, c.Scripts) {
			pi.Files = append(pi.Files, File{Path: s, Role: "local script"})
		}
		pi.Inline = len(c.Inline)
		if c.Command != "" {
			pi.Inline++
		}
	case file.Config:
		if c.Direction != "download" {
			for _, s := range append(slices.Clone(c.Sources), nonEmpty(c.Source)...) {
				pi.Files = append(pi.Files, File{Path: s, Role: "upload", Generated: c.Generated})
			}
			if c.Content != "" {
				pi.Inline = 1
			}
		}
	case ansiblelocal.Config:
		// The default staging directory is random; written, it stays in.
		if m, ok := set.(map[string]any); ok && !provisioner.Has(&tp.Block, "staging_directory") {
			delete(m, "staging_directory")
		}
	}
	// Provisioners that read other local files (ansible's playbook and the
	// directories it uses) list them.
	if l, ok := p.(provisioner.InputLister); ok {
		for _, f := range l.InputFiles() {
			pi.Files = append(pi.Files, File{Path: f.Path, Role: f.Role})
		}
	}
	return pi, set, nil
}

// pluginConfig calls the plugin's Config() accessor, which every built-in
// provisioner has.
func pluginConfig(p any) (any, bool) {
	m := reflect.ValueOf(p).MethodByName("Config")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil, false
	}
	return m.Call(nil)[0].Interface(), true
}

func scriptsOf(script string, scripts []string) []string {
	if script != "" {
		return []string{script}
	}
	return scripts
}

func nonEmpty(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return []string{s}
}

func statDir(path string) (bool, error) {
	fi, err := os.Stat(filepath.Clean(path))
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}
