// Package ssh implements communicator.Communicator over SSH: exec with
// streamed output, SFTP (or scp) file transfer, keep-alives, reconnects
// and host key verification, which Packer leaves out.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// File transfer methods (ssh_file_transfer_method).
const (
	TransferSFTP = "sftp"
	TransferSCP  = "scp"
)

// Defaults follow Packer's.
const (
	DefaultTimeout           = 5 * time.Minute
	DefaultHandshakeAttempts = 10
	DefaultKeepAliveInterval = 5 * time.Second
	DefaultKeepAliveCountMax = 3
	defaultPort              = 22
	handshakeTimeout         = 30 * time.Second
)

// Config says how to reach and authenticate to a host.
type Config struct {
	Host string
	Port int // 22 when 0
	User string

	// Credentials, tried in this order: Signers, PrivateKey, the agent,
	// Password.
	Signers    []gossh.Signer
	PrivateKey []byte // PEM or OpenSSH format, unencrypted
	// AgentAuth uses the agent at SSH_AUTH_SOCK (ssh_agent_auth).
	AgentAuth bool
	Password  string

	// AgentForwarding forwards the local agent to every command's session
	// (auth-agent@openssh.com), as Packer does unless
	// ssh_disable_agent_forwarding; without an agent it does nothing.
	AgentForwarding bool
	// AgentSocket is the agent forwarded; SSH_AUTH_SOCK when empty.
	AgentSocket string

	// HostKey verifies the server's key. Nil means trust on first use for
	// the life of this Comm. Share one checker across Connects to keep a
	// TOFU key across them.
	HostKey *HostKeyChecker

	// Timeout is how long Connect and Reconnect keep trying (ssh_timeout).
	Timeout time.Duration
	// HandshakeAttempts bounds the authentication failures tolerated while
	// the host finishes booting (ssh_handshake_attempts).
	HandshakeAttempts int
	// KeepAliveInterval between keepalive@openssh.com requests; negative
	// disables them (ssh_keep_alive_interval).
	KeepAliveInterval time.Duration
	// KeepAliveCountMax unanswered intervals mark the link dead.
	KeepAliveCountMax int
	// ReadWriteTimeout fails a connection on which no read or write
	// progresses for this long; 0 disables (ssh_read_write_timeout).
	ReadWriteTimeout time.Duration
	// PTY requests a pseudo-terminal for every command (ssh_pty), in
	// addition to commands that ask for one.
	PTY bool

	Bastion *Bastion

	// FileTransfer is TransferSFTP (default) or TransferSCP. With SFTP,
	// a server without the sftp subsystem falls back to scp.
	FileTransfer string

	Log *slog.Logger

	// Dial replaces the TCP dialer (tests, proxies).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Bastion is a jump host the connection is tunnelled through.
type Bastion struct {
	Host       string
	Port       int
	User       string
	Signers    []gossh.Signer
	PrivateKey []byte
	AgentAuth  bool
	Password   string
	// HostKey verifies the bastion; nil means trust on first use.
	HostKey *HostKeyChecker
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Host == "" {
		return cfg, errors.New("ssh: no host to connect to")
	}
	if cfg.User == "" {
		return cfg, errors.New("ssh: no user (ssh_username) given")
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HandshakeAttempts <= 0 {
		cfg.HandshakeAttempts = DefaultHandshakeAttempts
	}
	if cfg.KeepAliveInterval == 0 {
		cfg.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if cfg.KeepAliveCountMax <= 0 {
		cfg.KeepAliveCountMax = DefaultKeepAliveCountMax
	}
	switch cfg.FileTransfer {
	case "":
		cfg.FileTransfer = TransferSFTP
	case TransferSFTP, TransferSCP:
	default:
		return cfg, fmt.Errorf("ssh: unknown file transfer method %q (want sftp or scp)", cfg.FileTransfer)
	}
	if cfg.HostKey == nil {
		cfg.HostKey = TrustOnFirstUse()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Bastion != nil {
		b := *cfg.Bastion
		if b.Port == 0 {
			b.Port = defaultPort
		}
		if b.User == "" {
			b.User = cfg.User
		}
		if b.HostKey == nil {
			b.HostKey = TrustOnFirstUse()
		}
		cfg.Bastion = &b
	}
	return cfg, nil
}

func (c *Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// credentials is what authMethods built, kept to explain a failure.
type credentials struct {
	methods []gossh.AuthMethod
	keys    []string // "ssh-ed25519 SHA256:..." for each public key offered
	signers []*recordingSigner
	closers []func() error
}

func (cr *credentials) close() {
	for _, c := range cr.closers {
		_ = c()
	}
}

// usedAlgorithm is the signature algorithm of the key the server accepted.
func (cr *credentials) usedAlgorithm() string {
	for _, s := range cr.signers {
		if a := s.used(); a != "" {
			return a
		}
	}
	return ""
}

func authMethods(signers []gossh.Signer, pemKey []byte, useAgent bool, password string) (*credentials, error) {
	cr := &credentials{}
	all := append([]gossh.Signer(nil), signers...)
	if len(pemKey) > 0 {
		s, err := gossh.ParsePrivateKey(pemKey)
		if err != nil {
			var pm *gossh.PassphraseMissingError
			if errors.As(err, &pm) {
				return nil, errors.New("ssh: the private key is encrypted with a passphrase; use ssh_agent_auth instead")
			}
			// The parse error never quotes key material.
			return nil, fmt.Errorf("ssh: parse private key: %w", err)
		}
		all = append(all, s)
	}
	if useAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("ssh: agent authentication requested but SSH_AUTH_SOCK is not set")
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh: connect to agent at SSH_AUTH_SOCK: %w", err)
		}
		cr.closers = append(cr.closers, conn.Close)
		as, err := agent.NewClient(conn).Signers()
		if err != nil {
			cr.close()
			return nil, fmt.Errorf("ssh: list agent keys: %w", err)
		}
		all = append(all, as...)
	}
	if len(all) > 0 {
		var wrapped []gossh.Signer
		for _, s := range all {
			for _, rs := range newRecordingSigners(s) {
				cr.signers = append(cr.signers, rs)
				wrapped = append(wrapped, rs)
			}
			cr.keys = append(cr.keys, s.PublicKey().Type()+" "+gossh.FingerprintSHA256(s.PublicKey()))
		}
		cr.methods = append(cr.methods, gossh.PublicKeys(wrapped...))
	}
	if password != "" {
		cr.methods = append(cr.methods,
			gossh.Password(password),
			gossh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	if len(cr.methods) == 0 {
		cr.close()
		return nil, errors.New("ssh: no credentials: give a private key, agent authentication or a password")
	}
	return cr, nil
}
