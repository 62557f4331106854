//go:build !unix

package shelllocal

import "os/exec"

func killGroup(cmd *exec.Cmd) {}
