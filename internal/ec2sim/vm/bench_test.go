package vm

import (
	"context"
	"fmt"
	"github.com/pkg/sftp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkBoot measures what a bake waits for per instance: Create from a
// snapshot, Boot, the first SSH connection and command. Machines stay up,
// so the memory metrics are per running machine.
func BenchmarkBoot(b *testing.B) {
	benchMachines(b, b.N)
}

// BenchmarkHundredMachines reports the memory of 100 machines running at once.
func BenchmarkHundredMachines(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m := newManager(b, Options{})
		b.StartTimer()
		bootMany(b, m, 100)
		b.StopTimer()
		reportMemory(b, m, 100)
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func benchMachines(b *testing.B, n int) {
	m := newManager(b, Options{})
	if err := m.SeedSnapshot("snap-bench", ubuntu); err != nil {
		b.Fatal(err)
	}
	rk, _ := clientKeys(b)
	// Warm the RSA host key pool as a running simulator would have.
	for len(rsaPool) < cap(rsaPool) {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	bootMany(b, m, n)
	b.StopTimer()
	_ = rk
	reportMemory(b, m, n)
}

func bootMany(b *testing.B, m *Manager, n int) {
	m.mu.Lock()
	_, seeded := m.snapshots["snap-bench"]
	m.mu.Unlock()
	if !seeded {
		if err := m.SeedSnapshot("snap-bench", ubuntu); err != nil {
			b.Fatal(err)
		}
	}
	rk, _ := clientKeys(b)
	for i := 0; i < n; i++ {
		mc := launch(b, m, "snap-bench", nil)
		c, err := dialErr(mc.addr, "ubuntu", rk, nil)
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Run("true"); err != nil {
			b.Fatal(err)
		}
		s.Close()
		c.Close()
	}
}

// reportMemory sums RSS and PSS over every process of every machine (the
// processes of their PID namespaces: the init, and sshd only while a
// connection is open), and the disk: each machine's writable layer plus
// the Manager's layers (the Debian base is shared and not counted).
func reportMemory(b *testing.B, m *Manager, n int) {
	m.mu.Lock()
	ns := map[string]bool{}
	var rws []string
	for _, mc := range m.machines {
		if mc.proc != nil {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", mc.proc.Process.Pid)); err == nil {
				ns[l] = true
			}
		}
		rws = append(rws, mc.rw)
	}
	m.mu.Unlock()
	var rss, pss, procs int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid")); err != nil || !ns[l] {
			continue
		}
		pid, _ := strconv.Atoi(e.Name())
		r, p := memOf(pid)
		rss += r
		pss += p
		procs++
	}
	used := func(p string) int {
		var fs unix.Statfs_t
		if unix.Statfs(p, &fs) != nil {
			return 0
		}
		return int(fs.Blocks-fs.Bfree) * int(fs.Bsize)
	}
	disk := used(m.base)
	for _, rw := range rws {
		disk += used(rw)
	}
	b.ReportMetric(float64(rss)/1024/float64(n), "RSS-MiB/machine")
	b.ReportMetric(float64(pss)/1024/float64(n), "PSS-MiB/machine")
	b.ReportMetric(float64(disk)/1024/float64(n), "disk-KiB/machine")
	b.ReportMetric(float64(procs)/float64(n), "procs/machine")
	if n >= 10 {
		b.Logf("%d machines: RSS %.1f MiB, PSS %.1f MiB, disk %.1f MiB, %d processes",
			n, float64(rss)/1024, float64(pss)/1024, float64(disk)/(1<<20), procs)
	}
}

// BenchmarkSetupWarm is what make setup costs once the base and mirror
// are cached (the cold cost is measured by timing make setup on an empty
// cache; it needs Debian's archive, out of reach of tests).
func BenchmarkSetupWarm(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("set-up needs root")
	}
	for i := 0; i < b.N; i++ {
		if err := Setup(context.Background(), SetupOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAptInstallRedis is the tutorial's provisioning inside a machine:
// apt-get update and install redis-server from the offline mirror.
func BenchmarkAptInstallRedis(b *testing.B) {
	m := newManager(b, Options{})
	if err := m.SeedSnapshot("snap-apt", ubuntu); err != nil {
		b.Fatal(err)
	}
	rk, _ := clientKeys(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mc := launch(b, m, "snap-apt", nil)
		c, err := dialErr(mc.addr, "ubuntu", rk, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if out, st := run(b, c, "sudo apt-get update -q && sudo apt-get install -y -q redis-server"); st != 0 {
			b.Fatalf("%d %s", st, out)
		}
		b.StopTimer()
		var fs unix.Statfs_t
		_ = unix.Statfs(mc.rw, &fs)
		b.ReportMetric(float64(int(fs.Blocks-fs.Bfree)*int(fs.Bsize))/(1<<20), "upper-MiB")
		c.Close()
		mc.Destroy()
		b.StartTimer()
	}
}

// memOf returns a process's RSS and PSS in KiB.
func memOf(pid int) (rss, pss int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

// BenchmarkBakeLifecycle is the vm package's share of a bake: launch, SSH
// exec and SFTP upload, stop, snapshot, launch from the snapshot, read the
// file back, terminate both. RSA host keys come from the pool, refilled
// outside the timer as a simulator does between bakes.
func BenchmarkBakeLifecycle(b *testing.B) {
	m := newManager(b, Options{})
	if err := m.SeedSnapshot("snap-src", ubuntu); err != nil {
		b.Fatal(err)
	}
	rk, _ := clientKeys(b)
	// CPU time (ours and the machines' processes, reaped by Destroy) is a
	// steadier figure than wall time on a shared CI machine.
	var cpu time.Duration
	defer func() { b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op") }()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for len(rsaPool) < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		builder := launch(b, m, "snap-src", func(s *LaunchSpec) { s.UserData = []byte("#!/bin/sh\necho hi\n") })
		c, err := dialErr(builder.addr, "ubuntu", rk, nil)
		if err != nil {
			b.Fatal(err)
		}
		sc, err := sftp.NewClient(c)
		if err != nil {
			b.Fatal(err)
		}
		f, err := sc.Create("/home/ubuntu/baked.txt")
		if err != nil {
			b.Fatal(err)
		}
		f.Write([]byte("baked\n"))
		f.Close()
		sc.Close()
		if out, st := run(b, c, "sudo mv /home/ubuntu/baked.txt /etc/baked.txt && echo ok"); st != 0 {
			b.Fatalf("%d %s", st, out)
		}
		c.Close()
		if err := builder.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
		snap := fmt.Sprintf("snap-baked-%d", i)
		if err := builder.Snapshot(snap); err != nil {
			b.Fatal(err)
		}
		next := launch(b, m, snap, nil)
		c2, err := dialErr(next.addr, "ubuntu", rk, nil)
		if err != nil {
			b.Fatal(err)
		}
		if out, _ := run(b, c2, "cat /etc/baked.txt"); out != "baked\n" {
			b.Fatalf("read back %q", out)
		}
		c2.Close()
		for _, mc := range []*Machine{builder.Machine, next.Machine} {
			if err := mc.Destroy(); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.DeleteSnapshot(snap); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
	}
}

// cpuTime is the user+system time of this process and its reaped children.
func cpuTime() time.Duration {
	var self, kids unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
