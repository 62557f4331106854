// Package shell is Packer's `shell` provisioner: it uploads scripts (or the
// inline commands as one script) to the machine and runs them there.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
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
)

// Config is every option Packer documents for the shell provisioner.
type Config struct {
	// Exactly one of Inline, Script and Scripts.
	Inline  []string `hcl:"inline,optional"`
	Script  string   `hcl:"script,optional"`
	Scripts []string `hcl:"scripts,optional"`

	// Binary leaves line endings alone (otherwise CRLF becomes LF).
	Binary         bool              `hcl:"binary,optional"`
	ValidExitCodes []int             `hcl:"valid_exit_codes,optional"`
	Vars           []string          `hcl:"environment_vars,optional"`
	Env            map[string]string `hcl:"env,optional"`
	// EnvVarFormat defaults to "%s='%s' " ("export %s='%s'\n" with
	// UseEnvVarFile).
	EnvVarFormat  string `hcl:"env_var_format,optional"`
	UseEnvVarFile bool   `hcl:"use_env_var_file,optional"`
	// ExecuteCommand is a Go template with .Path, .Vars and .EnvVarFile.
	ExecuteCommand   string `hcl:"execute_command,optional"`
	ExpectDisconnect bool   `hcl:"expect_disconnect,optional"`
	InlineShebang    string `hcl:"inline_shebang,optional"`
	RemoteFolder     string `hcl:"remote_folder,optional"`
	RemoteFile       string `hcl:"remote_file,optional"`
	// RemotePath overrides RemoteFolder/RemoteFile.
	RemotePath        string `hcl:"remote_path,optional"`
	SkipClean         bool   `hcl:"skip_clean,optional"`
	StartRetryTimeout string `hcl:"start_retry_timeout,optional"`
	PauseAfter        string `hcl:"pause_after,optional"`
}

// Defaults, as Packer's.
const (
	DefaultInlineShebang  = "/bin/sh -e"
	DefaultExecuteCommand = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
	// DefaultEnvFileCommand is the default with use_env_var_file.
	DefaultEnvFileCommand    = "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}"
	DefaultEnvVarFormat      = "%s='%s' "
	DefaultEnvFileVarFormat  = "export %s='%s'\n"
	DefaultRemoteFolder      = "/tmp"
	DefaultStartRetryTimeout = 5 * time.Minute
)

// ExecuteCommandData is what execute_command is rendered with.
type ExecuteCommandData struct {
	Vars       string
	EnvVarFile string
	Path       string
}

// Provisioner runs shell scripts on the machine.
type Provisioner struct {
	cfg               Config
	scripts           []string
	command           *template.Template
	startRetryTimeout time.Duration
	pauseAfter        time.Duration
	// retryDelay separates attempts to upload and start a script.
	retryDelay time.Duration
}

// New decodes and validates a shell provisioner block. build holds extra
// HCL2 variables (the `build` object); it may be nil.
func New(b *tmpl.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	var cfg Config
	diags := provisioner.ListOrString(b, "inline", "scripts", "environment_vars").Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Provisioner{cfg: cfg, retryDelay: 2 * time.Second}
	c := &p.cfg

	if len(c.Inline) == 0 {
		c.Inline = nil
	}
	if c.InlineShebang == "" {
		c.InlineShebang = DefaultInlineShebang
	}
	if c.EnvVarFormat == "" {
		c.EnvVarFormat = DefaultEnvVarFormat
		if c.UseEnvVarFile {
			c.EnvVarFormat = DefaultEnvFileVarFormat
		}
	}
	if c.ExecuteCommand == "" {
		c.ExecuteCommand = DefaultExecuteCommand
		if c.UseEnvVarFile {
			c.ExecuteCommand = DefaultEnvFileCommand
		}
	}
	if c.RemoteFolder == "" {
		c.RemoteFolder = DefaultRemoteFolder
	}
	if c.RemoteFile == "" {
		c.RemoteFile = fmt.Sprintf("script_%d.sh", rand.IntN(9999))
	}
	if c.RemotePath == "" {
		c.RemotePath = strings.TrimSuffix(c.RemoteFolder, "/") + "/" + c.RemoteFile
	}

	const which = "Set exactly one of inline (a list of commands), script (a path) or scripts (a list of paths)."
	switch {
	case c.Script != "" && len(c.Scripts) > 0:
		diags = append(diags, provisioner.Errorf(b, "scripts", which, "Only one of script or scripts can be specified"))
	case c.Script == "" && len(c.Scripts) == 0 && c.Inline == nil:
		diags = append(diags, provisioner.Errorf(b, "", which, "Either a script file or inline script must be specified"))
	case (c.Script != "" || len(c.Scripts) > 0) && c.Inline != nil:
		diags = append(diags, provisioner.Errorf(b, "inline", which, "Only a script file or an inline script can be specified, not both"))
	}
	p.scripts = slices.Clone(c.Scripts)
	attr := "scripts"
	if c.Script != "" {
		p.scripts, attr = []string{c.Script}, "script"
	}
	for _, s := range p.scripts {
		if _, err := os.Stat(s); err != nil {
			diags = append(diags, provisioner.Errorf(b, attr,
				"Script paths are relative to the directory amibake runs in; check the path and that the file is readable.",
				"Bad script '%s': %s", s, err))
		}
	}
	for _, kv := range BadVars(c.Vars) {
		diags = append(diags, provisioner.Errorf(b, "environment_vars",
			`Each entry must look like "NAME=value", with a non-empty NAME.`,
			"Environment variable not in format 'key=value': %s", kv))
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "= \t\n'\"") {
			diags = append(diags, provisioner.Errorf(b, "env",
				"Environment variable names are letters, digits and underscores.",
				"Invalid environment variable name %q", k))
		}
	}

	var d *hcl.Diagnostic
	if p.startRetryTimeout, d = provisioner.Duration(b, "start_retry_timeout", c.StartRetryTimeout, DefaultStartRetryTimeout); d != nil {
		diags = append(diags, d)
	}
	if p.startRetryTimeout == 0 {
		p.startRetryTimeout = DefaultStartRetryTimeout
	}
	if p.pauseAfter, d = provisioner.Duration(b, "pause_after", c.PauseAfter, 0); d != nil {
		diags = append(diags, d)
	}

	t, err := template.New("execute_command").Option("missingkey=error").Parse(c.ExecuteCommand)
	if err == nil {
		err = t.Execute(io.Discard, ExecuteCommandData{})
	}
	if err != nil {
		diags = append(diags, provisioner.Errorf(b, "execute_command",
			"execute_command may use {{.Path}}, {{.Vars}} and {{.EnvVarFile}}, for example "+
				`"chmod +x {{.Path}}; {{.Vars}} {{.Path}}".`,
			"Invalid execute_command: %s", err))
	}
	p.command = t
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// Config returns the decoded configuration with defaults applied.
func (p *Provisioner) Config() Config { return p.cfg }

// Provision uploads and runs each script in turn.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	c := &p.cfg
	scripts := slices.Clone(p.scripts)
	if c.Inline != nil {
		name, err := p.writeInline(provisioner.TempPattern(b, "packer-shell*"))
		if err != nil {
			return err
		}
		defer os.Remove(name)
		scripts = append(scripts, name)
	}

	builtin := map[string]string{
		"PACKER_BUILD_NAME":   b.BuildName(),
		"PACKER_BUILDER_TYPE": b.Type,
	}
	vars := FlattenEnv(c.EnvVarFormat, builtin, c.Vars, c.Env)

	var envFile string
	if c.UseEnvVarFile {
		envFile = fmt.Sprintf("%s/varfile_%d.sh", strings.TrimSuffix(c.RemoteFolder, "/"), rand.IntN(9999))
		err := p.retry(ctx, comm, "upload environment variable file", func(ctx context.Context) error {
			return comm.Upload(ctx, envFile, strings.NewReader(vars), mode(0o600))
		})
		if err != nil {
			return err
		}
		if !c.SkipClean {
			defer func() {
				if err := p.remove(ctx, comm, envFile); err != nil {
					slog.Warn("remove environment variable file", "path", envFile, "err", err)
				}
			}()
		}
	}

	var cmd bytes.Buffer
	if err := p.command.Execute(&cmd, ExecuteCommandData{Vars: vars, EnvVarFile: envFile, Path: c.RemotePath}); err != nil {
		return fmt.Errorf("Error processing command: %w", err)
	}
	command := cmd.String()

	for _, path := range scripts {
		if err := p.runScript(ctx, u, comm, path, command); err != nil {
			return err
		}
	}

	if p.pauseAfter > 0 {
		u.Say(fmt.Sprintf("Pausing %s after this provisioner...", p.pauseAfter))
		return provisioner.Sleep(ctx, p.pauseAfter)
	}
	return nil
}

func (p *Provisioner) writeInline(pattern string) (string, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("Error preparing shell script: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!%s\n", p.cfg.InlineShebang)
	for _, line := range p.cfg.Inline {
		b.WriteString(line + "\n")
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("Error preparing shell script: %w", err)
	}
	return f.Name(), nil
}

func (p *Provisioner) runScript(ctx context.Context, u ui.UI, comm communicator.Communicator, path, command string) error {
	c := &p.cfg
	u.Say(fmt.Sprintf("Provisioning with shell script: %s", path))
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("Error opening shell script: %w", err)
	}
	if !c.Binary {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}

	// Upload and start in one retried unit, so that a reboot between the
	// two cannot leave us running a script that is gone.
	var res communicator.Result
	err = p.retry(ctx, comm, "upload and start script", func(ctx context.Context) error {
		if err := comm.Upload(ctx, c.RemotePath, bytes.NewReader(data), mode(0o755)); err != nil {
			return fmt.Errorf("Error uploading script: %w", err)
		}
		stdout := &provisioner.LineWriter{Emit: u.Message}
		stderr := &provisioner.LineWriter{Emit: u.Error}
		var err error
		res, err = comm.Run(ctx, &communicator.Cmd{Command: command, Stdout: stdout, Stderr: stderr})
		stdout.Flush()
		stderr.Flush()
		return err
	})
	if err != nil {
		return err
	}

	// A reboot's SIGTERM or SIGKILL may reach the script before the link
	// drops, and sshd then reports the signal instead of hanging up.
	// Packer fails there; with expect_disconnect it is the expected end.
	exitErr := CheckExitCode(res.ExitStatus, c.ValidExitCodes)
	if !res.Disconnected && exitErr != nil && c.ExpectDisconnect && killedBySignal(res.ExitStatus) {
		slog.Info("script killed by a signal with expect_disconnect set; treating it as a disconnect",
			"script", path, "exit_status", res.ExitStatus)
		res.Disconnected = true
	}
	if res.Disconnected {
		if !c.ExpectDisconnect && !slices.Contains(c.ValidExitCodes, DisconnectExitCode) {
			return errors.New("Script disconnected unexpectedly. " +
				"If you expected your script to disconnect, i.e. from a " +
				"restart, you can try adding `\"expect_disconnect\": true` " +
				"or `\"valid_exit_codes\": [0, 2300218]` to the shell " +
				"provisioner parameters.")
		}
		slog.Info("script disconnected as expected; reconnecting", "script", path)
		rctx, cancel := context.WithTimeout(ctx, p.startRetryTimeout)
		err := comm.Reconnect(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("reconnect after the script disconnected: %w", err)
		}
	} else if exitErr != nil {
		return exitErr
	}

	if !c.SkipClean {
		if err := p.remove(ctx, comm, c.RemotePath); err != nil {
			return err
		}
	}
	return nil
}

// killedBySignal reports whether a shell exit status means death by
// SIGHUP, SIGKILL or SIGTERM (128+n), as processes die in a reboot.
func killedBySignal(status int) bool {
	return status == 128+1 || status == 128+9 || status == 128+15
}

// remove deletes a remote file, retrying through a reboot.
func (p *Provisioner) remove(ctx context.Context, comm communicator.Communicator, path string) error {
	return p.retry(ctx, comm, "remove temporary script", func(ctx context.Context) error {
		res, err := comm.Run(ctx, &communicator.Cmd{Command: "rm -f " + path})
		switch {
		case err != nil:
			return fmt.Errorf("Error removing temporary script at %s: %w", path, err)
		case res.Disconnected:
			return errors.New("Disconnect while removing temporary script.")
		case res.ExitStatus != 0:
			return fmt.Errorf("Error removing temporary script at %s!", path)
		}
		return nil
	})
}

// retry runs f until it succeeds or start_retry_timeout has passed since
// the first attempt, reconnecting between attempts: a machine rebooting
// after an earlier provisioner refuses connections for a while.
func (p *Provisioner) retry(ctx context.Context, comm communicator.Communicator, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(p.startRetryTimeout)
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		// A missing remote_folder or a permission problem will not heal
		// by waiting: Packer retries those for start_retry_timeout.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w (gave up after start_retry_timeout %s)", err, p.startRetryTimeout)
		}
		slog.Info("shell provisioner: retrying", "what", what, "attempt", attempt, "err", err)
		// Reconnect waits for the machine itself; the delay only keeps a
		// failure that survives reconnecting from spinning.
		if attempt > 1 {
			if err := provisioner.Sleep(ctx, p.retryDelay); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		if rerr := comm.Reconnect(rctx); rerr != nil {
			slog.Debug("shell provisioner: reconnect failed", "err", rerr)
		}
		cancel()
	}
}

// mode is the FileInfo Upload takes for a file's permissions.
func mode(m fs.FileMode) os.FileInfo { return fileMode(m) }

type fileMode fs.FileMode

func (m fileMode) Name() string       { return "" }
func (m fileMode) Size() int64        { return 0 }
func (m fileMode) Mode() fs.FileMode  { return fs.FileMode(m) }
func (m fileMode) ModTime() time.Time { return time.Time{} }
func (m fileMode) IsDir() bool        { return false }
func (m fileMode) Sys() any           { return nil }

var _ provisioner.Provisioner = (*Provisioner)(nil)
