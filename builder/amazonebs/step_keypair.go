package amazonebs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"
	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/ledger"
)

// stepKeyPair provides the SSH key: the template's ssh_keypair_name with
// ssh_private_key_file, or the agent, or a temporary key generated here and
// imported, so that the private key never crosses the network.
type stepKeyPair struct {
	created string // temporary key pair name
	keyFile string // -debug copy of the private key
}

func (*stepKeyPair) Name() string { return "key pair" }

func (st *stepKeyPair) Run(ctx context.Context, s *State) error {
	c := s.Config
	switch {
	case c.Communicator == "none":
		return nil
	case c.SSHPrivateKeyFile != "":
		return useKeyFile(s)
	case c.SSHKeyPairName != "" || c.SSHAgentAuth || c.SSHPassword != "":
		// The agent (or a password) authenticates; the key pair, if named,
		// only installs its public key.
		s.KeyName = c.SSHKeyPairName
		return nil
	}
	if err := st.importTemporary(ctx, s); err != nil {
		return err
	}
	if s.Debug {
		return st.writeDebugKey(s)
	}
	return nil
}

// useKeyFile uses ssh_private_key_file (with ssh_keypair_name, if set, to
// install its public key).
func useKeyFile(s *State) error {
	c := s.Config
	key, err := os.ReadFile(c.SSHPrivateKeyFile)
	if err != nil {
		return fmt.Errorf("read ssh_private_key_file: %w", err)
	}
	if _, err := gossh.ParseRawPrivateKey(key); err != nil {
		return fmt.Errorf("ssh_private_key_file %s: %w", c.SSHPrivateKeyFile, err)
	}
	s.Secrets.Add(string(key))
	s.PrivateKey = key
	s.KeyName = c.SSHKeyPairName
	if s.KeyName != "" {
		s.UI.Say("Using existing SSH private key")
	}
	return nil
}

// importTemporary generates the temporary key here and imports its public
// half, so that the private key never crosses the network.
func (st *stepKeyPair) importTemporary(ctx context.Context, s *State) error {
	c := s.Config
	name := c.TemporaryKeyPairName
	if name == "" {
		name = "amibake_" + uuid.NewString()
	}
	pub, private, err := generateKey(c.TemporaryKeyPairType, c.TemporaryKeyPairBits)
	if err != nil {
		return err
	}
	s.Secrets.Add(string(private))
	runTags, err := s.renderTags("run_tags", c.Parsed.RunTags)
	if err != nil {
		return err
	}
	s.UI.Say("Creating temporary keypair: " + name)
	entry, err := s.intend(ledger.KindKeyPair, s.Region, name)
	if err != nil {
		return fmt.Errorf("record the temporary key pair in the run journal: %w", err)
	}
	var api keyPairAPI = s.ec2("")
	out, err := api.ImportKeyPair(ctx, importKeyPairInput(name, pub, s.tagSpec(types.ResourceTypeKeyPair, runTags)))
	if err != nil {
		// A generated name is ours alone: if the call may have gone
		// through, delete by name (a no-op when it did not).
		if c.TemporaryKeyPairName == "" && (maybeCreated(ctx, err) || apiCode(err) == "InvalidKeyPair.Duplicate") {
			st.created = name
		}
		return fmt.Errorf("import temporary key pair %s: %w", name, err)
	}
	st.created = name
	if err := s.created(entry, aws.ToString(out.KeyName)); err != nil {
		return fmt.Errorf("record key pair %s in the run journal: %w", name, err)
	}
	s.KeyName, s.PrivateKey = name, private
	return nil
}

// writeDebugKey is -debug's copy of the temporary private key.
func (st *stepKeyPair) writeDebugKey(s *State) error {
	st.keyFile = debugKeyFile(s.PackerName, s.BuildName)
	s.UI.Message("Saving key for debug purposes: " + st.keyFile)
	kentry, err := s.intend(ledger.KindLocalFile, "", mustAbs(st.keyFile))
	if err != nil {
		return fmt.Errorf("record the debug key file in the run journal: %w", err)
	}
	if err := writeKeyFile(st.keyFile, s.PrivateKey); err != nil {
		return err
	}
	_ = s.created(kentry, mustAbs(st.keyFile))
	s.DebugKeyFile = mustAbs(st.keyFile)
	return nil
}

func (st *stepKeyPair) Cleanup(ctx context.Context, s *State) error {
	var err error
	if st.created != "" {
		s.UI.Say("Deleting temporary keypair...")
		if _, derr := s.ec2("").DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(st.created)}); derr != nil && apiCode(derr) != "InvalidKeyPair.NotFound" {
			s.UI.Error(fmt.Sprintf("Error cleaning up keypair. Please delete the key manually: %s", st.created))
			err = fmt.Errorf("delete temporary key pair %s: %w", st.created, derr)
		} else {
			s.deleted(ledger.KindKeyPair, s.Region, st.created)
			st.created = ""
		}
	}
	if st.keyFile != "" {
		if rerr := os.Remove(st.keyFile); rerr != nil && !os.IsNotExist(rerr) {
			s.UI.Error(fmt.Sprintf("Error removing debug key %s: %v", st.keyFile, rerr))
		} else {
			s.deleted(ledger.KindLocalFile, "", mustAbs(st.keyFile))
		}
		st.keyFile = ""
	}
	return err
}

// generateKey returns the public key and the OpenSSH-format private key.
func generateKey(typ string, bits int) (gossh.PublicKey, []byte, error) {
	var priv any
	switch typ {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, nil, fmt.Errorf("generate %d-bit RSA key: %w", bits, err)
		}
		priv = k
	default:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		priv = k
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("make SSH signer: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	return signer.PublicKey(), pem.EncodeToMemory(block), nil
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeFileName(s string) string { return unsafeFileChars.ReplaceAllString(s, "_") }

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// debugKeyFile is -debug's key file: ec2_<packer_build_name>.pem, as
// Packer names it (the source's name in HCL2).
func debugKeyFile(packerName, buildName string) string {
	if packerName == "" {
		packerName = buildName
	}
	return "ec2_" + safeFileName(packerName) + ".pem"
}
