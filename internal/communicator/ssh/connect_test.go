package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

// OpenSSH >= 8.8 refuses SHA-1 "ssh-rsa" signatures; an RSA key must be
// used with rsa-sha2-256/512 (Packer issue 11733).
func TestRSAKeyUsesSHA2(t *testing.T) {
	t.Parallel()
	signer, pemKey := sshtest.GenerateRSAKey(t)
	for _, algos := range []string{"rsa-sha2-256,rsa-sha2-512", "rsa-sha2-256", "rsa-sha2-512"} {
		t.Run(algos, func(t *testing.T) {
			srv := sshtest.Start(t, sshtest.Options{
				ClientKey:   signer,
				ExtraConfig: []string{"PubkeyAcceptedAlgorithms " + algos},
			})
			c := connect(t, srv, func(c *ssh.Config) { c.PrivateKey = pemKey })
			got := c.AuthAlgorithm()
			if !strings.Contains(algos, got) || !strings.HasPrefix(got, "rsa-sha2-") {
				t.Errorf("signed with %q, server accepts only %s", got, algos)
			}
			// sshd logs the login a moment after the client sees it.
			waitFor(t, "sshd to log the login", func() bool { return strings.Contains(srv.Log(), "Accepted publickey for root") })
		})
	}
}

func TestED25519Key(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	var dialed []string
	c := connect(t, srv, func(c *ssh.Config) {
		// The Dial override carries the connection.
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, network+" "+addr)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	if want := []string{"tcp " + srv.Addr()}; !slices.Equal(dialed, want) {
		t.Errorf("dialed %v, want %v", dialed, want)
	}
	if got := c.AuthAlgorithm(); got != gossh.KeyAlgoED25519 {
		t.Errorf("AuthAlgorithm = %q", got)
	}
	if out, _ := run(t, c, "id -u"); out != "0\n" {
		t.Errorf("id -u = %q", out)
	}
}

// Signers given directly (an in-memory temporary key) work without PEM.
func TestSignersAuth(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	connect(t, srv, func(c *ssh.Config) {
		c.PrivateKey = nil
		c.Signers = []gossh.Signer{srv.ClientKey}
	})
}

func TestAuthFailureMessage(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	wrong, _ := gossh.NewSignerFromKey(other)
	cfg := baseConfig(srv)
	cfg.PrivateKey = nil
	cfg.Signers = []gossh.Signer{wrong}
	cfg.HandshakeAttempts = 3
	start := time.Now()
	_, err := ssh.Connect(context.Background(), cfg)
	var ae *ssh.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *AuthError", err)
	}
	if ae.Attempts != 3 {
		t.Errorf("Attempts = %d, want 3", ae.Attempts)
	}
	msg := err.Error()
	for _, want := range []string{
		`"root"`, srv.Addr(), "failed 3 times",
		"ssh-ed25519 " + gossh.FingerprintSHA256(wrong.PublicKey()),
		"the server accepts publickey",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v; auth failures should not wait for Timeout", d)
	}
}

// The key is installed only after the first attempts fail (cloud-init
// still running): authentication failures are retried.
func TestAuthRetriedUntilKeyInstalled(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	srv.SetAuthorizedKeys()
	installed := make(chan struct{})
	go func() {
		defer close(installed)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if strings.Count(srv.Log(), "Connection closed by authenticating user") >= 2 {
				break
			}
		}
		srv.SetAuthorizedKeys(srv.ClientKey.PublicKey())
	}()
	c := connect(t, srv, func(c *ssh.Config) { c.HandshakeAttempts = 20 })
	<-installed
	if out, _ := run(t, c, "echo in"); out != "in\n" {
		t.Errorf("got %q", out)
	}
}

// With keep-alives off, ReadWriteTimeout alone notices a stalled peer.
func TestReadWriteTimeout(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, func(c *ssh.Config) {
		c.KeepAliveInterval = -1
		c.ReadWriteTimeout = 300 * time.Millisecond
	})
	t.Cleanup(srv.ResumeSessions)
	ran := make(chan communicator.Result, 1)
	go func() {
		res, _ := c.Run(context.Background(), &communicator.Cmd{Command: "echo started; sleep 0.1; echo tick; sleep 20"})
		ran <- res
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(srv.Log(), "Starting session") })
	time.Sleep(200 * time.Millisecond)
	srv.PauseSessions()
	select {
	case res := <-ran:
		if !res.Disconnected {
			t.Errorf("Run = %+v, want Disconnected", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled connection was not noticed")
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    ssh.Config
		errHas string
	}{
		{"no host", ssh.Config{User: "u", Password: "p"}, "no host"},
		{"no user", ssh.Config{Host: "127.0.0.1", Password: "p"}, "no user"},
		{"bad transfer", ssh.Config{Host: "127.0.0.1", User: "u", Password: "p", FileTransfer: "rsync"}, "rsync"},
		{"no credentials", ssh.Config{Host: "127.0.0.1", User: "u", Timeout: time.Second, Dial: neverDial}, "no credentials"},
		{"garbage key", ssh.Config{Host: "127.0.0.1", User: "u", PrivateKey: []byte("-----BEGIN NONSENSE-----"), Timeout: time.Second, Dial: neverDial}, "parse private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ssh.Connect(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("err = %v, want it to mention %q", err, tc.errHas)
			}
		})
	}
}

// neverDial hands back one end of a pipe so credential errors surface
// after the dial.
func neverDial(ctx context.Context, network, addr string) (net.Conn, error) {
	a, b := net.Pipe()
	go func() { <-ctx.Done(); b.Close() }()
	return a, nil
}

// The port is closed at first (the instance is booting); Connect keeps
// trying and succeeds once sshd listens.
func TestConnectRetriesUntilPortOpens(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	srv.Stop()
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(700 * time.Millisecond)
		srv.Restart()
	}()
	start := time.Now()
	c := connect(t, srv, nil)
	<-restarted
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("connected after %v, before sshd started", d)
	}
	if out, _ := run(t, c, "echo up"); out != "up\n" {
		t.Errorf("got %q", out)
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	cfg := ssh.Config{Host: "127.0.0.1", Port: port, User: "root", Password: "x", Timeout: 700 * time.Millisecond}
	start := time.Now()
	_, err := ssh.Connect(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "timeout after 700ms") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// The caller's context ends the wait too.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg.Timeout = time.Minute
	_, err = ssh.Connect(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context deadline", err)
	}
}

func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// A reboot: sshd and every session die, the running command reports
// Disconnected, and Reconnect waits for the host to come back.
func TestDisconnectAndReconnect(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	key := c.HostKey()

	type runResult struct {
		res communicator.Result
		err error
	}
	ran := make(chan runResult, 1)
	go func() {
		res, err := c.Run(context.Background(), &communicator.Cmd{Command: "sleep 20"})
		ran <- runResult{res, err}
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(srv.Log(), "Starting session: command") })
	srv.Stop()
	r := <-ran
	if r.err != nil || !r.res.Disconnected {
		t.Fatalf("Run during reboot = %+v, %v; want Disconnected", r.res, r.err)
	}

	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(500 * time.Millisecond)
		srv.Restart()
	}()
	start := time.Now()
	err := c.Reconnect(context.Background())
	<-restarted
	if err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("reconnected after %v, before sshd was back", d)
	}
	if out, _ := run(t, c, "echo back"); out != "back\n" {
		t.Errorf("after reconnect: %q", out)
	}
	if c.HostKey() != key {
		t.Errorf("host key changed across reconnect: %v then %v", key, c.HostKey())
	}
	// Running on a dead connection reports Disconnected too.
	srv.Stop()
	res, err := c.Run(context.Background(), &communicator.Cmd{Command: "true"})
	if err != nil || !res.Disconnected {
		t.Errorf("Run on dead connection = %+v, %v", res, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SIGSTOPped sshd processes keep TCP alive but never answer: only the
// keep-alives notice.
func TestKeepAliveDetectsDeadPeer(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, func(c *ssh.Config) {
		c.KeepAliveInterval = 100 * time.Millisecond
		c.KeepAliveCountMax = 3
	})
	go func() {
		time.Sleep(300 * time.Millisecond)
		srv.PauseSessions()
	}()
	t.Cleanup(srv.ResumeSessions)
	start := time.Now()
	res, err := c.Run(context.Background(), &communicator.Cmd{Command: "sleep 20"})
	if err != nil || !res.Disconnected {
		t.Fatalf("Run = %+v, %v; want Disconnected", res, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dead peer noticed after %v", d)
	}
}

func TestHostKeyPinning(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	pinned := ssh.ParseConsoleFingerprints(srv.ConsoleOutput())
	if len(pinned) != len(srv.HostKeys) {
		t.Fatalf("parsed %d fingerprints from the console, want %d", len(pinned), len(srv.HostKeys))
	}
	t.Run("match", func(t *testing.T) {
		c := connect(t, srv, func(c *ssh.Config) { c.HostKey = ssh.PinnedHostKeys(pinned...) })
		if got := c.HostKey().Hash; got != pinned[0].Hash && got != pinned[1].Hash {
			t.Errorf("accepted %s, not a pinned key", got)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		other := sshtest.Start(t, sshtest.Options{})
		wrong := ssh.ParseConsoleFingerprints(other.ConsoleOutput())
		cfg := baseConfig(srv)
		cfg.HostKey = ssh.PinnedHostKeys(wrong...)
		start := time.Now()
		_, err := ssh.Connect(context.Background(), cfg)
		var hk *ssh.HostKeyError
		if !errors.As(err, &hk) {
			t.Fatalf("err = %v, want *HostKeyError", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "got "+hk.Got.Hash) || !strings.Contains(msg, wrong[0].Hash) || !strings.Contains(msg, "expected") {
			t.Errorf("message does not say expected vs got: %s", msg)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a mismatch must fail at once, took %v", d)
		}
	})
}

func TestHostKeyTOFU(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	checker := ssh.TrustOnFirstUse()
	c := connect(t, srv, func(c *ssh.Config) { c.HostKey = checker })
	first, ok := checker.Accepted()
	if !ok || first.Hash == "" || first != c.HostKey() {
		t.Fatalf("Accepted = %v, %v; HostKey = %v", first, ok, c.HostKey())
	}
	if err := c.Reconnect(context.Background()); err != nil {
		t.Fatalf("reconnect to the same host: %v", err)
	}
	// Another server (new host keys) at the same address: rejected.
	port := srv.Port
	srv.Stop()
	impostor := sshtest.Start(t, sshtest.Options{Host: srv.Host, Port: port, ClientKey: srv.ClientKey})
	err := c.Reconnect(context.Background())
	var hk *ssh.HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("reconnect to impostor: err = %v, want *HostKeyError", err)
	}
	if hk.Expected[0].Hash != first.Hash || hk.Got.Hash == first.Hash {
		t.Errorf("error = %+v", hk)
	}
	_ = impostor
}

func TestInsecureHostKey(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	checker := ssh.InsecureIgnoreHostKey()
	c := connect(t, srv, func(c *ssh.Config) { c.HostKey = checker })
	srv.Stop()
	other := sshtest.Start(t, sshtest.Options{Host: srv.Host, Port: srv.Port, ClientKey: srv.ClientKey})
	if err := c.Reconnect(context.Background()); err != nil {
		t.Fatalf("insecure checking rejected a new key: %v", err)
	}
	_ = other
}

func TestBastion(t *testing.T) {
	t.Parallel()
	target := sshtest.Start(t, sshtest.Options{Host: "127.0.0.2"})
	bastion := sshtest.Start(t, sshtest.Options{Host: "127.0.0.3", ExtraConfig: []string{"AllowTcpForwarding yes"}})
	bastionPin := ssh.ParseConsoleFingerprints(bastion.ConsoleOutput())
	c := connect(t, target, func(c *ssh.Config) {
		c.Bastion = &ssh.Bastion{
			Host: bastion.Host, Port: bastion.Port, User: "root",
			PrivateKey: bastion.ClientKeyPEM, HostKey: ssh.PinnedHostKeys(bastionPin...),
		}
	})
	out, _ := run(t, c, "echo $SSH_CONNECTION")
	// The target sees the connection coming from the bastion's address.
	if f := strings.Fields(out); len(f) != 4 || f[2] != "127.0.0.2" || f[3] != strconv.Itoa(target.Port) {
		t.Errorf("SSH_CONNECTION = %q", out)
	}
	waitFor(t, "the bastion to log the login", func() bool { return strings.Contains(bastion.Log(), "Accepted publickey") })
}

func TestAgentAuth(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	raw, err := gossh.ParseRawPrivateKey(srv.ClientKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
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
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, conn); conn.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	c := connect(t, srv, func(c *ssh.Config) { c.PrivateKey = nil; c.AgentAuth = true })
	if out, _ := run(t, c, "echo via agent"); out != "via agent\n" {
		t.Errorf("got %q", out)
	}

	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := baseConfig(srv)
	cfg.PrivateKey, cfg.AgentAuth = nil, true
	if _, err := ssh.Connect(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Errorf("without an agent: %v", err)
	}
}
