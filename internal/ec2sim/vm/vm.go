// Package vm turns simulated EC2 instances into real SSH hosts: each running
// machine is Debian's OpenSSH sshd, chrooted into a per-instance root
// filesystem built from busybox-static, in its own mount, PID and UTS
// namespaces. Commands run for real but can never touch the host: sessions run
// under a per-instance non-zero uid and only see the instance's files.
//
// Layout under Options.Dir (default /var/lib/amibake-ec2sim):
//
//	run-XXXX/              one per Manager, a tmpfs, removed by Close
//	  owner                pid and start time, so a later Manager can reap it
//	  snapshots/<id>/      immutable root filesystem trees
//	  instances/<id>/ctl/  sshd_config, host keys, authorized_keys, passwd
//	  instances/<id>/root/ the chroot (root-owned, 0755, contents owned by the instance uid)
//
// What sshd needs, learned the hard way:
//   - ChrootDirectory: every path component root-owned and not group- or
//     world-writable (so not under /tmp); the login shell must exist inside.
//   - The login user is looked up in the host's passwd: each machine's sshd
//     runs in a mount namespace where generated passwd/group/shadow files are
//     bind-mounted over /etc, so the host's files are never touched.
//   - AuthorizedKeysFile is read with the user's uid: mode 0644, StrictModes no.
//   - A missing /run/sshd (privilege separation) is fatal: each namespace
//     mounts its own small tmpfs on /run.
//   - With ChrootDirectory sshd does not check that the shell exists on the
//     host, so the login shell can be a script inside the root.
//   - Debian's busybox runs its own applets before PATH (reboot, poweroff,
//     halt, su): a script of the same name cannot shadow them. busybox's
//     reboot signals PID 1, so PID 1 of each machine is an init running as
//     the instance user, which turns those signals into requests to us.
//   - OpenSSH 9.2's default PubkeyAcceptedAlgorithms refuses ssh-rsa (SHA-1):
//     RSA keys work only through rsa-sha2-256/512.
//   - sshd -r (no re-exec per connection) saves ~50 ms of dynamic linking.
package vm

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binaries the machines are made of. Variables so that a test could point
// them elsewhere; they must be root-owned like everything else sshd trusts.
var (
	sshdPath    = "/usr/sbin/sshd"
	busyboxPath = "/bin/busybox"
)

// DefaultDir is where machines live when Options.Dir is empty. It cannot be
// under /tmp: sshd refuses a ChrootDirectory with a world-writable component.
const DefaultDir = "/var/lib/amibake-ec2sim"

// Options configures a Manager.
type Options struct {
	// Dir holds the per-Manager state directory. Every component of its
	// path must be root-owned and not group- or world-writable.
	Dir string
	Log *slog.Logger
	// DropProbability is the chance that an exec session is dropped
	// mid-command (the SSH connection is killed before the exit status).
	DropProbability float64
	// Seed makes drop decisions reproducible (per machine, in session order).
	Seed int64
	// SSHStartDelay delays sshd's start after Boot (a slow SSH start).
	SSHStartDelay time.Duration
	// RSAHostKeyBits is the size of each machine's RSA host key (default
	// 2048; real Ubuntu uses 3072, which costs ~0.4 s of CPU per machine).
	RSAHostKeyBits int
}

// Manager owns the snapshot store and every machine it created.
type Manager struct {
	opts    Options
	log     *slog.Logger
	base    string // the Manager's own directory: run-XXXX
	madeDir bool   // Options.Dir was created by us, remove it when empty
	mounted bool   // base is our tmpfs
	applets []string

	mu        sync.Mutex
	closed    bool
	snapshots map[string]*snapshot
	machines  map[string]*Machine
	nextUID   uint32
}

// snapshot is either virtual (a seeded flavor, built on demand: seeding the
// public catalogue stays free) or a directory tree in the store.
type snapshot struct {
	flavor *Flavor
	dir    string
}

// NewManager checks the host can run machines and creates the state directory.
func NewManager(opts Options) (*Manager, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("ec2sim machines need root: sshd must chroot and switch users (run as root, e.g. in a container or `sudo`)")
	}
	for _, p := range []string{sshdPath, busyboxPath, "/usr/sbin/chroot"} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("ec2sim machines need %s (Debian: apt-get install openssh-server busybox-static coreutils): %w", p, err)
		}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RSAHostKeyBits == 0 {
		opts.RSAHostKeyBits = 2048
	}
	if opts.DropProbability < 0 || opts.DropProbability > 1 {
		return nil, fmt.Errorf("drop probability %v is not between 0 and 1", opts.DropProbability)
	}
	dir := opts.Dir
	if dir == "" {
		dir = DefaultDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	m := &Manager{
		opts:      opts,
		log:       opts.Log,
		snapshots: map[string]*snapshot{},
		machines:  map[string]*Machine{},
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		m.madeDir = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	if err := checkChrootable(dir); err != nil {
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
	// Root filesystems are thousands of tiny files: on a tmpfs creating one
	// takes milliseconds, on a virtual disk's ext4 up to seconds.
	if err := unix.Mount("amibake-ec2sim", m.base, "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		_ = os.Remove(m.base)
		return nil, fmt.Errorf("mount a tmpfs on %s: %w", m.base, err)
	}
	m.mounted = true
	if err := os.WriteFile(filepath.Join(m.base, "owner"), []byte(selfIdentity()), 0o644); err != nil {
		m.removeDirs()
		return nil, fmt.Errorf("write %s/owner: %w", m.base, err)
	}
	for _, d := range []string{m.base, filepath.Join(m.base, "snapshots"), filepath.Join(m.base, "instances")} {
		if err := os.MkdirAll(d, 0o755); err == nil {
			err = os.Chmod(d, 0o755)
		}
		if err != nil {
			m.removeDirs()
			return nil, fmt.Errorf("create state directory %s: %w", d, err)
		}
	}
	m.applets, err = listApplets()
	if err == nil {
		// One copy per Manager, hard-linked into every root filesystem.
		err = copyFile(busyboxPath, filepath.Join(m.base, "busybox"), 0o755, 0, 0)
	}
	if err != nil {
		m.removeDirs()
		return nil, err
	}
	// A random uid range per Manager: simulators running side by side
	// (parallel test packages) never share a uid.
	var b [4]byte
	_, _ = rand.Read(b[:])
	m.nextUID = 2_000_000 + (binary.LittleEndian.Uint32(b[:])%100_000)*1000
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
// machines died with it): tmpfs mounts and directories whose owner process
// is gone.
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
		_ = unix.Unmount(p, unix.MNT_DETACH)
		if err := os.RemoveAll(p); err != nil {
			log.Warn("remove stale state", "dir", p, "err", err)
		}
	}
}

// checkChrootable reports the first path component sshd would refuse.
func checkChrootable(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check state directory %s: %w", dir, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("state directory %s: %s must be owned by root and not group- or world-writable (mode %v, uid %d) for sshd's ChrootDirectory; choose another Dir (not under /tmp)", dir, p, fi.Mode().Perm(), st.Uid)
		}
		if p == "/" {
			return nil
		}
	}
}

func listApplets() ([]string, error) {
	out, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	var applets []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "..") {
			continue
		}
		applets = append(applets, l)
	}
	return applets, nil
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

func (m *Manager) allocUID() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextUID++
	return m.nextUID
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
		if err := unix.Unmount(m.base, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", m.base, err)
		}
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

func (m *Manager) snapshotDir(id string) string {
	return filepath.Join(m.base, "snapshots", id)
}

func validID(kind, id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." {
		return fmt.Errorf("invalid %s id %q", kind, id)
	}
	return nil
}

// Flavor describes a seeded operating system image.
type Flavor struct {
	Name      string // e.g. "ubuntu-24.04"
	User      string // default login user: ubuntu, ec2-user, admin, or root
	OSRelease string // contents of /etc/os-release
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
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("seed snapshot: manager closed")
	}
	// Seeding is idempotent (a simulator reset seeds its catalogue again):
	// the id now names the pristine flavor, whatever it held before.
	old := m.snapshots[snapshotID]
	if old != nil && old.flavor == nil && old.dir == "" {
		return fmt.Errorf("seed snapshot %s: being written", snapshotID)
	}
	m.snapshots[snapshotID] = &snapshot{flavor: &f}
	if old != nil && old.dir != "" {
		if err := os.RemoveAll(old.dir); err != nil {
			return fmt.Errorf("seed snapshot %s: remove previous content: %w", snapshotID, err)
		}
	}
	return nil
}

// CopySnapshot copies a snapshot under a new id. Store trees are immutable,
// so regular files are hard-linked.
func (m *Manager) CopySnapshot(srcID, dstID string) error {
	if err := validID("snapshot", dstID); err != nil {
		return err
	}
	m.mu.Lock()
	src, ok := m.snapshots[srcID]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("copy snapshot %s: not found", srcID)
	}
	if _, ok := m.snapshots[dstID]; ok {
		m.mu.Unlock()
		return fmt.Errorf("copy snapshot %s to %s: destination exists", srcID, dstID)
	}
	dst := &snapshot{flavor: src.flavor}
	if src.dir != "" {
		dst.dir = m.snapshotDir(dstID)
	}
	// Reserve the id so that a concurrent copy cannot take it.
	m.snapshots[dstID] = &snapshot{}
	m.mu.Unlock()
	if dst.dir != "" {
		if err := copyTree(src.dir, dst.dir, copyOpts{linkAll: true}); err != nil {
			_ = os.RemoveAll(dst.dir)
			m.mu.Lock()
			delete(m.snapshots, dstID)
			m.mu.Unlock()
			return fmt.Errorf("copy snapshot %s to %s: %w", srcID, dstID, err)
		}
	}
	m.mu.Lock()
	m.snapshots[dstID] = dst
	m.mu.Unlock()
	return nil
}

// DeleteSnapshot removes a snapshot; machines created from it keep their files.
func (m *Manager) DeleteSnapshot(id string) error {
	m.mu.Lock()
	s, ok := m.snapshots[id]
	delete(m.snapshots, id)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("delete snapshot %s: not found", id)
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("delete snapshot %s: %w", id, err)
		}
	}
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
