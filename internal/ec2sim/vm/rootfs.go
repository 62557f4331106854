package vm

import (
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func homeOf(user string) string {
	if user == "root" {
		return "/root"
	}
	return "/home/" + user
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

// inRoot resolves rel inside root the way the instance would see it:
// symlinks planted in the instance cannot lead outside its root.
func inRoot(root, rel string, flags int, mode uint32) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

func readInRoot(root, rel string) ([]byte, error) {
	f, err := inRoot(root, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, os.ErrNotExist
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
