package interrupt

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		sig  os.Signal
		want int
	}{{os.Interrupt, 130}, {syscall.SIGTERM, 143}, {syscall.SIGHUP, 129}, {nil, 1}} {
		if got := ExitCode(tt.sig); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.sig, got, tt.want)
		}
	}
}

func TestContextsInProcess(t *testing.T) {
	ch := make(chan os.Signal, 2)
	run, cleanup, sig, stop := notify(context.Background(), ch, false)
	defer stop()
	if Cleanup(run) != cleanup {
		t.Error("Cleanup(run) is not the cleanup context")
	}
	if sig() != nil || run.Err() != nil {
		t.Fatal("cancelled before any signal")
	}
	ch <- syscall.SIGTERM
	<-run.Done()
	if cleanup.Err() != nil || sig() != syscall.SIGTERM {
		t.Fatalf("after one signal: cleanup err %v, sig %v", cleanup.Err(), sig())
	}
	if cause := context.Cause(run); cause == nil || cause.Error() != "interrupted by SIGTERM" || !errors.Is(cause, context.Canceled) {
		t.Errorf("cause = %v, want \"interrupted by SIGTERM\" that is also context.Canceled", cause)
	}
	ch <- os.Interrupt
	select {
	case <-cleanup.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not cancel cleanup")
	}
	if sig() != syscall.SIGTERM {
		t.Errorf("signal() = %v, want the first one", sig())
	}
}

func TestParentCancelLeavesCleanup(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	run, cleanup, _, stop := notify(parent, make(chan os.Signal), false)
	defer stop()
	cancel()
	<-run.Done()
	if cleanup.Err() != nil {
		t.Error("cancelling the parent cancelled cleanup")
	}
	stop()
	if cleanup.Err() == nil {
		t.Error("stop did not release cleanup")
	}
	if c := Cleanup(context.Background()); c == nil || c.Done() != nil {
		t.Error("Cleanup without Context should be an uncancellable context")
	}
}

// The helper process behaves like amibake: it waits for the run to be
// cancelled, then "cleans up" until done or until cleanup is cancelled.
func TestMain(m *testing.M) {
	if mode := os.Getenv("INTERRUPT_HELPER"); mode != "" {
		run, cleanup, sig, stop := Context(context.Background())
		defer stop()
		fmt.Println("ready")
		<-run.Done()
		fmt.Printf("run cancelled by %v, cleanup alive %v\n", sig(), cleanup.Err() == nil)
		switch mode {
		case "finish": // cleanup completes
			fmt.Println("cleaned up")
		case "hang": // cleanup ignores its context: a third signal must kill
			time.Sleep(time.Minute)
		default:
			select {
			case <-cleanup.Done():
				fmt.Println("cleanup cancelled")
			case <-time.After(30 * time.Second):
				fmt.Println("cleanup timed out")
			}
		}
		os.Exit(ExitCode(sig()))
	}
	os.Exit(m.Run())
}

type child struct {
	t   *testing.T
	cmd *exec.Cmd
	out *bufio.Scanner
}

func startChild(t *testing.T, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INTERRUPT_HELPER="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &child{t: t, cmd: cmd, out: bufio.NewScanner(stdout)}
	c.expect("ready")
	return c
}

func (c *child) expect(want string) {
	c.t.Helper()
	if !c.out.Scan() {
		c.t.Fatalf("child output ended, want %q", want)
	}
	if got := c.out.Text(); got != want {
		c.t.Fatalf("child said %q, want %q", got, want)
	}
}

func (c *child) signal(s os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *child) exitCode() int {
	c.t.Helper()
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatal(err)
	}
	return c.cmd.ProcessState.ExitCode()
}

func TestSignalsToChild(t *testing.T) {
	t.Run("SIGINT twice stops cleanup, exit 130", func(t *testing.T) {
		c := startChild(t, "wait")
		c.signal(os.Interrupt)
		c.expect("run cancelled by interrupt, cleanup alive true")
		c.signal(os.Interrupt)
		c.expect("cleanup cancelled")
		if code := c.exitCode(); code != 130 {
			t.Errorf("exit %d, want 130", code)
		}
	})
	t.Run("SIGTERM lets cleanup finish, exit 143", func(t *testing.T) {
		c := startChild(t, "finish")
		c.signal(syscall.SIGTERM)
		c.expect("run cancelled by terminated, cleanup alive true")
		c.expect("cleaned up")
		if code := c.exitCode(); code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
	})
	t.Run("third SIGINT kills a hung cleanup", func(t *testing.T) {
		c := startChild(t, "hang")
		c.signal(os.Interrupt)
		c.expect("run cancelled by interrupt, cleanup alive true")
		c.signal(os.Interrupt)
		// The second signal is handled asynchronously; retry the third
		// until the default disposition is back and it kills the child.
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
					c.cmd.Process.Signal(os.Interrupt)
				}
			}
		}()
		c.cmd.Wait()
		close(done)
		ws, _ := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("child ended with %v, want killed by SIGINT", c.cmd.ProcessState)
		}
	})
}

func TestLeftReport(t *testing.T) {
	dir := t.TempDir()
	j, err := ledger.Open(dir, "20261125T234500Z-ab12cd")
	if err != nil {
		t.Fatal(err)
	}
	j.Start("hello_ami.json")
	a := j.ForBuild("amazon-ebs.example")
	e, _ := a.Intend(ledger.KindKeyPair, "us-east-1", "amibake_20261125T234500Z-ab12cd")
	a.Created(e, "key-0123456789abcdef0")
	e, _ = a.Intend(ledger.KindSecurityGroup, "us-east-1", "amibake_sg_ab12cd")
	a.Created(e, "sg-0123456789abcdef0")
	e, _ = a.Intend(ledger.KindLocalFile, "", "/root/.local/state/amibake/keys/ab12cd.pem")
	a.Created(e, "/root/.local/state/amibake/keys/ab12cd.pem")
	a.Intend(ledger.KindInstance, "us-east-1", "amibake-ab12cd-1")
	a.Deleted(ledger.KindKeyPair, "us-east-1", "key-0123456789abcdef0")
	j.Close()

	run, err := ledger.Read(dir, "20261125T234500Z-ab12cd")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "left_report", LeftReport(run))

	empty := &ledger.Run{ID: "20261125T234500Z-000000"}
	golden(t, "left_report_empty", LeftReport(empty))
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
	if strings.Contains(got, "\r") {
		t.Error("carriage return in report")
	}
}
