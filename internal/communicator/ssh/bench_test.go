package ssh_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

const benchSize = 64 << 20

// benchCipher is the one cipher sshd offers in the benchmark, so both
// clients use it: golang.org/x/crypto/ssh's first choice (with AES-NI it
// is also the fastest here); OpenSSH would pick chacha20-poly1305 on its
// own, so it is also passed -c.
const benchCipher = "aes128-gcm@openssh.com"

// transfer is one way of moving a file, timed: amibake's or OpenSSH's,
// over SFTP or scp, up or down.
type transfer struct {
	name    string
	openssh bool
	// run moves the payload (full) or an empty file (!full).
	run func(b *testing.B, full bool)
}

// BenchmarkTransfer64MiB moves a 64 MiB file to and from the same sshd
// with amibake's SFTP and scp clients and with OpenSSH's sftp and scp -O
// (the scp protocol, as amibake's scp speaks), and reports for each
// protocol and direction amibake's rate over OpenSSH's (goal >= 0.9).
//
// Like for like: one cipher for both (benchCipher, the only one sshd
// offers); connections made before timing (amibake's Comm is connected
// once, OpenSSH runs through a ControlMaster connection opened once); and
// each transfer's time is taken minus that of the same transfer of an
// empty file, run next to it, which leaves out what is not moving bytes
// (starting the sftp or scp process, opening the channel, the remote scp
// or sftp-server starting). The sixteen runs of an iteration are
// interleaved, starting from a different one each iteration, and the
// ratios are medians of per-iteration ratios, so machine load that comes
// and goes hits both sides alike. ns/op and MB/s are amibake's SFTP
// upload, whole (empty-file time not taken off).
//
// PROTO-WAY-gross-ratio is the same ratio with the empty-file time left
// in: it favours amibake, whose fixed cost per transfer is a few calls on
// an open session where OpenSSH's is a process, and bounds how much the
// subtraction can matter.
//
// The client's CPU time per transfer (the same difference, full minus
// empty), which load distorts less than wall time, is compared too
// (PROTO-WAY-cpu-ratio: OpenSSH's over amibake's, above 1 when amibake
// uses less): amibake's process, or the OpenSSH tool, the ssh it runs
// and the ControlMaster, which does the ciphering. sshd is common to
// both and left out.
func BenchmarkTransfer64MiB(b *testing.B) {
	if _, err := exec.LookPath("sftp"); err != nil {
		b.Fatalf("OpenSSH client: %v (install openssh-client)", err)
	}
	srv := sshtest.Start(b, sshtest.Options{ExtraConfig: []string{"Ciphers " + benchCipher}})
	connect := func(method string) *ssh.Comm {
		c, err := ssh.Connect(context.Background(), ssh.Config{
			Host: srv.Host, Port: srv.Port, User: srv.User, PrivateKey: srv.ClientKeyPEM, FileTransfer: method,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	oursSFTP, oursSCP := connect(ssh.TransferSFTP), connect(ssh.TransferSCP)

	// tmpfs when there is one: the disk is not what is being measured.
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "amibake-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	// The local and remote sides are the same file system: sshd runs here.
	src := map[bool]string{true: file("payload.bin"), false: file("empty.bin")}
	writeFile(b, src[true], benchSize)
	writeFile(b, src[false], 0)

	opensshArgs, master := startControlMaster(b, srv, file("ctl"))
	clientCPU := func(openssh bool) time.Duration {
		if !openssh {
			return cpuTime(syscall.RUSAGE_SELF)
		}
		return cpuTime(syscall.RUSAGE_CHILDREN) + schedTime(b, master)
	}
	openssh := func(tool string, args ...string) {
		cmd := exec.Command(tool, append(append(slices.Clone(opensshArgs), "-P", strconv.Itoa(srv.Port)), args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", tool, args, err, out)
		}
	}
	remote := func(p string) string { return srv.User + "@" + srv.Host + ":" + p }

	var transfers []transfer
	for _, ours := range []struct {
		proto string
		c     *ssh.Comm
	}{{"sftp", oursSFTP}, {"scp", oursSCP}} {
		transfers = append(transfers,
			transfer{"amibake-" + ours.proto + "-up", false, func(b *testing.B, full bool) {
				f, err := os.Open(src[full])
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fi, _ := f.Stat()
				if err := ours.c.Upload(context.Background(), file("up-"+ours.proto+strconv.FormatBool(full)), f, fi); err != nil {
					b.Fatal(err)
				}
			}},
			transfer{"amibake-" + ours.proto + "-down", false, func(b *testing.B, full bool) {
				f, err := os.Create(file("down-" + ours.proto + strconv.FormatBool(full)))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				if err := ours.c.Download(context.Background(), src[full], f); err != nil {
					b.Fatal(err)
				}
			}})
	}
	for _, proto := range []string{"sftp", "scp"} {
		up := func(full bool) string { return file("up-openssh-" + proto + strconv.FormatBool(full)) }
		down := func(full bool) string { return file("down-openssh-" + proto + strconv.FormatBool(full)) }
		if proto == "sftp" {
			batch := func(name, line string) string {
				p := file(name)
				if err := os.WriteFile(p, []byte(line+"\n"), 0o600); err != nil {
					b.Fatal(err)
				}
				return p
			}
			upBatch := map[bool]string{}
			downBatch := map[bool]string{}
			for _, full := range []bool{true, false} {
				upBatch[full] = batch(fmt.Sprint("up-batch-", full), "put "+src[full]+" "+up(full))
				downBatch[full] = batch(fmt.Sprint("down-batch-", full), "get "+src[full]+" "+down(full))
			}
			login := srv.User + "@" + srv.Host
			transfers = append(transfers,
				transfer{"openssh-sftp-up", true, func(b *testing.B, full bool) { openssh("sftp", "-q", "-b", upBatch[full], login) }},
				transfer{"openssh-sftp-down", true, func(b *testing.B, full bool) { openssh("sftp", "-q", "-b", downBatch[full], login) }})
			continue
		}
		transfers = append(transfers,
			transfer{"openssh-scp-up", true, func(b *testing.B, full bool) { openssh("scp", "-q", "-O", src[full], remote(up(full))) }},
			transfer{"openssh-scp-down", true, func(b *testing.B, full bool) { openssh("scp", "-q", "-O", remote(src[full]), down(full)) }})
	}

	// Warm the page cache, the connections and the sessions, and check
	// that every transfer moves the whole file.
	for _, t := range transfers {
		t.run(b, true)
		t.run(b, false)
	}
	for _, name := range []string{"up-sftptrue", "up-scptrue", "down-sftptrue", "down-scptrue",
		"up-openssh-sftptrue", "up-openssh-scptrue", "down-openssh-sftptrue", "down-openssh-scptrue"} {
		if st, err := os.Stat(file(name)); err != nil || st.Size() != benchSize {
			b.Fatalf("%s after a transfer: %v %v", name, st, err)
		}
	}

	net, gross, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}, map[string][]time.Duration{}
	b.SetBytes(benchSize)
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		for k := range transfers {
			t := transfers[(i+k)%len(transfers)]
			// Empty first on even iterations, last on odd ones.
			order := []bool{false, true}
			if i%2 == 1 {
				order = []bool{true, false}
			}
			var took, used [2]time.Duration // empty, full
			for _, full := range order {
				j := 0
				if full {
					j = 1
				}
				if full && t.name == "amibake-sftp-up" {
					b.StartTimer()
				}
				cpu0, start := clientCPU(t.openssh), time.Now()
				t.run(b, full)
				took[j] = time.Since(start)
				b.StopTimer()
				used[j] = clientCPU(t.openssh) - cpu0
			}
			net[t.name] = append(net[t.name], took[1]-took[0])
			gross[t.name] = append(gross[t.name], took[1])
			cpu[t.name] = append(cpu[t.name], used[1]-used[0])
		}
	}
	// Connection set-up stayed outside the timing: three logins in all
	// (amibake's two Comms and OpenSSH's master).
	if n := strings.Count(srv.Log(), "Accepted publickey"); n != 3 {
		b.Fatalf("sshd accepted %d logins, want 3 (a transfer made its own connection):\n%s", n, srv.Log())
	}
	mbps := func(d time.Duration) float64 { return float64(benchSize) / 1e6 / d.Seconds() }
	for _, proto := range []string{"sftp", "scp"} {
		for _, way := range []string{"up", "down"} {
			ours, theirs := net["amibake-"+proto+"-"+way], net["openssh-"+proto+"-"+way]
			ratios, grossRatios, cpuRatios := make([]float64, b.N), make([]float64, b.N), make([]float64, b.N)
			k := proto + "-" + way
			for i := range ratios {
				ratios[i] = theirs[i].Seconds() / ours[i].Seconds() // rate over rate
				grossRatios[i] = gross["openssh-"+k][i].Seconds() / gross["amibake-"+k][i].Seconds()
				cpuRatios[i] = cpu["openssh-"+k][i].Seconds() / cpu["amibake-"+k][i].Seconds()
			}
			b.ReportMetric(median(ratios), proto+"-"+way+"-ratio")
			b.ReportMetric(median(grossRatios), proto+"-"+way+"-gross-ratio")
			b.ReportMetric(median(cpuRatios), proto+"-"+way+"-cpu-ratio")
			b.ReportMetric(mbps(medianDuration(ours)), "amibake-"+proto+"-"+way+"-MB/s")
			b.ReportMetric(mbps(medianDuration(theirs)), "openssh-"+proto+"-"+way+"-MB/s")
		}
	}
}

// startControlMaster opens the OpenSSH connection the benchmark's sftp
// and scp runs share, and returns their common options and its pid.
func startControlMaster(b *testing.B, srv *sshtest.Server, ctl string) ([]string, int) {
	common := []string{"-F", "/dev/null", "-i", srv.ClientKeyFile, "-c", benchCipher,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ControlPath=" + ctl}
	login := srv.User + "@" + srv.Host
	master := exec.Command("ssh", append(slices.Clone(common), "-p", strconv.Itoa(srv.Port),
		"-o", "ControlMaster=yes", "-N", login)...)
	if err := master.Start(); err != nil {
		b.Fatalf("ssh ControlMaster: %v", err)
	}
	b.Cleanup(func() { _ = master.Process.Kill(); _ = master.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		check := exec.Command("ssh", append(slices.Clone(common), "-O", "check", login)...)
		if check.Run() == nil {
			return common, master.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("ssh ControlMaster not ready after 10s:\n%s", srv.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(b *testing.B, p string, size int64) {
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// schedTime is the CPU time of a running single-threaded process, in
// nanoseconds (/proc/PID/schedstat's first field), where getrusage
// would only count it once it exits.
func schedTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		b.Fatalf("CPU time of the ssh ControlMaster: %v", err)
	}
	f := strings.Fields(string(data))
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		b.Fatalf("CPU time of the ssh ControlMaster: %q: %v", data, err)
	}
	return time.Duration(ns)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func medianDuration(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}
