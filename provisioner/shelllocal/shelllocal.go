// Package shelllocal is Packer's `shell-local` provisioner: it runs
// commands or scripts on the host amibake runs on. The shell-local
// post-processor (postprocessor/shelllocal) shares its Runner.
package shelllocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	tmpl "github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/shell"
)

// Config is every option Packer documents for shell-local (the
// provisioner and the post-processor take the same ones).
type Config struct {
	// Exactly one of Command, Inline, Script and Scripts.
	Command string   `hcl:"command,optional"`
	Inline  []string `hcl:"inline,optional"`
	Script  string   `hcl:"script,optional"`
	Scripts []string `hcl:"scripts,optional"`

	Vars []string          `hcl:"environment_vars,optional"`
	Env  map[string]string `hcl:"env,optional"`
	// EnvVarFormat defaults to "%s='%s' ".
	EnvVarFormat string `hcl:"env_var_format,optional"`
	// ExecuteCommand is argv; each element is a Go template with .Vars and
	// .Script (.Command is an alias), and the build's generated data.
	ExecuteCommand    []string `hcl:"execute_command,optional"`
	InlineShebang     string   `hcl:"inline_shebang,optional"`
	OnlyOn            []string `hcl:"only_on,optional"`
	TempfileExtension string   `hcl:"tempfile_extension,optional"`
	UseLinuxPathing   bool     `hcl:"use_linux_pathing,optional"`
	ValidExitCodes    []int    `hcl:"valid_exit_codes,optional"`
	// Binary is accepted because Packer's shared shell options include it;
	// local scripts run as they are.
	Binary bool `hcl:"binary,optional"`
}

// DefaultExecuteCommand is Packer's default on Unix hosts.
var DefaultExecuteCommand = []string{"/bin/sh", "-c", "{{.Vars}} {{.Script}}"}

// SupportedOS are the only_on values Packer accepts.
var SupportedOS = []string{"darwin", "freebsd", "linux", "openbsd", "solaris", "windows"}

// Runner runs a validated shell-local configuration.
type Runner struct {
	cfg     Config
	scripts []string
	argv    []*template.Template
}

// Options adjust NewRunner for its caller.
type Options struct {
	// LegacyExecuteCommand accepts the post-processor's pre-1.3 form, a
	// single string run with "sh -c".
	LegacyExecuteCommand bool
}

// NewRunner decodes and validates a shell-local block.
func NewRunner(b *tmpl.Block, build map[string]cty.Value, opts Options) (*Runner, hcl.Diagnostics) {
	var cfg Config
	diags := provisioner.ListOrString(b, "inline", "scripts", "environment_vars", "only_on", "execute_command").Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	r := &Runner{cfg: cfg}
	c := &r.cfg
	if opts.LegacyExecuteCommand && len(c.ExecuteCommand) == 1 {
		c.ExecuteCommand = append([]string{"sh", "-c"}, c.ExecuteCommand...)
	}
	if len(c.ExecuteCommand) == 0 {
		c.ExecuteCommand = slices.Clone(DefaultExecuteCommand)
	}
	if c.InlineShebang == "" {
		c.InlineShebang = "/bin/sh -e"
	}
	if c.EnvVarFormat == "" {
		c.EnvVarFormat = shell.DefaultEnvVarFormat
	}
	c.TempfileExtension = strings.TrimPrefix(c.TempfileExtension, ".")
	if len(c.Inline) == 0 {
		c.Inline = nil
	}

	const which = "Set exactly one of command (a string), inline (a list of commands), script (a path) or scripts (a list of paths)."
	n := 0
	for _, set := range []bool{c.Command != "", c.Inline != nil, c.Script != "", len(c.Scripts) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		diags = append(diags, provisioner.Errorf(b, "", which, "Command, Inline, Script and Scripts options cannot all be empty"))
	case n > 1:
		diags = append(diags, provisioner.Errorf(b, "", which,
			"You may only specify one of the following options: Command, Inline, Script or Scripts"))
	}
	if c.Command != "" {
		c.Inline = []string{c.Command}
	}
	r.scripts = slices.Clone(c.Scripts)
	attr := "scripts"
	if c.Script != "" {
		r.scripts, attr = []string{c.Script}, "script"
	}
	for _, s := range r.scripts {
		if _, err := os.Stat(s); err != nil {
			diags = append(diags, provisioner.Errorf(b, attr,
				"Script paths are relative to the directory amibake runs in.",
				"Bad script '%s': %s", s, err))
		}
	}
	for _, osName := range c.OnlyOn {
		if !slices.Contains(SupportedOS, osName) {
			diags = append(diags, provisioner.Errorf(b, "only_on",
				"Supported OS names: "+strings.Join(SupportedOS, ", ")+".",
				"Invalid OS specified in only_on: '%s'", osName))
		}
	}
	if c.UseLinuxPathing {
		if c.Inline != nil {
			diags = append(diags, provisioner.Errorf(b, "use_linux_pathing",
				"Use script or scripts with use_linux_pathing.",
				"Packer is unable to use the Command and Inline features with the Windows Linux Subsystem"))
		} else if runtime.GOOS == "windows" {
			for i, s := range r.scripts {
				abs, err := filepath.Abs(s)
				if err == nil {
					abs, err = LinuxPath(abs)
				}
				if err != nil {
					diags = append(diags, provisioner.Errorf(b, attr, "use_linux_pathing needs scripts on a drive, such as C:/scripts/x.sh.", "%s", err))
					continue
				}
				r.scripts[i] = abs
			}
		} else {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "use_linux_pathing has no effect on " + runtime.GOOS,
				Detail:   "It converts Windows paths for the Windows Subsystem for Linux; remove it.",
				Subject:  provisioner.AttrRange(b, "use_linux_pathing").Ptr(),
			})
		}
	}
	for _, kv := range shell.BadVars(c.Vars) {
		diags = append(diags, provisioner.Errorf(b, "environment_vars",
			`Each entry must look like "NAME=value", with a non-empty NAME.`,
			"Environment variable not in format 'key=value': %s", kv))
	}
	for i, arg := range c.ExecuteCommand {
		t, err := template.New(fmt.Sprintf("execute_command[%d]", i)).Option("missingkey=error").Parse(arg)
		if err == nil {
			err = t.Execute(&bytes.Buffer{}, templateData(nil, "", ""))
		}
		if err != nil {
			diags = append(diags, provisioner.Errorf(b, "execute_command",
				`execute_command is a list such as ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]; it may use {{.Vars}}, {{.Script}} and the build's data.`,
				"Invalid execute_command: %s", err))
			continue
		}
		r.argv = append(r.argv, t)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return r, diags
}

// LinuxPath maps a Windows path to its Windows Subsystem for Linux path:
// C:\path\x.sh (or C:/path/x.sh) becomes /mnt/c/path/x.sh.
func LinuxPath(win string) (string, error) {
	p := strings.ReplaceAll(win, "\\", "/")
	drive, rest, ok := strings.Cut(p, ":/")
	if !ok || drive == "" || strings.Contains(drive, "/") {
		return "", fmt.Errorf("cannot convert %q to a Linux path: expected a drive such as C:/", win)
	}
	return "/mnt/" + strings.ToLower(drive) + "/" + rest, nil
}

// Config returns the decoded configuration with defaults applied.
func (r *Runner) Config() Config { return r.cfg }

// generatedKeys are the build data execute_command may use, as Packer's
// generated data (`{{ .ID }}`, `{{ .Host }}`, ...); all are strings.
var generatedKeys = []string{"ID", "Host", "Port", "User", "PackerRunUUID", "SourceAMI", "SourceAMIName", "BuildRegion", "ArtifactID"}

func templateData(generated map[string]string, vars, script string) map[string]string {
	d := map[string]string{}
	for _, k := range generatedKeys {
		d[k] = ""
	}
	for k, v := range generated {
		d[k] = v
	}
	d["Vars"], d["Script"], d["Command"] = vars, script, script
	return d
}

// Run runs each script on the local host. builtin holds the PACKER_*
// variables; generated is the build data for execute_command templates.
func (r *Runner) Run(ctx context.Context, u ui.UI, builtin, generated map[string]string) error {
	return r.run(ctx, u, builtin, generated, "packer-shell*")
}

// run is Run with the pattern of the inline script's temporary file.
func (r *Runner) run(ctx context.Context, u ui.UI, builtin, generated map[string]string, tempPattern string) error {
	c := &r.cfg
	if len(c.OnlyOn) > 0 && !slices.Contains(c.OnlyOn, runtime.GOOS) {
		u.Say("Skipping shell-local due to runtime OS")
		return nil
	}
	scripts := slices.Clone(r.scripts)
	if c.Inline != nil {
		name, err := r.writeInline(tempPattern)
		if err != nil {
			return err
		}
		defer os.Remove(name)
		scripts = append(scripts, name)
	}
	vars := shell.FlattenEnv(c.EnvVarFormat, builtin, c.Vars, c.Env)
	for _, script := range scripts {
		abs, err := filepath.Abs(script)
		if err != nil {
			return fmt.Errorf("Error executing script: %s\n%w", script, err)
		}
		argv := make([]string, len(r.argv))
		data := templateData(generated, vars, abs)
		for i, t := range r.argv {
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return fmt.Errorf("Error processing command: %w", err)
			}
			argv[i] = b.String()
		}
		u.Say(fmt.Sprintf("Running local shell script: %s", script))
		code, err := run(ctx, u, argv)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("local shell script %s: %w", script, ctx.Err())
			}
			slog.Debug("shell-local: start failed", "argv", argv, "err", err)
			return fmt.Errorf("Error executing script: %s\n\nPlease see output above for more information: %w", abs, err)
		}
		if err := shell.CheckExitCode(code, c.ValidExitCodes); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) writeInline(pattern string) (string, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("Error preparing shell script: %w", err)
	}
	var b strings.Builder
	if r.cfg.InlineShebang != "" {
		fmt.Fprintf(&b, "#!%s\n", r.cfg.InlineShebang)
	}
	for _, line := range r.cfg.Inline {
		b.WriteString(line + "\n")
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	name := f.Name()
	if err == nil && r.cfg.TempfileExtension != "" {
		err = os.Rename(name, name+"."+r.cfg.TempfileExtension)
		if err == nil {
			name += "." + r.cfg.TempfileExtension
		}
	}
	if err == nil {
		err = os.Chmod(name, 0o700)
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("Error preparing shell script: %w", err)
	}
	return name, nil
}

// run runs argv with its output streamed to u and returns its exit status.
func run(ctx context.Context, u ui.UI, argv []string) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return 0, errors.New("execute_command is empty")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdout := &provisioner.LineWriter{Emit: u.Message}
	stderr := &provisioner.LineWriter{Emit: u.Error}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Children that keep the pipes open must not hold up a cancelled run.
	cmd.WaitDelay = 5 * time.Second
	killGroup(cmd)
	err := cmd.Run()
	stdout.Flush()
	stderr.Flush()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		if code := ee.ExitCode(); code >= 0 {
			return code, nil
		}
	}
	return 0, err
}

// Provisioner is the shell-local provisioner.
type Provisioner struct{ *Runner }

// New decodes and validates a shell-local provisioner block.
func New(b *tmpl.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	r, diags := NewRunner(b, build, Options{})
	if r == nil {
		return nil, diags
	}
	return &Provisioner{r}, diags
}

// Provision runs the scripts locally; comm is not used.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	builtin := map[string]string{"PACKER_BUILD_NAME": b.BuildName(), "PACKER_BUILDER_TYPE": b.Type}
	generated := map[string]string{
		"ID": b.InstanceID, "Host": b.Host, "User": b.User, "PackerRunUUID": b.RunUUID,
		"SourceAMI": b.SourceAMI, "SourceAMIName": b.SourceAMIName, "BuildRegion": b.Region,
	}
	if b.Port != 0 {
		generated["Port"] = fmt.Sprint(b.Port)
	}
	return p.run(ctx, u, builtin, generated, provisioner.TempPattern(b, "packer-shell*"))
}

var _ provisioner.Provisioner = (*Provisioner)(nil)
