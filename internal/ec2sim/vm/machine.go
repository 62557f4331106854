package vm

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// LaunchSpec describes a machine to create.
type LaunchSpec struct {
	InstanceID string
	SnapshotID string
	// IPs are the loopback addresses (127.0.0.0/8) sshd listens on.
	IPs  []string
	Port int // 0 means 22
	// User is the login user; the launch key is authorized for it.
	User string
	// AuthorizedKey is an authorized_keys line; may be empty.
	AuthorizedKey string
	UserData      []byte
}

type machineState int

const (
	stateStopped machineState = iota
	stateRunning
	stateDestroyed
)

// Machine is one instance's root filesystem and, while running, its sshd.
type Machine struct {
	m        *Manager
	spec     LaunchSpec
	uid      uint32
	dir      string // instances/<id>
	ctl      string // sshd_config, keys, generated passwd: outside the chroot
	root     string // the chroot
	hostname string
	hostKeys []ssh.PublicKey
	// osRelease is read from the root filesystem at boot (console flavor).
	osRelease string

	reboot   chan struct{}
	poweroff chan struct{}

	mu       sync.Mutex // serializes lifecycle operations
	state    machineState
	booted   bool // first boot done: user data has run
	gen      int  // boot generation: control requests from older boots are ignored
	cancel   context.CancelFunc
	proc     *exec.Cmd
	exited   chan struct{}
	ctlFile  *os.File
	ctlDone  chan struct{}
	rng      *rand.Rand
	rngMu    sync.Mutex
	consMu   sync.Mutex
	console  []byte
	bootedAt time.Time
}

// Create builds a machine's root filesystem from a snapshot; it does not start it.
func (m *Manager) Create(spec LaunchSpec) (*Machine, error) {
	if err := validID("instance", spec.InstanceID); err != nil {
		return nil, err
	}
	if !validUser(spec.User) {
		return nil, fmt.Errorf("create machine %s: invalid user name %q", spec.InstanceID, spec.User)
	}
	if len(spec.IPs) == 0 {
		return nil, fmt.Errorf("create machine %s: no IP address", spec.InstanceID)
	}
	for _, ip := range spec.IPs {
		p := net.ParseIP(ip)
		if p == nil || p.To4() == nil || !p.IsLoopback() {
			return nil, fmt.Errorf("create machine %s: %q is not an IPv4 loopback address (127.0.0.0/8)", spec.InstanceID, ip)
		}
	}
	if spec.Port == 0 {
		spec.Port = 22
	}
	if spec.Port < 0 || spec.Port > 65535 {
		return nil, fmt.Errorf("create machine %s: invalid port %d", spec.InstanceID, spec.Port)
	}
	if strings.ContainsAny(spec.AuthorizedKey, "\n\r") {
		return nil, fmt.Errorf("create machine %s: authorized key must be a single line", spec.InstanceID)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("create machine: manager closed")
	}
	snap, ok := m.snapshots[spec.SnapshotID]
	if !ok || (snap.flavor == nil && snap.dir == "") {
		m.mu.Unlock()
		return nil, fmt.Errorf("create machine %s: snapshot %s not found", spec.InstanceID, spec.SnapshotID)
	}
	if _, ok := m.machines[spec.InstanceID]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("create machine %s: already exists", spec.InstanceID)
	}
	mc := &Machine{
		m:        m,
		spec:     spec,
		dir:      filepath.Join(m.base, "instances", spec.InstanceID),
		hostname: "ip-" + strings.ReplaceAll(spec.IPs[0], ".", "-"),
		reboot:   make(chan struct{}, 1),
		poweroff: make(chan struct{}, 1),
		state:    stateStopped,
	}
	m.machines[spec.InstanceID] = mc
	m.mu.Unlock()
	mc.ctl = filepath.Join(mc.dir, "ctl")
	mc.root = filepath.Join(mc.dir, "root")
	mc.uid = m.allocUID()
	h := fnv.New64a()
	h.Write([]byte(spec.InstanceID))
	mc.rng = rand.New(rand.NewPCG(uint64(m.opts.Seed), h.Sum64()))
	start := time.Now()
	if err := mc.build(snap); err != nil {
		_ = os.RemoveAll(mc.dir)
		m.mu.Lock()
		delete(m.machines, spec.InstanceID)
		m.mu.Unlock()
		return nil, fmt.Errorf("create machine %s from snapshot %s: %w", spec.InstanceID, spec.SnapshotID, err)
	}
	m.log.Debug("machine created", "instance", spec.InstanceID, "snapshot", spec.SnapshotID, "uid", mc.uid, "took", time.Since(start))
	return mc, nil
}

func (mc *Machine) build(snap *snapshot) error {
	m := mc.m
	for _, d := range []string{mc.dir, mc.ctl} {
		if err := mkdirOwned(d, 0o755, 0); err != nil {
			return err
		}
	}
	var err error
	if snap.dir != "" {
		err = copyTree(snap.dir, mc.root, copyOpts{linkRootOwned: true, uid: mc.uid})
	} else {
		err = m.buildBase(mc.root, snap.flavor, mc.uid)
	}
	if err != nil {
		return fmt.Errorf("root filesystem: %w", err)
	}
	if err := makeDev(mc.root); err != nil {
		return err
	}
	if err := setUserEntry(mc.root, mc.spec.User, mc.uid); err != nil {
		return err
	}
	if err := writeInRoot(mc.root, "etc/hostname", []byte(mc.hostname+"\n"), 0o644, mc.uid); err != nil {
		return err
	}
	if len(mc.spec.UserData) > 0 {
		if err := writeInRoot(mc.root, "var/lib/cloud/instance/user-data.txt", mc.spec.UserData, 0o700, mc.uid); err != nil {
			return err
		}
	}
	if err := mc.writeHostKeys(); err != nil {
		return fmt.Errorf("host keys: %w", err)
	}
	return mc.writeControl()
}

func (mc *Machine) writeHostKeys() error {
	_, edKey, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return err
	}
	rsaKey, err := mc.m.rsaKey()
	if err != nil {
		return err
	}
	// The order cloud-init prints them in.
	for _, k := range []struct {
		name string
		key  crypto.Signer
	}{{"ecdsa", ecKey}, {"ed25519", edKey}, {"rsa", rsaKey}} {
		comment := "root@" + mc.hostname
		blk, err := ssh.MarshalPrivateKey(k.key, comment)
		if err != nil {
			return err
		}
		pub, err := ssh.NewPublicKey(k.key.Public())
		if err != nil {
			return err
		}
		mc.hostKeys = append(mc.hostKeys, pub)
		p := filepath.Join(mc.ctl, "ssh_host_"+k.name+"_key")
		if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
			return err
		}
		pubLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment + "\n"
		if err := os.WriteFile(p+".pub", []byte(pubLine), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeControl writes sshd's configuration and the passwd, group and shadow
// files that are bind-mounted over the host's in sshd's mount namespace only:
// sshd looks the login user up there, never in the host's real files.
func (mc *Machine) writeControl() error {
	s := mc.spec
	shell := "/bin/sh"
	if mc.m.opts.DropProbability > 0 {
		shell = "/usr/lib/amibake/login-shell"
	}
	userLine := fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", s.User, mc.uid, mc.uid, s.User, homeOf(s.User), shell)
	passwd, err := hostDBWith("/etc/passwd", s.User, userLine)
	if err != nil {
		return err
	}
	group, err := hostDBWith("/etc/group", s.User, fmt.Sprintf("%s:x:%d:", s.User, mc.uid))
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"passwd", passwd, 0o644},
		{"group", group, 0o644},
		// Only our user: the host's password hashes are never copied.
		{"shadow", s.User + ":*:20000:0:99999:7:::\n", 0o600},
		// Read by sshd with the user's uid (temporarily_use_uid).
		{"authorized_keys", s.AuthorizedKey + "\n", 0o644},
		{"sshd_config", mc.sshdConfig(), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(mc.ctl, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

func hostDBWith(file, name, line string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	var out strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, name+":") {
			continue
		}
		out.WriteString(l + "\n")
	}
	out.WriteString(line + "\n")
	return out.String(), nil
}

func (mc *Machine) sshdConfig() string {
	// internal-sftp runs inside sshd, out of reach of the login-shell
	// wrapper: to drop SFTP sessions we follow sshd's log of sessions.
	logLevel := "INFO"
	if mc.m.opts.DropProbability > 0 {
		logLevel = "VERBOSE" // "Starting session: subsystem 'sftp' ..."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\nAddressFamily inet\n", mc.spec.Port)
	for _, ip := range mc.spec.IPs {
		fmt.Fprintf(&b, "ListenAddress %s\n", ip)
	}
	for _, k := range []string{"ecdsa", "ed25519", "rsa"} {
		fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(mc.ctl, "ssh_host_"+k+"_key"))
	}
	fmt.Fprintf(&b, `PidFile none
UsePAM no
StrictModes no
PubkeyAuthentication yes
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
ChrootDirectory %s
Subsystem sftp internal-sftp
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxStartups 100:30:200
MaxSessions 64
LogLevel %s
`, filepath.Join(mc.ctl, "authorized_keys"), mc.spec.User, mc.root, logLevel)
	return b.String()
}

// Host key fingerprints, in the order cloud-init prints them.
func (mc *Machine) HostKeys() []ssh.PublicKey { return mc.hostKeys }

// IPs returns the addresses sshd listens on.
func (mc *Machine) IPs() []string { return mc.spec.IPs }

// RootDir is the machine's root filesystem as seen from the host (tests).
func (mc *Machine) RootDir() string { return mc.root }

// RebootRequested fires when a command in the instance ran reboot. The
// machine has already stopped sshd and ended every session, like a real
// reboot; the owner brings it back with Reboot (or Boot), after whatever
// latency it simulates. The channel is buffered and coalescing.
func (mc *Machine) RebootRequested() <-chan struct{} { return mc.reboot }

// PowerOffRequested fires when a command ran poweroff, halt or shutdown -h.
// The machine's sshd and sessions are already stopped; the owner should
// move the instance to stopped.
func (mc *Machine) PowerOffRequested() <-chan struct{} { return mc.poweroff }

// setup runs as PID 1 of the machine's new PID namespace: killing it kills
// every process of the machine, sessions and daemons alike.
const setupScript = `set -e
# busybox: a static binary starts in a third of the time util-linux's does.
bb=/bin/busybox
$bb mount --make-rprivate /
$bb mount -t tmpfs -o mode=755,size=64k amibake-run /run
$bb mkdir -m 755 /run/sshd
$bb mount --bind "$CTL/passwd" /etc/passwd
$bb mount --bind "$CTL/group" /etc/group
[ -e /etc/shadow ] && $bb mount --bind "$CTL/shadow" /etc/shadow
$bb mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
$bb hostname "$HOSTNAME"
if [ -n "$USERDATA" ]; then
	(
		set +e
		/usr/sbin/chroot --userspec="$UID_:$UID_" --groups="$UID_" "$ROOT" /usr/bin/env -i HOME="$HOME_" USER="$USER_" LOGNAME="$USER_" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /usr/lib/amibake/run-user-data </dev/null >&3 2>&1
		echo "amibake-user-data-exit $?" >&3
	) &
fi
exec 3>&-
# -r: no re-exec per connection, which costs ~50 ms of dynamic linking.
/usr/sbin/sshd -D -e -r -f "$CTL/sshd_config" &
# PID 1 becomes an init running as the instance user: busybox's reboot,
# halt and poweroff applets (which busybox runs even when a script of that
# name comes first in PATH) signal PID 1, and only a same-uid init can
# receive that signal.
exec /usr/sbin/chroot --userspec="$UID_:$UID_" --groups="$UID_" "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin /bin/sh /usr/lib/amibake/init
`

// Boot starts the machine. It returns when sshd listens, or at once when
// Options.SSHStartDelay postpones sshd. User data runs on the first boot.
func (mc *Machine) Boot(ctx context.Context) error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.bootLocked(ctx)
}

func (mc *Machine) bootLocked(ctx context.Context) error {
	switch mc.state {
	case stateDestroyed:
		return fmt.Errorf("boot machine %s: destroyed", mc.spec.InstanceID)
	case stateRunning:
		if mc.exited == nil {
			return nil // up, or sshd still delayed
		}
		select {
		case <-mc.exited:
			// Died behind our back: clean up and boot again.
			mc.stopLocked()
		default:
			return nil
		}
	}
	mc.gen++
	if err := mc.prepareRun(); err != nil {
		return fmt.Errorf("boot machine %s: %w", mc.spec.InstanceID, err)
	}
	if b, err := readInRoot(mc.root, "etc/os-release"); err == nil {
		mc.osRelease = string(b)
	}
	firstBoot := !mc.booted
	mc.booted = true
	mc.state = stateRunning
	mc.bootedAt = time.Now()
	mc.appendConsole(bootLog(mc, firstBoot))
	runCtx, cancel := context.WithCancel(context.Background())
	mc.cancel = cancel
	userData := firstBoot && len(mc.spec.UserData) > 0
	if !userData {
		mc.appendConsole(finalLog(mc, firstBoot, ""))
	}
	if d := mc.m.opts.SSHStartDelay; d > 0 {
		gen := mc.gen
		go func() {
			select {
			case <-time.After(d):
			case <-runCtx.Done():
				return
			}
			mc.mu.Lock()
			defer mc.mu.Unlock()
			if mc.gen != gen || mc.state != stateRunning {
				return
			}
			if _, err := mc.startSSHD(runCtx, userData); err != nil {
				mc.m.log.Error("start sshd after delay", "instance", mc.spec.InstanceID, "err", err)
				mc.appendConsole(fmt.Sprintf("[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server: %v\n", err))
			}
		}()
		return nil
	}
	udDone, err := mc.startSSHD(ctx, userData)
	if err != nil {
		mc.stopLocked()
		return fmt.Errorf("boot machine %s: %w", mc.spec.InstanceID, err)
	}
	// Real instances report "running" long before cloud-init is done; here
	// boots take milliseconds, so give quick user data a moment to finish:
	// a client reading the console right after boot then finds the host
	// key fingerprints, printed after the user data.
	if udDone != nil {
		t := time.NewTimer(time.Second)
		select {
		case <-udDone:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	mc.m.log.Debug("machine booted", "instance", mc.spec.InstanceID, "took", time.Since(mc.bootedAt))
	return nil
}

// prepareRun recreates the volatile /run and the control fifo through which
// the reboot/poweroff scripts and the session wrapper talk to us.
func (mc *Machine) prepareRun() error {
	run := filepath.Join(mc.root, "run")
	if err := os.RemoveAll(run); err != nil {
		return err
	}
	if err := mkdirOwned(run, 0o755, 0); err != nil {
		return err
	}
	ad := filepath.Join(run, "amibake")
	if err := mkdirOwned(ad, 0o755, mc.uid); err != nil {
		return err
	}
	fifo := filepath.Join(ad, "ctl")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return fmt.Errorf("create %s: %w", fifo, err)
	}
	if err := os.Lchown(fifo, int(mc.uid), int(mc.uid)); err != nil {
		return err
	}
	// O_RDWR: we stay a writer too, so reads never see EOF between requests.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	mc.ctlFile = f
	mc.ctlDone = make(chan struct{})
	go mc.readControl(f, mc.gen, mc.ctlDone)
	return nil
}

// startSSHD starts the machine's namespace with sshd and, on the first
// boot, the user data; the returned channel closes when the user data is done.
func (mc *Machine) startSSHD(ctx context.Context, userData bool) (<-chan struct{}, error) {
	cmd := exec.Command(busyboxPath, "sh", "-c", setupScript)
	home := homeOf(mc.spec.User)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"CTL=" + mc.ctl, "ROOT=" + mc.root, "HOSTNAME=" + mc.hostname,
		"UID_=" + strconv.FormatUint(uint64(mc.uid), 10), "HOME_=" + home, "USER_=" + mc.spec.User,
	}
	var udr *os.File
	if userData {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer w.Close()
		udr = r
		cmd.ExtraFiles = []*os.File{w}
		cmd.Env = append(cmd.Env, "USERDATA=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		// If the simulator dies, its machines die with it.
		Pdeathsig: syscall.SIGKILL,
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		if udr != nil {
			udr.Close()
		}
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if udr != nil {
			udr.Close()
		}
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	mc.proc, mc.exited = cmd, exited
	listening := make(chan string, len(mc.spec.IPs))
	var tail tailBuffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			mc.m.log.Debug("sshd", "instance", mc.spec.InstanceID, "line", line)
			if strings.HasPrefix(line, "Starting session: subsystem 'sftp'") {
				if d := mc.decideDrop(30); d > 0 {
					mc.m.log.Debug("dropping sftp session", "instance", mc.spec.InstanceID, "after", d)
					time.AfterFunc(d, mc.killSessions)
				}
			}
			if strings.HasPrefix(line, "Server listening on ") {
				select {
				case listening <- line:
				default:
				}
			}
		}
	}()
	go func() {
		<-logDone
		_ = cmd.Wait()
		close(exited)
	}()
	var udDone chan struct{}
	if udr != nil {
		udDone = make(chan struct{})
		go func() {
			defer close(udDone)
			mc.collectUserData(udr)
		}()
	}
	timeout := time.NewTimer(15 * time.Second)
	defer timeout.Stop()
	for n := 0; n < len(mc.spec.IPs); {
		select {
		case <-listening:
			n++
		case <-exited:
			return nil, fmt.Errorf("sshd exited: %s", tail.String())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout.C:
			return nil, fmt.Errorf("sshd did not listen within 15s: %s", tail.String())
		}
	}
	return udDone, nil
}

// Shutdown stops sshd and every process of the machine.
func (mc *Machine) Shutdown(ctx context.Context) error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.state == stateRunning {
		mc.appendConsole(shutdownLog(mc))
	}
	mc.stopLocked()
	return nil
}

func (mc *Machine) stopLocked() {
	if mc.cancel != nil {
		mc.cancel()
		mc.cancel = nil
	}
	if mc.proc != nil {
		// PID 1 of the machine's namespace: the kernel kills the rest and
		// Wait returns only once they are all gone.
		_ = mc.proc.Process.Kill()
		<-mc.exited
		mc.proc, mc.exited = nil, nil
	}
	if mc.ctlFile != nil {
		mc.ctlFile.Close()
		<-mc.ctlDone
		mc.ctlFile = nil
	}
	if mc.state == stateRunning {
		mc.state = stateStopped
	}
}

// Reboot stops and boots the machine; user data does not run again.
func (mc *Machine) Reboot(ctx context.Context) error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.state == stateDestroyed {
		return fmt.Errorf("reboot machine %s: destroyed", mc.spec.InstanceID)
	}
	if mc.state == stateRunning {
		mc.appendConsole(shutdownLog(mc))
	}
	mc.stopLocked()
	return mc.bootLocked(ctx)
}

// Destroy stops the machine and deletes its files.
func (mc *Machine) Destroy() error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.state == stateDestroyed {
		return nil
	}
	mc.stopLocked()
	mc.state = stateDestroyed
	mc.m.mu.Lock()
	delete(mc.m.machines, mc.spec.InstanceID)
	mc.m.mu.Unlock()
	if err := os.RemoveAll(mc.dir); err != nil {
		return fmt.Errorf("destroy machine %s: %w", mc.spec.InstanceID, err)
	}
	return nil
}

// Snapshot captures the root filesystem (running or not) into the store.
func (mc *Machine) Snapshot(snapshotID string) error {
	if err := validID("snapshot", snapshotID); err != nil {
		return err
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.state == stateDestroyed {
		return fmt.Errorf("snapshot machine %s: destroyed", mc.spec.InstanceID)
	}
	m := mc.m
	m.mu.Lock()
	if _, ok := m.snapshots[snapshotID]; ok {
		m.mu.Unlock()
		return fmt.Errorf("snapshot machine %s: snapshot %s exists", mc.spec.InstanceID, snapshotID)
	}
	m.snapshots[snapshotID] = &snapshot{} // reserved
	m.mu.Unlock()
	dir := m.snapshotDir(snapshotID)
	if err := copyTree(mc.root, dir, copyOpts{linkRootOwned: true}); err != nil {
		_ = os.RemoveAll(dir)
		m.mu.Lock()
		delete(m.snapshots, snapshotID)
		m.mu.Unlock()
		return fmt.Errorf("snapshot machine %s to %s: %w", mc.spec.InstanceID, snapshotID, err)
	}
	m.mu.Lock()
	m.snapshots[snapshotID] = &snapshot{dir: dir}
	m.mu.Unlock()
	return nil
}

// readControl serves requests written to /run/amibake/ctl inside the machine.
func (mc *Machine) readControl(f *os.File, gen int, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "reboot":
			go mc.guestReboot(gen)
		case "poweroff":
			go mc.guestPowerOff(gen)
		case "session":
			if len(fields) == 2 {
				if pid, err := strconv.Atoi(fields[1]); err == nil && pid > 0 {
					mc.answerSession(pid)
				}
			}
		}
	}
}

// answerSession tells the session wrapper whether to drop the connection:
// "0" or the seconds after which to drop. Decisions come from a per-machine
// generator seeded with Options.Seed, in the order sessions start.
func (mc *Machine) answerSession(pid int) {
	ans := "0"
	if d := mc.decideDrop(150); d > 0 {
		ans = fmt.Sprintf("%.3f", d.Seconds())
	}
	f, err := inRoot(mc.root, fmt.Sprintf("run/amibake/s.%d", pid), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		mc.m.log.Debug("answer session", "instance", mc.spec.InstanceID, "err", err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		return
	}
	if ans != "0" {
		mc.m.log.Debug("dropping session", "instance", mc.spec.InstanceID, "after", ans)
	}
	_, _ = io.WriteString(f, ans+"\n")
}

// decideDrop draws the next session's fate: 0, or how long into the
// session to drop it (1 ms to maxMillis).
func (mc *Machine) decideDrop(maxMillis int) time.Duration {
	p := mc.m.opts.DropProbability
	if p <= 0 {
		return 0
	}
	mc.rngMu.Lock()
	defer mc.rngMu.Unlock()
	if mc.rng.Float64() >= p {
		return 0
	}
	return time.Duration(1+mc.rng.IntN(maxMillis)) * time.Millisecond
}

// killSessions drops every SSH connection of the machine: SIGKILL to the
// sshd processes that run as the instance user (one per connection).
func (mc *Machine) killSessions() {
	ents, _ := os.ReadDir("/proc")
	uid := strconv.FormatUint(uint64(mc.uid), 10)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var name, owner string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "Name:" {
				name = f[1]
			}
			if len(f) >= 2 && f[0] == "Uid:" {
				owner = f[1]
				break
			}
		}
		if name == "sshd" && owner == uid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (mc *Machine) guestReboot(gen int) { mc.guestStop(gen, mc.reboot) }

func (mc *Machine) guestPowerOff(gen int) { mc.guestStop(gen, mc.poweroff) }

// guestStop is the guest's own reboot or power-off: the machine goes down
// and the API side is told on notify, which reboots or stops the instance.
func (mc *Machine) guestStop(gen int, notify chan struct{}) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.gen != gen || mc.state != stateRunning {
		return
	}
	mc.appendConsole(shutdownLog(mc))
	mc.stopLocked()
	select {
	case notify <- struct{}{}:
	default:
	}
}

type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > 10 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "; ")
}
