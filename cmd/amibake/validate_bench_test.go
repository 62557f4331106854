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
		out, err := exec.Command("go", "build", "-o", benchBin, ".").CombinedOutput()
		if err != nil {
			benchBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	return benchBin
}

// benchExec runs the binary b.N times and reports the median wall time.
func benchExec(b *testing.B, args ...string) {
	bin := amibakeBinary(b)
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("amibake %v: %v\n%s", args, err, out)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	if len(times) > 0 {
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
	}
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
