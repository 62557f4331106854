package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	benchBinOnce sync.Once
	benchBin     string
	benchBinErr  error
)

// amibakeBinary builds the command once per test process, so that the
// benchmarks measure the whole process as a user (or pre-commit) runs it.
func amibakeBinary(b *testing.B) string {
	benchBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amibake-bench-")
		if err != nil {
			benchBinErr = err
			return
		}
		benchBin = filepath.Join(dir, "amibake")
		// Built as `make build` builds it: static, with no dynamic loader
		// to run at start-up.
		cmd := exec.Command("go", "build", "-o", benchBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			benchBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	return benchBin
}

// execsPerOp is how many processes each benchmark iteration starts: make
// bench runs one iteration (-benchtime 1x), and one process start is too
// noisy a sample for a median.
const execsPerOp = 30

// benchExec runs the binary execsPerOp times per iteration and reports the
// median (and fastest) wall time of a whole process, start to exit.
func benchExec(b *testing.B, args ...string) {
	bin := amibakeBinary(b)
	var times []time.Duration
	for b.Loop() {
		for range execsPerOp {
			start := time.Now()
			cmd := exec.Command(bin, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("amibake %v: %v\n%s", args, err, out)
			}
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "ms-median")
	b.ReportMetric(ms(times[0]), "ms-min")
	b.ReportMetric(0, "ns/op") // a mean over execsPerOp processes says less than the median
}

// BenchmarkValidateTutorial: `amibake validate` of the tutorial template,
// whole process. Goal: median under 10 ms.
func BenchmarkValidateTutorial(b *testing.B) {
	benchExec(b, "validate", "../../examples/tutorial/hello_ami.json")
}

// BenchmarkValidateTutorialHCL2: the same for an HCL2 template.
func BenchmarkValidateTutorialHCL2(b *testing.B) {
	benchExec(b, "validate", "testdata/validate/good.pkr.hcl")
}

// BenchmarkValidate200: 200 templates in one call, as pre-commit passes
// them. Goal: under 300 ms.
func BenchmarkValidate200(b *testing.B) {
	src, err := os.ReadFile("testdata/validate/good.pkr.hcl")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	args := []string{"validate"}
	for i := range 200 {
		p := filepath.Join(dir, fmt.Sprintf("t%03d.pkr.hcl", i))
		if err := os.WriteFile(p, src, 0o644); err != nil {
			b.Fatal(err)
		}
		args = append(args, p)
	}
	benchExec(b, args...)
}
