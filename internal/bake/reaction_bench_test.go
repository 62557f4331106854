package bake

import (
	"math"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

// BenchmarkReactionTime bakes the tutorial (t2.micro) on EC2's own
// durations (ec2sim.EC2Latency, a model from what users report) and
// measures, for each transition the build waits on, how long after the
// simulator made it amibake's next call of the describing action came:
// its reaction time. It also reports the build's API calls per minute.
//
// The comparison is with Packer, modelled (not measured): Packer polls
// every 15 s (the SDK v1 waiters' delay it keeps unless
// AWS_POLL_DELAY_SECONDS says otherwise), so it notices a transition 7.5 s
// later on average, at worst 15 s, and makes 4 calls per minute while it
// waits.
//
// AMIBAKE_BENCH_TIME_SCALE (default 0.1) shortens EC2's durations. amibake
// backs off in real time (200 ms growing x1.2 to 15 s), so its reaction
// to a long wait is smaller when the wait is scaled down: run with
// AMIBAKE_BENCH_TIME_SCALE=1 (about 7 minutes) for figures to quote.
func BenchmarkReactionTime(b *testing.B) {
	scale := 0.1
	if v, err := strconv.ParseFloat(os.Getenv("AMIBAKE_BENCH_TIME_SCALE"), 64); err == nil && v > 0 {
		scale = v
	}
	e := newBenchEnv(b, ec2sim.EC2Latency().Scaled(scale))
	// Which action observes each state.
	observer := map[string]string{"running": "DescribeInstances", "stopped": "DescribeInstances",
		"terminated": "DescribeInstances", "available": "DescribeImages"}
	sum := map[string]time.Duration{}
	worst := map[string]time.Duration{}
	n := map[string]int{}
	var calls int
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		e.srv.ResetCalls()
		wall += runTutorial(b, e)
		times := e.srv.CallTimes()
		for _, ts := range times {
			calls += len(ts)
		}
		for _, ev := range e.srv.Events() {
			action, ok := observer[ev.State]
			if !ok {
				continue
			}
			ts := times[action]
			j := sort.Search(len(ts), func(k int) bool { return ts[k].After(ev.Time) })
			if j == len(ts) {
				continue // nobody was waiting for it (terminated after the build returned)
			}
			d := ts[j].Sub(ev.Time)
			sum[ev.State] += d
			worst[ev.State] = max(worst[ev.State], d)
			n[ev.State]++
		}
	}
	for _, st := range []string{"running", "stopped", "available", "terminated"} {
		if n[st] == 0 {
			continue
		}
		b.ReportMetric((sum[st] / time.Duration(n[st])).Seconds(), "react-"+st+"-s")
		b.ReportMetric(worst[st].Seconds(), "worst-"+st+"-s")
	}
	b.ReportMetric(float64(calls)/wall.Minutes(), "calls/min")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(scale, "time-scale")
	b.ReportMetric(math.Round(7.5*10)/10, "packer-model-react-s")
	b.ReportMetric(4, "packer-model-calls/min")
}
