package ssh_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

const benchSize = 64 << 20

// BenchmarkUpload64MiB uploads a 64 MiB file with our SFTP client and with
// OpenSSH's scp to the same sshd, alternating, and reports both rates and
// their ratio (goal >= 0.9; Packer's upload reaches about 0.37). ns/op and
// MB/s are ours; scp runs with the timer stopped.
func BenchmarkUpload64MiB(b *testing.B) {
	srv := sshtest.Start(b, sshtest.Options{})
	c, err := ssh.Connect(context.Background(), ssh.Config{
		Host: srv.Host, Port: srv.Port, User: srv.User, PrivateKey: srv.ClientKeyPEM,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	// tmpfs when there is one: the disk is not what is being measured.
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err = os.MkdirTemp("/dev/shm", "amibake-bench-"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	src := filepath.Join(dir, "payload.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, benchSize); err != nil {
		b.Fatal(err)
	}
	f.Close()
	oursDst := filepath.Join(dir, "ours.bin")
	scpDst := filepath.Join(dir, "scp.bin")

	scp := func(args ...string) {
		cmd := exec.Command("scp", append(args, "-q", "-F", "/dev/null", "-i", srv.ClientKeyFile,
			"-P", strconv.Itoa(srv.Port),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
			src, srv.User+"@"+srv.Host+":"+scpDst)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("scp: %v\n%s", err, out)
		}
	}
	upload := func() {
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		if err := c.Upload(context.Background(), oursDst, f, fi); err != nil {
			b.Fatal(err)
		}
	}
	// Warm the page cache and the connection.
	upload()
	scp()

	// scp speaks SFTP by default since OpenSSH 9.0; -O is the old
	// protocol, reported for information.
	// What scp spends on connecting, measured with "ssh true", is also
	// reported taken off its time: the conservative comparison.
	handshake := func() {
		cmd := exec.Command("ssh", "-q", "-F", "/dev/null", "-i", srv.ClientKeyFile,
			"-p", strconv.Itoa(srv.Port),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
			srv.User+"@"+srv.Host, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ssh: %v\n%s", err, out)
		}
	}
	var scpTime, legacyTime, handshakeTime time.Duration
	b.SetBytes(benchSize)
	b.ResetTimer()
	// CPU time spent by each client (the server's is common to both),
	// which the machine's load does not distort the way it does wall time.
	var scpCPU, oursCPU time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		start := time.Now()
		cpu0 := cpuTime(syscall.RUSAGE_CHILDREN)
		scp()
		scpCPU += cpuTime(syscall.RUSAGE_CHILDREN) - cpu0
		scpTime += time.Since(start)
		start = time.Now()
		scp("-O")
		legacyTime += time.Since(start)
		start = time.Now()
		handshake()
		handshakeTime += time.Since(start)
		cpu0 = cpuTime(syscall.RUSAGE_SELF)
		b.StartTimer()
		upload()
		b.StopTimer()
		oursCPU += cpuTime(syscall.RUSAGE_SELF) - cpu0
		b.StartTimer()
	}
	b.StopTimer()
	oursTime := b.Elapsed()
	mbps := func(d time.Duration) float64 { return float64(benchSize) * float64(b.N) / 1e6 / d.Seconds() }
	b.ReportMetric(float64(oursCPU.Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(scpCPU.Milliseconds())/float64(b.N), "scp-cpu-ms/op")
	b.ReportMetric(mbps(scpTime), "scp-MB/s")
	b.ReportMetric(mbps(legacyTime), "scp-O-MB/s")
	b.ReportMetric(mbps(oursTime)/mbps(scpTime), "ratio")
	if net := scpTime - handshakeTime; net > 0 {
		b.ReportMetric(mbps(oursTime)/mbps(net), "ratio-vs-scp-transfer-only")
	}
	if st, err := os.Stat(oursDst); err != nil || st.Size() != benchSize {
		b.Fatalf("uploaded file: %v %v", st, err)
	}
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
