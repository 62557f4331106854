package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// What the tutorial's provisioned template does, offline: the mirror is
// served inside the machine's own network namespace.
func TestAptFromMirror(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-apt", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-apt", nil)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	out, st := run(t, c, "sudo apt-get update && sudo apt-get install -y redis-server && redis-server --version")
	if st != 0 || !strings.Contains(out, "Redis server v=") {
		t.Fatalf("install redis-server: %d\n%s", st, out)
	}
	// policy-rc.d refused the service start, cleanly.
	if !strings.Contains(out, "policy-rc.d denied execution of start") {
		t.Errorf("redis-server's postinst did not meet policy-rc.d:\n%s", out)
	}
	out, st = run(t, c, "sudo apt-get install -y amibake-no-such-package 2>&1")
	if st != 100 || !strings.Contains(out, "E: Unable to locate package amibake-no-such-package") {
		t.Errorf("unknown package: %d %q, want apt's own error and status 100", st, out)
	}
	out, st = run(t, c, "grep -h ^deb /etc/apt/sources.list; getent hosts deb.debian.org")
	if st != 0 || !strings.Contains(out, "http://deb.debian.org/debian bookworm main") || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("sources: %d %q", st, out)
	}
}

// Images stack: a capture is the writable layer over the image's layers,
// deletions (whiteouts) and replaced directories (opaque) included; a
// relaunch sees what was installed, and deleting an image keeps the
// layers others share.
func TestImagesStack(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-s0", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	a := launch(t, m, "snap-s0", nil)
	ca := dial(t, a.addr, "ubuntu", rk, nil)
	if out, st := run(t, ca, "sudo apt-get update -q >/dev/null && sudo apt-get install -y -q jq >/dev/null && sudo rm /etc/issue && sudo rm -rf /etc/apt/apt.conf.d && sudo mkdir /etc/apt/apt.conf.d && echo 'APT::Color \"0\";' | sudo tee /etc/apt/apt.conf.d/99mine >/dev/null && sudo mkfifo /var/fifo && echo one > layer1"); st != 0 {
		t.Fatalf("provision a: %d %q", st, out)
	}
	// NoReboot: captured live.
	if err := a.Snapshot("snap-s1"); err != nil {
		t.Fatal(err)
	}
	b := launch(t, m, "snap-s1", nil)
	cb := dial(t, b.addr, "ubuntu", rk, nil)
	out, st := run(t, cb, "jq --version; test -e /etc/issue || echo no-issue; ls /etc/apt/apt.conf.d; test -e /var/fifo || echo no-fifo; cat layer1; echo two > layer2")
	if st != 0 || !strings.HasPrefix(out, "jq-1.") || !strings.Contains(out, "no-issue\n99mine\nno-fifo\none\n") {
		t.Fatalf("relaunched from the capture: %d %q", st, out)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Snapshot("snap-s2"); err != nil {
		t.Fatal(err)
	}
	if err := m.CopySnapshot("snap-s2", "snap-s2c"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"snap-s1", "snap-s2"} {
		if err := m.DeleteSnapshot(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	cc := dial(t, launch(t, m, "snap-s2c", nil).addr, "ubuntu", rk, nil)
	if out, st := run(t, cc, "cat layer1 layer2; jq -n 1"); st != 0 || out != "one\ntwo\n1\n" {
		t.Errorf("two layers deep: %d %q", st, out)
	}
	m.mu.Lock()
	n := len(m.snapshots["snap-s2c"].layers)
	m.mu.Unlock()
	if n != 2 {
		t.Errorf("snap-s2c has %d layers, want 2 (stacked, shared after its sources were deleted)", n)
	}
}

// A live (NoReboot) capture while the machine's root swaps a directory
// for a symlink to a host directory never copies the host's files.
func TestNoRebootCaptureSymlinkSwap(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-sw", Flavor{Name: "t", User: "root"}); err != nil {
		t.Fatal(err)
	}
	hostDir, err := os.MkdirTemp(DefaultDir, "host-secret-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostDir)
	if err := os.WriteFile(filepath.Join(hostDir, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-sw", func(s *LaunchSpec) { s.User = "root" })
	c := dial(t, mc.addr, "root", rk, nil)
	// The swap loop runs inside; the symlink names the host's directory,
	// and a relative one climbs out of the upper directory as seen from
	// the host.
	script := fmt.Sprintf(`mkdir -p /s; cd /s; (while :; do rm -rf d e; mkdir d; echo x > d/f; ln -sfn %s e; rm -rf d; ln -s %s d; ln -sfn ../../../../../../../..%s e; done) >/dev/null 2>&1 & echo started`, hostDir, hostDir, hostDir)
	if out, st := run(t, c, script); st != 0 || out != "started\n" {
		t.Fatalf("swap loop: %d %q", st, out)
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("snap-sw-%d", i)
		if err := mc.Snapshot(id); err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		m.mu.Lock()
		ls := m.snapshots[id].layers
		dir := ls[len(ls)-1].dir
		m.mu.Unlock()
		for _, p := range hostSecrets(t, dir) {
			t.Errorf("capture %d copied a host file: %s", i, p)
		}
		if err := m.DeleteSnapshot(id); err != nil {
			t.Fatal(err)
		}
	}
}

// captureLayer keeps what stacks (files, links, whiteouts, opaque
// markers, set-id bits, owners) and drops what is not part of an image
// (device nodes, fifos, sockets).
func TestCaptureLayerContent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (device nodes, trusted xattrs)")
	}
	base, err := os.MkdirTemp(DefaultDir, "capture-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := unix.Mount("capture-test", base, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(base, unix.MNT_DETACH)
	up := filepath.Join(base, "upper")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(up, "etc/opaque"), 0o755))
	must(unix.Setxattr(filepath.Join(up, "etc/opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Setxattr(filepath.Join(up, "etc/opaque"), "trusted.overlay.origin", []byte("stale"), 0))
	must(os.WriteFile(filepath.Join(up, "etc/file"), []byte("data"), 0o644))
	must(os.Lchown(filepath.Join(up, "etc/file"), IDShift+5, IDShift+7))
	must(unix.Chmod(filepath.Join(up, "etc/file"), 0o4755))
	must(os.Symlink("../../../../etc/shadow", filepath.Join(up, "etc/link")))
	must(unix.Mknod(filepath.Join(up, "etc/whiteout"), unix.S_IFCHR, 0))
	must(unix.Mknod(filepath.Join(up, "etc/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(up, "etc/sda"), unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	must(unix.Mkfifo(filepath.Join(up, "etc/fifo"), 0o600))
	dst := filepath.Join(base, "layer")
	must(captureLayer(up, dst))
	var st unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "etc/file"), &st))
	if st.Mode&0o7777 != 0o4755 || st.Uid != IDShift+5 || st.Gid != IDShift+7 {
		t.Errorf("file mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if l, err := os.Readlink(filepath.Join(dst, "etc/link")); err != nil || l != "../../../../etc/shadow" {
		t.Errorf("symlink: %q %v (copied as a link, never followed)", l, err)
	}
	must(unix.Lstat(filepath.Join(dst, "etc/whiteout"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout not kept: mode %o rdev %d", st.Mode, st.Rdev)
	}
	if v, err := unix.Lgetxattr(filepath.Join(dst, "etc/opaque"), "trusted.overlay.opaque", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("opaque marker not kept: %v", err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dst, "etc/opaque"), "trusted.overlay.origin", make([]byte, 8)); err == nil {
		t.Errorf("overlay's origin marker was captured")
	}
	for _, gone := range []string{"etc/null", "etc/sda", "etc/fifo"} {
		if _, err := os.Lstat(filepath.Join(dst, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s captured (%v); device nodes and fifos are not part of an image", gone, err)
		}
	}
}

// An upload whose destination climbs with .. stays in the machine: the
// SFTP server resolves it inside the machine's root.
func TestUploadPathTraversalStaysInside(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-tr", Flavor{Name: "t", User: "root"}); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-tr", func(s *LaunchSpec) { s.User = "root" })
	c := dial(t, mc.addr, "root", rk, nil)
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	target := filepath.Join(DefaultDir, "traversal-test-"+strconv.Itoa(os.Getpid()))
	if err := sc.MkdirAll(filepath.Dir(target)); err != nil {
		t.Fatal(err)
	}
	f, err := sc.Create("/root/../../../../.." + target)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("from the machine\n"))
	f.Close()
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		os.Remove(target)
		t.Errorf("upload with .. reached the host's %s: %v", target, err)
	}
	if out, st := run(t, c, "cat "+target); st != 0 || out != "from the machine\n" {
		t.Errorf("inside the machine: %d %q", st, out)
	}
}

// Security groups are asked per connection, as they stand: a connection
// not admitted gets not a byte (a dropped SYN), and a rule added while the
// machine runs admits the next one.
func TestSecurityGroupAdmission(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.SeedSnapshot("snap-sg", ubuntu); err != nil {
		t.Fatal(err)
	}
	var open atomic.Bool
	var asked atomic.Value
	mc := launch(t, m, "snap-sg", func(s *LaunchSpec) {
		s.Admit = func(src, dst string, port int) bool {
			asked.Store(fmt.Sprintf("%s>%s:%d", src, dst, port))
			return open.Load()
		}
	})
	conn, err := net.DialTimeout("tcp", mc.addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	n, err := conn.Read(make([]byte, 64))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("not admitted: read %d bytes, %v; want silence until the client gives up", n, err)
	}
	conn.Close()
	if got, want := asked.Load().(string), "127.0.0.1>"+mc.IPs()[0]+":22"; got != want {
		t.Errorf("Admit asked about %q, want %q", got, want)
	}
	open.Store(true) // AuthorizeSecurityGroupIngress while running
	rk, _ := clientKeys(t)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	if out, st := run(t, c, "echo in"); st != 0 || out != "in\n" {
		t.Errorf("admitted: %d %q", st, out)
	}
	open.Store(false) // revoked: established connections stay
	if out, st := run(t, c, "echo still"); st != 0 || out != "still\n" {
		t.Errorf("established connection after revoke: %d %q", st, out)
	}
}

// kill -9 of a simulator leaves no machine process; the next simulator
// removes its mounts.
func TestKill9LeavesNoMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("machines need root")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Helper$", "-test.v")
	cmd.Env = append(os.Environ(), "AMIBAKE_VM_KILL9_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var initPid int
	var pidns, runDir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "MACHINE %d %s %s", &initPid, &pidns, &runDir); err == nil {
			break
		}
	}
	if initPid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper simulator did not start a machine")
	}
	before := uptimeTicks()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := processesIn([]string{pidns}, before)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine processes %v survived kill -9 of the simulator", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	newManager(t, Options{})
	if _, err := os.Stat(runDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead simulator's state %s was not reaped: %v", runDir, err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(runDir)) {
		t.Errorf("mounts under %s left behind", runDir)
	}
}

// TestKill9Helper is the simulator TestKill9LeavesNoMachine kills; it does
// nothing unless run by it.
func TestKill9Helper(t *testing.T) {
	if os.Getenv("AMIBAKE_VM_KILL9_HELPER") != "1" {
		return
	}
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SeedSnapshot("snap-k9", ubuntu); err != nil {
		t.Fatal(err)
	}
	rk, _ := clientKeys(t)
	mc := launch(t, m, "snap-k9", nil)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	s, _ := c.NewSession()
	_ = s.Start("sudo nohup sleep 1000 >/dev/null 2>&1 &")
	s.Wait()
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", mc.proc.Process.Pid))
	fmt.Printf("MACHINE %d %s %s\n", mc.proc.Process.Pid, ns, m.base)
	time.Sleep(time.Minute)
}

// User data that leaves a daemon running still finishes cloud-init, and a
// full disk fails writes with the machine's own message.
func TestUserDataDaemonAndFullDisk(t *testing.T) {
	m := newManager(t, Options{DiskBytes: 4 << 20})
	if err := m.SeedSnapshot("snap-dd", ubuntu); err != nil {
		t.Fatal(err)
	}
	mc := launch(t, m, "snap-dd", func(s *LaunchSpec) {
		s.UserData = []byte("#!/bin/sh\necho starting a daemon\nsleep 300 &\necho started\n")
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mc.ConsoleOutput(), "finished at") {
		if time.Now().After(deadline) {
			t.Fatalf("cloud-init never finished with a daemon holding the output:\n%s", mc.ConsoleOutput())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(mc.ConsoleOutput(), "starting a daemon\nstarted\n") {
		t.Errorf("console:\n%s", mc.ConsoleOutput())
	}
	rk, _ := clientKeys(t)
	c := dial(t, mc.addr, "ubuntu", rk, nil)
	out, st := run(t, c, "head -c 8M /dev/zero > big")
	if st == 0 || !strings.Contains(out, "No space left on device") {
		t.Errorf("writing 8 MiB on a 4 MiB disk: %d %q", st, out)
	}
	// The launch's own volume size wins over the default.
	big := launch(t, m, "snap-dd", func(s *LaunchSpec) { s.DiskBytes = 64 << 20 })
	cb := dial(t, big.addr, "ubuntu", rk, nil)
	if out, st := run(t, cb, "head -c 8M /dev/zero > big && df -BM --output=size / | tail -1"); st != 0 || strings.TrimSpace(out) != "64M" {
		t.Errorf("8 MiB on a 64 MiB disk: %d %q", st, out)
	}
}
