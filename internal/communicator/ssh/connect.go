package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// AuthError is returned when the server keeps rejecting our credentials.
type AuthError struct {
	User     string
	Addr     string
	Attempts int
	// Offered lists our public keys as "type SHA256:..." plus "password"
	// when one was given.
	Offered []string
	// ServerMethods lists the methods the server said it accepts.
	ServerMethods []string
	Err           error
}

func (e *AuthError) Error() string {
	offered := "nothing"
	if len(e.Offered) > 0 {
		offered = strings.Join(e.Offered, ", ")
	}
	server := "unknown (no reply)"
	if len(e.ServerMethods) > 0 {
		server = strings.Join(e.ServerMethods, ", ")
	}
	return fmt.Sprintf("ssh: authentication as %q on %s failed %d times: offered %s; the server accepts %s: %v",
		e.User, e.Addr, e.Attempts, offered, server, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// connection is one established SSH connection and what hangs off it.
type connection struct {
	client  *gossh.Client
	bastion *gossh.Client
	// dead is closed when the connection ends, with why in deadErr.
	dead    chan struct{}
	deadErr error
	once    sync.Once
	stopKA  chan struct{}
	authAlg string
	hostKey Fingerprint
	hostPub gossh.PublicKey
	// agentForward: sessions ask the server to forward the local agent.
	agentForward bool
}

func (c *connection) markDead(err error) {
	c.once.Do(func() {
		c.deadErr = err
		close(c.dead)
	})
}

func (c *connection) close() {
	select {
	case <-c.stopKA:
	default:
		close(c.stopKA)
	}
	c.markDead(errors.New("connection closed"))
	_ = c.client.Close()
	if c.bastion != nil {
		_ = c.bastion.Close()
	}
}

// dialLoop keeps trying to connect until it succeeds, ctx ends, Timeout
// passes, the host key is rejected, or authentication failed too often.
func dialLoop(ctx context.Context, cfg *Config) (*connection, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, errConnectTimeout)
	defer cancel()
	addr := cfg.addr()
	delay := 100 * time.Millisecond
	const maxDelay = 5 * time.Second
	authFailures := 0
	var lastErr error
	start := time.Now()
	for attempt := 1; ; attempt++ {
		conn, authErr, err := dialOnce(ctx, cfg)
		if err == nil && authErr == nil {
			conn.agentForward = forwardAgent(conn.client, cfg)
			cfg.Log.Debug("ssh connected", "addr", addr, "user", cfg.User, "attempt", attempt,
				"elapsed", time.Since(start), "auth_algorithm", conn.authAlg, "host_key", conn.hostKey.Hash)
			return conn, nil
		}
		var hk *HostKeyError
		var perm permanentError
		if errors.As(err, &hk) {
			return nil, err
		}
		if errors.As(err, &perm) {
			return nil, perm.error
		}
		if authErr != nil {
			authFailures++
			authErr.Attempts = authFailures
			if authFailures >= cfg.HandshakeAttempts {
				return nil, authErr
			}
			err = authErr
		}
		lastErr = err
		cfg.Log.Debug("ssh connect attempt failed", "addr", addr, "attempt", attempt, "err", err)
		// Full jitter on the upper half keeps many builds from dialling in lockstep.
		sleep := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			if context.Cause(ctx) == errConnectTimeout {
				return nil, fmt.Errorf("ssh: timeout after %s waiting for %s@%s (%d attempts): last error: %w",
					cfg.Timeout, cfg.User, addr, attempt, lastErr)
			}
			return nil, fmt.Errorf("ssh: connect to %s@%s: %w (last error: %v)", cfg.User, addr, ctx.Err(), lastErr)
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

var errConnectTimeout = errors.New("ssh_timeout reached")

// permanentError marks a failure that retrying cannot fix (bad key).
type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// dialOnce makes one attempt. authErr is set when the server was reached
// but refused the credentials.
func dialOnce(ctx context.Context, cfg *Config) (*connection, *AuthError, error) {
	addr := cfg.addr()
	c := &connection{dead: make(chan struct{}), stopKA: make(chan struct{})}
	var raw net.Conn
	var err error
	if cfg.Bastion != nil {
		c.bastion, err = dialBastion(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		raw, err = c.bastion.DialContext(ctx, "tcp", addr)
		if err != nil {
			_ = c.bastion.Close()
			return nil, nil, fmt.Errorf("ssh: connect to %s through bastion %s: %w", addr, cfg.Bastion.Host, err)
		}
	} else {
		raw, err = cfg.Dial(ctx, "tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh: dial %s: %w", addr, err)
		}
	}
	if cfg.ReadWriteTimeout > 0 {
		raw = &idleTimeoutConn{Conn: raw, timeout: cfg.ReadWriteTimeout}
	}
	cr, err := authMethods(cfg.Signers, cfg.PrivateKey, cfg.AgentAuth, cfg.Password)
	if err != nil {
		raw.Close()
		if c.bastion != nil {
			c.bastion.Close()
		}
		return nil, nil, permanentError{err}
	}
	defer cr.close()
	client, reached, err := handshake(ctx, raw, addr, cfg.User, cr, cfg.HostKey)
	if err != nil {
		if c.bastion != nil {
			c.bastion.Close()
		}
		var hk *HostKeyError
		if reached != nil && !errors.As(err, &hk) {
			return nil, &AuthError{User: cfg.User, Addr: addr, Offered: offered(cr, cfg.Password), ServerMethods: reached, Err: err}, nil
		}
		return nil, nil, err
	}
	c.client = client
	c.authAlg = cr.usedAlgorithm()
	c.hostKey, _ = cfg.HostKey.Accepted()
	c.hostPub = cfg.HostKey.AcceptedKey()
	go func() {
		err := client.Wait()
		if err == nil {
			err = io.EOF
		}
		c.markDead(err)
	}()
	if cfg.KeepAliveInterval > 0 {
		go keepAlive(c, cfg.KeepAliveInterval, cfg.KeepAliveCountMax, cfg)
	}
	return c, nil, nil
}

func offered(cr *credentials, password string) []string {
	out := append([]string(nil), cr.keys...)
	if password != "" {
		out = append(out, "password")
	}
	return out
}

// handshake runs the SSH handshake on raw. reached is non-nil (the
// server's accepted methods) when authentication was attempted.
func handshake(ctx context.Context, raw net.Conn, addr, user string, cr *credentials, hk *HostKeyChecker) (*gossh.Client, []string, error) {
	var reached []string
	reachedAuth := false
	conf := &gossh.ClientConfig{
		User:            user,
		Auth:            cr.methods,
		HostKeyCallback: hk.Callback(),
		AuthCallback: func(ac *gossh.ClientAuthContext) (gossh.AuthMethod, error) {
			reachedAuth = true
			if len(ac.AllowedMethods) > 0 {
				reached = ac.AllowedMethods
			}
			return nil, nil
		},
	}
	// Bound the handshake: a host that accepts TCP but never speaks (sshd
	// still starting, a stalled proxy) must not hang the retry loop.
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := gossh.NewClientConn(raw, addr, conf)
	stopped := stop()
	if err != nil {
		raw.Close()
		if reachedAuth {
			if reached == nil {
				reached = []string{}
			}
			return nil, reached, err
		}
		return nil, nil, err
	}
	if !stopped {
		sc.Close()
		return nil, nil, ctx.Err()
	}
	_ = raw.SetDeadline(time.Time{})
	return gossh.NewClient(sc, chans, reqs), nil, nil
}

func dialBastion(ctx context.Context, cfg *Config) (*gossh.Client, error) {
	b := cfg.Bastion
	baddr := net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
	raw, err := cfg.Dial(ctx, "tcp", baddr)
	if err != nil {
		return nil, fmt.Errorf("ssh: dial bastion %s: %w", baddr, err)
	}
	cr, err := authMethods(b.Signers, b.PrivateKey, b.AgentAuth, b.Password)
	if err != nil {
		raw.Close()
		return nil, permanentError{fmt.Errorf("bastion: %w", err)}
	}
	defer cr.close()
	client, reached, err := handshake(ctx, raw, baddr, b.User, cr, b.HostKey)
	if err != nil {
		if reached != nil {
			return nil, fmt.Errorf("bastion: %w", &AuthError{User: b.User, Addr: baddr, Attempts: 1, Offered: offered(cr, b.Password), ServerMethods: reached, Err: err})
		}
		return nil, fmt.Errorf("ssh: bastion %s: %w", baddr, err)
	}
	return client, nil
}

// keepAlive sends keepalive@openssh.com requests and closes the connection
// when countMax intervals pass without a reply: a dead peer otherwise
// leaves a command's Wait blocked forever.
func keepAlive(c *connection, interval time.Duration, countMax int, cfg *Config) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stopKA:
			return
		case <-c.dead:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(interval * time.Duration(countMax))
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				c.markDead(fmt.Errorf("keep-alive: %w", err))
				_ = c.client.Close()
				return
			}
		case <-timer.C:
			err := fmt.Errorf("no reply to %d keep-alives (%s)", countMax, interval*time.Duration(countMax))
			cfg.Log.Debug("ssh link dead", "addr", cfg.addr(), "err", err)
			c.markDead(err)
			_ = c.client.Close()
			if c.bastion != nil {
				_ = c.bastion.Close()
			}
			return
		case <-c.stopKA:
			timer.Stop()
			return
		}
	}
}

// idleTimeoutConn fails a read or write that makes no progress for timeout.
// An explicit deadline (the handshake's) still applies when earlier.
type idleTimeoutConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex
	fixed   time.Time
}

func (c *idleTimeoutConn) deadline() time.Time {
	d := time.Now().Add(c.timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fixed.IsZero() && c.fixed.Before(d) {
		return c.fixed
	}
	return d
}

func (c *idleTimeoutConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.fixed = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *idleTimeoutConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(c.deadline())
	return c.Conn.Read(b)
}

func (c *idleTimeoutConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(c.deadline())
	return c.Conn.Write(b)
}

// forwardAgent makes the client serve the server's agent channels from the
// local agent, when forwarding is on and an agent is running; Packer's
// behaviour (a missing agent is not an error).
func forwardAgent(client *gossh.Client, cfg *Config) bool {
	if !cfg.AgentForwarding {
		return false
	}
	sock := cfg.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock == "" {
		cfg.Log.Debug("ssh agent forwarding: no SSH_AUTH_SOCK, not forwarding")
		return false
	}
	if err := agent.ForwardToRemote(client, sock); err != nil {
		cfg.Log.Debug("ssh agent forwarding unavailable", "err", err)
		return false
	}
	return true
}
