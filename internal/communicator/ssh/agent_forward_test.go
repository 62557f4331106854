package ssh_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

// serveAgent runs an in-memory agent holding one key on a unix socket.
func serveAgent(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv, Comment: "forwarded-key"}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	return sock
}

// TestAgentForwarding: with forwarding on and an agent running, the
// remote command sees SSH_AUTH_SOCK and reaches the local agent through
// it (ssh-add lists the agent's key); off (ssh_disable_agent_forwarding)
// or without an agent, it sees none.
func TestAgentForwarding(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{ExtraConfig: []string{"AllowAgentForwarding yes"}})
	sock := serveAgent(t)
	for _, tc := range []struct {
		name    string
		forward bool
		sock    string
		want    string
	}{
		{"forwarded", true, sock, "forwarded-key"},
		{"ssh_disable_agent_forwarding", false, sock, "no agent"},
		{"no local agent", true, filepath.Join(t.TempDir(), "none.sock"), "no agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, srv, func(cfg *ssh.Config) { cfg.AgentForwarding, cfg.AgentSocket = tc.forward, tc.sock })
			out, res := run(t, c, `if [ -S "$SSH_AUTH_SOCK" ]; then ssh-add -l 2>&1 || echo "listing failed"; else echo "no agent"; fi`)
			if res.ExitStatus != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("got %q (exit %d), want %q\nsshd log:\n%s", out, res.ExitStatus, tc.want, srv.Log())
			}
		})
	}
}
