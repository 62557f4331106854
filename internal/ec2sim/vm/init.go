package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initArg0 marks a re-exec of the current binary as a machine's init (the
// re-exec pattern of container runtimes): the vm package's init() takes
// over before main runs.
const initArg0 = "amibake-vm-init"

func init() {
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		machineInit()
		os.Exit(0)
	}
}

// initConfig is what the simulator tells a machine's init, as the first
// line on the control socket (fd 3).
type initConfig struct {
	Root          string            // the overlay mount, a host path
	Hostname      string            // e.g. ip-127-0-0-5
	User          string            // default login user
	AuthorizedKey string            // authorized_keys line, may be ""
	HostKeys      map[string][]byte // file name under /etc/ssh → content
	FirstBoot     bool
	UserData      []byte // run on the first boot
}

// Messages from init to the simulator on the control socket.
const (
	msgReady    = "ready"
	msgReboot   = "reboot"
	msgPowerOff = "poweroff"
)

// machineInit is PID 1 of a machine, root of its user namespace (host
// ids IDShift+): it mounts the machine's kernel file systems, pivots into
// the overlay root, prepares the instance (cloud-init's part: hostname,
// host keys, default user), reports ready, runs the user data on the
// first boot, then reaps orphans and turns reboot/poweroff signals into
// requests. fd 3: control socket; fd 4: user data output (first boot).
func machineInit() {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "amibake init: %s: %v\n", what, err)
		os.Exit(1)
	}
	unix.CloseOnExec(3)
	ctl := os.NewFile(3, "ctl")
	rd := bufio.NewReader(ctl)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		fail("read configuration", err)
	}
	var cfg initConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		fail("parse configuration", err)
	}
	var udOut *os.File
	if cfg.FirstBoot && len(cfg.UserData) > 0 {
		unix.CloseOnExec(4)
		udOut = os.NewFile(4, "user-data-output")
	}
	if err := setupMounts(cfg.Root); err != nil {
		fail("mounts", err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		fail("hostname", err)
	}
	if err := prepareInstance(&cfg); err != nil {
		fail("prepare instance", err)
	}
	// Signals before ready: a reboot right after boot must not kill us.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGCHLD, unix.SIGHUP)
	var ctlMu sync.Mutex
	send := func(msg string) {
		ctlMu.Lock()
		defer ctlMu.Unlock()
		_, _ = ctl.WriteString(msg + "\n")
	}
	r := &reaper{waiting: map[int]chan unix.WaitStatus{}}
	if udOut != nil {
		writeStatus(false, nil)
		if err := r.startUserData(cfg.UserData, udOut); err != nil {
			fmt.Fprintf(udOut, "amibake-user-data-exit 1\n")
			udOut.Close()
			writeStatus(true, []string{err.Error()})
		}
	} else {
		writeStatus(true, nil)
	}
	send(msgReady)
	// A SIGCHLD dropped on a full channel would leave a zombie until the
	// next one: reap now and then as well.
	tick := time.NewTicker(10 * time.Second)
	for {
		var s os.Signal
		select {
		case s = <-sigs:
		case <-tick.C:
			r.reap()
			continue
		}
		switch s {
		case unix.SIGCHLD:
			r.reap()
		case unix.SIGTERM, unix.SIGINT:
			send(msgReboot)
		case unix.SIGUSR1, unix.SIGUSR2:
			send(msgPowerOff)
		}
	}
}

// setupMounts builds the machine's view: proc, a small /dev, devpts,
// /run, then pivot_root into the overlay; the host's tree is detached.
func setupMounts(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Mounts copied from the host's namespace are locked, and pivot_root
	// refuses a locked new root: bind the root onto itself, a mount of ours.
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind the root: %w", err)
	}
	at := func(p string) string { return filepath.Join(root, p) }
	// The overlay root's volatile directories are created by the base;
	// an image could have replaced them with symlinks: refuse that.
	for _, d := range []string{"proc", "dev", "run", "sys"} {
		var st unix.Stat_t
		if err := unix.Lstat(at(d), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			_ = os.Remove(at(d))
			if err := os.Mkdir(at(d), 0o755); err != nil {
				return fmt.Errorf("/%s is not a directory and cannot be made one: %w", d, err)
			}
		}
	}
	if err := unix.Mount("proc", at("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.Mount("tmpfs", at("dev"), "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := os.WriteFile(at("dev/"+n), nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+n, at("dev/"+n), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(at("dev/"+d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", at("dev/pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := unix.Mount("shm", at("dev/shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for n, t := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(t, at("dev/"+n)); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", at("run"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	for _, d := range []struct {
		p    string
		mode os.FileMode
	}{{"run/sshd", 0o755}, {"run/lock", 0o1777}, {"run/cloud-init", 0o755}, {"run/user", 0o755}} {
		if err := os.Mkdir(at(d.p), 0o755); err != nil {
			return err
		}
		if err := os.Chmod(at(d.p), d.mode.Perm()|map[bool]os.FileMode{true: os.ModeSticky}[d.mode&0o1000 != 0]); err != nil {
			return err
		}
	}
	// sysfs needs the network namespace to be ours, which it is; read-only.
	_ = unix.Mount("sysfs", at("sys"), "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's tree: %w", err)
	}
	return unix.Chdir("/")
}

// prepareInstance does what cloud-init does at boot: hostname and hosts,
// the instance's SSH host keys, and on the first boot the default user
// with the launch key and passwordless sudo.
func prepareInstance(cfg *initConfig) error {
	hosts := fmt.Sprintf("127.0.0.1 localhost\n127.0.1.1 %s\n# The simulator's offline apt mirror (this machine reaches nothing else).\n127.0.0.1 deb.debian.org security.debian.org\n::1 localhost ip6-localhost ip6-loopback\n", cfg.Hostname)
	if err := writeFileAtomic("/etc/hosts", []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic("/etc/hostname", []byte(cfg.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	if !cfg.FirstBoot {
		return nil
	}
	for name, data := range cfg.HostKeys {
		mode := os.FileMode(0o600)
		if strings.HasSuffix(name, ".pub") {
			mode = 0o644
		}
		if err := writeFileAtomic(filepath.Join("/etc/ssh", name), data, mode); err != nil {
			return err
		}
	}
	home := homeOf(cfg.User)
	if cfg.User != "root" {
		if err := exec.Command("/usr/bin/getent", "passwd", cfg.User).Run(); err != nil {
			out, err := exec.Command("/usr/sbin/useradd", "-m", "-U", "-s", "/bin/bash", "-G", "adm,sudo", "-c", cfg.User, cfg.User).CombinedOutput()
			if err != nil {
				return fmt.Errorf("useradd %s: %v: %s", cfg.User, err, out)
			}
		}
		rule := fmt.Sprintf("\n# User rules for %s\n%s ALL=(ALL) NOPASSWD:ALL\n\n", cfg.User, cfg.User)
		if err := writeFileAtomic("/etc/sudoers.d/90-cloud-init-users", []byte("# Created by cloud-init v. 22.4.2 on "+time.Now().UTC().Format(time.UnixDate)+"\n"+rule), 0o440); err != nil {
			return err
		}
	}
	if cfg.AuthorizedKey != "" {
		out, err := exec.Command("/usr/sbin/runuser", "-u", cfg.User, "--", "/bin/sh", "-c",
			`umask 077 && mkdir -p "$HOME/.ssh" && touch "$HOME/.ssh/authorized_keys" && (grep -qxF "$1" "$HOME/.ssh/authorized_keys" || printf '%s\n' "$1" >> "$HOME/.ssh/authorized_keys")`,
			"sh", cfg.AuthorizedKey).CombinedOutput()
		if err != nil {
			return fmt.Errorf("authorize the launch key for %s in %s: %v: %s", cfg.User, home, err, out)
		}
	}
	return nil
}

func writeFileAtomic(p string, data []byte, mode os.FileMode) error {
	tmp := p + ".amibake-new"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// writeStatus writes cloud-init's status.json (and result.json once done)
// in cloud-init's formats.
func writeStatus(done bool, errs []string) {
	now := float64(time.Now().UnixNano()) / 1e9
	if errs == nil {
		errs = []string{}
	}
	stage := map[string]any{"errors": []string{}, "start": now, "finished": nil}
	if done {
		stage = map[string]any{"errors": errs, "start": now, "finished": now}
	}
	st := map[string]any{"v1": map[string]any{
		"datasource":    "DataSourceEc2Local",
		"init":          map[string]any{"errors": []string{}, "start": now, "finished": now},
		"init-local":    map[string]any{"errors": []string{}, "start": now, "finished": now},
		"modules-final": stage,
		"stage":         map[bool]any{true: nil, false: "modules-final"}[done],
	}}
	b, _ := json.MarshalIndent(st, "", " ")
	_ = writeFileAtomic("/run/cloud-init/status.json", b, 0o644)
	if done {
		res, _ := json.MarshalIndent(map[string]any{"v1": map[string]any{"datasource": "DataSourceEc2Local", "errors": errs}}, "", " ")
		_ = writeFileAtomic("/run/cloud-init/result.json", res, 0o644)
		_ = os.WriteFile("/var/lib/cloud/instance/boot-finished", []byte(fmt.Sprintf("%.2f - 22.4.2\n", now)), 0o644)
	}
}

// reaper waits for every child (PID 1 inherits orphans) and hands the
// status of the ones we started to whoever waits for them.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
}

func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		if ch, ok := r.waiting[pid]; ok {
			ch <- ws
			delete(r.waiting, pid)
		}
		r.mu.Unlock()
	}
}

// startUserData runs the user data as root, as cloud-init's scripts_user
// does: a script with #! runs as is, cloud-config is not a script.
func (r *reaper) startUserData(ud []byte, out *os.File) error {
	if err := os.MkdirAll("/var/lib/cloud/instance/scripts", 0o700); err != nil {
		return err
	}
	if err := os.WriteFile("/var/lib/cloud/instance/user-data.txt", ud, 0o600); err != nil {
		return err
	}
	s := string(ud)
	first := strings.SplitN(s, "\n", 2)[0]
	if strings.HasPrefix(first, "#cloud-config") || strings.HasPrefix(first, "#include") || strings.HasPrefix(first, "#cloud-boothook") || strings.HasPrefix(first, "Content-Type:") {
		fmt.Fprintf(out, "user data is cloud-config, not a script: nothing to run\namibake-user-data-exit 0\n")
		out.Close()
		writeStatus(true, nil)
		return nil
	}
	script := "/var/lib/cloud/instance/scripts/part-001"
	if err := os.WriteFile(script, ud, 0o700); err != nil {
		return err
	}
	argv := []string{script}
	if !strings.HasPrefix(s, "#!") {
		argv = []string{"/bin/sh", script}
	}
	devnull, err := os.Open("/dev/null")
	if err != nil {
		return err
	}
	defer devnull.Close()
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8"},
		Files: []*os.File{devnull, out, out},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return err
	}
	r.waiting[p.Pid] = ch
	go func() {
		ws := <-ch
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		fmt.Fprintf(out, "amibake-user-data-exit %d\n", code)
		out.Close()
		var errs []string
		if code != 0 {
			errs = []string{fmt.Sprintf("('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))")}
		}
		writeStatus(true, errs)
	}()
	return nil
}
