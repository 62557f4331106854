//go:build unix

package amazonebs

import "syscall"

const oNoFollow = syscall.O_NOFOLLOW
