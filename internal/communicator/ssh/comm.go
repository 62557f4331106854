package ssh

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/crypto/ssh/agent"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/communicator"
)

var _ communicator.Communicator = (*Comm)(nil)

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("ssh: communicator closed")

// Comm is a communicator.Communicator over one SSH connection, redialled
// by Reconnect.
type Comm struct {
	cfg Config

	mu     sync.Mutex
	conn   *connection
	sftp   *sftp.Client
	noSFTP bool // the server has no sftp subsystem: use scp
	closed bool
}

// Connect dials cfg's host, retrying until it answers and accepts the
// credentials, ctx ends or cfg.Timeout passes. Connection refused and
// timeouts are waited out; authentication failures are retried at most
// cfg.HandshakeAttempts times (the host may still be installing the key);
// a rejected host key fails at once.
func Connect(ctx context.Context, cfg Config) (*Comm, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	conn, err := dialLoop(ctx, &c)
	if err != nil {
		return nil, err
	}
	return &Comm{cfg: c, conn: conn}, nil
}

// HostKey returns the fingerprint of the host key accepted on the current
// connection (with TOFU, the one later connections must present).
func (c *Comm) HostKey() Fingerprint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return Fingerprint{}
	}
	return c.conn.hostKey
}

// SSHEndpoint tells provisioners that open their own SSH connections
// (ansible) where the machine is and which host key this connection
// verified.
func (c *Comm) SSHEndpoint() (communicator.SSHEndpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.hostPub == nil {
		return communicator.SSHEndpoint{}, errors.New("ssh: not connected")
	}
	return communicator.SSHEndpoint{
		Host:           c.cfg.Host,
		Port:           c.cfg.Port,
		User:           c.cfg.User,
		HostKey:        strings.TrimSpace(string(gossh.MarshalAuthorizedKey(c.conn.hostPub))),
		HostKeyChecked: c.cfg.HostKey.Mode() != HostKeyInsecure,
		Bastion:        c.cfg.Bastion != nil,
	}, nil
}

// AuthAlgorithm returns the public key signature algorithm the server
// accepted ("rsa-sha2-512", "ssh-ed25519"), or "" for password logins.
func (c *Comm) AuthAlgorithm() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ""
	}
	return c.conn.authAlg
}

// Client returns the underlying SSH client of the current connection, for
// callers needing more than the Communicator interface (port forwards).
func (c *Comm) Client() *gossh.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.client
}

func (c *Comm) current() (*connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.conn == nil {
		return nil, errors.New("ssh: not connected (a previous Reconnect failed)")
	}
	return c.conn, nil
}

// Close ends the connection. It is safe to call twice.
func (c *Comm) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.dropLocked()
	return nil
}

func (c *Comm) dropLocked() {
	if c.sftp != nil {
		_ = c.sftp.Close()
		c.sftp = nil
	}
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
}

// Reconnect closes the connection and dials again with the same settings
// (and the same host key checker), waiting up to Config.Timeout for the
// host to come back, e.g. after a reboot.
func (c *Comm) Reconnect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.dropLocked()
	c.mu.Unlock()
	c.cfg.Log.Debug("ssh reconnecting", "addr", c.cfg.addr())
	conn, err := dialLoop(ctx, &c.cfg)
	if err != nil {
		return fmt.Errorf("reconnect: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.close()
		return ErrClosed
	}
	c.conn = conn
	return nil
}

// Run runs cmd and waits for its exit status. Output is streamed to the
// writers as it arrives. When the connection drops before an exit status
// arrives (a reboot) the result has Disconnected set and err is nil. When
// ctx ends the remote command is sent SIGTERM, the session closed, and
// ctx's error returned.
func (c *Comm) Run(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
	if err := ctx.Err(); err != nil {
		return communicator.Result{}, fmt.Errorf("ssh: run %q: %w", cmd.Command, err)
	}
	conn, err := c.current()
	if err != nil {
		return communicator.Result{}, err
	}
	sess, err := conn.client.NewSession()
	if err != nil {
		if isDead(conn) {
			return communicator.Result{Disconnected: true}, nil
		}
		return communicator.Result{}, fmt.Errorf("ssh: open session for %q: %w", cmd.Command, err)
	}
	defer sess.Close()
	if conn.agentForward {
		// A server that refuses (AllowAgentForwarding no) runs the
		// command all the same, as with OpenSSH's client.
		if err := agent.RequestAgentForwarding(sess); err != nil {
			c.cfg.Log.Debug("ssh agent forwarding refused", "err", err)
		}
	}

	// x/crypto copies stdout and stderr from two goroutines that can
	// outlive a cancelled Run: the gate serialises them (one writer may be
	// given for both) and shuts them out once Run returns.
	g := &outputGate{}
	defer g.close()
	if cmd.Stdout != nil {
		sess.Stdout = &gatedWriter{g: g, w: cmd.Stdout}
	}
	if cmd.Stderr != nil {
		sess.Stderr = &gatedWriter{g: g, w: cmd.Stderr}
	}
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		// Our own copy, not Session.Stdin: Wait would otherwise block until
		// an endless reader (a terminal) ends, long after the exit status.
		if stdin, err = sess.StdinPipe(); err != nil {
			return communicator.Result{}, fmt.Errorf("ssh: stdin for %q: %w", cmd.Command, err)
		}
	}
	if cmd.PTY || c.cfg.PTY {
		modes := gossh.TerminalModes{gossh.ECHO: 0, gossh.TTY_OP_ISPEED: 14400, gossh.TTY_OP_OSPEED: 14400}
		if err := sess.RequestPty("xterm", 40, 80, modes); err != nil {
			return communicator.Result{}, fmt.Errorf("ssh: request pty: %w", err)
		}
	}
	c.cfg.Log.Debug("ssh run", "command", cmd.Command, "pty", cmd.PTY || c.cfg.PTY)
	if err := sess.Start(cmd.Command); err != nil {
		if isDead(conn) {
			return communicator.Result{Disconnected: true}, nil
		}
		return communicator.Result{}, fmt.Errorf("ssh: start %q: %w", cmd.Command, err)
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, cmd.Stdin)
			_ = stdin.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	select {
	case err = <-done:
	case <-conn.dead:
		// A dead link (keep-alive) closes the client; Wait then returns.
		err = <-done
	case <-ctx.Done():
		// SIGTERM reaches the command's top process; then hang up. Without a
		// PTY, children that ignore the hang-up may outlive the session, and
		// sshd holds the channel open until they exit: do not wait for them.
		_ = sess.Signal(gossh.SIGTERM)
		select {
		case <-done:
		case <-time.After(500 * time.Millisecond):
			_ = sess.Close()
			select {
			case <-done:
			case <-time.After(500 * time.Millisecond):
			}
		}
		return communicator.Result{}, fmt.Errorf("ssh: run %q: %w", cmd.Command, ctx.Err())
	}
	return result(conn, cmd.Command, err)
}

func result(conn *connection, command string, err error) (communicator.Result, error) {
	var exitErr *gossh.ExitError
	var missing *gossh.ExitMissingError
	switch {
	case err == nil:
		return communicator.Result{ExitStatus: 0}, nil
	case errors.As(err, &exitErr):
		// A command killed by a signal reads 128+n, as in a shell.
		return communicator.Result{ExitStatus: exitErr.ExitStatus()}, nil
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		return communicator.Result{Disconnected: true}, nil
	}
	// Wait also reports local writer errors; only a dead link means
	// the command was cut off.
	select {
	case <-conn.dead:
		return communicator.Result{Disconnected: true}, nil
	case <-time.After(50 * time.Millisecond):
	}
	return communicator.Result{}, fmt.Errorf("ssh: run %q: %w", command, err)
}

func isDead(conn *connection) bool {
	select {
	case <-conn.dead:
		return true
	case <-time.After(100 * time.Millisecond):
		// NewSession can fail a moment before the client notices EOF.
		select {
		case <-conn.dead:
			return true
		default:
			return false
		}
	}
}

type outputGate struct {
	mu     sync.Mutex
	closed bool
}

func (g *outputGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

type gatedWriter struct {
	g *outputGate
	w io.Writer
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.g.closed {
		return len(p), nil
	}
	return w.w.Write(p)
}
