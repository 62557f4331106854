package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ui"
)

// childEnv makes the test binary run amibake's main instead of the tests,
// so that signals reach a real amibake process.
const childEnv = "AMIBAKE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], ui.System()))
	}
	os.Exit(m.Run())
}

// child is amibake running in another process, its output merged.
type child struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	lines chan string
	done  chan struct{}
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(os.Args[0], args...), lines: make(chan string, 1024), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Stdout, c.cmd.Stderr = w, w
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.mu.Lock()
			c.out.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	return c
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitFor waits for a line of output containing s.
func (c *child) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l := <-c.lines:
			if strings.Contains(l, s) {
				return
			}
		case <-c.done:
			t.Fatalf("amibake ended before printing %q:\n%s", s, c.output())
		case <-timeout:
			t.Fatalf("no %q after a minute:\n%s", s, c.output())
		}
	}
}

func (c *child) exit(t *testing.T) int {
	t.Helper()
	err := c.cmd.Wait()
	<-c.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestBuildInterrupt(t *testing.T) {
	tmpl := repoPath(t, "cmd/amibake/testdata/interrupt.pkr.hcl")
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			srv := buildEnv(t, false)
			c := startChild(t, "build", "-color=false", tmpl)
			c.waitFor(t, "provisioning-started")
			if err := c.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			code := c.exit(t)
			out := c.output()
			if code != tc.code || !strings.Contains(out, "Interrupt received: cancelling the builds and cleaning up (interrupt again to stop the cleanups)...") ||
				!strings.Contains(out, "Deleting temporary security group...") {
				t.Errorf("exit %d (want %d):\n%s", code, tc.code, out)
			}
			if strings.Contains(out, "Cleanup was interrupted") {
				t.Errorf("one signal must not stop the cleanups:\n%s", out)
			}
			if inv := srv.Inventory(); !inv.Empty() {
				t.Errorf("left behind after one signal: %+v", inv.Leftovers())
			}
		})
	}
}

// TestBuildDoubleInterrupt: a second SIGINT while the instance shuts down
// stops the cleanups; amibake prints what is left and the command that
// removes it, and that command does.
func TestBuildDoubleInterrupt(t *testing.T) {
	lat := ec2sim.ZeroLatency()
	lat.ShuttingDown = 2 * time.Second // the security group cannot go before
	tmpl := repoPath(t, "cmd/amibake/testdata/interrupt.pkr.hcl")
	srv := buildEnvLatency(t, false, lat)
	c := startChild(t, "build", "-color=false", tmpl)
	c.waitFor(t, "provisioning-started")
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "Terminating the source AWS instance...")
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := c.exit(t)
	out := c.output()
	m := regexp.MustCompile(`Cleanup was interrupted\. Run (\S+) left \d+ resource\(s\):\n(?s:.*)Remove them with:\n  amibake cleanup --run-id (\S+)\n`).FindStringSubmatch(out)
	if code != 130 || m == nil || m[1] != m[2] || !strings.Contains(out, "Second interrupt: stopping the cleanups.") {
		t.Fatalf("exit %d, want 130 and the left report:\n%s", code, out)
	}
	if srv.Inventory().Empty() {
		t.Fatalf("the second signal stopped nothing: the inventory is empty\n%s", out)
	}
	for _, kind := range []string{"security-group", "key-pair"} {
		if !regexp.MustCompile(`(?m)^  ap-northeast-1\s+` + kind + `\s+\S+`).MatchString(out) {
			t.Errorf("the report does not list the %s:\n%s", kind, out)
		}
	}

	ios, _, cout, cerr := ui.Test()
	f := newFactory(ios)
	f.Getenv = os.Getenv
	root := newRootCmd(f)
	root.SetArgs([]string{"cleanup", "--run-id", m[1]})
	if code := exitCode(cerr, f.Secrets, root.ExecuteContext(context.Background())); code != 0 {
		t.Fatalf("cleanup: exit %d\n%s\n%s", code, cout, cerr)
	}
	if inv := srv.Inventory(); !inv.Empty() {
		t.Errorf("left after amibake cleanup --run-id: %+v\n%s%s", inv.Leftovers(), cout, cerr)
	}
}
