package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

func TestParseDemoArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    demoOptions
		wantErr string
	}{
		{args: nil, want: demoOptions{latency: "default"}},
		{args: []string{"t.json"}, want: demoOptions{latency: "default", template: "t.json", build: []string{}}},
		{args: []string{"-amibake", "/x/amibake", "-latency", "zero", "t.pkr.hcl", "-var", "a=b", "-only", "x"},
			want: demoOptions{amibake: "/x/amibake", latency: "zero", template: "t.pkr.hcl", build: []string{"-var", "a=b", "-only", "x"}}},
		{args: []string{"-latency", "slow"}, wantErr: "want default or zero"},
		{args: []string{"-nope"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseDemoArgs(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.amibake != tt.want.amibake || got.latency != tt.want.latency || got.template != tt.want.template || !slices.Equal(got.build, tt.want.build) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDemoEnv(t *testing.T) {
	env := demoEnv([]string{"PATH=/bin", "AWS_PROFILE=prod", "AWS_ACCESS_KEY_ID=AKIAREAL", "AWS_ENDPOINT_URL_EC2=https://ec2.example", "HOME=/root", "AWS_SESSION_TOKEN=tok"}, "http://127.0.0.1:4000")
	want := []string{"PATH=/bin", "HOME=/root", "AWS_ENDPOINT_URL=http://127.0.0.1:4000", "AMIBAKE_CHECKIP_URL=http://127.0.0.1:4000/_sim/myip",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=AKIDAMIBAKEDEMO", "AWS_SECRET_ACCESS_KEY=amibake-demo"}
	if !slices.Equal(env, want) {
		t.Errorf("env =\n%q\nwant\n%q", env, want)
	}
}

func TestFindAmibake(t *testing.T) {
	if got, err := findAmibake("/opt/amibake"); err != nil || got != "/opt/amibake" {
		t.Errorf("flag: %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	// The test binary's directory has no amibake, and PATH has none.
	if _, err := findAmibake(""); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("err = %v, want the make build hint", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "amibake")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got, err := findAmibake(""); err != nil || got != bin {
		t.Errorf("PATH: %q, %v", got, err)
	}
}

var (
	amibakeOnce sync.Once
	amibakeBin  string
	amibakeErr  error
)

// buildAmibake compiles ./cmd/amibake once for the package's tests: the
// demo runs the real binary, as make demo does.
func buildAmibake(t *testing.T) string {
	t.Helper()
	amibakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ec2sim-demo-test-")
		if err != nil {
			amibakeErr = err
			return
		}
		amibakeBin = filepath.Join(dir, "amibake")
		cmd := exec.Command("go", "build", "-o", amibakeBin, "github.com/amibake/amibake/cmd/amibake")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			amibakeErr = err
			amibakeBin = string(out)
		}
	})
	if amibakeErr != nil {
		t.Fatalf("go build ./cmd/amibake: %v\n%s", amibakeErr, amibakeBin)
	}
	return amibakeBin
}

// removeAmibakeBin removes the amibake built for these tests; TestMain
// (main_test.go) calls it after the run.
func removeAmibakeBin() {
	if amibakeBin != "" && amibakeErr == nil {
		os.RemoveAll(filepath.Dir(amibakeBin))
	}
}

// A template that does not load: amibake's error and exit status come
// through, and the simulator is left empty.
func TestDemoPassesOnAmibakeFailure(t *testing.T) {
	bin := buildAmibake(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"builders": [{"type": "amazon-ebs", "region": }]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	var out, errOut bytes.Buffer
	code := runDemo(context.Background(), []string{"-amibake", bin, "-latency", "zero", bad}, nil, &out, &errOut,
		ec2sim.Options{NoSSH: true})
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "bad.json") || !strings.Contains(errOut.String(), "ec2sim: EC2 API on http://127.0.0.1:") {
		t.Errorf("stderr lacks the simulator line or amibake's diagnostic:\n%s", errOut.String())
	}
}

func TestDemoUsageErrors(t *testing.T) {
	var errOut bytes.Buffer
	if code := runDemo(context.Background(), []string{"-latency", "slow"}, nil, &bytes.Buffer{}, &errOut, ec2sim.Options{}); code != 2 {
		t.Errorf("bad flag: exit %d, want 2 (%s)", code, errOut.String())
	}
	errOut.Reset()
	if code := runDemo(context.Background(), []string{"-amibake", filepath.Join(t.TempDir(), "missing")}, nil, &bytes.Buffer{}, &errOut, ec2sim.Options{NoSSH: true}); code != 1 ||
		!strings.Contains(errOut.String(), "start amibake") {
		t.Errorf("missing binary: exit %d, stderr %s", code, errOut.String())
	}
}

// The one-command bake: the embedded tutorial, real sshd, real amibake.
func TestDemoBakesTutorial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	bin := buildAmibake(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	var out, errOut bytes.Buffer
	code := runDemo(context.Background(), []string{"-amibake", bin, "-latency", "zero"}, nil, &out, &errOut, ec2sim.Options{})
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !regexp.MustCompile(`(?m)^ap-northeast-1: ami-[0-9a-f]{17}$`).MatchString(out.String()) {
		t.Errorf("no AMI in the output:\n%s", out.String())
	}
}

// Stopping the demo (SIGTERM from a supervisor; here its context) passes
// SIGTERM on to amibake, which cleans up while the simulator still serves:
// amibake's exit status comes back and nothing is left.
func TestDemoStopCleansUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	bin := buildAmibake(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int)
	// sshd comes up late: the build waits for SSH with an instance running.
	go func() {
		done <- runDemo(ctx, []string{"-amibake", bin, "-latency", "zero"}, nil, &out, &errOut,
			ec2sim.Options{SSHStartDelay: 5 * time.Minute})
	}()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String()+errOut.String(), "Waiting for SSH to become available") {
		select {
		case code := <-done:
			t.Fatalf("the demo ended first: exit %d\n%s\n%s", code, out.String(), errOut.String())
		case <-deadline:
			t.Fatalf("no SSH wait within 60 s:\n%s\n%s", out.String(), errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	code := <-done
	if code != 143 {
		t.Errorf("exit %d, want amibake's 143 (SIGTERM)\n%s\n%s", code, out.String(), errOut.String())
	}
	if strings.Contains(errOut.String(), "left in the simulator") {
		t.Errorf("amibake left resources:\n%s", errOut.String())
	}
}

// syncBuffer is a bytes.Buffer that the test reads while amibake writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
