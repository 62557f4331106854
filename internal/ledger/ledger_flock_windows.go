//go:build windows

package ledger

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// On Windows a run's lock is LockFileEx on its journal: an exclusive lock
// of one byte far past the end of the file, taken without waiting. Windows
// byte-range locks are mandatory for the bytes they cover, so the lock
// covers a byte no record will reach: other processes still read the
// journal (amibake cleanup). Like flock, it belongs to the
// file handle (a second handle in the same process does not hold it) and
// Windows releases it when the process exits, however it exits.
const lockOffset = 1<<63 - 1

func tryLock(f *os.File) (bool, error) {
	ol := &windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION), errors.Is(err, windows.ERROR_IO_PENDING):
		return false, nil
	default:
		return false, err
	}
}

// locked reports whether another handle holds path's lock.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	ok, err := tryLock(f)
	return err == nil && !ok
}
