package shell_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
	"github.com/amibake/amibake/provisioner/shell"
)

// These tests run the provisioner against a real OpenSSH server on
// loopback (root needed; `make test` runs them in a loopback-only netns).

func connect(t *testing.T, srv *sshtest.Server) *ssh.Comm {
	t.Helper()
	c, err := ssh.Connect(context.Background(), ssh.Config{
		Host: srv.Host, Port: srv.Port, User: srv.User, PrivateKey: srv.ClientKeyPEM, Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, srv.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var build = &provisioner.Build{Name: "amazon-ebs", Type: "amazon-ebs"}

func TestOverSSH(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	remote := t.TempDir() // the "machine" is this host
	p, diags := shell.New(provisionertest.HCL(t, "shell", fmt.Sprintf(`
remote_folder = %q
environment_vars = ["MSG=it's \"quoted\" $HOME"]
inline = [
  "echo \"$MSG\"",
  "echo \"$PACKER_BUILD_NAME\" >&2",
  "exit 3",
]
valid_exit_codes = [3]`, remote), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	u := &provisionertest.UI{}
	if err := provisioner.Run(context.Background(), u, comm, build, p, provisioner.Common{}); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	for _, l := range []string{`message: it's "quoted" $HOME`, "error: amazon-ebs"} {
		if !u.Has(l) {
			t.Errorf("missing %q in\n%s", l, u.Text())
		}
	}
	if ents, _ := os.ReadDir(remote); len(ents) != 0 {
		t.Errorf("script left on the machine: %v", ents)
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

// A reboot in the middle of a script: with expect_disconnect the
// provisioner reconnects once the machine is back and cleans up.
func TestRebootWithExpectDisconnect(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	remote := t.TempDir()
	for _, expect := range []bool{true, false} {
		t.Run(fmt.Sprint("expect_disconnect=", expect), func(t *testing.T) {
			p, diags := shell.New(provisionertest.HCL(t, "shell", fmt.Sprintf(`
remote_folder = %q
expect_disconnect = %v
inline = ["echo rebooting", "sleep 30"]`, remote, expect), nil), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			u := &notifyUI{line: "rebooting", on: func() {
				go func() {
					srv.Stop()
					time.Sleep(300 * time.Millisecond)
					srv.Restart()
				}()
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := p.Provision(ctx, u, comm, build)
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %s: the disconnect was not noticed", d)
			}
			if !expect {
				if err == nil || !strings.Contains(err.Error(), "Script disconnected unexpectedly") {
					t.Fatalf("got %v", err)
				}
				// Let the server come back for the next case.
				time.Sleep(500 * time.Millisecond)
				if err := comm.Reconnect(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s\n%s", err, u.Text(), srv.Log())
			}
			if ents, _ := os.ReadDir(remote); len(ents) != 0 {
				t.Errorf("script not removed after the reboot: %v", ents)
			}
		})
	}
}

// start_retry_timeout: the machine is still rebooting from an earlier
// provisioner when this one starts.
func TestStartRetryWhileMachineIsDown(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	comm := connect(t, srv)
	remote := t.TempDir()
	p, diags := shell.New(provisionertest.HCL(t, "shell", fmt.Sprintf(`
remote_folder = %q
start_retry_timeout = "20s"
inline = ["echo back"]`, remote), nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	srv.Stop()
	go func() {
		time.Sleep(500 * time.Millisecond)
		srv.Restart()
	}()
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, comm, build); err != nil {
		t.Fatalf("%v\n%s", err, u.Text())
	}
	if !u.Has("message: back") {
		t.Errorf("log:\n%s", u.Text())
	}
}
