// Package sshtest runs a real OpenSSH sshd on a loopback address for
// tests: its own host keys, an authorized client key, root login, SFTP.
// It needs root and /usr/sbin/sshd; run tests in a loopback-only network
// namespace (unshare --net).
package sshtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// SSHD is the server binary.
const SSHD = "/usr/sbin/sshd"

// Options tune the server. The zero value gives an ed25519-keyed root
// login on 127.0.0.1 with SFTP.
type Options struct {
	// Host is a loopback address; a random one in 127.0.0.0/8 when empty,
	// so that a port freed by one test's Stop cannot be taken by another's.
	Host string
	// Port is chosen free when 0.
	Port int
	// ClientKey is the key authorized for root; an ed25519 key is
	// generated when nil.
	ClientKey gossh.Signer
	// ExtraConfig lines are appended to sshd_config.
	ExtraConfig []string
	// NoSFTP leaves out the sftp subsystem.
	NoSFTP bool
	// SFTPServer runs this sftp-server binary instead of internal-sftp.
	SFTPServer string
}

// Server is a running sshd.
type Server struct {
	Host string
	Port int
	User string
	// ClientKey is authorized for User; ClientKeyPEM is its private key in
	// OpenSSH format, as a key file would hold it.
	ClientKey    gossh.Signer
	ClientKeyPEM []byte
	// ClientKeyFile holds ClientKeyPEM, mode 0600.
	ClientKeyFile string
	// HostKeys are the server's public host keys.
	HostKeys []gossh.PublicKey
	Dir      string

	t      testing.TB
	config string
	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Start launches sshd and waits until it accepts connections. The server
// and its sessions are killed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("sshtest: sshd needs root (run the tests as root in unshare --net)")
	}
	if _, err := os.Stat(SSHD); err != nil {
		t.Fatalf("sshtest: %v (install openssh-server)", err)
	}
	s := &Server{Host: opts.Host, Port: opts.Port, User: "root", Dir: t.TempDir(), t: t}
	if s.Host == "" {
		s.Host = fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
	}
	if s.Port == 0 {
		s.Port = freePort(t, s.Host)
	}

	var hostKeyLines []string
	for i, gen := range []func() (any, error){
		func() (any, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
		func() (any, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	} {
		priv, err := gen()
		if err != nil {
			t.Fatal(err)
		}
		signer, err := gossh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(s.Dir, fmt.Sprintf("host_key_%d", i))
		writeKey(t, file, priv)
		s.HostKeys = append(s.HostKeys, signer.PublicKey())
		hostKeyLines = append(hostKeyLines, "HostKey "+file)
	}

	s.ClientKey = opts.ClientKey
	if s.ClientKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ClientKey, _ = gossh.NewSignerFromKey(priv)
		s.ClientKeyFile = filepath.Join(s.Dir, "client_key")
		s.ClientKeyPEM = writeKey(t, s.ClientKeyFile, priv)
	}
	authKeys := filepath.Join(s.Dir, "authorized_keys")
	s.SetAuthorizedKeys(s.ClientKey.PublicKey())

	// A private HOME keeps the machine's dotfiles out of the sessions: a
	// ~/.bashrc doing slow work (or leaving locks behind when a test kills
	// a session) would make the tests slow and flaky.
	home := filepath.Join(s.Dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"ListenAddress " + s.Addr(),
		"SetEnv HOME=" + home,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"LogLevel VERBOSE",
		"MaxStartups 100",
		"MaxSessions 50",
	}
	lines = append(lines, hostKeyLines...)
	if !opts.NoSFTP {
		if opts.SFTPServer != "" {
			lines = append(lines, "Subsystem sftp "+opts.SFTPServer)
		} else {
			lines = append(lines, "Subsystem sftp internal-sftp")
		}
	}
	// Extra lines first: sshd keeps the first value of most keywords.
	lines = append(append([]string(nil), opts.ExtraConfig...), lines...)
	s.config = filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(s.config, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Test the config first: a bad line is then reported clearly.
	if out, err := sshdCommand("-t", "-f", s.config).CombinedOutput(); err != nil {
		t.Fatalf("sshtest: sshd -t: %v\n%s", err, out)
	}
	t.Cleanup(s.Kill)
	s.Restart()
	return s
}

func writeKey(t testing.TB, file string, priv any) []byte {
	t.Helper()
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(block)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

// GenerateRSAKey returns a 2048-bit RSA signer and its OpenSSH PEM.
func GenerateRSAKey(t testing.TB) (gossh.Signer, []byte) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("sshtest: find a free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SetAuthorizedKeys replaces the keys allowed to log in (none when empty),
// as cloud-init installing the key late would.
func (s *Server) SetAuthorizedKeys(keys ...gossh.PublicKey) {
	s.t.Helper()
	var data []byte
	for _, k := range keys {
		data = append(data, gossh.MarshalAuthorizedKey(k)...)
	}
	file := filepath.Join(s.Dir, "authorized_keys")
	if err := os.WriteFile(file+".tmp", data, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		s.t.Fatal(err)
	}
}

// sshdCommand runs sshd in a private mount namespace with its own /run.
func sshdCommand(args ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", append([]string{"-c",
		`mount --make-rprivate / && mount -t tmpfs -o mode=755,size=64k sshtest-run /run && mkdir -m 755 /run/sshd && exec "$0" "$@"`,
		SSHD}, args...)...)
	// Its own PID namespace, of which sshd is init: killing it makes the
	// kernel kill every session too, even one forked while Stop was
	// listing them (which a walk of /proc alone can miss, leaving a
	// connection open that a "reboot" should have dropped).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Unshareflags: syscall.CLONE_NEWNS, Cloneflags: syscall.CLONE_NEWPID}
	return cmd
}

// Restart starts sshd again (after Stop) on the same address with the
// same keys, and waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatalf("sshtest: sshd already running")
	}
	if s.log == nil {
		s.log = &syncBuffer{}
	}
	// sshd needs /run/sshd (privilege separation) and other tests on the
	// machine may create or remove it: give sshd its own, on a tmpfs /run in
	// a private mount namespace. sh and then sshd exec in place, so the pid
	// is sshd's.
	cmd := sshdCommand("-D", "-e", "-f", s.config)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("sshtest: start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	// Ready when this sshd (not some other process) says it listens.
	listening := fmt.Sprintf("Server listening on %s port %d.", s.Host, s.Port)
	before := strings.Count(s.log.String(), listening)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if strings.Count(s.log.String(), listening) > before {
			c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
			if err == nil {
				c.Close()
				return
			}
		}
		select {
		case <-exited:
			s.t.Fatalf("sshtest: sshd exited at start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sshtest: sshd not listening on %s after 10s:\n%s", s.Addr(), s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills sshd and every session it started, as a reboot would.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	pids := append(Descendants(cmd.Process.Pid), cmd.Process.Pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-exited
}

// Kill is Stop under the name t.Cleanup wants.
func (s *Server) Kill() { s.Stop() }

// PauseSessions stops (SIGSTOP) every process serving a connection, but
// not the listener: the peer then looks alive to TCP yet never answers.
// ResumeSessions undoes it; Stop also kills paused sessions.
func (s *Server) PauseSessions() { s.signalSessions(syscall.SIGSTOP) }

// ResumeSessions continues sessions stopped by PauseSessions.
func (s *Server) ResumeSessions() { s.signalSessions(syscall.SIGCONT) }

func (s *Server) signalSessions(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	for _, pid := range Descendants(cmd.Process.Pid) {
		_ = syscall.Kill(pid, sig)
	}
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string { return s.log.String() }

// ConsoleOutput returns the host key blocks cloud-init prints on the
// serial console, for this server's keys, with EC2's "ec2: " prefix.
func (s *Server) ConsoleOutput() string {
	var b strings.Builder
	b.WriteString("[    3.141592] cloud-init[812]: Cloud-init v. 23.1 running 'modules:final'\n")
	b.WriteString("ec2: \nec2: #############################################################\n")
	b.WriteString("ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n")
	for _, k := range s.HostKeys {
		typ, bits := "ED25519", 256
		if strings.HasPrefix(k.Type(), "ecdsa") {
			typ = "ECDSA"
		}
		fmt.Fprintf(&b, "ec2: %d %s root@ip-10-0-0-1 (%s)\n", bits, gossh.FingerprintSHA256(k), typ)
	}
	b.WriteString("ec2: -----END SSH HOST KEY FINGERPRINTS-----\n")
	b.WriteString("ec2: #############################################################\n")
	b.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n")
	for _, k := range s.HostKeys {
		b.WriteString(strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))) + " root@ip-10-0-0-1\n")
	}
	b.WriteString("-----END SSH HOST KEY KEYS-----\n")
	return b.String()
}

// Descendants returns the pids of pid's descendant processes.
func Descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may contain spaces; fields resume after ")".
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
