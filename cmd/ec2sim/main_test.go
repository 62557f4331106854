package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o ec2sim.Options)
		wantErr string
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o ec2sim.Options) {
			if o.Latency != ec2sim.DefaultLatency() || o.Addr != "127.0.0.1:0" || o.NoSSH || o.Consistency.Name != "default" {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "zero with override", args: []string{"-latency", "zero", "-latency-pending", "2s"}, check: func(t *testing.T, o ec2sim.Options) {
			want := ec2sim.ZeroLatency()
			want.Pending = 2 * time.Second
			if o.Latency != want {
				t.Errorf("latency = %+v, want %+v", o.Latency, want)
			}
		}},
		{name: "faults", args: []string{"-fault", "RunInstances:InsufficientInstanceCapacity@1,2", "-fault", "*:RequestLimitExceeded%0.5#3", "-seed", "7"}, check: func(t *testing.T, o ec2sim.Options) {
			if len(o.Faults) != 2 || o.Faults[0].Calls[1] != 2 || o.Faults[1].Probability != 0.5 || o.Faults[1].Count != 3 || o.Seed != 7 {
				t.Errorf("faults = %+v seed %d", o.Faults, o.Seed)
			}
		}},
		{name: "bad fault", args: []string{"-fault", "RunInstances:Nope"}, wantErr: "unknown"},
		{name: "bad profile", args: []string{"-latency", "slow"}, wantErr: "want default, ec2 or zero"},
		{name: "ec2 timing scaled", args: []string{"-latency", "ec2", "-time-scale", "0.1"}, check: func(t *testing.T, o ec2sim.Options) {
			if o.Latency != ec2sim.EC2Latency().Scaled(0.1) || o.Latency.ImagePending != 24*time.Second {
				t.Errorf("latency = %+v", o.Latency)
			}
		}},
		{name: "bad scale", args: []string{"-time-scale", "0"}, wantErr: "positive factor"},
		{name: "consistency follows the latency profile", args: []string{"-latency", "zero"}, check: func(t *testing.T, o ec2sim.Options) {
			if o.Consistency.Name != "none" {
				t.Errorf("consistency = %+v, want none", o.Consistency)
			}
		}},
		{name: "harsh", args: []string{"-consistency", "harsh"}, check: func(t *testing.T, o ec2sim.Options) {
			if o.Consistency.Name != "harsh" || o.Consistency.MaxWindow() != 2*time.Second {
				t.Errorf("consistency = %+v", o.Consistency)
			}
		}},
		{name: "lag rules", args: []string{"-lag", "image:describe%0.5@1s-2s"}, check: func(t *testing.T, o ec2sim.Options) {
			if len(o.Consistency.Lags) != 1 || o.Consistency.Lags[0].Kind != "image" || o.Consistency.Lags[0].Probability != 0.5 {
				t.Errorf("consistency = %+v", o.Consistency)
			}
		}},
		{name: "bad consistency", args: []string{"-consistency", "eventual"}, wantErr: "want none, default or harsh"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestRunPrintsEnvironmentAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	ready := make(chan *ec2sim.Server, 1)
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-no-ssh", "-latency", "zero", "-region", "eu-west-1"}, &out, &errOut, ready)
	}()
	srv := <-ready
	resp, err := http.Get(srv.URL() + "/_sim/myip")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "127.0.0.1" {
		t.Errorf("myip = %q", body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d, stderr %s", code, errOut.String())
	}
	want := "export AWS_ENDPOINT_URL=" + srv.URL() + " AWS_ACCESS_KEY_ID="
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "AWS_REGION=eu-west-1") ||
		!strings.Contains(out.String(), "AMIBAKE_CHECKIP_URL="+srv.URL()+"/_sim/myip") {
		t.Errorf("output lacks the environment line:\n%s", out.String())
	}
}

// TestMain lets TestSignalStopsCleanly run this package's test binary as
// the ec2sim command.
func TestMain(m *testing.M) {
	if os.Getenv("EC2SIM_TEST_MAIN") == "1" {
		os.Args = append([]string{"ec2sim"}, strings.Fields(os.Getenv("EC2SIM_TEST_ARGS"))...)
		main()
		return
	}
	code := m.Run()
	removeAmibakeBin()
	os.Exit(code)
}

// TestSignalStopsCleanly: SIGTERM and SIGINT stop the simulator through
// Close, and the process exits 0 only after it returned.
func TestSignalStopsCleanly(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "EC2SIM_TEST_MAIN=1", "EC2SIM_TEST_ARGS=-no-ssh -latency zero")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, "EC2 API on") {
			t.Fatalf("first line %q: %v (%s)", line, err, errb.String())
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(r)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: exit %v, stderr %s", sig, err, errb.String())
		}
		if !strings.Contains(string(rest), "ec2sim: stopping") {
			t.Errorf("%v: output lacks the stopping line:\n%s", sig, rest)
		}
	}
}

// TestSignalLeavesNoProcess runs the command with a real instance (its
// sshd), stops it with SIGTERM, and checks that nothing it started
// outlives it: no process (this test process is made a child subreaper,
// so any orphan of the simulator would become its child), no mount, no
// state directory. It asserts the outcome; the Close race behind the
// issue's leaks is reproduced deterministically by
// internal/ec2sim's TestCloseTwiceWaits.
func TestSignalLeavesNoProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("instances run sshd in a chroot, which needs root (make test runs as root)")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "EC2SIM_TEST_MAIN=1", "EC2SIM_TEST_ARGS=-latency zero")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "EC2 API on ") {
		t.Fatalf("first line %q: %v (%s)", line, err, errb.String())
	}
	url := strings.Fields(strings.SplitN(line, "EC2 API on ", 2)[1])[0]
	go func() { _, _ = io.Copy(io.Discard, r) }()
	ctx := context.Background()
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), HTTPClient: awsclient.HTTPClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "secret", "")})
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"136693071363"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"debian-12-amd64-*"}}}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("find an image: %v", err)
	}
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: "t3.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*run.Instances[0].InstanceId}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := len(descendants(cmd.Process.Pid)); n == 0 {
		t.Fatal("the running instance has no process under the simulator: nothing to check")
	}
	// The simulator's state directory: the run-XXXX directory (a tmpfs in
	// the default state dir) that holds this instance.
	id := *run.Instances[0].InstanceId
	var runDirs []string
	for _, pattern := range []string{"/var/lib/amibake-ec2sim/run-*/" + id, "/var/lib/amibake-ec2sim/run-*/*/" + id} {
		found, _ := filepath.Glob(pattern)
		for _, f := range found {
			rel := strings.TrimPrefix(f, "/var/lib/amibake-ec2sim/")
			runDirs = append(runDirs, "/var/lib/amibake-ec2sim/"+strings.SplitN(rel, "/", 2)[0])
		}
	}
	if len(runDirs) == 0 {
		t.Errorf("no state directory holds %s under /var/lib/amibake-ec2sim: this test no longer knows the layout", id)
	}
	t.Logf("the simulator's state: %v", runDirs)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, stderr %s", err, errb.String())
	}
	if left := descendants(os.Getpid()); len(left) > 0 {
		t.Errorf("processes left after the simulator exited: %v", left)
	}
	for _, dir := range runDirs {
		for _, m := range mountPoints() {
			if m == dir || strings.HasPrefix(m, dir+"/") {
				t.Errorf("still mounted after the simulator exited: %s", m)
			}
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("state directory left after the simulator exited: %s", dir)
		}
	}
	for {
		// Reap whatever was adopted, so the check above stays exact.
		if pid, _ := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 {
			break
		}
	}
}

// mountPoints lists this mount namespace's mount points.
func mountPoints() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out
}

// descendants lists the command lines of every process below pid.
func descendants(pid int) []string {
	parent := map[int]int{}
	cmdline := map[int]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
		b, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		cmdline[p] = strings.ReplaceAll(string(b), "\x00", " ")
	}
	var out []string
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, fmt.Sprintf("%d %s", p, cmdline[p]))
				break
			}
		}
	}
	return out
}
