package vm

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
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
	// IPs are the loopback addresses (127.0.0.0/8) SSH is served on.
	IPs  []string
	Port int // 0 means 22
	// User is the login user; the launch key is authorized for it.
	User string
	// AuthorizedKey is an authorized_keys line; may be empty.
	AuthorizedKey string
	UserData      []byte
	// DiskBytes bounds the writable layer: the root volume's size (0:
	// Options.DiskBytes). A full disk fails writes with ENOSPC.
	DiskBytes int64
	// Admit decides, per accepted connection, whether the instance's
	// security groups let srcIP reach port now. Nil admits everything.
	// A connection not admitted is held silent until the client gives up
	// (what a dropped SYN looks like), then closed.
	Admit func(srcIP, dstIP string, port int) bool
}

type machineState int

const (
	stateStopped machineState = iota
	stateRunning
	stateDestroyed
)

// Machine is one instance: its writable layer over its image's layers and,
// while running, its init and namespaces.
type Machine struct {
	m        *Manager
	spec     LaunchSpec
	dir      string // instances/<id>
	rw       string // per-instance tmpfs: upper/ and work/ (the instance's disk)
	upper    string
	root     string // the overlay mount
	layers   []*layer
	hostname string
	hostKeys []ssh.PublicKey
	keyFiles map[string][]byte
	// osRelease is read from the root filesystem at boot (console flavor).
	osRelease string

	reboot   chan struct{}
	poweroff chan struct{}

	mu       sync.Mutex // serializes lifecycle operations
	state    machineState
	booted   bool // first boot done: user data has run
	gen      int  // boot generation: requests from older boots are ignored
	cancel   context.CancelFunc
	proc     *exec.Cmd
	exited   chan struct{}
	ctl      *os.File
	ctlDone  chan struct{}
	run      *runState
	rng      *rand.Rand
	rngMu    sync.Mutex
	consMu   sync.Mutex
	console  []byte
	bootedAt time.Time
}

// runState is what one boot owns besides the init: listeners and live
// SSH connections, closed when the machine stops.
type runState struct {
	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	conns     map[net.Conn]bool
	procs     map[*exec.Cmd]bool
	mirror    *http.Server
	wg        sync.WaitGroup
}

func (r *runState) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = true
	return true
}

func (r *runState) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *runState) close() {
	r.mu.Lock()
	r.closed = true
	for _, l := range r.listeners {
		l.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	if r.mirror != nil {
		r.mirror.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
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
	if spec.DiskBytes < 0 {
		return nil, fmt.Errorf("create machine %s: negative disk size %d", spec.InstanceID, spec.DiskBytes)
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
	if !ok || snap.reserved {
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
		layers:   append([]*layer(nil), snap.layers...),
	}
	for _, l := range mc.layers {
		l.refs++
	}
	m.machines[spec.InstanceID] = mc
	m.mu.Unlock()
	mc.rw = filepath.Join(mc.dir, "rw")
	mc.upper = filepath.Join(mc.rw, "upper")
	mc.root = filepath.Join(mc.dir, "root")
	h := fnv.New64a()
	h.Write([]byte(spec.InstanceID))
	mc.rng = rand.New(rand.NewPCG(uint64(m.opts.Seed), h.Sum64()))
	start := time.Now()
	if err := mc.build(); err != nil {
		mc.teardown()
		m.mu.Lock()
		delete(m.machines, spec.InstanceID)
		m.mu.Unlock()
		return nil, fmt.Errorf("create machine %s from snapshot %s: %w", spec.InstanceID, spec.SnapshotID, err)
	}
	m.log.Debug("machine created", "instance", spec.InstanceID, "snapshot", spec.SnapshotID, "took", time.Since(start))
	return mc, nil
}

// build mounts the machine's disk: a tmpfs of the volume's size holding
// the writable layer, under an overlay of the image's layers.
func (mc *Machine) build() error {
	for _, d := range []string{mc.dir, mc.rw, mc.root} {
		if err := mkdirOwned(d, 0o755, 0); err != nil {
			return err
		}
	}
	if err := unix.Mount("amibake-disk", mc.rw, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=0755,size=%d", mc.diskBytes())); err != nil {
		return fmt.Errorf("mount the instance's disk: %w", err)
	}
	for _, d := range []string{mc.upper, filepath.Join(mc.rw, "work")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	// The upper root is the image root's owner: root inside.
	if err := os.Lchown(mc.upper, IDShift, IDShift); err != nil {
		return err
	}
	if err := mc.m.mountOverlay(mc.layers, mc.upper, filepath.Join(mc.rw, "work"), mc.root); err != nil {
		return err
	}
	if b, err := readInRoot(mc.root, "etc/os-release"); err == nil {
		mc.osRelease = string(b)
	}
	return mc.makeHostKeys()
}

func (mc *Machine) diskBytes() int64 {
	if mc.spec.DiskBytes > 0 {
		return mc.spec.DiskBytes
	}
	return mc.m.opts.DiskBytes
}

// mountOverlay stacks layers (oldest first) under upper. redirect_dir and
// metacopy stay off: captured layers are then plain trees with whiteouts
// and opaque markers only, which stack as lower layers of later images.
func (m *Manager) mountOverlay(layers []*layer, upper, work, target string) error {
	lower := make([]string, 0, len(layers)+1)
	for i := len(layers) - 1; i >= 0; i-- {
		lower = append(lower, layers[i].dir)
	}
	lower = append(lower, m.baseRoot)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off,index=off,xino=off", strings.Join(lower, ":"), upper, work)
	if err := unix.Mount("amibake-root", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount the overlay root (%d layers): %w", len(lower), err)
	}
	return nil
}

func (mc *Machine) makeHostKeys() error {
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
	mc.keyFiles = map[string][]byte{}
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
		name := "ssh_host_" + k.name + "_key"
		mc.keyFiles[name] = pem.EncodeToMemory(blk)
		mc.keyFiles[name+".pub"] = []byte(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment + "\n")
	}
	return nil
}

// Host key fingerprints, in the order cloud-init prints them.
func (mc *Machine) HostKeys() []ssh.PublicKey { return mc.hostKeys }

// IPs returns the addresses SSH is served on.
func (mc *Machine) IPs() []string { return mc.spec.IPs }

// RootDir is the machine's root filesystem as seen from the host (tests).
func (mc *Machine) RootDir() string { return mc.root }

// RebootRequested fires when a command in the instance ran reboot. The
// machine has already stopped and every session ended, like a real
// reboot; the owner brings it back with Reboot (or Boot), after whatever
// latency it simulates. The channel is buffered and coalescing.
func (mc *Machine) RebootRequested() <-chan struct{} { return mc.reboot }

// PowerOffRequested fires when a command ran poweroff, halt or shutdown -h.
// The machine is already stopped; the owner should move the instance to
// stopped.
func (mc *Machine) PowerOffRequested() <-chan struct{} { return mc.poweroff }

// Boot starts the machine. It returns when SSH is served, or at once when
// Options.SSHStartDelay postpones it. User data runs on the first boot.
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
			return nil
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
	firstBoot := !mc.booted
	mc.state = stateRunning
	mc.bootedAt = time.Now()
	mc.appendConsole(bootLog(mc, firstBoot))
	userData := firstBoot && len(mc.spec.UserData) > 0
	udDone, err := mc.startInit(ctx, firstBoot, userData)
	if err != nil {
		mc.stopLocked()
		return fmt.Errorf("boot machine %s: %w", mc.spec.InstanceID, err)
	}
	mc.booted = true
	if !userData {
		mc.appendConsole(finalLog(mc, firstBoot, ""))
	}
	runCtx, cancel := context.WithCancel(context.Background())
	mc.cancel = cancel
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
			if err := mc.listenSSH(); err != nil {
				mc.m.log.Error("start SSH after delay", "instance", mc.spec.InstanceID, "err", err)
				mc.appendConsole(fmt.Sprintf("[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server: %v\n", err))
			}
		}()
	} else if err := mc.listenSSH(); err != nil {
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

// startInit starts the machine's init in new user, mount, PID, UTS, IPC
// and network namespaces, serves the apt mirror inside its network
// namespace, and waits until it is ready.
func (mc *Machine) startInit(ctx context.Context, firstBoot, userData bool) (<-chan struct{}, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ctl"), os.NewFile(uintptr(fds[1]), "ctl-init")
	defer theirs.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "GOMAXPROCS=1", "GOGC=200"}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{theirs}
	var udr *os.File
	if userData {
		r, w, err := os.Pipe()
		if err != nil {
			ours.Close()
			return nil, err
		}
		defer w.Close()
		udr = r
		cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: IDShift, Size: IDRange}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: IDShift, Size: IDRange}},
		GidMappingsEnableSetgroups: true,
		// Become root of the new namespace (host id IDShift); Go sets
		// Pdeathsig after this change of credentials, so it holds.
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
		// If the simulator dies, the init dies, and with it (PID 1 of its
		// namespace) every process of the machine.
		Pdeathsig: syscall.SIGKILL,
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		ours.Close()
		if udr != nil {
			udr.Close()
		}
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		ours.Close()
		if udr != nil {
			udr.Close()
		}
		return nil, fmt.Errorf("start the machine's init: %w", err)
	}
	exited := make(chan struct{})
	mc.proc, mc.exited, mc.ctl = cmd, exited, ours
	var tail tailBuffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tail.add(sc.Text())
			mc.m.log.Debug("init", "instance", mc.spec.InstanceID, "line", sc.Text())
		}
	}()
	go func() {
		<-logDone
		_ = cmd.Wait()
		close(exited)
	}()
	rs := &runState{conns: map[net.Conn]bool{}, procs: map[*exec.Cmd]bool{}}
	mc.run = rs
	if err := mc.serveMirror(rs, cmd.Process.Pid); err != nil {
		if udr != nil {
			udr.Close()
		}
		return nil, fmt.Errorf("serve the apt mirror inside the machine: %w", err)
	}
	cfg := initConfig{
		Root: mc.root, Hostname: mc.hostname, User: mc.spec.User, AuthorizedKey: mc.spec.AuthorizedKey,
		HostKeys: mc.keyFiles, FirstBoot: firstBoot,
	}
	if userData {
		cfg.UserData = mc.spec.UserData
	}
	b, _ := json.Marshal(cfg)
	if _, err := ours.Write(append(b, '\n')); err != nil {
		if udr != nil {
			udr.Close()
		}
		return nil, fmt.Errorf("configure the machine's init: %w (%s)", err, tail.String())
	}
	ready := make(chan struct{})
	mc.ctlDone = make(chan struct{})
	go mc.readControl(ours, mc.gen, ready, mc.ctlDone)
	var udDone chan struct{}
	if udr != nil {
		udDone = make(chan struct{})
		go func() {
			defer close(udDone)
			mc.collectUserData(udr)
		}()
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case <-ready:
	case <-exited:
		<-logDone
		return nil, fmt.Errorf("the machine's init exited: %s", tail.String())
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timeout.C:
		return nil, fmt.Errorf("the machine's init was not ready within 30s: %s", tail.String())
	}
	if b, err := readInRoot(mc.root, "etc/os-release"); err == nil {
		mc.osRelease = string(b)
	}
	return udDone, nil
}

// Shutdown stops every process of the machine.
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
	if mc.run != nil {
		// No new connections; live ones end with the machine.
		mc.run.mu.Lock()
		for _, l := range mc.run.listeners {
			l.Close()
		}
		mc.run.mu.Unlock()
	}
	if mc.proc != nil {
		// PID 1 of the machine's namespace: the kernel kills the rest and
		// Wait returns once the init is gone.
		_ = mc.proc.Process.Kill()
		<-mc.exited
		mc.proc, mc.exited = nil, nil
	}
	if mc.run != nil {
		mc.run.close()
		mc.run = nil
	}
	if mc.ctl != nil {
		mc.ctl.Close()
		<-mc.ctlDone
		mc.ctl = nil
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

// Destroy stops the machine and deletes its disk.
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
	if err := mc.teardown(); err != nil {
		return fmt.Errorf("destroy machine %s: %w", mc.spec.InstanceID, err)
	}
	return nil
}

// teardown unmounts and removes the machine's disk and drops its layers.
func (mc *Machine) teardown() error {
	var errs []error
	for _, p := range []string{mc.root, mc.rw} {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(mc.dir); err != nil {
			errs = append(errs, err)
		}
	}
	mc.m.mu.Lock()
	ls := mc.layers
	mc.layers = nil
	mc.m.mu.Unlock()
	mc.m.release(ls)
	return errors.Join(errs...)
}

// Snapshot captures the machine's writable layer, running or not, as a
// new immutable layer over its image's: the snapshot stacks.
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
	m.snapshots[snapshotID] = &snapshot{reserved: true}
	m.nextLayer++
	dir := filepath.Join(m.base, "layers", strconv.Itoa(m.nextLayer))
	m.mu.Unlock()
	if err := captureLayer(mc.upper, dir); err != nil {
		_ = os.RemoveAll(dir)
		m.mu.Lock()
		delete(m.snapshots, snapshotID)
		m.mu.Unlock()
		return fmt.Errorf("snapshot machine %s to %s: %w", mc.spec.InstanceID, snapshotID, err)
	}
	m.mu.Lock()
	layers := append(append([]*layer(nil), mc.layers...), &layer{dir: dir})
	for _, l := range layers {
		l.refs++
	}
	m.snapshots[snapshotID] = &snapshot{flavor: mc.flavorLocked(), layers: layers}
	m.mu.Unlock()
	return nil
}

func (mc *Machine) flavorLocked() *Flavor {
	return &Flavor{User: mc.spec.User}
}

// readControl serves the init's messages.
func (mc *Machine) readControl(f *os.File, gen int, ready, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(f)
	once := sync.Once{}
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case msgReady:
			once.Do(func() { close(ready) })
		case msgReboot:
			go mc.guestReboot(gen)
		case msgPowerOff:
			go mc.guestPowerOff(gen)
		}
	}
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
