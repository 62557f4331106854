package amazonebs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/communicator/ssh"
)

// Host key pinning reads the fingerprints cloud-init prints on the
// instance's console. EC2 serves that console two ways (GetConsoleOutput,
// EC2 API reference): Latest=true, the live serial console, only on
// instance types built on the Nitro System; otherwise "buffered
// information that was posted shortly after an instance transition
// state", which on a Xen type (t2, m4, c4...) may come well after sshd is
// up. ssh_host_key_checking decides what happens when no fingerprints can
// be had:
//
//	pin      (default) wait up to ssh_host_key_wait_timeout; if the console
//	         shows none by then, trust the first key with a warning that
//	         says why. A console read that fails (other than a retryable
//	         error or the instance not known yet) fails the build: it is
//	         never taken for "no fingerprints".
//	require  the same wait; no fingerprints fails the build.
//	tofu     trust the first key presented; off: no checking (Packer's way).

// xenFamilies are the instance families not built on the Nitro System
// (EC2 user guide, "Instances built on the AWS Nitro System": the
// previous-generation families it leaves out). No new Xen family will
// appear; a type missing here costs one UnsupportedOperation answer.
var xenFamilies = map[string]bool{
	"t1": true, "t2": true, "m1": true, "m2": true, "m3": true, "m4": true, "c1": true, "c3": true, "c4": true,
	"r3": true, "r4": true, "x1": true, "x1e": true, "d2": true, "h1": true, "i2": true, "i3": true, "p2": true,
	"p3": true, "g2": true, "g3": true, "g3s": true, "f1": true, "cc2": true, "cr1": true, "hs1": true,
}

// latestConsole reports whether GetConsoleOutput's Latest=true is served
// for an instance type.
func latestConsole(instanceType string) bool {
	family, size, _ := strings.Cut(instanceType, ".")
	if size == "metal" || instanceType == "m4.16xlarge" || instanceType == "p3dn.24xlarge" {
		return true
	}
	return !xenFamilies[family]
}

// consoleRetryable: errors worth another read within the wait. The SDK's
// retryer has already retried them; they stay transient (throttling, 5xx,
// a dropped connection) or, for NotFound, eventual consistency right
// after RunInstances ("Eventual consistency in the Amazon EC2 API").
func consoleRetryable(err error) bool {
	if apiCode(err) == "InvalidInstanceID.NotFound" {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// consoleRead is the reading of an instance's console output for its SSH
// host key fingerprints.
type consoleRead struct {
	fps       []ssh.Fingerprint
	latest    bool  // asks for the latest output (Nitro types)
	transient error // the last retryable error
	reads     int
}

// poll reads the console until it shows fingerprints, for at most
// ssh_host_key_wait_timeout.
func (r *consoleRead) poll(ctx context.Context, s *State, api consoleOutputAPI, id, itype string) error {
	wait := s.Waits
	wait.MaxAttempts = 0
	return wait.poll(ctx, "SSH host key fingerprints on the console of "+id, s.Config.Parsed.HostKeyWait, func(ctx context.Context) (bool, error) {
		r.reads++
		out, err := api.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(r.latest)})
		switch {
		case err == nil:
		case r.latest && apiCode(err) == "UnsupportedOperation":
			// Not a Nitro type after all: read the buffered console.
			s.log().Debug("latest console output unsupported; reading the buffered one", "instance", id, "type", itype)
			r.latest = false
			return false, nil
		case consoleRetryable(err):
			r.transient = err
			s.log().Debug("console output: retryable error", "instance", id, "err", err)
			return false, nil
		default:
			return false, fmt.Errorf("read the console output of %s: %w", id, err)
		}
		text := aws.ToString(out.Output)
		if dec, derr := base64.StdEncoding.DecodeString(text); derr == nil {
			text = string(dec)
		}
		r.fps = ssh.ParseConsoleFingerprints(text)
		return len(r.fps) > 0, nil
	})
}

func (st *stepConnect) hostKeyChecker(ctx context.Context, s *State) (*ssh.HostKeyChecker, error) {
	mode := s.Config.SSHHostKeyChecking
	switch mode {
	case "off":
		return ssh.InsecureIgnoreHostKey(), nil
	case "tofu":
		return ssh.TrustOnFirstUse(), nil
	}
	if s.Config.SSHHost != "" {
		// The console speaks for the instance, not for another host.
		return ssh.TrustOnFirstUse(), nil
	}
	id := aws.ToString(s.Instance.InstanceId)
	itype := string(s.Instance.InstanceType)
	r := &consoleRead{latest: latestConsole(itype)}
	err := r.poll(ctx, s, s.ec2(""), id, itype)
	fps, latest, transient, reads := r.fps, r.latest, r.transient, r.reads
	if len(fps) > 0 {
		names := make([]string, len(fps))
		for i, f := range fps {
			names[i] = f.String()
		}
		s.UI.Message("Host key fingerprints from the console output: " + strings.Join(names, ", "))
		return ssh.PinnedHostKeys(fps...), nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	if err != nil && !errors.Is(err, ErrWaitTimeout) {
		// A read that failed for good says nothing about the host key:
		// never take it for "no fingerprints".
		return nil, fmt.Errorf("verify the SSH host key of %s: %w; ssh_host_key_checking = %q pins the key from the console output, which cannot be read (allow ec2:GetConsoleOutput, or set ssh_host_key_checking = \"tofu\" to trust the first key presented)", id, err, mode)
	}
	why := "the console output showed none"
	if transient != nil {
		why = fmt.Sprintf("the console output could not be read (last error: %v)", transient)
	} else if !latest {
		why = fmt.Sprintf("the console output showed none (%s is not a Nitro type: EC2 posts its console output only some time after boot)", itype)
	}
	if mode == "require" {
		return nil, fmt.Errorf("no SSH host key fingerprints on the console of %s within %s (%d reads): %s; ssh_host_key_checking = \"require\" does not fall back to trusting the first key (raise ssh_host_key_wait_timeout, or set ssh_host_key_checking = \"pin\" to allow that)", id, s.Config.Parsed.HostKeyWait, reads, why)
	}
	s.UI.Error(fmt.Sprintf("Warning: no SSH host key fingerprints on the console of %s within %s: %s; trusting the first host key presented (raise ssh_host_key_wait_timeout to wait longer, ssh_host_key_checking = \"require\" to fail instead, \"off\" to silence this)", id, s.Config.Parsed.HostKeyWait, why))
	return ssh.TrustOnFirstUse(), nil
}
