package vm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

var ubuntu = Flavor{Name: "ubuntu-24.04", User: "ubuntu"}

var (
	keysOnce   sync.Once
	rsaSigner  ssh.Signer
	edPrivate  ed25519.PrivateKey
	edSigner   ssh.Signer
	ipCounter  atomic.Uint32
	instanceNo atomic.Uint32
)

func clientKeys(t testing.TB) (rsaKey, edKey ssh.Signer) {
	keysOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaSigner, _ = ssh.NewSignerFromKey(rk)
		_, ek, _ := ed25519.GenerateKey(rand.Reader)
		edPrivate = ek
		edSigner, _ = ssh.NewSignerFromKey(ek)
	})
	return rsaSigner, edSigner
}

// nextIP hands each machine its own loopback address, as the simulator does.
func nextIP() string {
	n := ipCounter.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 80+os.Getpid()%100, n/250, n%250+2)
}

func newManager(t testing.TB, opts Options) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("machines need root (namespaces, overlayfs); run `make test` as root")
	}
	if opts.Log == nil && os.Getenv("VM_DEBUG") != "" {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := NewManager(opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

type testMachine struct {
	*Machine
	addr string
}

func launch(t testing.TB, m *Manager, snap string, mutate func(*LaunchSpec)) testMachine {
	t.Helper()
	rk, ek := clientKeys(t)
	_ = ek
	spec := LaunchSpec{
		InstanceID:    fmt.Sprintf("i-%017x", instanceNo.Add(1)),
		SnapshotID:    snap,
		IPs:           []string{nextIP()},
		User:          "ubuntu",
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(rk.PublicKey()))) + " test-rsa",
	}
	if mutate != nil {
		mutate(&spec)
	}
	mc, err := m.Create(spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := mc.Boot(context.Background()); err != nil {
		t.Fatalf("Boot: %v", err)
	}
	return testMachine{mc, net.JoinHostPort(spec.IPs[0], "22")}
}

func dial(t testing.TB, addr, user string, signer ssh.Signer, hostKey *ssh.PublicKey) *ssh.Client {
	t.Helper()
	c, err := dialErr(addr, user, signer, hostKey)
	if err != nil {
		t.Fatalf("ssh %s@%s: %v", user, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialErr(addr, user string, signer ssh.Signer, hostKey *ssh.PublicKey) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if hostKey != nil {
				*hostKey = k
			}
			return nil
		},
		Timeout: 5 * time.Second,
	}
	return ssh.Dial("tcp", addr, cfg)
}

// run executes cmd and returns combined output and the exit status.
func run(t testing.TB, c *ssh.Client, cmd string) (string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitStatus()
	default:
		t.Fatalf("run %q: %v (output %q)", cmd, err, out)
		return "", -1
	}
}

func TestLoginExecAndIsolation(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-ubuntu", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, ek := clientKeys(t)
	mc := launch(t, m, "snap-ubuntu", func(s *LaunchSpec) {
		s.AuthorizedKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ek.PublicKey())))
	})
	_ = rk

	var hostKey ssh.PublicKey
	c := dial(t, mc.addr, "ubuntu", ek, &hostKey)

	tests := []struct {
		cmd        string
		wantStatus int
		wantOut    string
	}{
		{"whoami", 0, "ubuntu\n"},
		{"exit 3", 3, ""},
		{"false", 1, ""},
		{"cat /etc/os-release | grep ^ID=", 0, "ID=debian\n"},
		{"echo hello > /etc/motd", 1, ""},
		{"echo hello | sudo tee /etc/motd >/dev/null && cat /etc/motd", 0, "hello\n"},
		{"sudo mkdir -p /opt/app /usr/local/share/x && echo ok", 0, "ok\n"},
		{"id -nG", 0, "ubuntu adm sudo\n"},
		{"sudo -n true && sudo -l | grep -c NOPASSWD", 0, "1\n"},
		{"bash --version | head -1 | cut -d' ' -f1-3", 0, "GNU bash, version\n"},
		{"python3 -c 'print(6*7)'", 0, "42\n"},
		{"sudo service redis-server start 2>/dev/null; sudo /usr/sbin/policy-rc.d; echo $?", 0, "101\n"},
		{"hostname", 0, "ip-" + strings.ReplaceAll(mc.IPs()[0], ".", "-") + "\n"},
		{"cat /etc/hostname", 0, "ip-" + strings.ReplaceAll(mc.IPs()[0], ".", "-") + "\n"},
		{"test $(id -u) -ne 0 && echo unprivileged", 0, "unprivileged\n"},
		{"sudo -E -S -n -H -u root -- sh -c 'echo $0 ran'", 0, "sh ran\n"},
		{"sudo FOO=bar sh -c 'echo $FOO'", 0, "bar\n"},
		{"sudo su - -c 'echo via su'", 0, "via su\n"},
		{"echo 'packer' | sudo -S sh -c 'PACKER_BUILD_NAME=x; echo $PACKER_BUILD_NAME'", 0, "x\n"},
		{"echo $HOME; cd && pwd", 0, "/home/ubuntu\n/home/ubuntu\n"},
		{"ls /home/ubuntu/../../etc/passwd", 0, "/home/ubuntu/../../etc/passwd\n"},
		{"echo data | bash -c 'cat'", 0, "data\n"},
	}
	for _, tt := range tests {
		out, st := run(t, c, tt.cmd)
		if st != tt.wantStatus || (tt.wantOut != "" && out != tt.wantOut) {
			t.Errorf("%q: status %d output %q, want %d %q", tt.cmd, st, out, tt.wantStatus, tt.wantOut)
		}
	}

	// Writes to /etc landed in the instance, not on the host.
	if b, err := os.ReadFile(filepath.Join(mc.RootDir(), "etc/motd")); err != nil || string(b) != "hello\n" {
		t.Errorf("rootfs /etc/motd = %q, %v", b, err)
	}
	if b, _ := os.ReadFile("/etc/motd"); string(b) == "hello\n" {
		t.Errorf("the host's /etc/motd was written")
	}
	// The instance's processes see only the instance.
	out, _ := run(t, c, "ls /proc | grep -c '^[0-9]'")
	if strings.TrimSpace(out) == "" || len(strings.TrimSpace(out)) > 2 {
		t.Errorf("instance sees %q processes, want its own few", out)
	}

	// RSA key (on a machine launched with it): rsa-sha2 signatures work;
	// the SHA-1 "ssh-rsa" algorithm alone is refused as by OpenSSH >= 8.8.
	mrsa := launch(t, m, "snap-ubuntu", nil)
	crsa := dial(t, mrsa.addr, "ubuntu", rk, nil)
	if out, st := run(t, crsa, "echo rsa"); st != 0 || out != "rsa\n" {
		t.Errorf("rsa login: %q %d", out, st)
	}
	sha1Only, err := ssh.NewSignerWithAlgorithms(rk.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dialErr(mrsa.addr, "ubuntu", sha1Only, nil); err == nil {
		c.Close()
		t.Errorf("login with ssh-rsa (SHA-1) signatures succeeded; sshd must require rsa-sha2")
	}
	for _, u := range []string{"root", "admin"} {
		if c, err := dialErr(mc.addr, u, ek, nil); err == nil {
			c.Close()
			t.Errorf("login as %s succeeded", u)
		}
	}

	// The console's fingerprint block names the host key the client saw.
	fps := waitConsoleFingerprints(t, mc.Machine)
	types := map[string]bool{}
	found := false
	for _, fp := range fps {
		types[fp.Type] = true
		if fp.Fingerprint == ssh.FingerprintSHA256(hostKey) {
			found = true
		}
		if fp.Comment != "root@"+mc.hostname || fp.Bits < 256 {
			t.Errorf("fingerprint line %+v", fp)
		}
	}
	if !found || len(types) != 3 {
		t.Errorf("console fingerprints %+v do not include the host key %s or miss a type", fps, ssh.FingerprintSHA256(hostKey))
	}
}

func waitConsoleFingerprints(t testing.TB, mc *Machine) []HostKeyFingerprint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fps := ParseHostKeyFingerprints(mc.ConsoleOutput()); len(fps) > 0 {
			return fps
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fingerprints in console output:\n%s", mc.ConsoleOutput())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSFTPSnapshotAndCopy(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-base", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-base", nil)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	defer sc.Close()
	payload := bytes.Repeat([]byte("amibake "), 64<<10)
	f, err := sc.Create("/home/ubuntu/upload.bin")
	if err != nil {
		t.Fatalf("sftp create: %v", err)
	}
	if _, err := f.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Chmod("/home/ubuntu/upload.bin", 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(mc.RootDir(), "home/ubuntu/upload.bin"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("uploaded file inside the rootfs: %d bytes, %v", len(got), err)
	}
	if out, st := run(t, c, "sudo mv /home/ubuntu/upload.bin /etc/baked && ls -l /etc/baked && sudo rm /etc/issue && sudo mkdir -p /var/lib/app && echo 1 | sudo tee /var/lib/app/v >/dev/null"); st != 0 || !strings.Contains(out, "-rw-r----- ") || !strings.Contains(out, " ubuntu ") {
		t.Fatalf("move upload: %d %q", st, out)
	}
	if _, err := sc.Stat("/etc/passwd"); err != nil {
		t.Errorf("sftp stat /etc/passwd: %v", err)
	}

	if err := mc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := dialErr(mc.addr, "ubuntu", rk, nil); err == nil {
		t.Fatalf("sshd still answers after Shutdown")
	}
	if err := mc.Snapshot("snap-baked"); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := m.CopySnapshot("snap-baked", "snap-copied"); err != nil {
		t.Fatalf("CopySnapshot: %v", err)
	}
	if err := mc.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mc.RootDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs after Destroy: %v", err)
	}
	if err := m.DeleteSnapshot("snap-baked"); err != nil {
		t.Fatal(err)
	}
	next := launch(t, m, "snap-copied", nil)
	c2 := dial(t, next.addr, "ubuntu", rk, nil)
	out, st := run(t, c2, "md5sum < /etc/baked; echo new > /etc/baked && echo writable; test -e /etc/issue || echo issue-removed; cat /var/lib/app/v")
	if st != 0 || !strings.Contains(out, "writable") || !strings.Contains(out, "issue-removed") || !strings.HasSuffix(out, "1\n") {
		t.Errorf("file from the snapshot: %d %q", st, out)
	}
	if _, err := m.Create(LaunchSpec{}); err == nil {
		t.Errorf("Create with an empty spec succeeded")
	}
}

func TestRebootAndPowerOffFromInside(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-r", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-r", nil)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	run(t, c, "echo survives > /home/ubuntu/state")

	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run("sudo reboot") }()
	select {
	case <-mc.RebootRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("RebootRequested did not fire")
	}
	// Like systemctl reboot, reboot may exit 0 before the machine goes
	// down; either way the connection must end.
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("session survived the reboot")
	}
	waitClosed := make(chan error, 1)
	go func() { waitClosed <- c.Wait() }()
	select {
	case <-waitClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("connection survived the reboot")
	}
	if c, err := dialErr(mc.addr, "ubuntu", rk, nil); err == nil {
		c.Close()
		t.Errorf("sshd answers while the machine reboots")
	}
	// The owner (the EC2 simulator) brings it back; a client reconnects.
	if err := mc.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	var c2 *ssh.Client
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c2, err = dialErr(mc.addr, "ubuntu", rk, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconnect after reboot: %v", err)
		}
	}
	defer c2.Close()
	if out, _ := run(t, c2, "cat state"); out != "survives\n" {
		t.Errorf("after reboot: %q", out)
	}
	s2, err := c2.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	go s2.Run("sudo shutdown -h now")
	select {
	case <-mc.PowerOffRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("PowerOffRequested did not fire")
	}
	if c, err := dialErr(mc.addr, "ubuntu", rk, nil); err == nil {
		c.Close()
		t.Errorf("sshd answers after poweroff")
	}
	// Start again, as StartInstances does.
	if err := mc.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, mc.addr, "ubuntu", rk, nil)
	if out, _ := run(t, c3, "cat state"); out != "survives\n" {
		t.Errorf("after stop/start: %q", out)
	}
}

func TestUserDataRunsOnceIntoConsole(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-ud", ubuntu); err != nil {
		t.Fatal(err)
	}
	mc := launch(t, m, "snap-ud", func(s *LaunchSpec) {
		s.UserData = []byte("#!/bin/bash\necho \"user data as $(whoami)\"\necho run >> /var/tmp/ud-runs\n")
	})
	// Quick user data is done by the time Boot returns.
	cons := mc.ConsoleOutput()
	if len(ParseHostKeyFingerprints(cons)) != 3 {
		t.Errorf("no fingerprints right after Boot:\n%s", cons)
	}
	// cloud-init runs user data as root.
	if !strings.Contains(cons, "user data as root\n") {
		t.Fatalf("console lacks the user data output:\n%s", cons)
	}
	if i, j := strings.Index(cons, "user data as"), strings.Index(cons, "BEGIN SSH HOST KEY FINGERPRINTS"); i > j {
		t.Errorf("user data output after the fingerprints, cloud-init prints it before")
	}
	if err := mc.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	if out, _ := run(t, c, "cat /var/tmp/ud-runs"); out != "run\n" {
		t.Errorf("user data runs: %q, want exactly one", out)
	}
	if n := strings.Count(mc.ConsoleOutput(), "Linux version"); n != 2 {
		t.Errorf("console shows %d boots, want 2", n)
	}

	failing := launch(t, m, "snap-ud", func(s *LaunchSpec) { s.UserData = []byte("echo plain sh; exit 4") })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(failing.ConsoleOutput(), "finished at") {
		if time.Now().After(deadline) {
			t.Fatalf("user data never finished:\n%s", failing.ConsoleOutput())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := failing.ConsoleOutput(); !strings.Contains(c, "plain sh\n") || !strings.Contains(c, "exit status 4") {
		t.Errorf("failing user data console:\n%s", c)
	}
	// cloud-init status, as templates wait for it.
	fc := dial(t, failing.addr, "ubuntu", rk, nil)
	if out, st := run(t, fc, "cloud-init status --wait --long"); st != 1 || !strings.Contains(out, "status: error") || !strings.Contains(out, "scripts_user") {
		t.Errorf("cloud-init status after failing user data: %d %q", st, out)
	}
	if out, st := run(t, c, "cloud-init status --wait"); st != 0 || !strings.HasSuffix(out, "status: done\n") {
		t.Errorf("cloud-init status: %d %q", st, out)
	}
	slow := launch(t, m, "snap-ud", func(s *LaunchSpec) { s.UserData = []byte("#!/bin/sh\nsleep 2\necho slow done\n") })
	sc := dial(t, slow.addr, "ubuntu", rk, nil)
	if out, st := run(t, sc, "cloud-init status; cloud-init status --wait >/dev/null; cloud-init status --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"status\"])'"); st != 0 || out != "status: running\ndone\n" {
		t.Errorf("cloud-init status while user data runs, then waited: %d %q", st, out)
	}
}

func TestRootUserImage(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-tut", Flavor{Name: "ubuntu-16.04", User: "root"}); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	// Two addresses (public and private IP) and a port other than 22.
	second := nextIP()
	mc := launch(t, m, "snap-tut", func(s *LaunchSpec) {
		s.User = "root"
		s.IPs = append(s.IPs, second)
		s.Port = 2222
	})
	for _, ip := range mc.IPs() {
		c := dial(t, net.JoinHostPort(ip, "2222"), "root", rk, nil)
		out, st := run(t, c, "whoami; pwd; id -u")
		lines := strings.Fields(out)
		if st != 0 || len(lines) != 3 || lines[0] != "root" || lines[1] != "/root" || lines[2] != "0" {
			t.Errorf("root image via %s: %d %q, want root, /root and uid 0 (root of the machine's user namespace)", ip, st, out)
		}
	}
	if ip := second; ip == mc.IPs()[0] {
		t.Fatal("addresses not distinct")
	}
	// Root inside is nobody outside: nothing of the host is visible or
	// reachable from inside.
	c := dial(t, net.JoinHostPort(second, "2222"), "root", rk, nil)
	secret := filepath.Join(DefaultDir, "host-secret-test")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(secret)
	hostListener, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostListener.Close()
	go func() {
		for {
			c, err := hostListener.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host service\n"))
			c.Close()
		}
	}()
	_, hostPort, _ := net.SplitHostPort(hostListener.Addr().String())
	for _, cmd := range []string{
		"cat " + secret,
		"ls " + m.base,
		"ls " + m.baseRoot,
		"cat /proc/1/root" + secret,
		"timeout 3 bash -c 'cat < /dev/tcp/127.0.0.1/" + hostPort + "'",
		"timeout 3 bash -c 'cat < /dev/tcp/" + second + "/2222'",
		"mknod /tmp/sda b 8 0",
	} {
		if out, st := run(t, c, cmd); st == 0 || strings.Contains(out, "host secret") || strings.Contains(out, "host service") {
			t.Errorf("%q succeeded inside the instance: %d %q", cmd, st, out)
		}
	}
	if _, err := os.Stat(filepath.Join(mc.RootDir(), "root")); err != nil {
		t.Fatal(err)
	}
	// The machine's init shrugs off SIGKILL from inside, like a real one.
	if out, st := run(t, c, "kill -9 1; sleep 0.1; tr '\\0' ' ' < /proc/1/cmdline"); st != 0 || out != initArg0+" " {
		t.Errorf("after kill -9 1: %d %q", st, out)
	}
}

// Drops are reproducible: the same seed and instance give the same pattern.
func TestDropFault(t *testing.T) {
	pattern := func(seed int64) string {
		m := newManager(t, Options{DropProbability: 0.5, Seed: seed})
		if err := m.SeedSnapshot("snap-d", ubuntu); err != nil {
			t.Fatal(err)
		}
		rk, _ := clientKeys(t)
		mc := launch(t, m, "snap-d", func(s *LaunchSpec) { s.InstanceID = "i-0drop" })
		var b strings.Builder
		var c *ssh.Client
		for i := 0; i < 10; i++ {
			if c == nil {
				c = dial(t, mc.addr, "ubuntu", rk, nil)
			}
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			// A decided drop freezes the session at once, however short
			// the command: the pattern depends on the seed alone.
			err = s.Run("echo start; sleep 0.05; echo end")
			s.Close()
			var missing *ssh.ExitMissingError
			switch {
			case err == nil:
				b.WriteByte('.')
			case errors.As(err, &missing) || errors.Is(err, io.EOF):
				b.WriteByte('x')
				c.Close()
				c = nil
			default:
				t.Fatalf("session %d: %v", i, err)
			}
		}
		if c != nil {
			c.Close()
		}
		return b.String()
	}
	a, b := pattern(7), pattern(7)
	if a != b {
		t.Errorf("seed 7 gave %s then %s", a, b)
	}
	if !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Errorf("pattern %s: want both drops and successes at p=0.5", a)
	}
}

func TestSSHStartDelay(t *testing.T) {
	m := newManager(t, Options{SSHStartDelay: 300 * time.Millisecond})
	if err := m.SeedSnapshot("snap-s", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-s", nil)
	if c, err := dialErr(mc.addr, "ubuntu", rk, nil); err == nil {
		c.Close()
		t.Fatalf("sshd answered at once despite SSHStartDelay")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := dialErr(mc.addr, "ubuntu", rk, nil)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd never came up: %v", err)
		}
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("machines need root")
	}
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SeedSnapshot("snap-c", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	var pids []int
	var pidns []string
	for i := 0; i < 3; i++ {
		mc := launch(t, m, "snap-c", nil)
		c := dial(t, mc.addr, "ubuntu", rk, nil)
		// A daemon started by a provisioner must die with the machine.
		s, _ := c.NewSession()
		_ = s.Start("nohup sleep 1000 >/dev/null 2>&1 &")
		s.Wait()
		pids = append(pids, mc.proc.Process.Pid)
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", mc.proc.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		pidns = append(pidns, ns)
	}
	if err := mc0Snapshot(m); err != nil {
		t.Fatal(err)
	}
	base := m.base
	before := uptimeTicks()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(base); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s left behind: %v", base, err)
	}
	for _, p := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
			t.Errorf("machine process %d still running", p)
		}
	}
	if left := processesIn(pidns, before); len(left) > 0 {
		t.Errorf("instance processes left: %v", left)
	}
}

func mc0Snapshot(m *Manager) error {
	m.mu.Lock()
	var mc *Machine
	for _, x := range m.machines {
		mc = x
		break
	}
	m.mu.Unlock()
	return mc.Snapshot("snap-left")
}

// processesIn lists the host's processes in the given PID namespaces that
// started before the clock tick before: a namespace's inode number is
// reused once it is gone, and other tests' machines may get it.
func processesIn(pidns []string, before uint64) []string {
	want := map[string]bool{}
	for _, ns := range pidns {
		want[ns] = true
	}
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid"))
		if err != nil || !want[ns] {
			continue
		}
		if st := startTicks(e.Name()); st == 0 || st >= before {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// uptimeTicks is the time since boot in clock ticks (USER_HZ, 100 on Linux).
func uptimeTicks() uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var up float64
	fmt.Sscan(string(b), &up)
	return uint64(up * 100)
}

// startTicks is a process's start time since boot, in clock ticks.
func startTicks(pid string) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func TestBadInput(t *testing.T) {
	m := newManager(t, Options{})
	tests := []struct {
		name string
		err  error
	}{
		{"seed bad user", m.SeedSnapshot("snap-x", Flavor{User: "Root!"})},
		{"seed bad id", m.SeedSnapshot("../x", ubuntu)},
		{"copy missing", m.CopySnapshot("snap-nope", "snap-y")},
		{"delete missing", m.DeleteSnapshot("snap-nope")},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	_ = m.SeedSnapshot("snap-ok", ubuntu)
	if err := m.SeedSnapshot("snap-ok", ubuntu); err != nil {
		t.Errorf("seeding again: %v, want idempotent", err)
	}
	for _, spec := range []LaunchSpec{
		{InstanceID: "i-1", SnapshotID: "snap-ok", User: "ubuntu", IPs: []string{"10.0.0.1"}},
		{InstanceID: "i-2", SnapshotID: "snap-ok", User: "ubuntu"},
		{InstanceID: "i-3", SnapshotID: "snap-nope", User: "ubuntu", IPs: []string{"127.0.0.9"}},
		{InstanceID: "i-4", SnapshotID: "snap-ok", User: "ubuntu", IPs: []string{"127.0.0.9"}, AuthorizedKey: "a\nb"},
	} {
		if _, err := m.Create(spec); err == nil {
			t.Errorf("Create(%+v) succeeded", spec)
		}
	}
	if _, err := NewManager(Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("NewManager under a directory machines cannot traverse: %v", err)
	}
	if _, err := NewManager(Options{Cache: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("NewManager without a built base: %v, want a pointer to make setup", err)
	}
}

// A simulator that was killed leaves its tmpfs behind; the next one removes it.
func TestReapsStateOfDeadSimulator(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("machines need root")
	}
	stale, err := os.MkdirTemp(DefaultDir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("amibake-ec2sim", stale, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	// PID 1's identity with a wrong start time: a process that is gone.
	if err := os.WriteFile(filepath.Join(stale, "owner"), []byte("1 999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := os.MkdirTemp(DefaultDir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	if err := os.WriteFile(filepath.Join(live, "owner"), []byte(selfIdentity()), 0o644); err != nil {
		t.Fatal(err)
	}
	newManager(t, Options{})
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		_ = unix.Unmount(stale, unix.MNT_DETACH)
		os.RemoveAll(stale)
		t.Errorf("stale state %s kept: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live simulator's state removed: %v", err)
	}
}

// OpenSSH's own clients: ssh, sftp, scp over SFTP and legacy scp (-O, the
// protocol Packer's file transfer speaks).
func TestOpenSSHClients(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-o", ubuntu); err != nil {
		t.Fatal(err)
	}
	_, ek := clientKeys(t)
	mc := launch(t, m, "snap-o", func(s *LaunchSpec) {
		s.AuthorizedKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ek.PublicKey())))
	})
	dir := t.TempDir()
	blk, err := ssh.MarshalPrivateKey(edPrivate, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "payload")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	if err := os.WriteFile(src, payload, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tree/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tree/sub/f"), []byte("deep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ip := mc.IPs()[0]
	common := []string{"-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "GSSAPIAuthentication=no"}
	tests := []struct {
		name string
		cmd  []string
		want string // file inside the rootfs
		data []byte
	}{
		{"ssh", append(append([]string{"ssh"}, common...), "ubuntu@"+ip, "echo via-openssh > /tmp/ssh-out"), "tmp/ssh-out", []byte("via-openssh\n")},
		{"scp over sftp", append(append([]string{"scp"}, common...), src, "ubuntu@"+ip+":/tmp/scp-sftp"), "tmp/scp-sftp", payload},
		{"legacy scp", append(append([]string{"scp", "-O"}, common...), src, "ubuntu@"+ip+":/tmp/"), "tmp/payload", payload},
		{"legacy scp -r", append(append([]string{"scp", "-O", "-r"}, common...), filepath.Join(dir, "tree"), "ubuntu@"+ip+":/home/ubuntu/"), "home/ubuntu/tree/sub/f", []byte("deep\n")},
	}
	for _, tt := range tests {
		out, err := exec.Command(tt.cmd[0], tt.cmd[1:]...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v: %s", tt.name, err, out)
			continue
		}
		got, err := os.ReadFile(filepath.Join(mc.RootDir(), tt.want))
		if err != nil || !bytes.Equal(got, tt.data) {
			t.Errorf("%s: /%s has %d bytes (%v), want %d", tt.name, tt.want, len(got), err, len(tt.data))
		}
	}
	// Downloads, both protocols.
	for _, legacy := range []bool{true} {
		args := []string{}
		if legacy {
			args = append(args, "-O")
		}
		dst := filepath.Join(dir, fmt.Sprint("down-", legacy))
		args = append(append(args, common...), "ubuntu@"+ip+":/tmp/payload", dst)
		if out, err := exec.Command("scp", args...).CombinedOutput(); err != nil {
			t.Errorf("scp download (legacy %v): %v: %s", legacy, err, out)
			continue
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, payload) {
			t.Errorf("scp download (legacy %v): %d bytes", legacy, len(got))
		}
	}
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("put "+src+" /var/tmp/from-sftp\nls /var/tmp\n"), 0o644)
	if out, err := exec.Command("sftp", append(append([]string{"-b", batch}, common...), "ubuntu@"+ip)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "from-sftp") {
		t.Errorf("sftp: %v: %s", err, out)
	}
}

// At probability 1 every session is dropped mid-way: exec loses its exit
// status, an SFTP upload fails, and the client sees the connection go.
func TestDropEverySession(t *testing.T) {
	m := newManager(t, Options{DropProbability: 1, Seed: 1})
	if err := m.SeedSnapshot("snap-d1", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-d1", nil)

	c := dial(t, mc.addr, "ubuntu", rk, nil)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.CombinedOutput("echo started; sleep 2; echo finished")
	var missing *ssh.ExitMissingError
	if !errors.As(err, &missing) && !errors.Is(err, io.EOF) {
		t.Errorf("exec: %v, want the connection dropped without exit status", err)
	}
	if strings.Contains(string(out), "finished") {
		t.Errorf("exec output %q: the command was not cut short", out)
	}
	// Even a short command never reports its exit status (20 ms leaves
	// the simulator time to read sshd's log line on a busy machine).
	for i := 0; i < 10; i++ {
		cq := dial(t, mc.addr, "ubuntu", rk, nil)
		s, err := cq.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run("sleep 0.02"); err == nil {
			t.Errorf("short command %d: exit status delivered despite DropProbability 1", i)
		}
		cq.Close()
	}

	c2 := dial(t, mc.addr, "ubuntu", rk, nil)
	err = func() error {
		sc, err := sftp.NewClient(c2)
		if err != nil {
			return err
		}
		defer sc.Close()
		f, err := sc.Create("/tmp/big")
		if err != nil {
			return err
		}
		for i := 0; i < 64; i++ {
			if _, err := f.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
				return err
			}
		}
		return f.Close()
	}()
	if err == nil {
		t.Errorf("64 MiB SFTP upload succeeded despite DropProbability 1")
	}
	if err := c2.Wait(); err == nil {
		t.Logf("connection closed cleanly")
	}
}

// A machine whose processes died behind the simulator's back boots again.
func TestBootAfterCrash(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-k", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-k", nil)
	mc.mu.Lock()
	_ = mc.proc.Process.Kill()
	exited := mc.exited
	mc.mu.Unlock()
	<-exited
	if err := mc.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	if out, st := run(t, c, "echo back"); st != 0 || out != "back\n" {
		t.Errorf("after crash and boot: %d %q", st, out)
	}
}
