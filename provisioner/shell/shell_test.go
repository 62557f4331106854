package shell

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator"
	tmpl "github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

var build = &provisioner.Build{Name: "amazon-ebs.ubuntu", Type: "amazon-ebs"}

func newHCL(t *testing.T, src string) *Provisioner {
	t.Helper()
	p, diags := New(provisionertest.HCL(t, "shell", src, nil), nil)
	if diags.HasErrors() {
		t.Fatalf("New: %s", diags.Error())
	}
	p.retryDelay = 0
	return p
}

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		hcl     string // body of an HCL2 block
		json    string // the same as a legacy JSON object ("" to skip)
		wantErr string // "" means valid
		line    int    // expected line of the first diagnostic
	}{
		{name: "inline", hcl: `inline = ["echo hi"]`, json: `{"inline": ["echo hi"]}`},
		{name: "inline as a string in JSON", json: `{"inline": "echo hi"}`},
		{name: "script", hcl: fmt.Sprintf("script = %q", script), json: fmt.Sprintf(`{"script": %q}`, script)},
		{name: "scripts", hcl: fmt.Sprintf("scripts = [%q, %q]", script, script)},
		{name: "nothing", hcl: `skip_clean = true`, json: `{"skip_clean": true}`,
			wantErr: "Either a script file or inline script must be specified", line: 1},
		{name: "empty inline", hcl: `inline = []`, wantErr: "Either a script file or inline script must be specified"},
		{name: "script and scripts", hcl: fmt.Sprintf("script = %q\nscripts = [%q]", script, script),
			wantErr: "Only one of script or scripts can be specified", line: 2},
		{name: "inline and script", hcl: fmt.Sprintf("script = %q\n\ninline = [\"x\"]", script),
			wantErr: "Only a script file or an inline script can be specified, not both", line: 3},
		{name: "missing script", hcl: `script = "/nonexistent/x.sh"`, json: `{"script": "/nonexistent/x.sh"}`,
			wantErr: "Bad script '/nonexistent/x.sh'", line: 1},
		{name: "bad env var", hcl: "inline = [\"x\"]\nenvironment_vars = [\"FOO=1\", \"=bar\", \"BAZ\"]",
			wantErr: "Environment variable not in format 'key=value': =bar", line: 2},
		{name: "bad duration", hcl: "inline = [\"x\"]\npause_after = \"10 seconds\"", json: `{"inline":["x"],"pause_after":"10 seconds"}`,
			wantErr: `Invalid pause_after "10 seconds"`, line: 2},
		{name: "bad start_retry_timeout", hcl: "inline = [\"x\"]\nstart_retry_timeout = \"soon\"",
			wantErr: `Invalid start_retry_timeout "soon"`, line: 2},
		{name: "bad execute_command field", hcl: "inline = [\"x\"]\nexecute_command = \"{{.Script}}\"",
			wantErr: "Invalid execute_command", line: 2},
		{name: "unknown option", hcl: "inline = [\"x\"]\nremote_dir = \"/tmp\"", json: `{"inline":["x"],"remote_dir":"/tmp"}`,
			wantErr: `"remote_dir"`, line: 2},
		{name: "wrong type", hcl: "inline = [\"x\"]\nexpect_disconnect = \"maybe\"",
			wantErr: "Unsuitable value type", line: 2},
		{name: "JSON string booleans", json: `{"inline":["x"],"expect_disconnect":"true","valid_exit_codes":[0,"2"]}`},
	}
	for _, tt := range tests {
		for _, format := range []string{"hcl", "json"} {
			src := tt.hcl
			if format == "json" {
				src = tt.json
			}
			if src == "" {
				continue
			}
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				var b *tmpl.Block
				if format == "hcl" {
					b = provisionertest.HCL(t, "shell", src, nil)
				} else {
					b = provisionertest.JSON(t, "shell", src)
				}
				p, diags := New(b, nil)
				if tt.wantErr == "" {
					if diags.HasErrors() {
						t.Fatalf("unexpected error: %s", diags.Error())
					}
					if p == nil {
						t.Fatal("nil provisioner")
					}
					return
				}
				if !diags.HasErrors() {
					t.Fatalf("want error %q, got none", tt.wantErr)
				}
				if !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %s", tt.wantErr, diags.Error())
				}
				if diags[0].Subject == nil {
					t.Fatalf("diagnostic has no range: %s", diags.Error())
				}
				if tt.line > 0 && format == "hcl" && diags[0].Subject.Start.Line != tt.line {
					t.Errorf("diagnostic at line %d, want %d: %s", diags[0].Subject.Start.Line, tt.line, diags.Error())
				}
			})
		}
	}
}

func TestDefaults(t *testing.T) {
	p := newHCL(t, `inline = ["x"]`)
	c := p.Config()
	if c.InlineShebang != "/bin/sh -e" || c.ExecuteCommand != DefaultExecuteCommand || c.EnvVarFormat != "%s='%s' " {
		t.Errorf("defaults: %+v", c)
	}
	if !strings.HasPrefix(c.RemotePath, "/tmp/script_") || !strings.HasSuffix(c.RemotePath, ".sh") {
		t.Errorf("remote path %q", c.RemotePath)
	}
	if p.startRetryTimeout != 5*time.Minute {
		t.Errorf("start_retry_timeout %s", p.startRetryTimeout)
	}
	p = newHCL(t, `
inline = ["x"]
use_env_var_file = true
remote_folder = "/var/tmp/"
remote_file = "a.sh"`)
	c = p.Config()
	if c.ExecuteCommand != DefaultEnvFileCommand || c.EnvVarFormat != "export %s='%s'\n" || c.RemotePath != "/var/tmp/a.sh" {
		t.Errorf("env file defaults: %+v", c)
	}
	p = newHCL(t, "inline = [\"x\"]\nremote_folder = \"/var/tmp\"\nremote_path = \"/opt/x.sh\"")
	if p.Config().RemotePath != "/opt/x.sh" {
		t.Errorf("remote_path should win: %q", p.Config().RemotePath)
	}
}

func TestInlineUploadRunAndClean(t *testing.T) {
	p := newHCL(t, `
inline = ["echo one", "echo two"]
remote_path = "/tmp/script_1.sh"
environment_vars = ["FOO=foo bar"]
`)
	comm := &provisionertest.Comm{}
	var uploaded string
	comm.Handler = func(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
		if strings.HasPrefix(cmd.Command, "rm -f ") {
			return comm.Interpret(cmd)
		}
		uploaded = string(comm.Snapshot()["/tmp/script_1.sh"].Data)
		fmt.Fprint(cmd.Stdout, "one\ntwo")
		fmt.Fprint(cmd.Stderr, "warning: x\n")
		return communicator.Result{}, nil
	}
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, comm, build); err != nil {
		t.Fatal(err)
	}
	if uploaded != "#!/bin/sh -e\necho one\necho two\n" {
		t.Errorf("uploaded script %q", uploaded)
	}
	if got := comm.Snapshot()["/tmp/script_1.sh"]; got.Data != nil {
		t.Errorf("script not removed")
	}
	want := []string{
		"chmod +x /tmp/script_1.sh; FOO='foo bar' PACKER_BUILDER_TYPE='amazon-ebs' PACKER_BUILD_NAME='amazon-ebs.ubuntu'  /tmp/script_1.sh",
		"rm -f /tmp/script_1.sh",
	}
	if got := comm.Ran(); !slices.Equal(got, want) {
		t.Errorf("commands:\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(u.Lines[0], "say: Provisioning with shell script: "+os.TempDir()+"/packer-shell") {
		t.Errorf("first line %q", u.Lines[0])
	}
	for _, l := range []string{"message: one", "message: two", "error: warning: x"} {
		if !u.Has(l) {
			t.Errorf("missing %q in\n%s", l, u.Text())
		}
	}
}

func TestUploadModeAndCRLF(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	os.WriteFile(script, []byte("echo a\r\necho b\r\n"), 0o644)
	for _, binary := range []bool{false, true} {
		p := newHCL(t, fmt.Sprintf("script = %q\nbinary = %v\nremote_path = \"/tmp/s.sh\"\nskip_clean = true", script, binary))
		comm := &provisionertest.Comm{}
		if err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build); err != nil {
			t.Fatal(err)
		}
		f := comm.Snapshot()["/tmp/s.sh"]
		want := "echo a\necho b\n"
		if binary {
			want = "echo a\r\necho b\r\n"
		}
		if string(f.Data) != want || f.Mode != 0o755 {
			t.Errorf("binary=%v: uploaded %q mode %v", binary, f.Data, f.Mode)
		}
		if slices.ContainsFunc(comm.Ran(), func(c string) bool { return strings.HasPrefix(c, "rm ") }) {
			t.Errorf("skip_clean removed the script: %q", comm.Ran())
		}
	}
}

func TestScriptsRunInOrder(t *testing.T) {
	dir := t.TempDir()
	var hcl []string
	for i := range 3 {
		s := filepath.Join(dir, fmt.Sprintf("%d.sh", i))
		os.WriteFile(s, fmt.Appendf(nil, "echo %d\n", i), 0o644)
		hcl = append(hcl, fmt.Sprintf("%q", s))
	}
	p := newHCL(t, "scripts = ["+strings.Join(hcl, ",")+"]\nremote_path = \"/tmp/x.sh\"")
	comm := &provisionertest.Comm{}
	var seen []string
	comm.Handler = func(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
		if !strings.HasPrefix(cmd.Command, "rm") {
			seen = append(seen, string(comm.Snapshot()["/tmp/x.sh"].Data))
		}
		return communicator.Result{}, nil
	}
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, comm, build); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"echo 0\n", "echo 1\n", "echo 2\n"}) {
		t.Errorf("ran %q", seen)
	}
	if !u.Has("say: Provisioning with shell script: " + filepath.Join(dir, "1.sh")) {
		t.Errorf("log:\n%s", u.Text())
	}
}

// The quoting example of Packer's shell documentation, through a real shell.
func TestEnvironmentQuotingRealShell(t *testing.T) {
	dir := t.TempDir()
	p := newHCL(t, fmt.Sprintf(`
remote_folder = %q
environment_vars = [
  "FOO=foo",
  "BAR=bar's",
  "BAZ=baz=baz",
  "QUX==qux",
  "FOOBAR=foo bar",
  "FOOBARBAZ='foo bar baz'",
  "QUX2=\"qux\"",
  "OVER=from vars",
]
env = { OVER = "from env", DOLLAR = "$HOME" }
inline = [
  "echo \"FOO is $FOO\"",
  "echo \"BAR is $BAR\"",
  "echo \"BAZ is $BAZ\"",
  "echo \"QUX is $QUX\"",
  "echo \"FOOBAR is $FOOBAR\"",
  "echo \"FOOBARBAZ is $FOOBARBAZ\"",
  "echo \"QUX2 is $QUX2\"",
  "echo \"OVER is $OVER\"",
  "echo \"DOLLAR is $DOLLAR\"",
  "echo \"build $PACKER_BUILD_NAME $PACKER_BUILDER_TYPE\"",
]`, dir))
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, provisionertest.Local{}, build); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{
		"FOO is foo", "BAR is bar's", "BAZ is baz=baz", "QUX is =qux", "FOOBAR is foo bar",
		"FOOBARBAZ is 'foo bar baz'", `QUX2 is "qux"`, "OVER is from env", "DOLLAR is $HOME",
		"build amazon-ebs.ubuntu amazon-ebs",
	} {
		if !u.Has("message: " + l) {
			t.Errorf("missing %q in\n%s", l, u.Text())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("remote folder not cleaned: %v", ents)
	}
}

func TestEnvVarFileRealShell(t *testing.T) {
	dir := t.TempDir()
	p := newHCL(t, fmt.Sprintf(`
remote_folder = %q
use_env_var_file = true
environment_vars = ["GREETING=it's here"]
inline = ["echo \"$GREETING\""]`, dir))
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, provisionertest.Local{}, build); err != nil {
		t.Fatal(err)
	}
	if !u.Has("message: it's here") {
		t.Errorf("log:\n%s", u.Text())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("var file or script left behind: %v", ents)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, extra string
		exit        int
		wantErr     string
	}{
		{name: "zero", exit: 0},
		{name: "non-zero", exit: 3, wantErr: "Script exited with non-zero exit status: 3. Allowed exit codes are: [0]"},
		{name: "allowed", exit: 3, extra: "valid_exit_codes = [0, 3]"},
		{name: "zero not allowed", exit: 0, extra: "valid_exit_codes = [1]", wantErr: "non-zero exit status: 0. Allowed exit codes are: [1]"},
		{name: "shebang without -e keeps going", exit: 0, extra: `inline_shebang = "/bin/sh"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inline := fmt.Sprintf(`inline = ["exit %d"]`, tt.exit)
			if strings.Contains(tt.extra, "inline_shebang") {
				inline = `inline = ["false", "exit 0"]`
			}
			p := newHCL(t, fmt.Sprintf("remote_folder = %q\n%s\n%s", dir, inline, tt.extra))
			err := p.Provision(context.Background(), &provisionertest.UI{}, provisionertest.Local{}, build)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ec *ExitCodeError
			if err == nil || !errors.As(err, &ec) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	// With -e (the default shebang) the first failing command fails the script.
	p := newHCL(t, fmt.Sprintf("remote_folder = %q\ninline = [\"false\", \"exit 0\"]", dir))
	if err := p.Provision(context.Background(), &provisionertest.UI{}, provisionertest.Local{}, build); err == nil {
		t.Fatal("want failure from `false` under /bin/sh -e")
	}
}

func TestExpectDisconnect(t *testing.T) {
	tests := []struct {
		name    string
		extra   string
		wantErr string
	}{
		{name: "unexpected", wantErr: "Script disconnected unexpectedly"},
		{name: "expected", extra: "expect_disconnect = true"},
		{name: "magic exit code", extra: "valid_exit_codes = [0, 2300218]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newHCL(t, "inline = [\"reboot\"]\nremote_path = \"/tmp/r.sh\"\n"+tt.extra)
			// Drop the connection while running the script (not at rm -f).
			comm := &provisionertest.Comm{DisconnectOn: "PACKER_BUILD_NAME"}
			err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if comm.Reconnects != 1 {
				t.Errorf("reconnects = %d, want 1", comm.Reconnects)
			}
			if ran := comm.Ran(); ran[len(ran)-1] != "rm -f /tmp/r.sh" {
				t.Errorf("script not cleaned after reconnect: %q", ran)
			}
		})
	}
}

// A reboot's SIGTERM can end the script with status 143 before the link
// drops; with expect_disconnect that is a disconnect, without it a failure.
func TestKilledBySignal(t *testing.T) {
	for _, tt := range []struct {
		extra   string
		status  int
		wantErr string
	}{
		{extra: "expect_disconnect = true", status: 143},
		{extra: "expect_disconnect = true", status: 137},
		{extra: "expect_disconnect = true", status: 2, wantErr: "non-zero exit status: 2"},
		{status: 143, wantErr: "non-zero exit status: 143"},
	} {
		t.Run(fmt.Sprint(tt.extra, tt.status), func(t *testing.T) {
			p := newHCL(t, "inline = [\"reboot\"]\nremote_path = \"/tmp/r.sh\"\n"+tt.extra)
			comm := &provisionertest.Comm{}
			comm.Handler = func(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
				if strings.HasPrefix(cmd.Command, "rm -f") {
					return comm.Interpret(cmd)
				}
				return communicator.Result{ExitStatus: tt.status}, nil
			}
			err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || comm.Reconnects != 1 {
				t.Fatalf("err %v, reconnects %d", err, comm.Reconnects)
			}
		})
	}
}

func TestStartRetry(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		p := newHCL(t, "inline = [\"x\"]\nremote_path = \"/tmp/x.sh\"")
		comm := &provisionertest.Comm{FailUploads: 2, FailRuns: 1}
		if err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build); err != nil {
			t.Fatal(err)
		}
		if comm.Reconnects != 3 {
			t.Errorf("reconnects = %d, want 3", comm.Reconnects)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		p := newHCL(t, "inline = [\"x\"]\nstart_retry_timeout = \"50ms\"")
		p.retryDelay = 10 * time.Millisecond
		comm := &provisionertest.Comm{FailUploads: 1 << 30}
		err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build)
		if !errors.Is(err, provisionertest.ErrTransport) || !strings.Contains(err.Error(), "start_retry_timeout 50ms") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("permission denied fails at once", func(t *testing.T) {
		p := newHCL(t, "inline = [\"x\"]\nremote_folder = \"/root/x\"")
		p.retryDelay = time.Hour
		comm := &provisionertest.Comm{Handler: func(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
			return communicator.Result{}, fmt.Errorf("sftp: open /root/x/s.sh: %w", fs.ErrPermission)
		}}
		err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build)
		if !errors.Is(err, fs.ErrPermission) || comm.Reconnects != 0 {
			t.Fatalf("got %v after %d reconnects", err, comm.Reconnects)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		p := newHCL(t, "inline = [\"x\"]")
		p.retryDelay = time.Hour
		comm := &provisionertest.Comm{FailUploads: 1 << 30}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := p.Provision(ctx, &provisionertest.UI{}, comm, build); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestExecuteCommandAndPauseAfter(t *testing.T) {
	p := newHCL(t, `
inline = ["x"]
remote_path = "/tmp/x.sh"
execute_command = "echo 'pw' | sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
env = { A = "1" }
pause_after = "10ms"
`)
	comm := &provisionertest.Comm{}
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, comm, build); err != nil {
		t.Fatal(err)
	}
	want := "echo 'pw' | sudo -S sh -c 'A='1' PACKER_BUILDER_TYPE='amazon-ebs' PACKER_BUILD_NAME='amazon-ebs.ubuntu'  /tmp/x.sh'"
	if got := comm.Ran()[0]; got != want {
		t.Errorf("command\n got %q\nwant %q", got, want)
	}
	if !u.Has("say: Pausing 10ms after this provisioner...") {
		t.Errorf("log:\n%s", u.Text())
	}
}

func TestFlattenEnv(t *testing.T) {
	got := FlattenEnv("%s='%s' ", map[string]string{"B": "b"}, []string{"A=it's", "C=x=y"}, map[string]string{"C": "z"})
	if want := `A='it'"'"'s' B='b' C='z' `; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}
