package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

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
	os.Exit(m.Run())
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
