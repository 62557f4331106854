package ssh_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"reflect"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/communicator/ssh"
)

func newKey(t testing.TB) gossh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseConsoleFingerprints(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	keyLine := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key)))
	keyFP := gossh.FingerprintSHA256(key)
	for _, tc := range []struct {
		name    string
		console string
		want    []ssh.Fingerprint
	}{
		{
			name: "cloud-init block with ec2 prefix and CRLF",
			console: "Booting...\r\n" +
				"ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n" +
				"ec2: 256 SHA256:abcDEF012+/xyz root@ip-10-0-0-1 (ECDSA)\r\n" +
				"ec2: 256 SHA256:uvw987 root@ip-10-0-0-1 (ED25519)\r\n" +
				"ec2: 3072 SHA256:rsaKEY root@ip-10-0-0-1 (RSA)\r\n" +
				"ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n",
			want: []ssh.Fingerprint{
				{Hash: "SHA256:abcDEF012+/xyz", KeyType: "ECDSA", Bits: 256},
				{Hash: "SHA256:uvw987", KeyType: "ED25519", Bits: 256},
				{Hash: "SHA256:rsaKEY", KeyType: "RSA", Bits: 3072},
			},
		},
		{
			name: "no prefix; kernel message interleaved",
			console: "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
				"256 SHA256:one root@host (ED25519)\n" +
				"-----END SSH HOST KEY FINGERPRINTS-----\n",
			want: []ssh.Fingerprint{{Hash: "SHA256:one", KeyType: "ED25519", Bits: 256}},
		},
		{
			name: "prefixed block ignores unprefixed noise",
			console: "ci-info: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
				"[   12.3] 256 SHA256:spoofed root@x (ED25519)\n" +
				"ci-info: 256 SHA256:real root@x (ED25519)\n" +
				"ci-info: -----END SSH HOST KEY FINGERPRINTS-----\n",
			want: []ssh.Fingerprint{{Hash: "SHA256:real", KeyType: "ED25519", Bits: 256}},
		},
		{
			name: "old MD5 format",
			console: "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
				"2048 AA:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99 /etc/ssh/ssh_host_rsa_key.pub (RSA)\n" +
				"-----END SSH HOST KEY FINGERPRINTS-----\n",
			want: []ssh.Fingerprint{{Hash: "MD5:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99", KeyType: "RSA", Bits: 2048}},
		},
		{
			name: "KEYS block, duplicate of a fingerprint line removed",
			console: "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
				"256 " + keyFP + " root@h (ED25519)\n" +
				"-----END SSH HOST KEY FINGERPRINTS-----\n" +
				"-----BEGIN SSH HOST KEY KEYS-----\n" +
				keyLine + " root@h\n" +
				"not a key\n" +
				"-----END SSH HOST KEY KEYS-----\n",
			want: []ssh.Fingerprint{{Hash: keyFP, KeyType: "ED25519", Bits: 256}},
		},
		{
			name:    "KEYS block only",
			console: "-----BEGIN SSH HOST KEY KEYS-----\n" + keyLine + "\n-----END SSH HOST KEY KEYS-----\n",
			want:    []ssh.Fingerprint{{Hash: keyFP, KeyType: "ssh-ed25519"}},
		},
		{
			name: "garbage lines skipped",
			console: "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
				"\n" + "256\n" + "x SHA256:abc\n" + "256 notahash root (ED25519)\n" + "256 SHA256: root\n" +
				"-----END SSH HOST KEY FINGERPRINTS-----\n",
			want: nil,
		},
		{name: "no block", console: "login: ", want: nil},
		{
			name:    "unterminated block still read",
			console: "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:cut root@h (ED25519)\n",
			want:    []ssh.Fingerprint{{Hash: "SHA256:cut", KeyType: "ED25519", Bits: 256}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ssh.ParseConsoleFingerprints(tc.console)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseConsoleFingerprints(f *testing.F) {
	f.Add("ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\nec2: 256 SHA256:abc root@h (ED25519)\nec2: -----END SSH HOST KEY FINGERPRINTS-----\n")
	f.Add("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvLhj0vGjt6jZ0ZsT8C3l0m4Z1M3gQvC0yJw2bqX3bP\n-----END SSH HOST KEY KEYS-----")
	f.Fuzz(func(t *testing.T, console string) {
		for _, fp := range ssh.ParseConsoleFingerprints(console) {
			if !strings.HasPrefix(fp.Hash, "SHA256:") && !strings.HasPrefix(fp.Hash, "MD5:") {
				t.Errorf("fingerprint %q has no hash prefix", fp.Hash)
			}
			if strings.ContainsAny(fp.Hash, " \t\r\n") {
				t.Errorf("fingerprint %q contains space", fp.Hash)
			}
		}
	})
}

func TestHostKeyCheckerCallback(t *testing.T) {
	t.Parallel()
	a, b := newKey(t), newKey(t)
	fa := ssh.FingerprintOf(a)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}
	for _, tc := range []struct {
		name    string
		checker *ssh.HostKeyChecker
		keys    []gossh.PublicKey
		wantOK  []bool
	}{
		{"pinned accepts its key only", ssh.PinnedHostKeys(fa), []gossh.PublicKey{a, b, a}, []bool{true, false, true}},
		{"pinned MD5", ssh.PinnedHostKeys(ssh.Fingerprint{Hash: "MD5:" + gossh.FingerprintLegacyMD5(b)}), []gossh.PublicKey{a, b}, []bool{false, true}},
		{"empty pin set rejects all", ssh.PinnedHostKeys(), []gossh.PublicKey{a}, []bool{false}},
		{"tofu keeps the first", ssh.TrustOnFirstUse(), []gossh.PublicKey{b, b, a}, []bool{true, true, false}},
		{"insecure takes all", ssh.InsecureIgnoreHostKey(), []gossh.PublicKey{a, b}, []bool{true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb := tc.checker.Callback()
			for i, k := range tc.keys {
				err := cb("host:22", addr, k)
				if (err == nil) != tc.wantOK[i] {
					t.Errorf("key %d: err = %v, want ok=%v", i, err, tc.wantOK[i])
				}
			}
		})
	}
	want := "ssh: host key mismatch for 10.0.0.1:22: got " + gossh.FingerprintSHA256(b) + " (ssh-ed25519), expected one of " + fa.Hash + " (ssh-ed25519)"
	if err := ssh.PinnedHostKeys(fa).Callback()("10.0.0.1:22", addr, b); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message:\n%v\nwant prefix:\n%s", err, want)
	}
}
