// Command soak runs many builds of a small template against the EC2
// simulator with faults switched on, interrupting and killing some of them,
// and checks that none hangs and none leaves anything behind:
//
//	go run ./cmd/soak -n 30 -seed 1     (make soak N=30 SEED=1)
//
// It execs the built binary (bin/amibake), as a user or CI job would, with
// AWS_ENDPOINT_URL pointing at the simulator through a counting proxy. Its
// last line is the summary:
//
//	soak: N builds, S succeeded, F failed with a clear error, H hung, L resources leaked, C API calls per build (median), P95 wall s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reaper"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	n, parallel int
	seed        int64
	bin         string
	template    string
	timeout     time.Duration
	faults      bool
	verbose     bool
	keep        bool
	consistency time.Duration
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.n, "n", 30, "number of builds")
	fs.Int64Var(&c.seed, "seed", 1, "seed of every random choice (faults, signals, moments)")
	fs.IntVar(&c.parallel, "parallel", 4, "builds running at once")
	fs.StringVar(&c.bin, "bin", "bin/amibake", "the amibake binary (make build)")
	fs.StringVar(&c.template, "template", "", "template to build (default: a small built-in one)")
	fs.DurationVar(&c.timeout, "timeout", 4*time.Minute, "a build running longer than this is hung")
	fs.BoolVar(&c.faults, "faults", true, "inject faults: throttling 10%, 5xx 5%, capacity 5% of launches, failed images 2%, SSH drops 5%")
	fs.DurationVar(&c.consistency, "consistency", 2*time.Second, "the simulator's eventual-consistency window")
	fs.BoolVar(&c.verbose, "v", false, "print every build's output")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (ledgers, template) for a look afterwards")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.n < 1 || c.parallel < 1 {
		fmt.Fprintln(stderr, "soak: -n and -parallel must be at least 1")
		return 2
	}
	s, err := newSoak(ctx, c, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	defer s.close()
	sum := s.run(ctx)
	fmt.Fprintln(stdout, sum.line())
	if sum.hung > 0 || sum.leaked > 0 || sum.unclear > 0 || sum.secretLeaks > 0 {
		return 1
	}
	return 0
}

type soak struct {
	c      config
	out    io.Writer
	outMu  sync.Mutex
	srv    *ec2sim.Server
	proxy  *countingProxy
	work   string
	tmpl   string
	bin    string
	rng    *rand.Rand
	rngMu  sync.Mutex
	estMu  sync.Mutex
	walls  []time.Duration // of successful builds: when to signal
	counts map[string]bool // leaked ids already counted

	consistency time.Duration
}

func newSoak(ctx context.Context, c config, out io.Writer) (*soak, error) {
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return nil, fmt.Errorf("no amibake binary at %s: build it first (make build)", c.bin)
	}
	work, err := os.MkdirTemp("", "amibake-soak-")
	if err != nil {
		return nil, err
	}
	s := &soak{c: c, out: out, work: work, bin: bin, rng: rand.New(rand.NewPCG(uint64(c.seed), 0x50a4)), counts: map[string]bool{}}
	lat := ec2sim.DefaultLatency()
	lat.Consistency = c.consistency
	opts := ec2sim.Options{Latency: lat, Seed: c.seed}
	s.consistency = lat.Consistency
	if c.faults {
		opts.SSHDropProbability = 0.05
		opts.Faults = []ec2sim.FaultRule{
			{Action: "*", Fault: ec2sim.FaultThrottle, Probability: 0.10},
			{Action: "*", Fault: ec2sim.FaultInternalError, Probability: 0.025},
			{Action: "*", Fault: ec2sim.FaultUnavailable, Probability: 0.025},
			{Action: "RunInstances", Fault: ec2sim.FaultInsufficientCap, Probability: 0.05},
			{Action: "CreateImage", Fault: ec2sim.FaultImageFailed, Probability: 0.02},
		}
	}
	s.srv, err = ec2sim.Start(ctx, opts)
	if err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("start the simulator: %w", err)
	}
	s.proxy, err = newCountingProxy(s.srv.URL())
	if err != nil {
		s.close()
		return nil, err
	}
	s.tmpl = c.template
	if s.tmpl == "" {
		s.tmpl = filepath.Join(work, "soak.json")
		if err := os.WriteFile(s.tmpl, []byte(soakTemplate), 0o644); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *soak) close() {
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.srv != nil {
		_ = s.srv.Close()
	}
	if s.c.keep {
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

// fate is what the soak does to a build.
type fate string

const (
	fateNone    fate = "normal"
	fateSIGINT  fate = "SIGINT"
	fateSIGKILL fate = "SIGKILL"
)

type outcome string

const (
	succeeded outcome = "succeeded"
	failed    outcome = "failed"  // with a clear error
	unclear   outcome = "unclear" // failed without saying why
	hung      outcome = "hung"
)

type result struct {
	i         int
	fate      fate
	after     time.Duration // when the signal was sent
	outcome   outcome
	exit      string
	wall      time.Duration
	calls     int
	leaked    []string
	message   string // the error the build reported
	secret    bool   // the secret key reached the output
	cleanup   string // what `cleanup --all` said, when it failed
	signalled bool
}

func (s *soak) plan() (fate, float64) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	p, at := s.rng.Float64(), 0.1+0.9*s.rng.Float64()
	switch {
	case p < 0.10:
		return fateSIGINT, at
	case p < 0.15:
		return fateSIGKILL, at
	}
	return fateNone, at
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

type summary struct {
	n, ok, failed, unclear, hung, leaked, secretLeaks int
	medianCalls                                       int
	p95                                               time.Duration
}

func (m summary) line() string {
	return fmt.Sprintf("soak: %d builds, %d succeeded, %d failed with a clear error, %d hung, %d resources leaked, %d API calls per build (median), P95 wall %.1f s",
		m.n, m.ok, m.failed, m.hung, m.leaked, m.medianCalls, m.p95.Seconds())
}

func (s *soak) run(ctx context.Context) summary {
	results := make([]*result, s.c.n)
	plans := make([]struct {
		f  fate
		at float64
	}, s.c.n)
	for i := range plans {
		plans[i].f, plans[i].at = s.plan()
	}
	sem := make(chan struct{}, s.c.parallel)
	var wg sync.WaitGroup
	for i := range s.c.n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := s.build(ctx, i, plans[i].f, plans[i].at)
			results[i] = r
			s.printf("soak: build %d/%d %s: %s (%s) in %.1fs, %d calls, %d leaked%s\n", i+1, s.c.n, describeFate(r), r.outcome, r.exit,
				r.wall.Seconds(), r.calls, len(r.leaked), messageSuffix(r))
		}()
	}
	wg.Wait()

	// Whatever is still in the account now leaked, whoever left it:
	// this catches resources amibake failed to tag.
	final := s.settledLeftovers(ctx, 30*time.Second)
	var extra []string
	for _, id := range final {
		if !s.counts[id] {
			extra = append(extra, id)
		}
	}
	if len(extra) > 0 {
		s.printf("soak: left in the simulator after all builds: %v\n", extra)
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

	m := summary{n: s.c.n, leaked: len(extra)}
	var calls []int
	var walls []time.Duration
	msgs := map[string]int{}
	for _, r := range results {
		switch r.outcome {
		case succeeded:
			m.ok++
		case failed:
			m.failed++
		case unclear:
			m.unclear++
		case hung:
			m.hung++
		}
		if r.secret {
			m.secretLeaks++
		}
		m.leaked += len(r.leaked)
		calls = append(calls, r.calls)
		walls = append(walls, r.wall)
		if r.message != "" {
			msgs[normalise(r.message)]++
		}
	}
	slices.Sort(calls)
	m.medianCalls = calls[len(calls)/2]
	slices.Sort(walls)
	m.p95 = walls[int(math.Ceil(0.95*float64(len(walls))))-1]

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
	if m.unclear > 0 || m.secretLeaks > 0 {
		s.printf("soak: %d failed without a clear error, %d printed a secret\n", m.unclear, m.secretLeaks)
	}
	return m
}

func describeFate(r *result) string {
	switch {
	case r.fate == fateNone:
		return "normal"
	case !r.signalled:
		return string(r.fate) + " planned, build ended first"
	}
	return fmt.Sprintf("%s after %.1fs", r.fate, r.after.Seconds())
}

func messageSuffix(r *result) string {
	s := ""
	if r.message != "" && r.outcome != succeeded {
		s += ": " + r.message
	}
	if r.cleanup != "" {
		s += "; cleanup --all: " + r.cleanup
	}
	return s
}

var idRe = regexp.MustCompile(`\b(i|sg|key|vol|snap|ami|r|eni|subnet|vpc)-[0-9a-f]{8,17}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b\d{8}T\d{6}Z-[0-9a-f]{6}\b|\d+(\.\d+)?(ms|s|m)\b|\d+ (milliseconds?|seconds?|minutes?)`)

// normalise makes messages that differ only in ids and durations count as one.
func normalise(msg string) string {
	msg = idRe.ReplaceAllStringFunc(msg, func(m string) string {
		if i := strings.IndexByte(m, '-'); i > 0 && i < 7 && !strings.Contains(m, "T") {
			return m[:i] + "-…"
		}
		return "…"
	})
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

func (s *soak) env(i int, stateDir string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + stateDir,
		"XDG_STATE_HOME=" + stateDir,
		"TMPDIR=" + os.TempDir(),
		"AWS_ENDPOINT_URL=" + s.proxy.url,
		"AMIBAKE_CHECKIP_URL=" + s.srv.URL() + "/_sim/myip",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(s.work, "empty"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.work, "empty"),
		"AWS_ACCESS_KEY_ID=" + accessKey(i),
		"AWS_SECRET_ACCESS_KEY=" + secretKey(i),
		"NO_COLOR=1",
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

func (s *soak) build(ctx context.Context, i int, f fate, at float64) *result {
	r := &result{i: i, fate: f}
	stateDir := filepath.Join(s.work, fmt.Sprintf("build-%04d", i))
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		r.outcome, r.message = unclear, err.Error()
		return r
	}
	env := s.env(i, stateDir)
	var out bytes.Buffer
	cmd := exec.Command(s.bin, "build", "-color=false", "-var", fmt.Sprintf("name=%d-%d", s.c.seed, i), s.tmpl)
	cmd.Env, cmd.Dir = env, stateDir
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.outcome, r.message = unclear, err.Error()
		return r
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var sigC <-chan time.Time
	if f != fateNone {
		d := time.Duration(at * float64(s.estimate()))
		t := time.NewTimer(d)
		defer t.Stop()
		sigC = t.C
	}
	deadline := time.NewTimer(s.c.timeout)
	defer deadline.Stop()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
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
	if s.c.verbose {
		s.printf("---- build %d output\n%s----\n", i+1, output)
	}
	r.secret = strings.Contains(output, secretKey(i))
	r.exit = exitString(cmd.ProcessState, waitErr)

	killed := r.outcome == hung || (f == fateSIGKILL && r.signalled)
	if killed {
		// What a CI job does after its runner killed the build.
		cctx, cancel := context.WithTimeout(ctx, s.c.timeout)
		c := exec.CommandContext(cctx, s.bin, "cleanup", "--all")
		c.Env, c.Dir = env, stateDir
		cout, err := c.CombinedOutput()
		cancel()
		if err != nil {
			r.cleanup = fmt.Sprintf("%v: %s", err, lastLines(string(cout), 3))
		}
		if s.c.verbose {
			s.printf("---- cleanup after build %d\n%s----\n", i+1, cout)
		}
	}
	if r.outcome != hung {
		r.outcome, r.message = classify(cmd.ProcessState, output, r, killed)
		if r.cleanup != "" && r.outcome == failed {
			r.outcome = unclear
		}
	}
	r.calls = s.proxy.calls(accessKey(i))
	r.leaked = s.leaks(ctx, stateDir)
	s.estMu.Lock()
	for _, id := range r.leaked {
		for _, part := range strings.Fields(id) {
			s.counts[part] = true
		}
	}
	if r.outcome == succeeded {
		s.walls = append(s.walls, r.wall)
	}
	s.estMu.Unlock()
	return r
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

var (
	errLineRe = regexp.MustCompile(`(?m)^(?:Error: |.*Build '[^']+' errored after [^:]+: |.*[Ee]rror: )(.{10,})$`)
	interRe   = regexp.MustCompile(`(?i)interrupt|cancel`)
)

// classify decides whether a build succeeded, or failed saying clearly why.
func classify(ps *os.ProcessState, output string, r *result, killed bool) (outcome, string) {
	code := -1
	if ps != nil {
		code = ps.ExitCode()
	}
	return classifyCode(code, output, r, killed)
}

func classifyCode(code int, output string, r *result, killed bool) (outcome, string) {
	switch {
	case killed:
		return failed, "killed (SIGKILL), then removed by amibake cleanup --all"
	case code == 0:
		return succeeded, ""
	case r.fate == fateSIGINT && r.signalled && (code == 130 || code == 143):
		if interRe.MatchString(output) {
			return failed, "interrupted (exit " + fmt.Sprint(code) + ")"
		}
		return unclear, "exit " + fmt.Sprint(code) + " after SIGINT without saying so"
	}
	if m := errLineRe.FindAllStringSubmatch(output, -1); len(m) > 0 {
		return failed, strings.TrimSpace(m[len(m)-1][0])
	}
	return unclear, "exit " + fmt.Sprint(code) + " without an error message: " + lastLines(output, 2)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// leaks lists what the build's runs left, as `amibake cleanup --dry-run`
// would see it (ledger ids, in-flight intents and tags), once the
// simulator's asynchronous transitions have had time to finish.
func (s *soak) leaks(ctx context.Context, stateDir string) []string {
	dir := ledger.DefaultDir(func(k string) string {
		if k == "XDG_STATE_HOME" {
			return stateDir
		}
		return ""
	})
	clients := func(_ ledger.Location, region string) (reaper.EC2API, error) {
		return ec2.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(s.srv.URL()),
			Credentials: credentials.NewStaticCredentialsProvider("AKIASOAKCHECKER00001", "checker", "")},
			func(o *ec2.Options) {
				// The checker must not give up under the injected faults.
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.MaxAttempts, so.MaxBackoff, so.RateLimiter = 30, time.Second, ratelimit.None
				})
			}), nil
	}
	rp := reaper.New(reaper.Options{Clients: clients, DryRun: true})
	// Resources younger than the eventual-consistency window are not
	// listed yet.
	time.Sleep(s.consistency + 500*time.Millisecond)
	var ids []string
	for attempt := 0; attempt < 10; attempt++ {
		ids = ids[:0]
		runs, _ := ledger.List(dir)
		for _, run := range runs {
			rep, err := rp.Run(ctx, dir, run.ID)
			if err != nil {
				ids = append(ids, "check-failed:"+err.Error())
				continue
			}
			for _, it := range rep.Items {
				if it.Outcome == reaper.WouldRemove || it.Outcome == reaper.Failed {
					// The inventory names key pairs by name, the rest by id.
					ids = append(ids, strings.Trim(it.ID+" "+it.Name, " "))
				}
			}
		}
		if len(ids) == 0 {
			return nil
		}
		time.Sleep(time.Second) // terminations and deletions in progress
	}
	return slices.Clone(ids)
}

// settledLeftovers waits up to d for the simulator's account to hold no
// instance, key pair, security group or volume, and returns what stays.
func (s *soak) settledLeftovers(ctx context.Context, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var ids []string
		for _, ri := range s.srv.Inventory().Leftovers() {
			ids = append(ids, ri.Instances...)
			ids = append(ids, ri.KeyPairs...)
			ids = append(ids, ri.SecurityGroups...)
			ids = append(ids, ri.Volumes...)
		}
		if len(ids) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			sort.Strings(ids)
			return ids
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// countingProxy forwards to the simulator and counts API calls per
// access key.
type countingProxy struct {
	url string
	lis net.Listener
	srv *http.Server
	mu  sync.Mutex
	n   map[string]int
}

var credRe = regexp.MustCompile(`Credential=([^/,\s]+)/`)

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the counting proxy: %w", err)
	}
	p := &countingProxy{url: "http://" + lis.Addr().String(), lis: lis, n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := credRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			p.mu.Lock()
			p.n[m[1]]++
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

func (p *countingProxy) calls(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[key]
}

func (p *countingProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		_ = p.srv.Close()
	}
}
