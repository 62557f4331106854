// Package soak runs many builds of a small template against the EC2
// simulator with faults switched on, interrupting and killing some of them,
// and checks that none hangs and that nothing is left: not against
// amibake's ledger or reaper, but against the simulator's own inventory
// (GET /_sim/inventory): every instance, security group, key pair, volume,
// image, snapshot and launch template that is not an artifact of a
// successful build is a leak.
//
// It execs the built binary, as a user or CI job would, with
// AWS_ENDPOINT_URL pointing at the simulator through a counting proxy.
// Killed builds are cleaned up with exactly the command the README gives
// (`amibake cleanup --all`); some are killed the moment their CreateFleet
// (a spot build: its launch template exists) or CreateImage (the AMI is
// pending) has been answered. A share of the builds run on spot instances.
// It also injects what goes wrong in real life:
// a cleanup from the wrong endpoint (another account: it must keep the
// run, and the README's command must then succeed), and a second runner's
// `cleanup --tagged` sweep while builds run (it must not touch them).
package soak

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

// Config is a soak's settings (cmd/soak's flags).
type Config struct {
	N, Parallel int
	Seed        int64
	Bin         string        // the amibake binary
	Template    string        // "" uses a small built-in one
	Timeout     time.Duration // a build running longer is hung
	Faults      bool
	Consistency string // the simulator's eventual-consistency profile (ec2sim.ConsistencyProfile)
	Verbose     bool
	Keep        bool // keep the work directory
	// Lease is the builds' AMIBAKE_LEASE: short, so that the second
	// runner's sweeps meet leases that were refreshed, not only fresh tags.
	// 9 s (a refresh every 3 s) lapsed once in ~140 builds on 2 loaded
	// cores (one refresh late by more than 6 s); 15 s leaves 10 s.
	Lease time.Duration
	// SweepEvery runs a second runner's `cleanup --tagged --older-than 0s`
	// this often while builds run; 0 disables it.
	SweepEvery  time.Duration
	SweepRegion string
	// WrongEndpointEvery: every k-th killed build is first cleaned up from
	// a simulator of another account; 0 disables it.
	WrongEndpointEvery int
	// Spot is the share of builds that use a spot instance (an instant
	// fleet and its launch template) instead of an on-demand one; with the
	// built-in template only.
	Spot float64
}

// DefaultConfig is `make soak`'s.
func DefaultConfig() Config {
	return Config{N: 30, Parallel: 4, Seed: 1, Bin: "bin/amibake", Timeout: 4 * time.Minute, Faults: true,
		Consistency: "harsh", Lease: 15 * time.Second, SweepEvery: 7 * time.Second, SweepRegion: "ap-northeast-1",
		WrongEndpointEvery: 2, Spot: 0.3}
}

// The template: the tutorial's shape with a quick provisioner, so that
// every build connects over SSH (where drops are injected) and bakes an AMI.
const soakTemplate = `{
  "variables": {"name": "soak"},
  "builders": [{
    "type": "amazon-ebs",
    "region": "ap-northeast-1",
    "source_ami": "ami-06128816a1c781a57",
    "instance_type": "t2.micro",
    "ssh_username": "root",
    "ami_name": "soak {{user ` + "`name`" + `}} {{timestamp}}"
  }],
  "provisioners": [{"type": "shell", "inline": ["echo provisioning", "uname -s", "echo done"]}]
}
`

// soakSpotTemplate is the same build on a spot instance: amibake creates a
// launch template and an instant fleet, and deletes the template as soon
// as the fleet answers.
const soakSpotTemplate = `{
  "variables": {"name": "soak"},
  "builders": [{
    "type": "amazon-ebs",
    "region": "ap-northeast-1",
    "source_ami": "ami-06128816a1c781a57",
    "spot_price": "auto",
    "spot_instance_types": ["t2.micro", "t3.micro"],
    "ssh_username": "root",
    "ami_name": "soak spot {{user ` + "`name`" + `}} {{timestamp}}"
  }],
  "provisioners": [{"type": "shell", "inline": ["echo provisioning", "uname -s", "echo done"]}]
}
`

// simOptions are the simulator's settings: by default the harsh
// consistency profile, worse than EC2, so resilience is tested.
func simOptions(c Config) (ec2sim.Options, error) {
	prof, err := ec2sim.ConsistencyProfile(c.Consistency)
	if err != nil {
		return ec2sim.Options{}, err
	}
	opts := ec2sim.Options{Latency: ec2sim.DefaultLatency(), Consistency: prof, Seed: c.Seed}
	if c.Faults {
		opts.SSHDropProbability = 0.05
		opts.Faults = []ec2sim.FaultRule{
			{Action: "*", Fault: ec2sim.FaultThrottle, Probability: 0.10},
			{Action: "*", Fault: ec2sim.FaultInternalError, Probability: 0.025},
			{Action: "*", Fault: ec2sim.FaultUnavailable, Probability: 0.025},
			{Action: "RunInstances", Fault: ec2sim.FaultInsufficientCap, Probability: 0.05},
			{Action: "CreateImage", Fault: ec2sim.FaultImageFailed, Probability: 0.02},
		}
	}
	return opts, nil
}

// The wrong endpoint's account: not the simulator's default.
const wrongAccount = "999999999999"

type soak struct {
	c      Config
	out    io.Writer
	outMu  sync.Mutex
	srv    *ec2sim.Server
	wrong  *ec2sim.Server
	proxy  *countingProxy
	inv    *tracker
	work   string
	tmpl   string
	spot   string // the spot template; "" when Template is the user's
	bin    string
	rng    *rand.Rand
	rngMu  sync.Mutex
	estMu  sync.Mutex
	walls  []time.Duration // of successful builds: when to signal
	kills  int
	killMu sync.Mutex

	liveMu sync.Mutex
	live   map[int]string // build index -> its state directory, while its process runs

	violMu     sync.Mutex
	violations []string
	sweeps     int
	leaseHits  int // rows the sweeps left alone because of a live lease
	wrongRuns  int
	wrongKept  int // wrong-endpoint cleanups that kept resources and exited 1
}

// Run runs the soak and returns its summary; err is set only when the
// soak itself could not run.
func Run(ctx context.Context, c Config, out io.Writer) (Summary, error) {
	if c.N < 1 || c.Parallel < 1 {
		return Summary{}, fmt.Errorf("-n and -parallel must be at least 1")
	}
	bin, err := filepath.Abs(c.Bin)
	if err != nil {
		return Summary{}, err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return Summary{}, fmt.Errorf("no amibake binary at %s: build it first (make build)", c.Bin)
	}
	work, err := os.MkdirTemp("", "amibake-soak-")
	if err != nil {
		return Summary{}, err
	}
	s := &soak{c: c, out: out, work: work, bin: bin, rng: rand.New(rand.NewPCG(uint64(c.Seed), 0x50a4)), live: map[int]string{}}
	defer s.close()
	opts, err := simOptions(c)
	if err != nil {
		return Summary{}, err
	}
	if s.srv, err = ec2sim.Start(ctx, opts); err != nil {
		return Summary{}, fmt.Errorf("start the simulator: %w", err)
	}
	if c.WrongEndpointEvery > 0 {
		if s.wrong, err = ec2sim.Start(ctx, ec2sim.Options{NoSSH: true, AccountID: wrongAccount, Latency: ec2sim.ZeroLatency()}); err != nil {
			return Summary{}, fmt.Errorf("start the wrong-endpoint simulator: %w", err)
		}
	}
	if s.proxy, err = newCountingProxy(s.srv.URL()); err != nil {
		return Summary{}, err
	}
	s.tmpl = c.Template
	if s.tmpl == "" {
		s.tmpl = filepath.Join(work, "soak.json")
		if err := os.WriteFile(s.tmpl, []byte(soakTemplate), 0o644); err != nil {
			return Summary{}, err
		}
		if c.Spot > 0 {
			s.spot = filepath.Join(work, "soak-spot.json")
			if err := os.WriteFile(s.spot, []byte(soakSpotTemplate), 0o644); err != nil {
				return Summary{}, err
			}
		}
	}
	for _, f := range []string{"empty"} {
		if err := os.WriteFile(filepath.Join(work, f), nil, 0o600); err != nil {
			return Summary{}, err
		}
	}
	s.inv = newTracker(s.srv.URL())
	if err := s.inv.baseline(ctx); err != nil {
		return Summary{}, fmt.Errorf("read the simulator's inventory: %w", err)
	}
	return s.run(ctx), nil
}

func (s *soak) close() {
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.srv != nil {
		_ = s.srv.Close()
	}
	if s.wrong != nil {
		_ = s.wrong.Close()
	}
	if s.c.Keep {
		fmt.Fprintln(s.out, "soak: work directory kept:", s.work)
		return
	}
	_ = os.RemoveAll(s.work)
}

func (s *soak) printf(format string, a ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.out, format, a...)
}

func (s *soak) violation(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.violMu.Lock()
	s.violations = append(s.violations, msg)
	s.violMu.Unlock()
	s.printf("soak: VIOLATION: %s\n", msg)
}

// fate is what the soak does to a build.
type fate string

const (
	fateNone    fate = "normal"
	fateSIGINT  fate = "SIGINT"
	fateSIGKILL fate = "SIGKILL"
	// fateKillAt: SIGKILL as soon as the build's CreateFleet (spot) or
	// CreateImage has been answered, before the build hears it: the
	// launch template exists, or the AMI is pending.
	fateKillAt fate = "SIGKILL at"
)

type outcome string

const (
	succeeded outcome = "succeeded"
	failed    outcome = "failed"  // with a clear error
	unclear   outcome = "unclear" // failed without saying why
	hung      outcome = "hung"
)

type result struct {
	i          int
	fate       fate
	after      time.Duration // when the signal was sent
	outcome    outcome
	exit       string
	wall       time.Duration
	calls      int
	start, end time.Time // the build's life, its cleanups included
	artifacts  []string  // AMIs a successful build reported
	message    string    // the error the build reported
	secret     bool      // the secret key reached the output
	cleanup    string    // what `cleanup --all` said, when it failed
	signalled  bool
	wrongFirst bool   // cleaned from the wrong endpoint first
	spot       bool   // built on a spot instance
	killAt     string // fateKillAt: the action
}

// plan is what happens to one build.
type plan struct {
	f    fate
	at   float64 // when to signal, as a share of a typical build
	spot bool
}

func (s *soak) plan() plan {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	p, at, sp := s.rng.Float64(), 0.1+0.9*s.rng.Float64(), s.rng.Float64()
	pl := plan{f: fateNone, at: at, spot: s.spot != "" && sp < s.c.Spot}
	switch {
	case p < 0.10:
		pl.f = fateSIGINT
	case p < 0.15:
		pl.f = fateSIGKILL
	case p < 0.20:
		pl.f = fateKillAt
	}
	return pl
}

// estimate is a typical successful build's duration, to signal builds at
// a moment spread over their whole life.
func (s *soak) estimate() time.Duration {
	s.estMu.Lock()
	defer s.estMu.Unlock()
	if len(s.walls) == 0 {
		return 15 * time.Second
	}
	w := slices.Clone(s.walls)
	slices.Sort(w)
	return w[len(w)/2]
}

// Summary is what the soak found.
type Summary struct {
	N, OK, Failed, Unclear, Hung, Leaked, SecretLeaks int
	MedianCalls                                       int
	P95                                               time.Duration
	Violations                                        []string
}

// Line is the soak's last line, its contract with CI.
func (m Summary) Line() string {
	return fmt.Sprintf("soak: %d builds, %d succeeded, %d failed with a clear error, %d hung, %d resources leaked, %d API calls per build (median), P95 wall %.1f s",
		m.N, m.OK, m.Failed, m.Hung, m.Leaked, m.MedianCalls, m.P95.Seconds())
}

// Bad reports whether the soak found anything wrong.
func (m Summary) Bad() bool {
	return m.Hung > 0 || m.Leaked > 0 || m.Unclear > 0 || m.SecretLeaks > 0 || len(m.Violations) > 0
}

func (s *soak) run(ctx context.Context) Summary {
	results := make([]*result, s.c.N)
	plans := make([]plan, s.c.N)
	for i := range plans {
		plans[i] = s.plan()
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); s.inv.poll(pollCtx, 300*time.Millisecond) }()
	if s.c.SweepEvery > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); s.sweeps2(pollCtx) }()
	}

	sem := make(chan struct{}, s.c.Parallel)
	var wg sync.WaitGroup
	for i := range s.c.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := s.build(ctx, i, plans[i])
			results[i] = r
			s.printf("soak: build %d/%d %s: %s (%s) in %.1fs, %d calls%s\n", i+1, s.c.N, describeFate(r), r.outcome, r.exit,
				r.wall.Seconds(), r.calls, messageSuffix(r))
		}()
	}
	wg.Wait()
	stopPoll()
	bg.Wait()

	// The verdict: what the simulator holds once every build and cleanup
	// is over and its asynchronous transitions have settled.
	var artifacts []string
	for _, r := range results {
		if r.outcome == succeeded {
			artifacts = append(artifacts, r.artifacts...)
		}
	}
	leaks := s.inv.leftovers(ctx, artifacts, 30*time.Second)
	for _, l := range leaks {
		var during []string
		for _, r := range results {
			if !l.first.Before(r.start) && !l.first.After(r.end) {
				during = append(during, fmt.Sprint(r.i+1))
			}
		}
		s.printf("soak: leaked %s %s in %s (first seen %s, during build(s) %s)\n", l.kind, l.id, l.region,
			l.first.Format("15:04:05.000"), strings.Join(during, ", "))
	}
	if fs := s.srv.Faults(); len(fs.Rules) > 0 {
		var fired []string
		for i, r := range fs.Rules {
			if i < len(fs.Fired) {
				fired = append(fired, fmt.Sprintf("%s %d", r, fs.Fired[i]))
			}
		}
		// Most fire inside a call that the SDK's retryer then repeats.
		s.printf("soak: faults injected: %s\n", strings.Join(fired, ", "))
	}
	if s.c.SweepEvery > 0 || s.c.WrongEndpointEvery > 0 {
		s.printf("soak: injected: %d second-runner `cleanup --tagged` sweeps during live builds (%d resources left alone for a live lease), %d cleanups from the wrong endpoint first (%d kept resources and exited 1)\n",
			s.sweeps, s.leaseHits, s.wrongRuns, s.wrongKept)
	}
	if s.wrong != nil {
		if inv := s.wrong.Inventory(); len(inv.Regions) > 0 {
			s.violation("the wrong endpoint's account holds resources: %+v", inv.Regions)
		}
	}

	m := Summary{N: s.c.N, Leaked: len(leaks), Violations: s.violations}
	var calls []int
	var walls []time.Duration
	msgs := map[string]int{}
	for _, r := range results {
		switch r.outcome {
		case succeeded:
			m.OK++
		case failed:
			m.Failed++
		case unclear:
			m.Unclear++
		case hung:
			m.Hung++
		}
		if r.secret {
			m.SecretLeaks++
		}
		calls = append(calls, r.calls)
		walls = append(walls, r.wall)
		if r.message != "" {
			msgs[normalise(r.message)]++
		}
	}
	slices.Sort(calls)
	m.MedianCalls = calls[len(calls)/2]
	slices.Sort(walls)
	m.P95 = walls[int(math.Ceil(0.95*float64(len(walls))))-1]

	type kv struct {
		msg string
		n   int
	}
	var top []kv
	for k, v := range msgs {
		top = append(top, kv{k, v})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n || top[i].n == top[j].n && top[i].msg < top[j].msg })
	if len(top) > 0 {
		s.printf("soak: failure messages:\n")
		for i, t := range top {
			if i == 10 {
				s.printf("  ... %d more\n", len(top)-10)
				break
			}
			s.printf("  %3d× %s\n", t.n, t.msg)
		}
	}
	if m.Unclear > 0 || m.SecretLeaks > 0 || len(m.Violations) > 0 {
		s.printf("soak: %d failed without a clear error, %d printed a secret, %d violations\n", m.Unclear, m.SecretLeaks, len(m.Violations))
	}
	return m
}

func describeFate(r *result) string {
	kind := ""
	if r.spot {
		kind = "spot, "
	}
	name := string(r.fate)
	if r.fate == fateKillAt {
		name += " " + r.killAt
	}
	switch {
	case r.fate == fateNone:
		return kind + "normal"
	case !r.signalled:
		return kind + name + " planned, build ended first"
	}
	return fmt.Sprintf("%s%s after %.1fs", kind, name, r.after.Seconds())
}

func messageSuffix(r *result) string {
	s := ""
	if r.message != "" && r.outcome != succeeded {
		s += ": " + r.message
	}
	if r.wrongFirst {
		s += " (cleaned from the wrong endpoint first)"
	}
	if r.cleanup != "" {
		s += "; cleanup --all: " + r.cleanup
	}
	return s
}

func (s *soak) env(i int, stateDir string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + stateDir,
		"XDG_STATE_HOME=" + stateDir,
		"TMPDIR=" + filepath.Join(stateDir, "tmp"),
		"AWS_ENDPOINT_URL=" + s.proxy.url,
		"AMIBAKE_CHECKIP_URL=" + s.srv.URL() + "/_sim/myip",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(s.work, "empty"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.work, "empty"),
		"AWS_ACCESS_KEY_ID=" + accessKey(i),
		"AWS_SECRET_ACCESS_KEY=" + secretKey(i),
		"NO_COLOR=1",
	}
	if s.c.Lease > 0 {
		env = append(env, "AMIBAKE_LEASE="+s.c.Lease.String())
	}
	if v := os.Getenv("AMIBAKE_LOG"); v != "" {
		env = append(env, "AMIBAKE_LOG="+v)
	}
	return env
}

// Every build signs with its own access key, so the proxy can count each
// build's calls while builds run in parallel.
func accessKey(i int) string { return fmt.Sprintf("AKIASOAK%012d", i) }
func secretKey(i int) string { return fmt.Sprintf("soakSecret/%d/wJalrXUtnFEMIK7MDENGbPxRfiCY", i) }

var artifactRe = regexp.MustCompile(`(?m)^\s*[a-z]{2}(?:-[a-z]+)+-\d: (ami-[0-9a-f]+)\s*$`)

func (s *soak) build(ctx context.Context, i int, pl plan) *result {
	f, at := pl.f, pl.at
	r := &result{i: i, fate: f, start: time.Now(), spot: pl.spot}
	defer func() { r.end = time.Now() }()
	stateDir := filepath.Join(s.work, fmt.Sprintf("build-%04d", i))
	if err := os.MkdirAll(filepath.Join(stateDir, "tmp"), 0o700); err != nil {
		r.outcome, r.message = unclear, err.Error()
		return r
	}
	env := s.env(i, stateDir)
	var out bytes.Buffer
	tmpl := s.tmpl
	if pl.spot {
		tmpl = s.spot
	}
	cmd := exec.Command(s.bin, "build", "-color=false", "-var", fmt.Sprintf("name=%d-%d", s.c.Seed, i), tmpl)
	cmd.Env, cmd.Dir = env, stateDir
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.outcome, r.message = unclear, err.Error()
		return r
	}
	s.liveMu.Lock()
	s.live[i] = stateDir
	s.liveMu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		s.liveMu.Lock()
		delete(s.live, i)
		s.liveMu.Unlock()
		done <- err
	}()

	var sigC <-chan time.Time
	killedAt := make(chan time.Duration, 1)
	if f == fateKillAt {
		r.killAt = "CreateImage"
		if pl.spot {
			r.killAt = "CreateFleet"
		}
		s.proxy.killAfter(accessKey(i), r.killAt, func() {
			killedAt <- time.Since(start)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
		defer s.proxy.forget(accessKey(i))
	} else if f != fateNone {
		d := time.Duration(at * float64(s.estimate()))
		t := time.NewTimer(d)
		defer t.Stop()
		sigC = t.C
	}
	deadline := time.NewTimer(s.c.Timeout)
	defer deadline.Stop()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			select {
			case r.after = <-killedAt:
				r.signalled = true
			default:
			}
			break wait
		case <-sigC:
			sigC = nil
			r.signalled, r.after = true, time.Since(start)
			if f == fateSIGINT {
				_ = cmd.Process.Signal(os.Interrupt)
			} else {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		case <-deadline.C:
			r.outcome = hung
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			waitErr = <-done
			break wait
		}
	}
	r.wall = time.Since(start)
	output := out.String()
	if s.c.Verbose {
		s.printf("---- build %d output\n%s----\n", i+1, output)
	}
	r.secret = strings.Contains(output, secretKey(i))
	r.exit = exitString(cmd.ProcessState, waitErr)

	killed := r.outcome == hung || ((f == fateSIGKILL || f == fateKillAt) && r.signalled)
	if killed {
		s.killMu.Lock()
		s.kills++
		wrongFirst := s.wrong != nil && s.c.WrongEndpointEvery > 0 && s.kills%s.c.WrongEndpointEvery == 1%s.c.WrongEndpointEvery
		s.killMu.Unlock()
		if wrongFirst {
			r.wrongFirst = true
			s.cleanupFromWrongEndpoint(ctx, i, env, stateDir)
		}
		// What a CI job does after its runner killed the build: exactly
		// the README's command.
		cctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
		c := exec.CommandContext(cctx, s.bin, "cleanup", "--all")
		c.Env, c.Dir = env, stateDir
		cout, err := c.CombinedOutput()
		cancel()
		if err != nil {
			r.cleanup = fmt.Sprintf("%v: %s", err, lastLines(string(cout), 3))
		}
		if strings.Contains(string(cout), secretKey(i)) {
			r.secret = true
		}
		if s.c.Verbose {
			s.printf("---- cleanup after build %d\n%s----\n", i+1, cout)
		}
	}
	if r.outcome != hung {
		r.outcome, r.message = classify(cmd.ProcessState, output, r, killed)
		if r.cleanup != "" && r.outcome == failed {
			r.outcome = unclear
		}
	}
	if r.outcome == succeeded {
		for _, m := range artifactRe.FindAllStringSubmatch(output, -1) {
			r.artifacts = append(r.artifacts, m[1])
		}
		if len(r.artifacts) == 0 {
			r.outcome, r.message = unclear, "exit 0 without naming an AMI"
		}
	}
	// Local temporary files (inline scripts, which may hold secrets) of
	// a finished or cleaned-up run must be gone.
	if left, _ := filepath.Glob(filepath.Join(stateDir, "tmp", "*")); len(left) > 0 {
		s.violation("build %d left local temporary files: %v", i+1, left)
	}
	r.calls = s.proxy.calls(accessKey(i))
	s.estMu.Lock()
	if r.outcome == succeeded {
		s.walls = append(s.walls, r.wall)
	}
	s.estMu.Unlock()
	return r
}

// cloudWriteOffs returns the rows of a cleanup report (RUN REGION KIND ID
// OUTCOME) that removed a cloud resource or called it already gone. A
// dead run's local temporary files (region "local") are this machine's:
// any cleanup may remove them, whatever endpoint it reaches.
func cloudWriteOffs(report string) []string {
	var rows []string
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] == "local" || f[0] == "RUN" {
			continue
		}
		for _, out := range []string{"removed", "already gone"} {
			if strings.HasSuffix(line, "  "+out) || strings.Contains(line, "  "+out+":") {
				rows = append(rows, strings.TrimSpace(line))
			}
		}
	}
	return rows
}

// cleanupFromWrongEndpoint runs `cleanup --all --endpoint-url <another
// account's endpoint>` on a killed run: it must neither remove nor write
// off anything, and must fail when the run has something to verify.
func (s *soak) cleanupFromWrongEndpoint(ctx context.Context, i int, env []string, stateDir string) {
	s.violMu.Lock()
	s.wrongRuns++
	s.violMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	c := exec.CommandContext(cctx, s.bin, "cleanup", "--all", "--endpoint-url", s.wrong.URL())
	c.Env, c.Dir = env, stateDir
	out, err := c.CombinedOutput()
	text := string(out)
	if s.c.Verbose {
		s.printf("---- wrong-endpoint cleanup after build %d\n%s----\n", i+1, text)
	}
	if rows := cloudWriteOffs(text); len(rows) > 0 {
		s.violation("cleanup from the wrong endpoint after build %d removed or wrote off resources: %s", i+1, strings.Join(rows, "; "))
	}
	if strings.Contains(text, "not verified") {
		if err == nil {
			s.violation("cleanup from the wrong endpoint after build %d kept resources but exited 0", i+1)
		} else {
			s.violMu.Lock()
			s.wrongKept++
			s.violMu.Unlock()
		}
	}
}

func exitString(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprint(err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		names := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}
		if n, ok := names[ws.Signal()]; ok {
			return "killed by " + n
		}
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ps.ExitCode())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
