package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// captureLayer copies a machine's writable layer (the overlay's upper
// directory, which the machine may be changing right now) into dst, a new
// immutable layer. It never follows anything the machine controls: every
// name is opened relative to its parent's descriptor with O_NOFOLLOW (and
// openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a directory swapped for
// a symlink mid-copy fails the open instead of leading out. Overlay
// whiteouts (0:0 character devices) and opaque markers (trusted.overlay.*
// xattrs) are kept, so the layer stacks; other device nodes, fifos and
// sockets are not part of an image and are skipped.
//
// A NoReboot CreateImage on EC2 is crash-consistent and never fails for
// what the guest does meanwhile, so an entry that is removed or swapped
// for another kind between the directory read and its open is left out,
// as if the capture had read the directory a moment later.
func captureLayer(upper, dst string) error {
	src, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the writable layer: %w", err)
	}
	defer unix.Close(src)
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	d, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	if err := copyDirFD(src, d, "/", 0); err != nil {
		return err
	}
	return copyMeta(src, d)
}

const maxDepth = 256

// errVanished: the directory was removed after it was opened.
var errVanished = errors.New("directory removed during the capture")

// removedOrSwapped tells whether an open of an entry failed because the
// guest removed it or swapped it for a symlink (ELOOP under O_NOFOLLOW and
// RESOLVE_NO_SYMLINKS) or for a non-directory since it was looked at.
func removedOrSwapped(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

func openBeneath(dirfd int, name string, flags int) (int, error) {
	return unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

func copyDirFD(src, dst int, path string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: directories nested deeper than %d", path, maxDepth)
	}
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(dup), path)
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errVanished // getdents on a removed directory
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, name := range names {
		if name == "." || name == ".." || strings.ContainsRune(name, '/') {
			continue
		}
		p := path + name
		var st unix.Stat_t
		if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed while we copy: a live capture
			}
			return fmt.Errorf("stat %s: %w", p, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sfd, err := openBeneath(src, name, unix.O_RDONLY|unix.O_DIRECTORY)
			if err != nil {
				if removedOrSwapped(err) {
					continue
				}
				return fmt.Errorf("open %s: %w", p, err)
			}
			err = func() error {
				defer unix.Close(sfd)
				if err := unix.Mkdirat(dst, name, 0o700); err != nil {
					return fmt.Errorf("create %s: %w", p, err)
				}
				dfd, err := openBeneath(dst, name, unix.O_RDONLY|unix.O_DIRECTORY)
				if err != nil {
					return err
				}
				defer unix.Close(dfd)
				if err := copyDirFD(sfd, dfd, p+"/", depth+1); err != nil {
					return err
				}
				return copyMeta(sfd, dfd)
			}()
			if errors.Is(err, errVanished) {
				// Nothing was copied into it: readdir comes first.
				if err := unix.Unlinkat(dst, name, unix.AT_REMOVEDIR); err != nil {
					return fmt.Errorf("remove %s: %w", p, err)
				}
				continue
			}
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyRegFD(src, dst, name, p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			buf := make([]byte, 4096)
			n, err := unix.Readlinkat(src, name, buf)
			if err != nil {
				// EINVAL: no longer a symlink.
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
					continue
				}
				return fmt.Errorf("read link %s: %w", p, err)
			}
			if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
				return fmt.Errorf("create link %s: %w", p, err)
			}
			if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		case unix.S_IFCHR:
			// Only overlay whiteouts (0:0): a removed file stays removed.
			if st.Rdev != 0 {
				continue
			}
			if err := unix.Mknodat(dst, name, unix.S_IFCHR|0o000, 0); err != nil {
				return fmt.Errorf("create whiteout %s: %w", p, err)
			}
		default:
			// Block devices, fifos, sockets: not part of an image.
		}
	}
	return nil
}

func copyRegFD(srcDir, dstDir int, name, p string) error {
	sfd, err := openBeneath(srcDir, name, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		if removedOrSwapped(err) {
			return nil
		}
		return fmt.Errorf("open %s: %w", p, err)
	}
	in := os.NewFile(uintptr(sfd), p)
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // swapped for something else mid-copy
	}
	dfd, err := unix.Openat(dstDir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	out := os.NewFile(uintptr(dfd), p)
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s: %w", p, err)
	}
	return copyMeta(sfd, dfd)
}

// copyMeta copies owner, mode (after chown, which clears set-id bits) and
// extended attributes, overlay's opaque marker included.
func copyMeta(src, dst int) error {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	sz, err := unix.Flistxattr(src, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Flistxattr(src, buf)
	if err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		// Of overlay's own markers only opaque means something in a lower
		// layer; origin, impure and the like point into this machine's
		// overlay and are not part of the image.
		if name == "" || (strings.HasPrefix(name, "trusted.overlay.") && name != "trusted.overlay.opaque") {
			continue
		}
		vs, err := unix.Fgetxattr(src, name, nil)
		if err != nil || vs < 0 {
			continue
		}
		val := make([]byte, vs)
		vs, err = unix.Fgetxattr(src, name, val)
		if err != nil {
			continue
		}
		if err := unix.Fsetxattr(dst, name, val[:vs], 0); err != nil {
			return fmt.Errorf("copy attribute %s: %w", name, err)
		}
	}
	return nil
}
