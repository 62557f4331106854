// Package communicator defines how provisioners reach a machine being built.
// The SSH implementation lives in internal/communicator/ssh; provisioner
// tests may use any other implementation of Communicator.
package communicator

import (
	"context"
	"io"
	"os"
)

// Cmd is one remote command. Stdout and Stderr receive the output as it
// arrives; ExitStatus is set when Start's returned error is nil.
type Cmd struct {
	Command string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// PTY asks for a pseudo-terminal (ssh_pty).
	PTY bool
}

// Result is what a finished command reports.
type Result struct {
	ExitStatus int
	// Disconnected is true when the connection dropped before the command
	// reported an exit status (a reboot, a dropped link). ExitStatus is
	// then meaningless.
	Disconnected bool
}

// Communicator runs commands on, and moves files to and from, a machine.
// All methods are safe for use by one provisioner at a time and honour ctx.
type Communicator interface {
	// Run runs cmd to completion. A non-zero exit status is not an error;
	// a transport failure is.
	Run(ctx context.Context, cmd *Cmd) (Result, error)
	// Upload writes r to the remote path dst with mode perm (fi may be nil).
	Upload(ctx context.Context, dst string, r io.Reader, fi os.FileInfo) error
	// UploadDir copies the local directory src to dst, following Packer's
	// rules: with a trailing slash on src its contents go into dst, without
	// one src itself is created inside dst.
	UploadDir(ctx context.Context, dst, src string, exclude []string) error
	// Download copies the remote file src into w.
	Download(ctx context.Context, src string, w io.Writer) error
	// DownloadDir copies the remote directory src into the local dst, with
	// the same trailing-slash rules as UploadDir.
	DownloadDir(ctx context.Context, src, dst string, exclude []string) error
	// Reconnect drops the current connection and dials again, waiting for
	// the machine to come back (after a reboot or an expected disconnect).
	Reconnect(ctx context.Context) error
}

// SSHEndpoint is how a communicator reaches its machine over SSH.
type SSHEndpoint struct {
	Host string
	Port int
	User string
	// HostKey is the host key the communicator's connection accepted, in
	// authorized_keys form ("ssh-ed25519 AAAA...").
	HostKey string
	// HostKeyChecked is false when the key was accepted unchecked
	// (ssh_host_key_checking = "off").
	HostKeyChecked bool
	// Bastion is true when the machine is reached through a jump host.
	Bastion bool
}

// SSHEndpointer is implemented by communicators that can tell provisioners
// opening their own SSH connections (ansible) where the machine is and
// which host key they verified.
type SSHEndpointer interface {
	SSHEndpoint() (SSHEndpoint, error)
}
