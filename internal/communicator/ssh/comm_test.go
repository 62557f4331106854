package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

func baseConfig(srv *sshtest.Server) ssh.Config {
	return ssh.Config{
		Host:       srv.Host,
		Port:       srv.Port,
		User:       srv.User,
		PrivateKey: srv.ClientKeyPEM,
		Timeout:    10 * time.Second,
	}
}

func connect(t *testing.T, srv *sshtest.Server, mutate func(*ssh.Config)) *ssh.Comm {
	t.Helper()
	cfg := baseConfig(srv)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := ssh.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Connect: %v\nsshd log:\n%s", err, srv.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Comm, command string) (string, communicator.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := c.Run(context.Background(), &communicator.Cmd{Command: command, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("Run(%q): %v", command, err)
	}
	return out.String(), res
}

func TestExecExitCodes(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	for _, tc := range []struct {
		cmd        string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{"echo hello", "hello\n", "", 0},
		{"exit 3", "", "", 3},
		{"echo out; echo err >&2; exit 42", "out\n", "err\n", 42},
		{"false", "", "", 1},
		{"kill -TERM $$", "", "", 128 + 15},
		{"no-such-command-xyz", "", "no-such-command-xyz", 127},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			// Order across the two streams is not kept (nor is it by
			// OpenSSH's client): each is checked alone.
			var stdout, stderr bytes.Buffer
			res, err := c.Run(context.Background(), &communicator.Cmd{Command: tc.cmd, Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != tc.wantOut || !strings.Contains(stderr.String(), tc.wantErr) ||
				(tc.wantErr == "" && stderr.Len() > 0) || res.ExitStatus != tc.wantStatus || res.Disconnected {
				t.Errorf("got (%q, %q, %+v), want (%q, %q, status %d)", stdout.String(), stderr.String(), res, tc.wantOut, tc.wantErr, tc.wantStatus)
			}
		})
	}
}

// streamWriter records when each chunk arrives.
type streamWriter struct {
	mu     sync.Mutex
	chunks []string
	first  time.Time
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() {
		w.first = time.Now()
	}
	w.chunks = append(w.chunks, string(p))
	return len(p), nil
}

func TestExecStreamsOutput(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	var stdout, stderr streamWriter
	start := time.Now()
	res, err := c.Run(context.Background(), &communicator.Cmd{
		Command: "echo first; echo warn >&2; sleep 1; echo second",
		Stdout:  &stdout, Stderr: &stderr,
	})
	if err != nil || res.ExitStatus != 0 {
		t.Fatalf("Run: %+v %v", res, err)
	}
	total := time.Since(start)
	if got := strings.Join(stdout.chunks, ""); got != "first\nsecond\n" {
		t.Errorf("stdout %q", got)
	}
	if got := strings.Join(stderr.chunks, ""); got != "warn\n" {
		t.Errorf("stderr %q", got)
	}
	// The first line must arrive before the command ends, not at the end.
	if early := stdout.first.Sub(start); early > total-500*time.Millisecond {
		t.Errorf("first output after %v of %v: not streamed", early, total)
	}
}

func TestExecStdin(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	var out bytes.Buffer
	input := strings.Repeat("line of input\n", 10000)
	res, err := c.Run(context.Background(), &communicator.Cmd{
		Command: "wc -l; exit 5", Stdin: strings.NewReader(input), Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "10000" || res.ExitStatus != 5 {
		t.Errorf("got %q %+v", out.String(), res)
	}
}

func TestExecPTY(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	for _, pty := range []bool{false, true} {
		var out bytes.Buffer
		res, err := c.Run(context.Background(), &communicator.Cmd{
			Command: "if [ -t 1 ]; then echo tty; else echo notty; fi", Stdout: &out, PTY: pty,
		})
		if err != nil || res.ExitStatus != 0 {
			t.Fatalf("pty=%v: %+v %v", pty, res, err)
		}
		want := "notty"
		if pty {
			want = "tty"
		}
		if got := strings.TrimSpace(out.String()); got != want {
			t.Errorf("pty=%v: got %q want %q", pty, got, want)
		}
	}
	// Config.PTY applies to every command.
	cp := connect(t, srv, func(c *ssh.Config) { c.PTY = true })
	if out, _ := run(t, cp, "tty"); !strings.HasPrefix(out, "/dev/pts/") {
		t.Errorf("Config.PTY: tty said %q", out)
	}
}

func TestRunContextCancel(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	for _, tc := range []struct {
		name, cmd string
		pty       bool
	}{
		{"single process", "sleep 31", false},
		{"shell with children", "sleep 32; echo never", false},
		{"pty", "sleep 33; echo never", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			var out bytes.Buffer
			_, err := c.Run(ctx, &communicator.Cmd{Command: tc.cmd, Stdout: &out, PTY: tc.pty})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want deadline exceeded", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Run returned %v after cancel", d)
			}
			if out.Len() != 0 {
				t.Errorf("output %q", out.String())
			}
		})
	}
	// With a PTY the hang-up kills the command's whole process group.
	// (Without one, sshd relays SIGTERM only for non-root logins under
	// privilege separation; these tests log in as root.)
	waitFor(t, "the PTY command to die", func() bool {
		out, _ := run(t, c, "pgrep -f 'slee[p] 33' >/dev/null && echo running || echo gone")
		return strings.TrimSpace(out) == "gone"
	})
}
