package bake

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

func newBenchEnv(b *testing.B, lat ec2sim.Latency) *env {
	e := newEnv(b, lat)
	b.Chdir(b.TempDir())
	return e
}

// loadTutorial loads the tutorial; each load gets its own {{timestamp}},
// hence its own AMI name.
func loadTutorial(b *testing.B, e *env) *template.Template {
	tutorialClock = tutorialClock.Add(time.Second)
	tmpl, diags := template.Load(tutorialPath, template.LoadOptions{Env: e.getenv, Now: tutorialClock})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return tmpl
}

var tutorialClock = time.Now()

func runTutorial(b *testing.B, e *env) time.Duration {
	tmpl := loadTutorial(b, e)
	ios, _, out, errOut := ui.Test()
	start := time.Now()
	res, _, err := Run(context.Background(), tmpl, ui.New(ios, ui.Options{}), Options{RunID: "bench", Getenv: e.getenv})
	wall := time.Since(start)
	if err != nil || !res.OK() {
		b.Fatalf("build failed: %v\n%s%s", err, out, errOut)
	}
	return wall
}

// BenchmarkTutorialOverhead builds the tutorial against the simulator's
// default latencies and reports the pipeline's own time: wall time minus
// the waits the simulator imposes on the critical path (instance pending,
// SSH start, stopping, image pending, the eventual-consistency window
// between creating the security group and authorizing it, the instance
// shutting down before its security group can go, and every request's
// latency).
func BenchmarkTutorialOverhead(b *testing.B) {
	lat := ec2sim.DefaultLatency()
	e := newBenchEnv(b, lat)
	var overhead, wall time.Duration
	calls := 0
	for i := 0; i < b.N; i++ {
		e.srv.ResetCalls()
		w := runTutorial(b, e)
		n := 0
		for _, c := range e.srv.Calls() {
			n += c
		}
		// No consistency lag: newBenchEnv's simulator has none unless
		// EC2SIM_CONSISTENCY asks for one.
		simulated := lat.Pending + lat.SSHReady + lat.Stopping + lat.ImagePending +
			lat.ShuttingDown + time.Duration(n)*lat.Request
		overhead += w - simulated
		wall += w
		calls += n
	}
	b.ReportMetric((overhead / time.Duration(b.N)).Seconds(), "overhead-s/op")
	b.ReportMetric((wall / time.Duration(b.N)).Seconds(), "wall-s/op")
	b.ReportMetric(float64(calls)/float64(b.N), "api-calls/op")
}

// BenchmarkTutorialAPICalls counts the API calls of one tutorial build by
// action in the zero-latency profile (Packer 1.16 makes 19; amibake 16,
// which TestTutorialAPICalls pins).
func BenchmarkTutorialAPICalls(b *testing.B) {
	e := newBenchEnv(b, ec2sim.ZeroLatency())
	total := map[string]int{}
	for i := 0; i < b.N; i++ {
		e.srv.ResetCalls()
		runTutorial(b, e)
		for k, v := range e.srv.Calls() {
			total[k] += v
		}
	}
	actions := make([]string, 0, len(total))
	sum := 0
	for k, v := range total {
		actions = append(actions, k)
		sum += v
	}
	sort.Strings(actions)
	for _, a := range actions {
		b.ReportMetric(float64(total[a])/float64(b.N), a+"/op")
	}
	b.ReportMetric(float64(sum)/float64(b.N), "api-calls/op")
}
