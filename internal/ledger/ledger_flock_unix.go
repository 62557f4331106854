//go:build unix

package ledger

import (
	"errors"
	"os"
	"syscall"
)

// On Unix (Linux, macOS, the BSDs) a run's lock is flock(2) on its
// journal: advisory, held by the open file description, released by the
// kernel when the process exits however it exits (SIGKILL included), so a
// dead run is never seen as running. Windows: ledger_flock_windows.go.

// tryLock takes an exclusive flock on f without waiting.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return false, err
		}
	}
}

// locked reports whether another open file description holds path's lock.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	ok, err := tryLock(f)
	return err == nil && !ok
}
