package vm

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// EC2 keeps the most recent 64 KiB of console output.
const consoleLimit = 64 << 10

// osConsole is what differs between distributions on the console.
type osConsole struct{ kernel, cloudInit string }

var (
	ubuntuConsole = osConsole{
		kernel:    "6.8.0-1021-aws (buildd@lcy02-amd64-104) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0, GNU ld (GNU Binutils for Ubuntu) 2.42) #23-Ubuntu SMP",
		cloudInit: "24.4-0ubuntu1~24.04.2",
	}
	osConsoles = map[string]osConsole{
		"amzn": {
			kernel:    "6.1.119-129.201.amzn2023.x86_64 (mockbuild@ip-10-0-33-99) (gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-2), GNU ld version 2.39-6.amzn2023.0.10) #1 SMP PREEMPT_DYNAMIC",
			cloudInit: "22.2.2",
		},
		"debian": {
			kernel:    "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1",
			cloudInit: "22.4.2",
		},
	}
)

// consoleFor picks the console flavor from /etc/os-release's ID.
func consoleFor(osRelease string) osConsole {
	for _, l := range strings.Split(osRelease, "\n") {
		if id, ok := strings.CutPrefix(l, "ID="); ok {
			if c, ok := osConsoles[strings.Trim(id, `"' `)]; ok {
				return c
			}
		}
	}
	return ubuntuConsole
}

func (mc *Machine) appendConsole(s string) {
	mc.consMu.Lock()
	defer mc.consMu.Unlock()
	mc.console = append(mc.console, s...)
	if len(mc.console) > consoleLimit {
		mc.console = append([]byte(nil), mc.console[len(mc.console)-consoleLimit:]...)
	}
}

// ConsoleOutput returns what the instance printed on its serial console: a
// cloud-init style boot log, the user data's output and the host key
// fingerprints, as GetConsoleOutput shows them.
func (mc *Machine) ConsoleOutput() string {
	mc.consMu.Lock()
	defer mc.consMu.Unlock()
	return string(mc.console)
}

func (mc *Machine) uptime() float64 {
	return 4.5 + time.Since(mc.bootedAt).Seconds()
}

func bootLog(mc *Machine, first bool) string {
	var b strings.Builder
	now := time.Now().UTC()
	osc := consoleFor(mc.osRelease)
	cloudInitVersion := osc.cloudInit
	fmt.Fprintf(&b, "[    0.000000] Linux version %s\n", osc.kernel)
	fmt.Fprintf(&b, "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-%s root=PARTUUID=%s ro console=tty1 console=ttyS0 nvme_core.io_timeout=4294967295 panic=-1\n", strings.Fields(osc.kernel)[0], partUUID(mc.spec.InstanceID))
	fmt.Fprintf(&b, "[    1.201733] EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none.\n")
	fmt.Fprintf(&b, "[    2.318420] systemd[1]: Hostname set to <%s>.\n", mc.hostname)
	fmt.Fprintf(&b, "Cloud-init v. %s running 'init-local' at %s. Up 4.51 seconds.\n", cloudInitVersion, now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Cloud-init v. %s running 'init' at %s. Up 5.02 seconds.\n", cloudInitVersion, now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "ci-info: ++++++++++++++++++++++++++++++++++++++Net device info+++++++++++++++++++++++++++++++++++++++\n")
	for _, ip := range mc.spec.IPs {
		fmt.Fprintf(&b, "ci-info: | lo     | True | %-15s | 255.0.0.0 | host | . |\n", ip)
	}
	if first {
		fmt.Fprintf(&b, "Generating public/private rsa key pair.\nGenerating public/private ecdsa key pair.\nGenerating public/private ed25519 key pair.\n")
	}
	fmt.Fprintf(&b, "[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n")
	fmt.Fprintf(&b, "Cloud-init v. %s running 'modules:config' at %s. Up 6.12 seconds.\n", cloudInitVersion, now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Cloud-init v. %s running 'modules:final' at %s. Up 6.70 seconds.\n", cloudInitVersion, now.Format(time.RFC1123Z))
	return b.String()
}

func partUUID(id string) string {
	h := fmt.Sprintf("%x", []byte(id+"________________"))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// finalLog is what cloud-init's final stage prints after user scripts:
// keys-to-console, the fingerprint block as real consoles show it (through
// logger, hence the "<14>... ec2:" prefix), then "finished".
func finalLog(mc *Machine, first bool, userOutput string) string {
	var b strings.Builder
	cloudInitVersion := consoleFor(mc.osRelease).cloudInit
	b.WriteString(userOutput)
	if userOutput != "" && !strings.HasSuffix(userOutput, "\n") {
		b.WriteString("\n")
	}
	if first {
		now := time.Now().UTC()
		ts := now.Format("Jan _2 15:04:05")
		if pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(mc.spec.AuthorizedKey)); err == nil {
			if comment == "" {
				comment = "-"
			}
			fmt.Fprintf(&b, "ci-info: ++++++++Authorized keys from %s/.ssh/authorized_keys for user %s++++++++\n", homeOf(mc.spec.User), mc.spec.User)
			fmt.Fprintf(&b, "ci-info: | Keytype | Fingerprint (sha256) | Options | Comment |\n")
			fmt.Fprintf(&b, "ci-info: | %s | %s | - | %s |\n", pub.Type(), strings.TrimPrefix(ssh.FingerprintSHA256(pub), "SHA256:"), comment)
		} else {
			fmt.Fprintf(&b, "ci-info: no authorized SSH keys fingerprints found for user %s.\n", mc.spec.User)
		}
		lines := []string{"", "#############################################################", "-----BEGIN SSH HOST KEY FINGERPRINTS-----"}
		for _, k := range mc.hostKeys {
			lines = append(lines, fmt.Sprintf("%d %s root@%s (%s)", keyBits(k), ssh.FingerprintSHA256(k), mc.hostname, keyTypeName(k)))
		}
		lines = append(lines, "-----END SSH HOST KEY FINGERPRINTS-----", "#############################################################")
		for _, l := range lines {
			fmt.Fprintf(&b, "<14>%s ec2: %s\n", ts, l)
		}
		b.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n")
		for _, k := range mc.hostKeys {
			fmt.Fprintf(&b, "%s root@%s\n", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), mc.hostname)
		}
		b.WriteString("-----END SSH HOST KEY KEYS-----\n")
	}
	fmt.Fprintf(&b, "Cloud-init v. %s finished at %s. Datasource DataSourceEc2Local.  Up %.2f seconds\n",
		cloudInitVersion, time.Now().UTC().Format(time.RFC1123Z), mc.uptime())
	return b.String()
}

func shutdownLog(mc *Machine) string {
	return "[  OK  ] Stopped ssh.service - OpenBSD Secure Shell server.\n[  OK  ] Reached target shutdown.target - System Shutdown.\n"
}

// collectUserData appends the user data's output to the console when it
// finishes (the init's exit line ends it: a daemon the script started may
// keep the pipe open), followed by the rest of cloud-init's final stage.
func (mc *Machine) collectUserData(r *os.File) {
	defer r.Close()
	var out strings.Builder
	status := "terminated"
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, "amibake-user-data-exit "); ok && strings.HasSuffix(line, "\n") {
			status = strings.TrimSpace(rest)
			break
		}
		if out.Len() < consoleLimit {
			out.WriteString(line)
		}
		if err != nil {
			break
		}
	}
	text := out.String()
	if status != "0" {
		text += fmt.Sprintf("%s cc_scripts_user.py[WARNING]: Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts): exit status %s\n",
			time.Now().UTC().Format("2006-01-02 15:04:05,000"), status)
	}
	mc.appendConsole(finalLog(mc, true, text))
}

func keyBits(k ssh.PublicKey) int {
	if ck, ok := k.(ssh.CryptoPublicKey); ok {
		switch pk := ck.CryptoPublicKey().(type) {
		case interface{ Size() int }: // *rsa.PublicKey
			return pk.Size() * 8
		}
	}
	return 256
}

func keyTypeName(k ssh.PublicKey) string {
	switch k.Type() {
	case ssh.KeyAlgoED25519:
		return "ED25519"
	case ssh.KeyAlgoRSA:
		return "RSA"
	default:
		return "ECDSA"
	}
}

// HostKeyFingerprint is one line of the console's fingerprint block.
type HostKeyFingerprint struct {
	Bits        int
	Fingerprint string // "SHA256:..."
	Comment     string // "root@ip-127-0-0-5"
	Type        string // ED25519, ECDSA, RSA
}

// ParseHostKeyFingerprints extracts the lines between
// -----BEGIN SSH HOST KEY FINGERPRINTS----- and -----END ...-----, with or
// without the syslog prefix real consoles carry.
func ParseHostKeyFingerprints(console string) []HostKeyFingerprint {
	var out []HostKeyFingerprint
	in := false
	sc := bufio.NewScanner(strings.NewReader(console))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " ec2: "); i >= 0 && strings.HasPrefix(line, "<") {
			line = line[i+len(" ec2: "):]
		}
		switch {
		case strings.Contains(line, "-----BEGIN SSH HOST KEY FINGERPRINTS-----"):
			in, out = true, nil
		case strings.Contains(line, "-----END SSH HOST KEY FINGERPRINTS-----"):
			in = false
		case in:
			if fp, ok := parseFingerprintLine(line); ok {
				out = append(out, fp)
			}
		}
	}
	return out
}

// parseFingerprintLine parses "256 SHA256:... root@host (ED25519)".
func parseFingerprintLine(line string) (HostKeyFingerprint, bool) {
	f := strings.Fields(line)
	if len(f) != 4 || !strings.HasPrefix(f[1], "SHA256:") || len(f[1]) == len("SHA256:") {
		return HostKeyFingerprint{}, false
	}
	bits, err := strconv.Atoi(f[0])
	typ, ok := strings.CutPrefix(f[3], "(")
	typ, ok2 := strings.CutSuffix(typ, ")")
	if err != nil || bits <= 0 || !ok || !ok2 || typ == "" || strings.ContainsAny(typ, "()") {
		return HostKeyFingerprint{}, false
	}
	return HostKeyFingerprint{Bits: bits, Fingerprint: f[1], Comment: f[2], Type: typ}, true
}
