package vm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The machines' Debian base and offline apt mirror are built once, at
// set-up (make setup), into CacheDir. The base is keyed by a digest of its
// recipe, so a changed recipe (packages, shims, version) builds a new one
// and an unchanged one is reused. The mirror is keyed by the base's digest
// and its package list; CacheDir/mirror points at the current one.

// CacheDir holds the built bases and mirrors: root-owned, outside any repo.
const CacheDir = "/var/cache/amibake"

// Suite is the Debian release the machines run.
const Suite = "bookworm"

// recipeVersion changes whenever the way the base is built changes.
const recipeVersion = "3"

// BasePackages is what a cloud image holds beyond apt's minimal system.
// systemd is there for its systemctl, which templates call: enable and
// disable work offline, as in a chroot; start fails as in a container,
// since systemd is not PID 1 (systemd-sysv, which would replace the
// reboot/poweroff shims, is not installed).
var BasePackages = []string{"systemd",
	"apt", "sudo", "bash", "coreutils", "openssh-server", "openssh-sftp-server", "openssh-client", "lsb-release",
	"python3", "curl", "ca-certificates", "procps", "less", "netbase",
	"iproute2", "init-system-helpers", "adduser", "passwd", "gzip", "tar",
}

// MirrorPackages is the pinned list the offline mirror serves (with every
// dependency): what examples/, the tutorial and common templates install.
var MirrorPackages = []string{
	"redis-server", "nginx", "curl", "git", "jq", "unzip", "python3-pip",
	"ansible", "htop", "ca-certificates", "vim-tiny", "wget", "rsync",
}

// sources are the archives set-up fetches from (Debian's, as apt on the
// host is configured); machines see one merged suite served locally.
var sources = []string{
	"deb http://deb.debian.org/debian bookworm main",
	"deb http://deb.debian.org/debian bookworm-updates main",
	"deb http://deb.debian.org/debian-security bookworm-security main",
}

// Files the set-up adds to the base; part of the recipe.
var baseFiles = map[string]struct {
	mode os.FileMode
	data string
}{
	// Debian's container images refuse service starts the same way: there
	// is no init system to start them under.
	"usr/sbin/policy-rc.d":                  {0o755, "#!/bin/sh\n# No init system here: refuse service starts, as Debian's container images do.\nexit 101\n"},
	"usr/sbin/reboot":                       {0o755, powerShim("TERM", "reboot")},
	"usr/sbin/poweroff":                     {0o755, powerShim("USR2", "poweroff")},
	"usr/sbin/halt":                         {0o755, powerShim("USR1", "halt")},
	"usr/sbin/shutdown":                     {0o755, shutdownShim},
	"usr/bin/cloud-init":                    {0o755, cloudInitShim},
	"etc/apt/sources.list":                  {0o644, "# The simulator's offline mirror (a subset of Debian " + Suite + ", fetched at set-up).\ndeb [trusted=yes] http://deb.debian.org/debian " + Suite + " main\n"},
	"etc/apt/apt.conf.d/90amibake":          {0o644, "Acquire::Languages \"none\";\nAcquire::Retries \"0\";\n"},
	"etc/ssh/sshd_config.d/50-amibake.conf": {0o644, "# sshd runs per connection (inetd mode), started by the simulator.\nPrintMotd no\nPrintLastLog no\nUseDNS no\n"},
	"etc/cloud/build.info":                  {0o644, "platform: amibake ec2sim\nsuite: " + Suite + "\n"},
}

func powerShim(sig, name string) string {
	return `#!/bin/sh
# There is no systemd: PID 1 is the simulator's init, which turns this
# signal into a ` + name + ` of the instance.
if [ "$(id -u)" != 0 ]; then
	echo "` + name + `: must be superuser." >&2
	exit 1
fi
case " $* " in *" --help "*) echo "usage: ` + name + ` [-f]"; exit 0 ;; esac
kill -` + sig + ` 1
# The machine goes down under us, as with a real ` + name + `.
sleep 600
`
}

const shutdownShim = `#!/bin/sh
# shutdown [-r|-h|-P|-H|-c] [TIME] [MESSAGE]: signals PID 1 (no systemd).
if [ "$(id -u)" != 0 ]; then
	echo "shutdown: must be superuser." >&2
	exit 1
fi
sig=USR2 when=now
for a in "$@"; do
	case $a in
	-c|--cancel) exit 0 ;;
	-r|--reboot) sig=TERM ;;
	-h|-P|-H|--halt|--poweroff) ;;
	now|+0) when=now ;;
	+[0-9]*) when=${a#+} ;;
	[0-9]*:[0-9]*) when=1 ;;
	esac
done
if [ "$when" != now ]; then
	echo "Shutdown scheduled in $when minute(s), use 'shutdown -c' to cancel."
	(sleep $((when * 60)); kill -$sig 1) >/dev/null 2>&1 &
	exit 0
fi
kill -$sig 1
sleep 600
`

// cloudInitShim is cloud-init's status command over the files the
// machine's init writes, in cloud-init's own formats.
const cloudInitShim = `#!/usr/bin/python3
"""cloud-init, as far as this machine has it: 'status' over the real status
files the machine's init writes (/run/cloud-init/status.json, result.json)."""
import json, os, sys, time

RUN = "/run/cloud-init"


def load(name):
    try:
        with open(os.path.join(RUN, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def state():
    res = load("result.json")
    st = load("status.json") or {}
    v1 = st.get("v1", {})
    if res is not None:
        errs = res.get("v1", {}).get("errors", [])
        return ("error" if errs else "done"), errs, v1
    if v1:
        return "running", [], v1
    return "not started", [], v1


def status(args):
    wait = "--wait" in args or "-w" in args
    long = "--long" in args or "-l" in args
    fmt = None
    for i, a in enumerate(args):
        if a == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
    s, errs, v1 = state()
    while wait and s in ("running", "not started"):
        sys.stdout.write(".")
        sys.stdout.flush()
        time.sleep(0.25)
        s, errs, v1 = state()
    if wait:
        sys.stdout.write("\n")
    if fmt in ("json", "yaml"):
        out = {"status": s, "extended_status": s, "errors": errs,
               "boot_status_code": "enabled-by-generator",
               "datasource": "ec2", "detail": v1.get("detail", "")}
        print(json.dumps(out, indent=2))
    else:
        print("status: " + s)
        if long:
            print("extended_status: " + s)
            print("boot_status_code: enabled-by-generator")
            fin = v1.get("modules-final", {}).get("finished")
            if fin:
                print("last_update: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(fin)))
            print("detail: " + (v1.get("detail") or "DataSourceEc2Local"))
            print("errors: " + (json.dumps(errs) if errs else "[]"))
    return 1 if s == "error" else 0


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print("usage: cloud-init status [--wait] [--long] [--format json]")
        return 0 if args else 2
    if args[0] == "--version":
        print("/usr/bin/cloud-init 22.4.2 (amibake)")
        return 0
    if args[0] == "status":
        return status(args[1:])
    sys.stderr.write("cloud-init: '%s' is not available on this machine (only 'status')\n" % args[0])
    return 2


sys.exit(main())
`

// Recipe is everything that determines the base's content.
type Recipe struct {
	Version  string            `json:"version"`
	Suite    string            `json:"suite"`
	Packages []string          `json:"packages"`
	Sources  []string          `json:"sources"`
	Files    map[string]string `json:"files"`
}

// BaseRecipe is the recipe this build of the simulator boots.
func BaseRecipe() Recipe {
	r := Recipe{Version: recipeVersion, Suite: Suite, Packages: append([]string(nil), BasePackages...), Sources: sources, Files: map[string]string{}}
	sort.Strings(r.Packages)
	for p, f := range baseFiles {
		r.Files[p] = fmt.Sprintf("%o:%s", f.mode, f.data)
	}
	return r
}

// Digest names the recipe: 16 hex digits of the SHA-256 of its JSON.
func (r Recipe) Digest() string {
	b, _ := json.Marshal(r)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// BaseDir is where the base of the current recipe lives.
func BaseDir(cache string) string {
	return filepath.Join(cache, "base-"+BaseRecipe().Digest())
}

// IDShift is where root of the machines' user namespaces lands on the host:
// ids 0-65535 inside are IDShift.. outside, owned by nobody on the host.
const (
	IDShift = 100000
	IDRange = 65536
)

// SetupOptions configures Setup.
type SetupOptions struct {
	Cache string // default CacheDir
	// Extra packages for the mirror, beyond MirrorPackages.
	Extra []string
	Out   io.Writer // progress
}

// Setup builds (or finds) the base and the mirror. Needs root and, when
// something must be built, Debian's archive.
func Setup(ctx context.Context, o SetupOptions) error {
	if o.Cache == "" {
		o.Cache = CacheDir
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if os.Geteuid() != 0 {
		return errors.New("set-up needs root (it builds a Debian root filesystem with mmdebstrap)")
	}
	if err := os.MkdirAll(o.Cache, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", o.Cache, err)
	}
	if err := os.Chmod(o.Cache, 0o700); err != nil {
		return err
	}
	start := time.Now()
	base, err := buildBase(ctx, o)
	if err != nil {
		return err
	}
	if err := buildMirror(ctx, o, base); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "setup: machines ready in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func buildBase(ctx context.Context, o SetupOptions) (string, error) {
	r := BaseRecipe()
	dir := filepath.Join(o.Cache, "base-"+r.Digest())
	if _, err := os.Stat(filepath.Join(dir, "rootfs", "etc", "os-release")); err == nil {
		fmt.Fprintf(o.Out, "setup: Debian %s base %s: cached (warm), nothing to build\n", Suite, r.Digest())
		return dir, nil
	}
	fmt.Fprintf(o.Out, "setup: Debian %s base %s: not cached (cold), building with mmdebstrap (about a minute)\n", Suite, r.Digest())
	t := time.Now()
	tmp := dir + ".tmp"
	rootfs := filepath.Join(tmp, "rootfs")
	marker := filepath.Join(tmp, "mmdebstrap.done")
	if _, err := os.Stat(marker); err == nil {
		fmt.Fprintf(o.Out, "setup: reusing the packages an interrupted set-up installed in %s\n", tmp)
	} else if err := debootstrap(ctx, o, r, tmp, rootfs); err != nil {
		return "", err
	} else if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(o.Out, "setup: base built in %s; adding the cloud-image files\n", time.Since(t).Round(time.Second))
	if err := customizeBase(rootfs); err != nil {
		return "", fmt.Errorf("customize the base: %w", err)
	}
	if err := shiftOwners(rootfs, IDShift); err != nil {
		return "", fmt.Errorf("shift the base's owners to the machines' id range: %w", err)
	}
	_ = os.Remove(marker)
	recipe, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "recipe.json"), recipe, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	fmt.Fprintf(o.Out, "setup: base ready at %s (%s)\n", dir, time.Since(t).Round(time.Second))
	return dir, nil
}

func debootstrap(ctx context.Context, o SetupOptions, r Recipe, tmp, rootfs string) error {
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	args := []string{"--mode=root", "--variant=apt", "--format=directory",
		"--include=" + strings.Join(r.Packages, ","),
		"--aptopt=Acquire::Retries \"3\"",
		Suite, rootfs}
	args = append(args, sources...)
	if err := runProgress(ctx, o.Out, "mmdebstrap", "mmdebstrap", args...); err != nil {
		return fmt.Errorf("build the Debian base with mmdebstrap: %w", err)
	}
	return nil
}

// customizeBase adds the shims and cloud-image settings to a fresh base
// (still owned by host ids; nothing in it has run yet).
func customizeBase(root string) error {
	for p, f := range baseFiles {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		_ = os.Remove(full)
		if err := os.WriteFile(full, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil {
			return err
		}
	}
	// Each instance gets its own host keys from the simulator.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		_ = os.Remove(k)
	}
	_ = os.RemoveAll(filepath.Join(root, "etc/apt/sources.list.d"))
	_ = os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755)
	// pam_loginuid cannot write /proc/self/loginuid in a user namespace
	// (as in any container): optional, as Debian's container images do.
	pam := filepath.Join(root, "etc/pam.d/sshd")
	if b, err := os.ReadFile(pam); err == nil {
		s := strings.ReplaceAll(string(b), "session    required     pam_loginuid.so", "session    optional     pam_loginuid.so")
		if err := os.WriteFile(pam, []byte(s), 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"var/lib/cloud/instance", "var/lib/cloud/scripts/per-boot", "run", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	_ = os.Chmod(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky)
	_ = os.Remove(filepath.Join(root, "etc/machine-id"))
	return os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444)
}

// shiftOwners adds shift to every owner and group in the tree (without
// following symlinks), keeping set-id bits that chown clears. Hard links
// are shifted once; ids already in the shifted range (an interrupted run)
// are left alone.
func shiftOwners(root string, shift uint32) error {
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		k := ino{st.Dev, st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		if st.Uid >= shift && st.Uid < shift+IDRange && st.Gid >= shift && st.Gid < shift+IDRange {
			return nil
		}
		if st.Uid >= IDRange || st.Gid >= IDRange {
			return fmt.Errorf("%s: owner %d:%d outside the machines' id range", p, st.Uid, st.Gid)
		}
		if err := unix.Lchown(p, int(st.Uid+shift), int(st.Gid+shift)); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			return unix.Chmod(p, st.Mode&0o7777)
		}
		return nil
	})
}

// MirrorDir is the current mirror (a symlink set-up maintains).
func MirrorDir(cache string) string { return filepath.Join(cache, "mirror") }

func buildMirror(ctx context.Context, o SetupOptions, base string) error {
	pkgs := append(append([]string(nil), MirrorPackages...), BasePackages...)
	pkgs = append(pkgs, o.Extra...)
	sort.Strings(pkgs)
	uniq := pkgs[:0]
	for i, p := range pkgs {
		if p == "" || (i > 0 && p == pkgs[i-1]) {
			continue
		}
		if strings.ContainsAny(p, " /\\\n\t'\"$`;&|") {
			return fmt.Errorf("mirror package %q: not a package name", p)
		}
		uniq = append(uniq, p)
	}
	pkgs = uniq
	h := sha256.Sum256([]byte(filepath.Base(base) + "\n" + strings.Join(pkgs, "\n")))
	name := "mirror-" + hex.EncodeToString(h[:8])
	dir := filepath.Join(o.Cache, name)
	link := MirrorDir(o.Cache)
	if _, err := os.Stat(filepath.Join(dir, "debian", "dists", Suite, "Release")); err == nil {
		fmt.Fprintf(o.Out, "setup: apt mirror %s (%d packages asked for): cached (warm)\n", name, len(pkgs))
		return setLink(link, name)
	}
	fmt.Fprintf(o.Out, "setup: apt mirror %s: not cached (cold), fetching %s and their dependencies with apt\n", name, strings.Join(pkgs, " "))
	t := time.Now()
	work := filepath.Join(o.Cache, "apt")
	for _, d := range []string{"lists/partial", "archives/partial"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(work, "sources.list"), []byte(strings.Join(sources, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	aptOpts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(work, "sources.list"),
		"-o", "Dir::Etc::SourceParts=/nonexistent",
		"-o", "Dir::State::Lists=" + filepath.Join(work, "lists"),
		"-o", "Dir::Cache=" + work,
		"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
		"-o", "Dir::State::Status=" + filepath.Join(base, "rootfs/var/lib/dpkg/status"),
		"-o", "APT::Architectures=amd64", "-o", "APT::Architecture=amd64",
		"-o", "Acquire::Languages=none", "-o", "Acquire::Retries=3",
		"-o", "APT::Sandbox::User=root",
		"-o", "DPkg::Lock::Timeout=600",
	}
	if err := runProgress(ctx, o.Out, "apt", "apt-get", append(append([]string{}, aptOpts...), "-q", "update")...); err != nil {
		return fmt.Errorf("apt-get update for the mirror: %w", err)
	}
	cmd := exec.CommandContext(ctx, "apt-cache", append(append([]string{}, aptOpts...), append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, pkgs...)...)...)
	cmd.Stderr = o.Out
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("apt-cache depends (a package of %s is not in Debian %s?): %w", strings.Join(pkgs, " "), Suite, err)
	}
	closure := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || l[0] == ' ' || l[0] == '<' {
			continue
		}
		closure[strings.TrimSpace(l)] = true
	}
	var all []string
	for p := range closure {
		all = append(all, p)
	}
	sort.Strings(all)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	pool := filepath.Join(tmp, "debian", "pool", "main")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "setup: downloading %d packages\n", len(all))
	// Reuse what an earlier mirror downloaded.
	prev, _ := filepath.Glob(filepath.Join(o.Cache, "mirror-*", "debian", "pool", "main", "*.deb"))
	for _, p := range prev {
		_ = os.Link(p, filepath.Join(pool, filepath.Base(p)))
	}
	dl := exec.CommandContext(ctx, "apt-get", append(append(append([]string{}, aptOpts...), "-q", "download"), all...)...)
	dl.Dir = pool
	if err := runCmd(dl, o.Out, "apt"); err != nil {
		return fmt.Errorf("apt-get download: %w", err)
	}
	// Older versions linked from a previous mirror but no longer wanted
	// would shadow nothing (apt picks the newest) but cost space: keep them.
	dists := filepath.Join(tmp, "debian", "dists", Suite, "main", "binary-amd64")
	if err := os.MkdirAll(dists, 0o755); err != nil {
		return err
	}
	scan := exec.CommandContext(ctx, "dpkg-scanpackages", "--multiversion", "pool/main", "/dev/null")
	scan.Dir = filepath.Join(tmp, "debian")
	var idx strings.Builder
	scan.Stdout = &idx
	scan.Stderr = io.Discard
	if err := scan.Run(); err != nil {
		return fmt.Errorf("dpkg-scanpackages: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dists, "Packages"), []byte(idx.String()), 0o644); err != nil {
		return err
	}
	if err := exec.CommandContext(ctx, "gzip", "-k9", filepath.Join(dists, "Packages")).Run(); err != nil {
		return fmt.Errorf("gzip Packages: %w", err)
	}
	rel := exec.CommandContext(ctx, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=Debian", "-o", "APT::FTPArchive::Release::Label=Debian",
		"-o", "APT::FTPArchive::Release::Suite="+Suite, "-o", "APT::FTPArchive::Release::Codename="+Suite,
		"-o", "APT::FTPArchive::Release::Architectures=amd64", "-o", "APT::FTPArchive::Release::Components=main",
		"release", ".")
	rel.Dir = filepath.Join(tmp, "debian", "dists", Suite)
	relOut, err := rel.Output()
	if err != nil {
		return fmt.Errorf("apt-ftparchive release: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "debian", "dists", Suite, "Release"), relOut, 0o644); err != nil {
		return err
	}
	if err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	}); err != nil {
		return err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "setup: apt mirror ready at %s: %d packages (%s)\n", dir, len(all), time.Since(t).Round(time.Second))
	return setLink(link, name)
}

func setLink(link, target string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

func runProgress(ctx context.Context, out io.Writer, tag, name string, args ...string) error {
	return runCmd(exec.CommandContext(ctx, name, args...), out, tag)
}

// runCmd runs a set-up command, prefixing its output lines with tag.
func runCmd(cmd *exec.Cmd, out io.Writer, tag string) error {
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			tail = append(tail, l)
			if len(tail) > 15 {
				tail = tail[1:]
			}
			fmt.Fprintf(out, "  %s: %s\n", tag, l)
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	err := cmd.Run()
	w.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args[:1], " "), err, strings.Join(tail, "\n"))
	}
	return nil
}
