package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Top-level directories that belong to the machine, not the image: they are
// root-owned (the instance user cannot swap them for symlinks) and start
// empty on every boot, like devtmpfs, procfs and the /run tmpfs.
var volatileTop = map[string]bool{"dev": true, "proc": true, "run": true}

type copyOpts struct {
	// linkAll hard-links every regular file: for immutable snapshot trees.
	linkAll bool
	// linkRootOwned hard-links root-owned files (busybox): the instance
	// user can neither write nor chmod them, so sharing is safe.
	linkRootOwned bool
	// uid, when non-zero, becomes the owner of everything not owned by root.
	uid uint32
}

// copyTree copies a root filesystem; dst itself is created root-owned 0755,
// as sshd's ChrootDirectory requires. It never follows symlinks in src and
// creates everything in dst with O_EXCL/Mkdir, so a hostile tree cannot
// redirect writes outside dst.
func copyTree(src, dst string, o copyOpts) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if volatileTop[e.Name()] {
			if err := mkdirOwned(d, 0o755, 0); err != nil {
				return err
			}
			continue
		}
		if err := copyEntry(s, d, o); err != nil {
			return err
		}
	}
	return nil
}

func copyEntry(src, dst string, o copyOpts) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := st.Uid, st.Gid
	if o.uid != 0 && uid != 0 {
		uid, gid = o.uid, o.uid
	}
	switch fi.Mode().Type() {
	case os.ModeDir:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := copyEntry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), o); err != nil {
				return err
			}
		}
		if err := os.Lchown(dst, int(uid), int(gid)); err != nil {
			return err
		}
		return os.Chmod(dst, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid))
	case os.ModeSymlink:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return os.Lchown(dst, int(uid), int(gid))
	case 0:
		if o.linkAll || (o.linkRootOwned && st.Uid == 0) {
			if err := os.Link(src, dst); err == nil {
				return nil
			}
		}
		return copyFile(src, dst, fi.Mode(), uid, gid)
	default:
		// Sockets, fifos and device nodes are not part of an image.
		return nil
	}
}

func copyFile(src, dst string, mode os.FileMode, uid, gid uint32) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chown(int(uid), int(gid)); err != nil {
		out.Close()
		return err
	}
	// After chown: chown clears set-id bits.
	if err := out.Chmod(mode & (os.ModePerm | os.ModeSticky | os.ModeSetgid | os.ModeSetuid)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func mkdirOwned(p string, mode os.FileMode, uid uint32) error {
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	if err := os.Lchown(p, int(uid), int(uid)); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// Scripts installed in every root filesystem. They run under busybox ash.
const (
	sudoScript = `#!/bin/sh
# sudo for a simulated instance: the login user already owns the instance's
# files and there is nothing more to gain, so run the command as is. A
# missing command fails here, inside the instance ("apt-get: not found").
while [ $# -gt 0 ]; do
	case $1 in
	--) shift; break ;;
	-u|-g|-p|-C|-U|-D|-r|-t|-T|-h) shift; [ $# -gt 0 ] && shift ;;
	-?*) shift ;;
	*) break ;;
	esac
done
while [ $# -gt 0 ]; do
	case $1 in
	[A-Za-z_]*=*) export "$1"; shift ;;
	*) break ;;
	esac
done
[ $# -eq 0 ] && exec /bin/sh -l
# "sudo su [-] [-c CMD]": busybox's su would ask for a password.
if [ "$1" = su ]; then
	shift
	cmd=
	while [ $# -gt 0 ]; do
		case $1 in
		-c|--command) shift; cmd=$1 ;;
		-s|--shell) shift ;;
		esac
		[ $# -gt 0 ] && shift
	done
	[ -n "$cmd" ] && exec /bin/sh -c "$cmd"
	exec /bin/sh -l
fi
exec "$@"
`
	// A real reboot(2) would reboot the machine running the simulator:
	// ask the simulator instead, which ends every session like a reboot.
	rebootScript = `#!/bin/sh
echo reboot > /run/amibake/ctl
exec sleep 600
`
	poweroffScript = `#!/bin/sh
echo poweroff > /run/amibake/ctl
exec sleep 600
`
	shutdownScript = `#!/bin/sh
action=poweroff
for a in "$@"; do
	case $a in
	-c|--cancel) exit 0 ;;
	-r|--reboot) action=reboot ;;
	esac
done
echo $action > /run/amibake/ctl
exec sleep 600
`
	bashScript = `#!/bin/sh
# busybox has no bash; its ash runs most provisioning scripts.
exec /bin/sh "$@"
`
	// The login shell while dropped connections are injected: asks the
	// simulator whether to drop this session and, if so, kills the
	// connection (our parent, the session's sshd) before the exit status.
	loginShellScript = `#!/bin/sh
[ "$1" = -c ] || exec /bin/sh -l
d=0
f=/run/amibake/s.$$
if mkfifo -m 600 "$f" 2>/dev/null; then
	exec 3<>"$f"
	echo "session $$" > /run/amibake/ctl
	read -r -t 5 d <&3 || d=0
	exec 3<&-
	rm -f "$f"
fi
[ "$d" = 0 ] && exec /bin/sh -c "$2"
exec 4<&0
/bin/sh -c "$2" <&4 &
c=$!
(sleep "$d"; kill -9 $c) 2>/dev/null &
t=$!
wait $c
kill -9 $t $c 2>/dev/null
kill -9 $PPID
`
	runUserDataScript = `#!/bin/sh
f=/var/lib/cloud/instance/user-data.txt
cd "$HOME" 2>/dev/null || cd /
case $(head -c 2 "$f") in
'#!') exec "$f" ;;
esac
case $(head -n 1 "$f") in
'#cloud-config'*|'#include'*|'#cloud-boothook'*|'Content-Type:'*)
	echo "user data is cloud-config, not a script: nothing to run"; exit 0 ;;
esac
exec /bin/sh "$f"
`
	// PID 1 of a machine (see setupScript): reaps orphans and turns the
	// signals busybox's halt (USR1), poweroff (USR2) and reboot (TERM) send
	// to init into requests to the simulator.
	initScript = `trap 'echo reboot > /run/amibake/ctl' TERM INT
trap 'echo poweroff > /run/amibake/ctl' USR1 USR2
while :; do
	sleep 86400 &
	s=$!
	wait $s
	kill $s 2>/dev/null
done
`
	// The remote end of the legacy scp protocol ("scp -t DIR" to upload,
	// "scp -f PATH" to download), which Packer's file transfer speaks;
	// OpenSSH's scp speaks SFTP by default and needs none of this.
	scpScript = `#!/bin/sh
set -f
mode= recursive=
while [ $# -gt 0 ]; do
	case $1 in
	--) shift; break ;;
	-*)
		case $1 in *t*) mode=sink ;; esac
		case $1 in *f*) mode=source ;; esac
		case $1 in *r*) recursive=1 ;; esac
		shift ;;
	*) break ;;
	esac
done
ack() { printf '\0'; }
warn() { printf '\001scp: %s\n' "$1"; }
getack() {
	a=$(busybox dd bs=1 count=1 2>/dev/null | busybox od -An -tx1)
	[ "$(echo $a)" = 00 ]
}
perm4() { p=$(busybox stat -c %a "$1"); while [ ${#p} -lt 4 ]; do p=0$p; done; echo $p; }
sendfile() {
	printf 'C%s %s %s\n' "$(perm4 "$1")" "$(busybox stat -c %s "$1")" "$(basename "$1")"
	getack || exit 1
	cat "$1"
	ack
	getack || exit 1
}
senddir() {
	printf 'D%s 0 %s\n' "$(perm4 "$1")" "$(basename "$1")"
	getack || exit 1
	for e in "$1"/* "$1"/.*; do
		case ${e##*/} in .|..) continue ;; esac
		if [ -d "$e" ]; then senddir "$e"; elif [ -f "$e" ]; then sendfile "$e"; fi
	done
	printf 'E\n'
	getack || exit 1
}
if [ "$mode" = source ]; then
	getack || exit 1
	for f in "$@"; do
		if [ -d "$f" ] && [ -n "$recursive" ]; then senddir "$f"
		elif [ -f "$f" ]; then sendfile "$f"
		else warn "$f: No such file or directory"
		fi
	done
	exit 0
fi
[ "$mode" = sink ] || { echo "usage: scp -t DIR | scp -f PATH (remote end only)" >&2; exit 1; }
target=${1:-.}
cur=$target
fresh=
[ -d "$target" ] || fresh=1
ack
while IFS= read -r line; do
	case $line in
	C*|D*)
		set -- $line
		perm=${1#?}
		name=${line#* * }
		case $name in */*|..|.) warn "$name: invalid name"; exit 1 ;; esac
		if [ -n "$fresh" ] && [ "$cur" = "$target" ]; then dest=$target; else dest=$cur/$name; fi
		;;
	esac
	case $line in
	C*)
		ack
		busybox dd of="$dest" bs=65536 count="$2" iflag=count_bytes,fullblock 2>/dev/null || { warn "$dest: write failed"; exit 1; }
		chmod "$perm" "$dest"
		busybox dd bs=1 count=1 of=/dev/null 2>/dev/null
		ack ;;
	D*)
		mkdir -p "$dest" && chmod "$perm" "$dest" || { warn "$dest: cannot create directory"; exit 1; }
		cur=$dest fresh=
		ack ;;
	E*)
		cur=$(dirname "$cur")
		ack ;;
	T*)
		ack ;;
	*)
		warn "protocol error: $line"; exit 1 ;;
	esac
done
`
	profileScript = `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
`
)

var scripts = map[string]string{
	"usr/bin/sudo":                  sudoScript,
	"usr/bin/reboot":                rebootScript,
	"usr/bin/poweroff":              poweroffScript,
	"usr/bin/halt":                  poweroffScript,
	"usr/bin/shutdown":              shutdownScript,
	"usr/bin/scp":                   scpScript,
	"usr/bin/bash":                  bashScript,
	"usr/lib/amibake/login-shell":   loginShellScript,
	"usr/lib/amibake/run-user-data": runUserDataScript,
	"usr/lib/amibake/init":          initScript,
	"etc/profile":                   profileScript,
}

func homeOf(user string) string {
	if user == "root" {
		return "/root"
	}
	return "/home/" + user
}

// buildBase creates a pristine root filesystem for a flavor: busybox with
// every applet, merged /usr like current distributions, the scripts above.
func (m *Manager) buildBase(dst string, f *Flavor, uid uint32) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return err
	}
	dirs := []struct {
		p    string
		mode os.FileMode
	}{
		{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/lib", 0o755}, {"usr/lib/amibake", 0o755},
		{"usr/local", 0o755}, {"usr/local/bin", 0o755}, {"usr/local/sbin", 0o755}, {"usr/share", 0o755},
		{"etc", 0o755}, {"home", 0o755}, {"root", 0o700}, {"opt", 0o755}, {"srv", 0o755}, {"mnt", 0o755},
		{"tmp", 0o1777}, {"var", 0o755}, {"var/tmp", 0o1777}, {"var/log", 0o755}, {"var/lib", 0o755},
		{"var/lib/cloud", 0o755}, {"var/lib/cloud/instance", 0o700},
	}
	if f.User != "root" {
		dirs = append(dirs, struct {
			p    string
			mode os.FileMode
		}{strings.TrimPrefix(homeOf(f.User), "/"), 0o750})
	}
	for _, d := range dirs {
		if err := mkdirOwned(filepath.Join(dst, d.p), d.mode.Perm(), uid); err != nil {
			return err
		}
		if d.mode&0o1000 != 0 {
			if err := os.Chmod(filepath.Join(dst, d.p), d.mode.Perm()|os.ModeSticky); err != nil {
				return err
			}
		}
	}
	for top := range volatileTop {
		if err := mkdirOwned(filepath.Join(dst, top), 0o755, 0); err != nil {
			return err
		}
	}
	for _, l := range []struct{ name, target string }{{"bin", "usr/bin"}, {"sbin", "usr/bin"}, {"usr/sbin", "bin"}, {"lib", "usr/lib"}} {
		if err := os.Symlink(l.target, filepath.Join(dst, l.name)); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(dst, l.name), int(uid), int(uid)); err != nil {
			return err
		}
	}
	// busybox stays root-owned: shared by hard link between all machines.
	if err := os.Link(filepath.Join(m.base, "busybox"), filepath.Join(dst, "usr/bin/busybox")); err != nil {
		if err := copyFile(filepath.Join(m.base, "busybox"), filepath.Join(dst, "usr/bin/busybox"), 0o755, 0, 0); err != nil {
			return err
		}
	}
	files := map[string]string{}
	for p, s := range scripts {
		files[p] = s
	}
	files["etc/os-release"] = f.OSRelease
	files["etc/passwd"] = passwdFor(f.User, uid)
	files["etc/group"] = groupFor(f.User, uid)
	files["etc/shells"] = "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n"
	files["etc/hosts"] = "127.0.0.1 localhost\n"
	files["etc/amibake-flavor"] = f.Name + "\n"
	for p, s := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(s, "#!") {
			mode = 0o755
		}
		if err := writeNew(filepath.Join(dst, p), []byte(s), mode, uid); err != nil {
			return err
		}
	}
	seen := map[string]bool{"busybox": true}
	for p := range scripts {
		seen[path.Base(p)] = true
	}
	for _, a := range m.applets {
		name := path.Base(a)
		if seen[name] {
			continue
		}
		seen[name] = true
		p := filepath.Join(dst, "usr/bin", name)
		if err := os.Symlink("busybox", p); err != nil {
			return err
		}
		if err := os.Lchown(p, int(uid), int(uid)); err != nil {
			return err
		}
	}
	return nil
}

func passwdFor(user string, uid uint32) string {
	var b strings.Builder
	if user != "root" {
		b.WriteString("root:x:0:0:root:/root:/bin/sh\n")
	}
	b.WriteString("daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
	b.WriteString("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
	fmt.Fprintf(&b, "%s:x:%d:%d:%s:%s:/bin/sh\n", user, uid, uid, user, homeOf(user))
	return b.String()
}

func groupFor(user string, uid uint32) string {
	var b strings.Builder
	if user != "root" {
		b.WriteString("root:x:0:\n")
	}
	b.WriteString("nogroup:x:65534:\n")
	fmt.Fprintf(&b, "%s:x:%d:\n", user, uid)
	return b.String()
}

func writeNew(p string, data []byte, mode os.FileMode, uid uint32) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chown(int(uid), int(uid)); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// inRoot resolves rel inside root the way the instance would see it:
// symlinks planted by the instance user cannot lead outside its root.
func inRoot(root, rel string, flags int, mode uint32) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

func readInRoot(root, rel string) ([]byte, error) {
	f, err := inRoot(root, rel, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// writeInRoot replaces a file inside an instance's root, creating missing
// parent directories owned by uid.
func writeInRoot(root, rel string, data []byte, mode os.FileMode, uid uint32) error {
	if err := mkdirAllInRoot(root, path.Dir(rel), uid); err != nil {
		return err
	}
	f, err := inRoot(root, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chown(int(uid), int(uid)); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mkdirAllInRoot(root, rel string, uid uint32) error {
	if rel == "." || rel == "/" || rel == "" {
		return nil
	}
	if err := mkdirAllInRoot(root, path.Dir(rel), uid); err != nil {
		return err
	}
	parent, err := inRoot(root, path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer parent.Close()
	name := path.Base(rel)
	err = unix.Mkdirat(int(parent.Fd()), name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: filepath.Join(root, rel), Err: err}
	}
	return unix.Fchownat(int(parent.Fd()), name, int(uid), int(uid), unix.AT_SYMLINK_NOFOLLOW)
}

// setUserEntry points the user's passwd and group entries at the machine's
// uid, keeping whatever else the image's files say.
func setUserEntry(root, user string, uid uint32) error {
	for _, db := range []struct{ rel, line string }{
		{"etc/passwd", fmt.Sprintf("%s:x:%d:%d:%s:%s:/bin/sh", user, uid, uid, user, homeOf(user))},
		{"etc/group", fmt.Sprintf("%s:x:%d:", user, uid)},
	} {
		old, err := readInRoot(root, db.rel)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read /%s: %w", db.rel, err)
		}
		var out []string
		replaced := false
		for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
			if l == "" {
				continue
			}
			fields := strings.Split(l, ":")
			if fields[0] == user {
				if replaced {
					continue
				}
				if db.rel == "etc/passwd" && len(fields) >= 7 {
					fields[2], fields[3] = fmt.Sprint(uid), fmt.Sprint(uid)
					l = strings.Join(fields, ":")
				} else if len(fields) >= 3 {
					fields[2] = fmt.Sprint(uid)
					l = strings.Join(fields, ":")
				} else {
					l = db.line
				}
				replaced = true
			}
			out = append(out, l)
		}
		if !replaced {
			out = append(out, db.line)
		}
		if err := writeInRoot(root, db.rel, []byte(strings.Join(out, "\n")+"\n"), 0o644, uid); err != nil {
			return fmt.Errorf("write /%s: %w", db.rel, err)
		}
	}
	return mkdirAllInRoot(root, strings.TrimPrefix(homeOf(user), "/"), uid)
}

// makeDev fills the machine's /dev (root-owned, recreated on every create).
func makeDev(root string) error {
	dev := filepath.Join(root, "dev")
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		p := filepath.Join(dev, d.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for _, d := range []string{"shm", "pts"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return os.Chmod(filepath.Join(dev, "shm"), 0o777|os.ModeSticky)
}
