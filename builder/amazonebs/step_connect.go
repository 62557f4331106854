package amazonebs

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/provisioner"
)

// sshHost picks the address to connect to (ssh_host, ssh_interface, else
// the public IP when there is one, else the private IP).
func sshHost(c *Config, in *types.Instance) (string, error) {
	if c.SSHHost != "" {
		return c.SSHHost, nil
	}
	pick := func(what string, v *string) (string, error) {
		if aws.ToString(v) == "" {
			return "", fmt.Errorf("ssh_interface = %q but instance %s has no %s", c.SSHInterface, aws.ToString(in.InstanceId), what)
		}
		return aws.ToString(v), nil
	}
	switch c.SSHInterface {
	case "public_ip":
		return pick("public IP address", in.PublicIpAddress)
	case "private_ip":
		return pick("private IP address", in.PrivateIpAddress)
	case "public_dns":
		return pick("public DNS name", in.PublicDnsName)
	case "private_dns":
		return pick("private DNS name", in.PrivateDnsName)
	}
	if c.SSHPrivateIP {
		return pick("private IP address", in.PrivateIpAddress)
	}
	if ip := aws.ToString(in.PublicIpAddress); ip != "" {
		return ip, nil
	}
	if ip := aws.ToString(in.PrivateIpAddress); ip != "" {
		return ip, nil
	}
	return "", fmt.Errorf("instance %s has neither a public nor a private IP address to connect to", aws.ToString(in.InstanceId))
}

// stepConnect waits for SSH and connects, verifying the host key against
// the fingerprints the instance printed on its console (cloud-init; see
// hostkey.go).
type stepConnect struct {
	// Dial replaces the TCP dialer (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (*stepConnect) Name() string { return "connect" }

func (st *stepConnect) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.Communicator == "none" {
		return nil
	}
	host, err := sshHost(c, s.Instance)
	if err != nil {
		return err
	}
	s.Host = host
	s.UI.Say("Using SSH communicator to connect: " + host) // Packer's line
	hk, err := st.hostKeyChecker(ctx, s)
	if err != nil {
		return err
	}
	cfg := ssh.Config{
		Host:              host,
		Port:              c.SSHPort,
		User:              c.SSHUsername,
		PrivateKey:        s.PrivateKey,
		AgentAuth:         c.SSHAgentAuth,
		AgentForwarding:   !c.SSHDisableAgentForwarding, // Packer forwards by default
		Password:          c.SSHPassword,
		HostKey:           hk,
		Timeout:           c.Parsed.SSHTimeout,
		HandshakeAttempts: c.SSHHandshakeAttempts,
		KeepAliveInterval: c.Parsed.SSHKeepAliveInterval,
		ReadWriteTimeout:  c.Parsed.SSHReadWriteTimeout,
		PTY:               c.SSHPty,
		FileTransfer:      c.SSHFileTransferMethod,
		Log:               s.log(),
	}
	if st.Dial != nil {
		cfg.Dial = st.Dial
	}
	if c.SSHBastionHost != "" {
		if cfg.Bastion, err = sshBastion(s); err != nil {
			return err
		}
		s.UI.Say(fmt.Sprintf("Using SSH bastion host %s:%d", cfg.Bastion.Host, cfg.Bastion.Port))
	}
	s.UI.Say("Waiting for SSH to become available...")
	comm, err := ssh.Connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s over SSH: %w", host, err)
	}
	if d := c.Parsed.PauseBeforeConnecting; d > 0 {
		if comm, err = pauseAndReconnect(ctx, s, comm, cfg, d); err != nil {
			return err
		}
	}
	s.Comm = comm
	if hk.Mode() == ssh.HostKeyTOFU {
		if fp, ok := hk.Accepted(); ok {
			s.UI.Message("Trusting the host key presented on first use: " + fp.String())
		}
	}
	s.UI.Say("Connected to SSH!")
	return nil
}

// sshBastion is the ssh_bastion_* options, with Packer's defaults: port
// 22, the build's user, and the build's key unless the bastion has its
// own key, the agent or a password.
func sshBastion(s *State) (*ssh.Bastion, error) {
	c := s.Config
	b := &ssh.Bastion{Host: c.SSHBastionHost, Port: c.SSHBastionPort, User: c.SSHBastionUsername,
		AgentAuth: c.SSHBastionAgentAuth, Password: c.SSHBastionPassword}
	if b.Port == 0 {
		b.Port = 22
	}
	if b.User == "" {
		b.User = c.SSHUsername
	}
	if f := c.SSHBastionPrivateKeyFile; f != "" {
		key, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read ssh_bastion_private_key_file: %w", err)
		}
		s.Secrets.Add(string(key))
		b.PrivateKey = key
	} else if !b.AgentAuth && b.Password == "" {
		b.PrivateKey = s.PrivateKey
	}
	return b, nil
}

// pauseAndReconnect is pause_before_connecting. Packer connects once, then
// waits and reconnects: the first login proves the key works, the pause
// lets first-boot services settle.
func pauseAndReconnect(ctx context.Context, s *State, comm *ssh.Comm, cfg ssh.Config, d time.Duration) (*ssh.Comm, error) {
	s.UI.Say(fmt.Sprintf("Pausing %s before connecting...", d))
	if err := comm.Close(); err != nil {
		s.log().Debug("close SSH before pause", "err", err)
	}
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil, fmt.Errorf("pause before connecting: %w", context.Cause(ctx))
	case <-t.C:
	}
	comm, err := ssh.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reconnect to %s over SSH: %w", cfg.Host, err)
	}
	return comm, nil
}

func (st *stepConnect) Cleanup(ctx context.Context, s *State) error {
	if s.Comm != nil {
		err := s.Comm.Close()
		s.Comm = nil
		if err != nil {
			s.log().Debug("close SSH connection", "err", err)
		}
	}
	return nil
}

// stepProvision runs the orchestrator's provisioners.
type stepProvision struct{}

func (stepProvision) Name() string { return "provision" }

func (stepProvision) Run(ctx context.Context, s *State) error {
	if s.Provision == nil {
		return nil
	}
	if s.Comm == nil {
		return s.Provision(ctx, nil, s.ProvisionerBuild())
	}
	return s.Provision(ctx, s.Comm, s.ProvisionerBuild())
}

func (stepProvision) Cleanup(context.Context, *State) error { return nil }

// ProvisionerBuild is what provisioners may know about this build.
func (s *State) ProvisionerBuild() *provisioner.Build {
	b := &provisioner.Build{
		Name:          s.BuildName,
		PackerName:    s.PackerName,
		Type:          "amazon-ebs",
		RunUUID:       s.RunUUID,
		Host:          s.Host,
		Port:          s.Config.SSHPort,
		User:          s.Config.SSHUsername,
		SSHPrivateKey: string(s.PrivateKey),
		SourceAMI:     s.BuildTime.SourceAMI,
		SourceAMIName: s.BuildTime.SourceAMIName,
		Region:        s.Region,
	}
	if s.RunID != "" {
		b.TempPrefix = ledger.TempPrefix(s.RunID)
	}
	if b.RunUUID == "" {
		b.RunUUID = s.RunID
	}
	if s.Instance != nil {
		b.InstanceID = aws.ToString(s.Instance.InstanceId)
	}
	return b
}
