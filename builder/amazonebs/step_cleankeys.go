package amazonebs

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/communicator"
)

// stepClearAuthorizedKeys removes the temporary public key from the
// instance's authorized_keys before the image is made
// (ssh_clear_authorized_keys), so the AMI does not trust a key that only
// this build held.
type stepClearAuthorizedKeys struct{}

func (stepClearAuthorizedKeys) Name() string { return "clear authorized keys" }

func (stepClearAuthorizedKeys) Run(ctx context.Context, s *State) error {
	if !s.Config.SSHClearAuthorizedKeys || s.Comm == nil || len(s.PrivateKey) == 0 {
		return nil
	}
	signer, err := gossh.ParsePrivateKey(s.PrivateKey)
	if err != nil {
		return fmt.Errorf("read the SSH key to remove it from authorized_keys: %w", err)
	}
	// The key's base64 body identifies its line whatever the comment.
	fields := strings.Fields(string(gossh.MarshalAuthorizedKey(signer.PublicKey())))
	body := fields[1]
	s.UI.Say("Trying to remove ephemeral keys from authorized_keys files")
	for _, cmd := range []string{
		fmt.Sprintf("grep -v -F '%s' ~/.ssh/authorized_keys > ~/.ssh/authorized_keys.amibake; cat ~/.ssh/authorized_keys.amibake > ~/.ssh/authorized_keys; rm -f ~/.ssh/authorized_keys.amibake", body),
		fmt.Sprintf("if [ \"$(id -u)\" != 0 ] && [ -f /root/.ssh/authorized_keys ]; then sudo sh -c \"grep -v -F '%s' /root/.ssh/authorized_keys > /root/.ssh/authorized_keys.amibake; cat /root/.ssh/authorized_keys.amibake > /root/.ssh/authorized_keys; rm -f /root/.ssh/authorized_keys.amibake\"; fi", body),
	} {
		var out bytes.Buffer
		res, err := s.Comm.Run(ctx, &communicator.Cmd{Command: cmd, Stdout: &out, Stderr: &out})
		if err != nil {
			return fmt.Errorf("remove the temporary key from authorized_keys: %w", err)
		}
		if res.ExitStatus != 0 {
			s.UI.Error(fmt.Sprintf("Error removing the temporary key from authorized_keys (exit %d): %s", res.ExitStatus, strings.TrimSpace(out.String())))
		}
	}
	return nil
}

func (stepClearAuthorizedKeys) Cleanup(context.Context, *State) error { return nil }
