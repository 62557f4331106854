package vm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The console output is user-visible (GetConsoleOutput): its layout is
// pinned by a golden file, with times normalized.
func TestConsoleGolden(t *testing.T) {
	keys, err := os.ReadFile("testdata/hostkeys.pub")
	if err != nil {
		t.Fatal(err)
	}
	user, err := os.ReadFile("testdata/userkey.pub")
	if err != nil {
		t.Fatal(err)
	}
	mc := &Machine{
		spec:     LaunchSpec{InstanceID: "i-0123456789abcdef0", IPs: []string{"127.0.0.5"}, User: "ubuntu", AuthorizedKey: strings.TrimSpace(string(user))},
		hostname: "ip-127-0-0-5",
	}
	for rest := keys; len(bytes.TrimSpace(rest)) > 0; {
		k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			t.Fatal(err)
		}
		mc.hostKeys = append(mc.hostKeys, k)
		rest = r
	}
	got := bootLog(mc, true) + finalLog(mc, true, "hello from user data\n") + shutdownLog(mc) + bootLog(mc, false) + finalLog(mc, false, "")
	for _, re := range []struct{ re, repl string }{
		{`[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000`, "DATE"},
		{`<14>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}`, "<14>TIME"},
		{`Up \d+\.\d+ seconds$`, "Up N seconds"},
	} {
		got = regexp.MustCompile("(?m)"+re.re).ReplaceAllString(got, re.repl)
	}
	golden := filepath.Join("testdata", "console.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("console output differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
	fps := ParseHostKeyFingerprints(got)
	if len(fps) != 3 || fps[0].Type != "ECDSA" || fps[1].Type != "ED25519" || fps[2].Type != "RSA" || fps[2].Bits != 3072 {
		t.Errorf("parsed fingerprints %+v", fps)
	}
	for i, fp := range fps {
		if fp.Fingerprint != ssh.FingerprintSHA256(mc.hostKeys[i]) || fp.Comment != "root@ip-127-0-0-5" {
			t.Errorf("fingerprint %d: %+v", i, fp)
		}
	}
}

func TestParseHostKeyFingerprints(t *testing.T) {
	tests := []struct {
		name    string
		console string
		want    int
	}{
		{"empty", "", 0},
		{"plain lines", "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:abc root@h (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n", 1},
		{"unterminated garbage", "-----BEGIN SSH HOST KEY FINGERPRINTS-----\nnot a line\n", 0},
		{"last block wins", "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:a r@h (ED25519)\n256 SHA256:b r@h (ECDSA)\n-----END SSH HOST KEY FINGERPRINTS-----\n-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:c r@h (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n", 1},
	}
	for _, tt := range tests {
		if got := ParseHostKeyFingerprints(tt.console); len(got) != tt.want {
			t.Errorf("%s: %d fingerprints (%+v), want %d", tt.name, len(got), got, tt.want)
		}
	}
}

func FuzzParseHostKeyFingerprints(f *testing.F) {
	golden, _ := os.ReadFile("testdata/console.golden")
	f.Add(string(golden))
	f.Add("-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:abc root@h (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----\n")
	f.Add("<14>x ec2: 256")
	f.Fuzz(func(t *testing.T, console string) {
		for _, fp := range ParseHostKeyFingerprints(console) {
			if strings.ContainsAny(fp.Type, "()") || fp.Type == "" || !strings.HasPrefix(fp.Fingerprint, "SHA256:") || fp.Bits <= 0 {
				t.Errorf("bad parse %+v", fp)
			}
		}
	})
}

func TestConsoleFlavor(t *testing.T) {
	tests := []struct {
		osRelease, wantKernel string
	}{
		{"NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\n", "amzn2023"},
		{"ID=debian\nVERSION_ID=\"12\"\n", "cloud-amd64"},
		{"ID=ubuntu\n", "-aws"},
		{"", "-aws"},
	}
	for _, tt := range tests {
		mc := &Machine{spec: LaunchSpec{InstanceID: "i-1", IPs: []string{"127.0.0.2"}}, osRelease: tt.osRelease}
		if got := bootLog(mc, true); !strings.Contains(strings.SplitN(got, "\n", 2)[0], tt.wantKernel) {
			t.Errorf("os-release %q: first line %q, want kernel containing %q", tt.osRelease, strings.SplitN(got, "\n", 2)[0], tt.wantKernel)
		}
	}
}
