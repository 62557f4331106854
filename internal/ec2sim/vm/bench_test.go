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
	if _, err := os.Stat(filepath.Join(m.base, "snapshots")); err != nil {
		b.Fatal(err)
	}
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

// reportMemory sums RSS and PSS over every process of every machine, and
// the tmpfs holding their files.
func reportMemory(b *testing.B, m *Manager, n int) {
	m.mu.Lock()
	var roots []int
	for _, mc := range m.machines {
		if mc.proc != nil {
			roots = append(roots, mc.proc.Process.Pid)
		}
	}
	m.mu.Unlock()
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var rss, pss, procs int
	var walk func(int)
	walk = func(pid int) {
		procs++
		r, p := memOf(pid)
		rss += r
		pss += p
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	var fs unix.Statfs_t
	_ = unix.Statfs(m.base, &fs)
	tmpfs := int(fs.Blocks-fs.Bfree) * int(fs.Bsize)
	b.ReportMetric(float64(rss)/1024/float64(n), "RSS-MiB/machine")
	b.ReportMetric(float64(pss)/1024/float64(n), "PSS-MiB/machine")
	b.ReportMetric(float64(tmpfs)/1024/float64(n), "tmpfs-KiB/machine")
	b.ReportMetric(float64(procs)/float64(n), "procs/machine")
	if n >= 10 {
		b.Logf("%d machines: RSS %.1f MiB, PSS %.1f MiB, tmpfs %.1f MiB, %d processes",
			n, float64(rss)/1024, float64(pss)/1024, float64(tmpfs)/(1<<20), procs)
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
