package ec2sim_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/ec2sim"
)

// procRSS returns a process's resident set size in KiB, its parent and
// its command name, from /proc.
func procRSS(pid int) (rssKiB, ppid int, comm string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			comm = v
		case "PPid":
			ppid, _ = strconv.Atoi(v)
		case "VmRSS":
			rssKiB, _ = strconv.Atoi(strings.TrimSuffix(v, " kB"))
		}
	}
	return rssKiB, ppid, comm, true
}

// procPSS is a process's proportional set size in KiB: shared pages
// (sshd's code, shared by every instance) are divided among their users,
// so PSS sums to real memory use where RSS sums count them many times.
func procPSS(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// descendantsRSS sums the RSS of every descendant of pid (the sshd
// processes and anything they run), in KiB, and counts them.
func descendantsRSS(pid int) (kib, pss, n int) {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	rss := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		r, pp, _, ok := procRSS(p)
		if ok {
			parent[p], rss[p] = pp, r
		}
	}
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				kib += rss[p]
				pss += procPSS(p)
				n++
				break
			}
		}
	}
	return kib, pss, n
}

// BenchmarkRSS100Instances launches 100 instances at once (real sshd
// each) and reports the simulator's RSS and its SSH servers' total RSS.
//
//	unshare --net sh -c 'ip link set lo up; go test -run ^$ -bench RSS100 -benchtime 1x ./internal/ec2sim'
func BenchmarkRSS100Instances(b *testing.B) {
	needRoot(b)
	for range b.N {
		srv := startSim(b, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
		c := client(srv, "us-east-1")
		ctx := ctxT(b)
		imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: nil, Owners: []string{"099720109477"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("k"), PublicKeyMaterial: edPublicKey(b)}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, KeyName: aws.String("k"), MinCount: aws.Int32(100), MaxCount: aws.Int32(100)})
		if err != nil {
			b.Fatal(err)
		}
		var ids []string
		for _, in := range out.Instances {
			ids = append(ids, *in.InstanceId)
		}
		if err := ec2.NewInstanceRunningWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "launch-s")
		self, _, _, _ := procRSS(os.Getpid())
		kids, pss, n := descendantsRSS(os.Getpid())
		b.ReportMetric(float64(self)/1024, "sim-RSS-MiB")
		b.ReportMetric(float64(kids)/1024, "sshd-RSS-MiB")
		b.ReportMetric(float64(pss)/1024, "sshd-PSS-MiB")
		b.ReportMetric(float64(procPSS(os.Getpid()))/1024, "sim-PSS-MiB")
		b.ReportMetric(float64(n), "processes")
		if err := srv.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
