//go:build !unix && !windows

package ledger

import (
	"fmt"
	"os"
	"runtime"
)

// Without a lock, a running run would look dead and `cleanup --all` would
// remove its resources under it: refuse to journal rather than guess.
func tryLock(*os.File) (bool, error) {
	return false, fmt.Errorf("run journals need a file lock, which amibake has on Unix (flock) and Windows (LockFileEx) but not on %s", runtime.GOOS)
}

func locked(string) bool { return false }
