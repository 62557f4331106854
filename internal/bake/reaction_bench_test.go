package bake

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

// waited is a transition a tutorial build cannot go on without, as the
// simulator records it.
type waited struct {
	state   string // the simulator's event
	trigger string // the call whose answer sets the wait off
	// observer is the call that sees the transition; none for sshd being
	// up, which only the SSH connection sees.
	observer string
	// then is the mutating call amibake makes once it has seen the
	// transition; none when what comes next is another wait.
	then string
	// lastSeen: the event is the last one before the build's last
	// observer call (console output is posted more than once; the build
	// reads until the post with the host keys).
	lastSeen bool
}

// criticalPath is the tutorial's chain of waits. A snapshot completes
// under the same lock as its image becoming available, so "available"
// covers both.
var criticalPath = []waited{
	{state: "running", trigger: "RunInstances", observer: "DescribeInstances"},
	{state: "ssh-ready", trigger: "RunInstances"},
	{state: "console-posted", trigger: "RunInstances", observer: "GetConsoleOutput", then: "StopInstances", lastSeen: true},
	{state: "stopped", trigger: "StopInstances", observer: "DescribeInstances", then: "CreateImage"},
	{state: "available", trigger: "CreateImage", observer: "DescribeImages", then: "CreateTags"},
	// The security group cannot go while the instance exists: amibake
	// retries DeleteSecurityGroup until it succeeds, which is how it sees
	// the instance terminated.
	{state: "terminated", trigger: "TerminateInstances", observer: "DeleteSecurityGroup", then: "DeleteKeyPair"},
}

// timeline is one build as the simulator saw it.
type timeline struct {
	start, end time.Time
	spans      []ec2sim.CallSpan // by arrival
	events     []ec2sim.Event
}

// transitionTimes is what the timeline says of one waited transition.
type transitionTimes struct {
	wait                      [2]time.Time  // from the trigger's answer to the event
	react                     time.Duration // event to the observer's next call
	act                       time.Duration // observer's answer to the "then" call
	hasWait, hasReact, hasAct bool
}

func (tl timeline) firstAfter(action string, t time.Time) (ec2sim.CallSpan, bool) {
	for _, s := range tl.spans {
		if s.Action == action && !s.Start.Before(t) {
			return s, true
		}
	}
	return ec2sim.CallSpan{}, false
}

func (tl timeline) lastBefore(action string, t time.Time) (ec2sim.CallSpan, bool) {
	var out ec2sim.CallSpan
	ok := false
	for _, s := range tl.spans {
		if s.Action == action && s.Start.Before(t) {
			out, ok = s, true
		}
	}
	return out, ok
}

// event finds w's event: the first after its trigger's call or, for
// lastSeen, the last before the build's last observer call.
func (tl timeline) event(w waited) (ec2sim.Event, bool) {
	if w.lastSeen {
		var last ec2sim.CallSpan
		for _, s := range tl.spans {
			if s.Action == w.observer {
				last = s
			}
		}
		var out ec2sim.Event
		ok := false
		for _, e := range tl.events {
			if e.State == w.state && e.Time.Before(last.Start) {
				out, ok = e, true
			}
		}
		return out, ok
	}
	trig, ok := tl.firstAfter(w.trigger, tl.start)
	if !ok {
		return ec2sim.Event{}, false
	}
	for _, e := range tl.events {
		if e.State == w.state && e.Time.After(trig.Start) {
			return e, true
		}
	}
	return ec2sim.Event{}, false
}

func (tl timeline) transition(w waited) transitionTimes {
	var tt transitionTimes
	ev, ok := tl.event(w)
	if !ok {
		return tt
	}
	if trig, ok := tl.lastBefore(w.trigger, ev.Time); ok && ev.Time.After(trig.End) {
		tt.wait, tt.hasWait = [2]time.Time{trig.End, ev.Time}, true
	}
	if w.observer == "" {
		return tt
	}
	obs, ok := tl.firstAfter(w.observer, ev.Time)
	if !ok {
		return tt // nobody looked: the build had returned
	}
	tt.react, tt.hasReact = obs.Start.Sub(ev.Time), true
	if w.then == "" {
		return tt
	}
	if next, ok := tl.firstAfter(w.then, obs.End); ok {
		tt.act, tt.hasAct = next.Start.Sub(obs.End), true
	}
	return tt
}

// overhead is the part of the build's wall time during which amibake
// held it up: neither inside a simulator call (request latency included)
// nor waiting for a transition on the critical path to happen. It is
// what an instantly reacting client with no work of its own would save,
// plus the provisioners' commands running on the machine, which the
// simulator cannot tell apart from amibake's SSH work.
func (tl timeline) overhead() time.Duration {
	var iv [][2]time.Time
	for _, s := range tl.spans {
		iv = append(iv, [2]time.Time{s.Start, s.End})
	}
	for _, w := range criticalPath {
		if tt := tl.transition(w); tt.hasWait {
			iv = append(iv, tt.wait)
		}
	}
	return tl.end.Sub(tl.start) - covered(iv, tl.start, tl.end)
}

// covered is how much of [from, to] the intervals cover.
func covered(iv [][2]time.Time, from, to time.Time) time.Duration {
	slices.SortFunc(iv, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var sum time.Duration
	cur := from
	for _, x := range iv {
		lo, hi := x[0], x[1]
		if lo.Before(cur) {
			lo = cur
		}
		if hi.After(to) {
			hi = to
		}
		if hi.After(lo) {
			sum += hi.Sub(lo)
			cur = hi
		}
	}
	return sum
}

// String lists the calls and events relative to the build's start, for
// the benchmark's log.
func (tl timeline) String() string {
	type line struct {
		at   time.Duration
		text string
	}
	var ls []line
	for _, s := range tl.spans {
		ls = append(ls, line{s.Start.Sub(tl.start), fmt.Sprintf("%s (%.1f ms)", s.Action, s.End.Sub(s.Start).Seconds()*1e3)})
	}
	for _, e := range tl.events {
		ls = append(ls, line{e.Time.Sub(tl.start), "  event " + e.ID + " " + e.State})
	}
	slices.SortStableFunc(ls, func(a, b line) int { return int(a.at - b.at) })
	var sb strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&sb, "%8.3fs %s\n", l.at.Seconds(), l.text)
	}
	fmt.Fprintf(&sb, "%8.3fs end\n", tl.end.Sub(tl.start).Seconds())
	return sb.String()
}

// transitionStats sums what timelines say of each waited transition.
type transitionStats struct {
	react, act, worst map[string]time.Duration
	nReact, nAct      map[string]int
}

func newTransitionStats() *transitionStats {
	return &transitionStats{react: map[string]time.Duration{}, act: map[string]time.Duration{},
		worst: map[string]time.Duration{}, nReact: map[string]int{}, nAct: map[string]int{}}
}

func (st *transitionStats) add(tl timeline) {
	for _, w := range criticalPath {
		tt := tl.transition(w)
		if tt.hasReact {
			st.react[w.state] += tt.react
			st.worst[w.state] = max(st.worst[w.state], tt.react)
			st.nReact[w.state]++
		}
		if tt.hasAct {
			st.act[w.state] += tt.act
			st.nAct[w.state]++
		}
	}
}

// report reports per transition the mean reaction (react-STATE-s),
// its worst, and the mean time from seeing it to the next mutating call
// (act-STATE-s). Transitions nobody observed are left out.
func (st *transitionStats) report(b *testing.B, worst bool) {
	for _, w := range criticalPath {
		if n := st.nReact[w.state]; n > 0 {
			b.ReportMetric((st.react[w.state] / time.Duration(n)).Seconds(), "react-"+w.state+"-s")
			if worst {
				b.ReportMetric(st.worst[w.state].Seconds(), "worst-"+w.state+"-s")
			}
		}
		if n := st.nAct[w.state]; n > 0 {
			b.ReportMetric((st.act[w.state] / time.Duration(n)).Seconds(), "act-"+w.state+"-s")
		}
	}
}

// BenchmarkReactionTime bakes the tutorial (t2.micro) on EC2's own
// durations (ec2sim.EC2Latency, a model from what users report) and
// measures, for each transition the build waits on, how long after the
// simulator made it amibake's next call of the describing action came:
// its reaction time. It also reports the build's API calls per minute
// and its overhead measured as BenchmarkTutorialOverhead does.
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
	st := newTransitionStats()
	var calls int
	var wall, overhead time.Duration
	for i := 0; i < b.N; i++ {
		tl := runTutorial(b, e)
		st.add(tl)
		calls += len(tl.spans)
		wall += tl.end.Sub(tl.start)
		overhead += tl.overhead()
	}
	st.report(b, true)
	b.ReportMetric(float64(calls)/wall.Minutes(), "calls/min")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(overhead.Seconds()/float64(b.N), "overhead-s/op")
	b.ReportMetric(scale, "time-scale")
	b.ReportMetric(7.5, "packer-model-react-s")
	b.ReportMetric(4, "packer-model-calls/min")
}

// TestTimelineOverhead pins how a build's timeline is taken apart, on a
// made-up build whose figures are worked out by hand.
func TestTimelineOverhead(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tl := timeline{start: t0, end: at(9700)}
	for _, s := range []struct {
		action     string
		start, end int
	}{
		{"RunInstances", 0, 100}, {"DescribeInstances", 1000, 1100}, {"DescribeInstances", 2500, 2600},
		{"GetConsoleOutput", 2700, 2800}, {"GetConsoleOutput", 4000, 4100}, {"StopInstances", 4500, 4600},
		{"DescribeInstances", 6000, 6100}, {"CreateImage", 6200, 6300}, {"DescribeImages", 8000, 8100},
		{"CreateTags", 8200, 8300}, {"TerminateInstances", 8400, 8500}, {"DeleteSecurityGroup", 8600, 8700},
		{"DeleteSecurityGroup", 9200, 9300}, {"DeleteKeyPair", 9500, 9600},
	} {
		tl.spans = append(tl.spans, ec2sim.CallSpan{Action: s.action, Start: at(s.start), End: at(s.end)})
	}
	for _, e := range []struct {
		state string
		ms    int
	}{
		// The second console post (the shutdown's) is not the one the build read.
		{"running", 2000}, {"ssh-ready", 2200}, {"console-posted", 3500}, {"stopped", 5500},
		{"console-posted", 7000}, {"available", 7500}, {"terminated", 9000},
	} {
		tl.events = append(tl.events, ec2sim.Event{Time: at(e.ms), ID: "i-1", State: e.state})
	}
	// Not covered by a call or a wait: 3.5-4.0, 4.1-4.5, 5.5-6.0,
	// 6.1-6.2, 7.5-8.0, 8.1-8.2, 8.3-8.4, 9.0-9.2, 9.3-9.5, 9.6-9.7.
	if got, want := tl.overhead(), 2700*time.Millisecond; got != want {
		t.Errorf("overhead = %v, want %v", got, want)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	want := map[string]transitionTimes{
		"running":        {wait: [2]time.Time{at(100), at(2000)}, react: ms(500), hasWait: true, hasReact: true},
		"ssh-ready":      {wait: [2]time.Time{at(100), at(2200)}, hasWait: true},
		"console-posted": {wait: [2]time.Time{at(100), at(3500)}, react: ms(500), act: ms(400), hasWait: true, hasReact: true, hasAct: true},
		"stopped":        {wait: [2]time.Time{at(4600), at(5500)}, react: ms(500), act: ms(100), hasWait: true, hasReact: true, hasAct: true},
		"available":      {wait: [2]time.Time{at(6300), at(7500)}, react: ms(500), act: ms(100), hasWait: true, hasReact: true, hasAct: true},
		"terminated":     {wait: [2]time.Time{at(8500), at(9000)}, react: ms(200), act: ms(200), hasWait: true, hasReact: true, hasAct: true},
	}
	for _, w := range criticalPath {
		if got := tl.transition(w); got != want[w.state] {
			t.Errorf("%s: got %+v, want %+v", w.state, got, want[w.state])
		}
	}
}
