package bake

import (
	"context"
	"slices"
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

// runTutorial bakes the tutorial once and returns the build as the
// simulator saw it.
func runTutorial(b *testing.B, e *env) timeline {
	tmpl := loadTutorial(b, e)
	ios, _, out, errOut := ui.Test()
	e.srv.ResetCalls()
	tl := timeline{start: time.Now()}
	res, _, err := Run(context.Background(), tmpl, ui.New(ios, ui.Options{}), Options{RunID: "bench", Getenv: e.getenv})
	tl.end = time.Now()
	if err != nil || !res.OK() {
		b.Fatalf("build failed: %v\n%s%s", err, out, errOut)
	}
	tl.spans = e.srv.CallSpans()
	slices.SortFunc(tl.spans, func(x, y ec2sim.CallSpan) int { return x.Start.Compare(y.Start) })
	tl.events = e.srv.Events()
	return tl
}

// BenchmarkTutorialOverhead builds the tutorial against the simulator's
// default latencies and reports the pipeline's own time, measured from
// the simulator's records (timeline.overhead): the build's wall time
// less the time spent inside API calls and the time spent waiting for a
// transition on the critical path (instance running, sshd up, console
// output posted, stopped, image available, terminated), each wait taken
// from the answer of the call that set it off to the simulator's own
// timestamp of the transition. What is left is amibake's: reacting to
// each transition (react-STATE-s: transition to the next call that sees
// it), acting on it (act-STATE-s: that call's answer to the next
// mutating call), starting and finishing. act-console-posted-s, from
// reading the host keys to StopInstances, holds the SSH connection and
// the provisioners' commands on the machine, which the simulator cannot
// tell apart from amibake's own work: counted in the overhead.
func BenchmarkTutorialOverhead(b *testing.B) {
	e := newBenchEnv(b, ec2sim.DefaultLatency())
	st := newTransitionStats()
	var overhead, wall time.Duration
	calls := 0
	for i := 0; i < b.N; i++ {
		tl := runTutorial(b, e)
		st.add(tl)
		overhead += tl.overhead()
		wall += tl.end.Sub(tl.start)
		calls += len(tl.spans)
		if i == b.N-1 && testing.Verbose() {
			b.Logf("last build, as the simulator saw it:\n%s", tl)
		}
	}
	st.report(b, false)
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
