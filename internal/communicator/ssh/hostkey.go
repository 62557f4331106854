package ssh

import (
	"bufio"
	"crypto/subtle"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

// Fingerprint identifies a host key the way ssh-keygen -l prints it.
type Fingerprint struct {
	// Hash is "SHA256:<base64>" or, for old cloud-init output, "MD5:aa:bb:...".
	Hash string
	// KeyType is the key's type as printed by cloud-init ("ED25519", "RSA")
	// or, for keys read from a KEYS block, the SSH algorithm name.
	KeyType string
	// Bits is the key size when known, else 0.
	Bits int
}

func (f Fingerprint) String() string {
	if f.KeyType == "" {
		return f.Hash
	}
	return f.Hash + " (" + f.KeyType + ")"
}

// FingerprintOf returns key's SHA256 fingerprint.
func FingerprintOf(key gossh.PublicKey) Fingerprint {
	return Fingerprint{Hash: gossh.FingerprintSHA256(key), KeyType: key.Type()}
}

// matches reports whether the fingerprint names key.
func (f Fingerprint) matches(key gossh.PublicKey) bool {
	var got string
	switch {
	case strings.HasPrefix(f.Hash, "SHA256:"):
		got = gossh.FingerprintSHA256(key)
	case strings.HasPrefix(f.Hash, "MD5:"):
		got = "MD5:" + gossh.FingerprintLegacyMD5(key)
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(f.Hash)) == 1
}

const (
	fpBegin   = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
	fpEnd     = "-----END SSH HOST KEY FINGERPRINTS-----"
	keysBegin = "-----BEGIN SSH HOST KEY KEYS-----"
	keysEnd   = "-----END SSH HOST KEY KEYS-----"
)

// ParseConsoleFingerprints extracts the host key fingerprints cloud-init
// writes to the serial console: the FINGERPRINTS block (lines like
// "256 SHA256:abc root@ip-10-0-0-1 (ED25519)") and, when present, the KEYS
// block of public keys, whose fingerprints are computed. Lines may carry a
// prefix before the markers ("ec2: " on EC2), which is stripped. Unparsable
// lines are ignored: the console is untrusted free text. Duplicates are
// removed; the order is the order of first appearance.
func ParseConsoleFingerprints(consoleOutput string) []Fingerprint {
	var out []Fingerprint
	seen := map[string]bool{}
	add := func(f Fingerprint) {
		if !seen[f.Hash] {
			seen[f.Hash] = true
			out = append(out, f)
		}
	}
	var block, prefix string
	sc := bufio.NewScanner(strings.NewReader(consoleOutput))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r \t")
		if block == "" {
			for _, m := range []string{fpBegin, keysBegin} {
				if i := strings.Index(line, m); i >= 0 {
					block, prefix = m, line[:i]
				}
			}
			continue
		}
		if strings.Contains(line, fpEnd) || strings.Contains(line, keysEnd) {
			block = ""
			continue
		}
		// Interleaved kernel messages lack the block's prefix.
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		line = strings.TrimSpace(line[len(prefix):])
		switch block {
		case fpBegin:
			if f, ok := parseFingerprintLine(line); ok {
				add(f)
			}
		case keysBegin:
			key, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
			if err == nil {
				add(FingerprintOf(key))
			}
		}
	}
	return out
}

// parseFingerprintLine parses "256 SHA256:xxx comment (ED25519)" or the
// older "2048 aa:bb:..:ff comment (RSA)".
func parseFingerprintLine(line string) (Fingerprint, bool) {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return Fingerprint{}, false
	}
	bits, err := strconv.Atoi(fields[0])
	if err != nil {
		return Fingerprint{}, false
	}
	hash := fields[1]
	switch {
	case strings.HasPrefix(hash, "SHA256:") && len(hash) > len("SHA256:"):
	case strings.HasPrefix(hash, "MD5:"):
	case len(hash) == 47 && strings.Count(hash, ":") == 15:
		hash = "MD5:" + strings.ToLower(hash)
	default:
		return Fingerprint{}, false
	}
	f := Fingerprint{Hash: hash, Bits: bits}
	if last := fields[len(fields)-1]; len(fields) > 2 && strings.HasPrefix(last, "(") && strings.HasSuffix(last, ")") {
		f.KeyType = strings.Trim(last, "()")
	}
	return f, true
}

// HostKeyMode says how a HostKeyChecker decides.
type HostKeyMode int

const (
	// HostKeyPinned accepts only keys whose fingerprint is in the pinned set.
	HostKeyPinned HostKeyMode = iota
	// HostKeyTOFU accepts the first key seen and only that key afterwards.
	HostKeyTOFU
	// HostKeyInsecure accepts any key (Packer's behaviour).
	HostKeyInsecure
)

func (m HostKeyMode) String() string {
	switch m {
	case HostKeyPinned:
		return "pinned"
	case HostKeyTOFU:
		return "trust-on-first-use"
	case HostKeyInsecure:
		return "insecure"
	}
	return "HostKeyMode(" + strconv.Itoa(int(m)) + ")"
}

// HostKeyChecker verifies server host keys. One checker should be kept for
// the life of a build so that a TOFU key accepted on the first connection is
// required on every reconnect. It is safe for concurrent use.
type HostKeyChecker struct {
	mode HostKeyMode

	mu       sync.Mutex
	pinned   []Fingerprint
	accepted *Fingerprint
	// acceptedKey is the key behind accepted, for callers that hand the
	// verified key on (the ansible provisioner's known_hosts).
	acceptedKey gossh.PublicKey
}

// PinnedHostKeys accepts only keys with one of the given fingerprints.
func PinnedHostKeys(fps ...Fingerprint) *HostKeyChecker {
	return &HostKeyChecker{mode: HostKeyPinned, pinned: append([]Fingerprint(nil), fps...)}
}

// TrustOnFirstUse accepts the first key presented and rejects any other key
// later on.
func TrustOnFirstUse() *HostKeyChecker {
	return &HostKeyChecker{mode: HostKeyTOFU}
}

// InsecureIgnoreHostKey accepts any host key.
func InsecureIgnoreHostKey() *HostKeyChecker {
	return &HostKeyChecker{mode: HostKeyInsecure}
}

// Mode returns the checker's policy.
func (h *HostKeyChecker) Mode() HostKeyMode { return h.mode }

// Accepted returns the fingerprint of the last key the checker accepted, so
// that a caller using TOFU can warn with it.
func (h *HostKeyChecker) Accepted() (Fingerprint, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.accepted == nil {
		return Fingerprint{}, false
	}
	return *h.accepted, true
}

// AcceptedKey returns the last key the checker accepted, or nil.
func (h *HostKeyChecker) AcceptedKey() gossh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acceptedKey
}

// HostKeyError reports a host key that the policy rejected.
type HostKeyError struct {
	Addr     string
	Mode     HostKeyMode
	Expected []Fingerprint
	Got      Fingerprint
}

func (e *HostKeyError) Error() string {
	exp := make([]string, len(e.Expected))
	for i, f := range e.Expected {
		exp[i] = f.String()
	}
	what := "expected one of " + strings.Join(exp, ", ")
	if len(exp) == 0 {
		what = "no fingerprints were pinned"
	} else if e.Mode == HostKeyTOFU {
		what = "expected the key trusted on first use, " + exp[0]
	}
	return fmt.Sprintf("ssh: host key mismatch for %s: got %s, %s (possible man-in-the-middle, or the host was replaced)", e.Addr, e.Got, what)
}

// Callback returns the ssh.HostKeyCallback implementing the policy.
func (h *HostKeyChecker) Callback() gossh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		got := FingerprintOf(key)
		h.mu.Lock()
		defer h.mu.Unlock()
		switch h.mode {
		case HostKeyInsecure:
			h.accepted, h.acceptedKey = &got, key
			return nil
		case HostKeyTOFU:
			if h.accepted == nil {
				h.accepted, h.acceptedKey = &got, key
				return nil
			}
			if h.accepted.Hash == got.Hash {
				h.acceptedKey = key
				return nil
			}
			return &HostKeyError{Addr: hostname, Mode: h.mode, Expected: []Fingerprint{*h.accepted}, Got: got}
		default:
			for _, f := range h.pinned {
				if f.matches(key) {
					h.accepted, h.acceptedKey = &got, key
					return nil
				}
			}
			return &HostKeyError{Addr: hostname, Mode: h.mode, Expected: h.pinned, Got: got}
		}
	}
}
