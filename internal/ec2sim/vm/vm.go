// Package vm turns simulated EC2 instances into real Debian machines that
// cannot reach the host.
//
// The system. Set-up (make setup, command vmsetup) builds once, with
// mmdebstrap from Debian's archive, a Debian bookworm base (apt, sudo,
// bash, OpenSSH, python3, curl, systemd's systemctl, a cloud-init status
// command, policy-rc.d refusing service starts, reboot/poweroff shims) and
// an offline apt mirror of a pinned package list with its dependencies,
// into CacheDir, keyed by recipe digests (base.go). Its files are owned by
// the machines' id range (IDShift+), chowned once when cached.
//
// A machine. Its disk is a tmpfs of the volume's size holding the
// writable (upper) layer of an overlay whose lower layers are its image's
// captured layers over the base. Its init is a re-exec of the running
// binary (argv[0] initArg0, caught by this package's init()) started in
// new user, mount, PID, UTS, IPC and network namespaces, uid/gid 0-65535
// mapped to IDShift+ on the host: root inside is real root for apt, dpkg
// and sudo, and nobody outside. The init binds the overlay onto itself,
// mounts /proc, a /dev tmpfs with bind-mounted null, zero, full, random,
// urandom and tty, a private devpts, /run, then pivot_root; it does
// cloud-init's part (hostname, the host keys the simulator generated so
// the console's fingerprints are right, the default user with the launch
// key and NOPASSWD sudo), runs user data as root on the first boot and
// writes /run/cloud-init/status.json and result.json, reaps orphans, and
// turns SIGTERM/SIGINT (reboot) and SIGUSR1/SIGUSR2 (halt, poweroff) from
// the shims into requests on its control socket (fd 3).
//
// Nothing of the host in reach. The machine's network namespace has only
// its loopback, where the simulator serves the apt mirror: it creates the
// listening socket inside (setns on a locked thread) and serves it from
// the host side; /etc/hosts names deb.debian.org 127.0.0.1. The simulator's
// API, admin endpoints and other machines are unreachable. SSH: the
// simulator keeps each instance's listening sockets (its addresses, port
// 22) in the host's namespace; per accepted connection it asks
// LaunchSpec.Admit (the security groups as they stand, sgadmit.go in
// ec2sim); a connection not admitted is held silent, like a dropped SYN;
// an admitted one is handed as stdin/stdout to the machine's own
// /usr/sbin/sshd -i (OpenSSH's inetd mode) through nsenter into all its
// namespaces. Every process the simulator starts has Pdeathsig SIGKILL
// (the init's is set after its change of credentials); everything else of
// a machine lives in its PID namespace and dies with the init, so kill -9
// of the simulator leaves no machine process, and the next Manager
// unmounts and removes a dead simulator's state (reapStale).
//
// Images. Snapshot captures the writable layer as a new immutable layer
// (capture.go): an fd-relative walk, O_NOFOLLOW and openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so a live (NoReboot) capture never
// follows a symlink the machine swaps in; overlay whiteouts and opaque
// markers are kept so layers stack; device nodes, fifos and sockets are
// skipped. Layers are shared by reference between snapshots (CopySnapshot)
// and machines, removed when the last reference goes.
//
// Layout under Options.Dir (default /var/lib/amibake-ec2sim):
//
//	run-XXXX/                 one per Manager, a tmpfs, removed by Close
//	  owner                   pid and start time, so a later Manager can reap it
//	  layers/<n>/             captured layers (immutable, shared)
//	  instances/<id>/rw/      the instance's disk (tmpfs): upper/ and work/
//	  instances/<id>/root/    the overlay: the machine's root
//
// Fault injection: with DropProbability, connections go through the
// simulator; sshd's VERBOSE log of each session start (command or SFTP)
// draws from a per-machine seeded generator, and a drop freezes what sshd
// sends at once (the client never gets the exit status) and cuts the TCP
// connection 1-150 ms (SFTP 1-30 ms) later.
package vm

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultDir is where machines live when Options.Dir is empty.
const DefaultDir = "/var/lib/amibake-ec2sim"

// Options configures a Manager.
type Options struct {
	// Dir holds the per-Manager state directory.
	Dir string
	// Cache holds the base and mirror set-up built (default CacheDir).
	Cache string
	Log   *slog.Logger
	// DropProbability is the chance that an SSH session (command or SFTP)
	// is dropped: the TCP connection is cut 1-150 ms (SFTP: 1-30 ms) after
	// the session starts.
	DropProbability float64
	// Seed makes drop decisions reproducible (per machine, in session order).
	Seed int64
	// SSHStartDelay delays SSH after Boot (a slow SSH start).
	SSHStartDelay time.Duration
	// RSAHostKeyBits is the size of each machine's RSA host key (default
	// 2048; real Ubuntu uses 3072, which costs ~0.4 s of CPU per machine).
	RSAHostKeyBits int
	// DiskBytes bounds an instance's writable layer when its LaunchSpec
	// does not (default 8 GiB, the catalogue's volume size); a full disk
	// fails writes with ENOSPC.
	DiskBytes int64
}

// Manager owns the layer store and every machine it created.
type Manager struct {
	opts     Options
	log      *slog.Logger
	base     string // the Manager's own directory: run-XXXX
	baseRoot string // the Debian base: the bottom layer of every machine
	mirror   string // the offline apt mirror served to machines
	madeDir  bool   // Options.Dir was created by us, remove it when empty
	mounted  bool   // base is our tmpfs

	mu        sync.Mutex
	closed    bool
	snapshots map[string]*snapshot
	machines  map[string]*Machine
	nextLayer int
}

// snapshot is a stack of layers over the Debian base; a seeded flavor has
// none (seeding the public catalogue stays free).
type snapshot struct {
	flavor   *Flavor
	layers   []*layer // oldest first
	reserved bool     // being written
}

// layer is an immutable tree captured from a machine's writable layer,
// shared by reference between snapshots and the machines created from
// them; removed when nothing refers to it.
type layer struct {
	dir  string
	refs int
}

// release drops references; layers nothing refers to are removed.
func (m *Manager) release(ls []*layer) {
	m.mu.Lock()
	var gone []string
	for _, l := range ls {
		l.refs--
		if l.refs == 0 {
			gone = append(gone, l.dir)
		}
	}
	m.mu.Unlock()
	for _, d := range gone {
		if err := os.RemoveAll(d); err != nil {
			m.log.Warn("remove layer", "dir", d, "err", err)
		}
	}
}

// NewManager checks the host can run machines and creates the state directory.
func NewManager(opts Options) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("ec2sim machines need root: they run in their own user, mount, PID and network namespaces over overlayfs (run as root, e.g. in a container or `sudo`)")
	}
	if _, err := os.Stat(nsenterPath); err != nil {
		return nil, fmt.Errorf("ec2sim machines need %s (Debian: apt-get install util-linux): %w", nsenterPath, err)
	}
	if opts.Cache == "" {
		opts.Cache = CacheDir
	}
	baseRoot := filepath.Join(BaseDir(opts.Cache), "rootfs")
	if _, err := os.Stat(filepath.Join(baseRoot, "etc/os-release")); err != nil {
		return nil, fmt.Errorf("ec2sim machines boot a Debian %s base that is not built yet (recipe %s, expected in %s): run `make setup` (once; it needs Debian's archive): %w", Suite, BaseRecipe().Digest(), BaseDir(opts.Cache), err)
	}
	mirror, err := filepath.EvalSymlinks(MirrorDir(opts.Cache))
	if err == nil {
		_, err = os.Stat(filepath.Join(mirror, "debian/dists", Suite, "Release"))
	}
	if err != nil {
		return nil, fmt.Errorf("ec2sim machines' offline apt mirror is not built yet (expected in %s): run `make setup`: %w", MirrorDir(opts.Cache), err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RSAHostKeyBits == 0 {
		opts.RSAHostKeyBits = 2048
	}
	if opts.DiskBytes == 0 {
		opts.DiskBytes = 8 << 30
	}
	if opts.DropProbability < 0 || opts.DropProbability > 1 {
		return nil, fmt.Errorf("drop probability %v is not between 0 and 1", opts.DropProbability)
	}
	dir := opts.Dir
	if dir == "" {
		dir = DefaultDir
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	m := &Manager{
		opts:      opts,
		log:       opts.Log,
		baseRoot:  baseRoot,
		mirror:    mirror,
		snapshots: map[string]*snapshot{},
		machines:  map[string]*Machine{},
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		m.madeDir = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	if err := checkRootOwned(dir); err != nil {
		return nil, err
	}
	reapStale(dir, m.log)
	m.base, err = os.MkdirTemp(dir, "run-")
	if errors.Is(err, os.ErrNotExist) {
		// Another simulator's Close removed the (then empty) directory.
		if err = os.MkdirAll(dir, 0o755); err == nil {
			m.base, err = os.MkdirTemp(dir, "run-")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create state directory in %s: %w", dir, err)
	}
	// Layers are thousands of small files: a tmpfs, with the trusted.*
	// extended attributes overlayfs keeps its markers in.
	if err := unix.Mount("amibake-ec2sim", m.base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		_ = os.Remove(m.base)
		return nil, fmt.Errorf("mount a tmpfs on %s: %w", m.base, err)
	}
	m.mounted = true
	if err := os.WriteFile(filepath.Join(m.base, "owner"), []byte(selfIdentity()), 0o644); err != nil {
		m.removeDirs()
		return nil, fmt.Errorf("write %s/owner: %w", m.base, err)
	}
	// instances/ is traversable: each machine's init starts there as the
	// machines' root (host id IDShift) and pivots into its overlay.
	for d, mode := range map[string]os.FileMode{filepath.Join(m.base, "layers"): 0o700, filepath.Join(m.base, "instances"): 0o711} {
		if err := os.Mkdir(d, mode); err == nil {
			err = os.Chmod(d, mode)
		}
		if err != nil {
			m.removeDirs()
			return nil, fmt.Errorf("create state directory %s: %w", d, err)
		}
	}
	if opts.RSAHostKeyBits == 2048 {
		rsaPoolOnce.Do(func() { go fillRSAPool() })
	}
	return m, nil
}

// selfIdentity names this process across PID reuse: pid and start time.
func selfIdentity() string { return procIdentity(os.Getpid()) }

func procIdentity(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d %s\n", pid, f[19])
}

// reapStale removes what a simulator that was killed left behind (its
// machines died with it, by Pdeathsig and PID namespaces): every mount
// under its directory (overlays, disks, its tmpfs) and the directory,
// when its owner process is gone.
func reapStale(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "run-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		owner, err := os.ReadFile(filepath.Join(p, "owner"))
		if err != nil {
			// No owner yet: a Manager starting right now, unless old.
			if fi, err := os.Stat(p); err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		} else {
			var pid int
			if _, err := fmt.Sscan(string(owner), &pid); err == nil && procIdentity(pid) == string(owner) {
				continue
			}
		}
		log.Info("removing state left by a dead simulator", "dir", p)
		unmountUnder(p)
		if err := os.RemoveAll(p); err != nil {
			log.Warn("remove stale state", "dir", p, "err", err)
		}
	}
}

// unmountUnder detaches every mount at or below p, deepest first.
func unmountUnder(p string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], "\\040", " ")
		if mp == p || strings.HasPrefix(mp, p+"/") {
			mps = append(mps, mp)
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = unix.Unmount(mps[i], unix.MNT_DETACH)
	}
}

// checkRootOwned refuses a state directory another user could swap, or
// one the machines' init cannot traverse.
func checkRootOwned(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check state directory %s: %w", dir, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		// Each machine's init starts as the machines' root (an unprivileged
		// host id) and must traverse the path to its overlay root.
		if st.Uid != 0 || (fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0) || fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("state directory %s: %s must be owned by root, searchable by all and not writable by others (mode %v, uid %d); choose another Dir", dir, p, fi.Mode().Perm(), st.Uid)
		}
		if p == "/" {
			return nil
		}
	}
}

// RSA host keys take ~0.1-0.5 s of CPU each, too slow for the path from
// RunInstances to SSH: a process-wide pool keeps a few 2048-bit keys ready
// (an idle goroutine once full; it holds no process or file).
var (
	rsaPoolOnce sync.Once
	rsaPool     = make(chan *rsa.PrivateKey, 4)
)

func fillRSAPool() {
	for {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return
		}
		rsaPool <- k
	}
}

func (m *Manager) rsaKey() (*rsa.PrivateKey, error) {
	if m.opts.RSAHostKeyBits != 2048 {
		return rsa.GenerateKey(rand.Reader, m.opts.RSAHostKeyBits)
	}
	return <-rsaPool, nil
}

// Close stops every machine and removes every file the Manager created.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	machines := make([]*Machine, 0, len(m.machines))
	for _, mc := range m.machines {
		machines = append(machines, mc)
	}
	m.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, mc := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mc.Destroy(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := m.removeDirs(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (m *Manager) removeDirs() error {
	if m.mounted {
		unmountUnder(m.base)
		m.mounted = false
	}
	if err := os.RemoveAll(m.base); err != nil {
		return fmt.Errorf("remove state directory %s: %w", m.base, err)
	}
	if m.madeDir {
		// Only if empty: another simulator may be using it.
		_ = os.Remove(filepath.Dir(m.base))
	}
	return nil
}

func validID(kind, id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." {
		return fmt.Errorf("invalid %s id %q", kind, id)
	}
	return nil
}

// Flavor describes a seeded image: every one boots the Debian base; the
// flavor names it and its default login user (created by the machine's
// init at first boot, as cloud-init does).
type Flavor struct {
	Name string // e.g. "debian-12"
	User string // default login user: ubuntu, admin, or root
}

// SeedSnapshot registers a pristine image of the flavor, replacing any
// snapshot of that id. It costs nothing until an instance is created from it.
func (m *Manager) SeedSnapshot(snapshotID string, f Flavor) error {
	if err := validID("snapshot", snapshotID); err != nil {
		return err
	}
	if !validUser(f.User) {
		return fmt.Errorf("seed snapshot %s: invalid user name %q", snapshotID, f.User)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("seed snapshot: manager closed")
	}
	// Seeding is idempotent (a simulator reset seeds its catalogue again):
	// the id now names the pristine flavor, whatever it held before.
	old := m.snapshots[snapshotID]
	if old != nil && old.reserved {
		m.mu.Unlock()
		return fmt.Errorf("seed snapshot %s: being written", snapshotID)
	}
	m.snapshots[snapshotID] = &snapshot{flavor: &f}
	m.mu.Unlock()
	if old != nil {
		m.release(old.layers)
	}
	return nil
}

// CopySnapshot copies a snapshot under a new id: layers are immutable and
// shared by reference.
func (m *Manager) CopySnapshot(srcID, dstID string) error {
	if err := validID("snapshot", dstID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	src, ok := m.snapshots[srcID]
	if !ok || src.reserved {
		return fmt.Errorf("copy snapshot %s: not found", srcID)
	}
	if _, ok := m.snapshots[dstID]; ok {
		return fmt.Errorf("copy snapshot %s to %s: destination exists", srcID, dstID)
	}
	dst := &snapshot{flavor: src.flavor, layers: append([]*layer(nil), src.layers...)}
	for _, l := range dst.layers {
		l.refs++
	}
	m.snapshots[dstID] = dst
	return nil
}

// DeleteSnapshot removes a snapshot; machines and snapshots that share its
// layers keep them.
func (m *Manager) DeleteSnapshot(id string) error {
	m.mu.Lock()
	s, ok := m.snapshots[id]
	if ok && s.reserved {
		m.mu.Unlock()
		return fmt.Errorf("delete snapshot %s: being written", id)
	}
	delete(m.snapshots, id)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("delete snapshot %s: not found", id)
	}
	m.release(s.layers)
	return nil
}

func validUser(u string) bool {
	if u == "" || len(u) > 32 {
		return false
	}
	for i, r := range u {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}
