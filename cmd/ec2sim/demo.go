package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/amibake/amibake/examples"
	"github.com/amibake/amibake/internal/ec2sim"
)

const demoUsage = `usage: ec2sim demo [-amibake PATH] [-latency default|zero] [TEMPLATE [BUILD-FLAGS...]]

Start the simulator on loopback and run 'amibake build BUILD-FLAGS TEMPLATE'
against it (the classic Packer tutorial template when no TEMPLATE is given).
amibake is an ordinary client: only its environment (AWS_ENDPOINT_URL and
test credentials) points it at the simulator. Instances are real OpenSSH
hosts, which needs root. The simulator stops when amibake has exited.
`

// demoOptions are the parsed arguments of `ec2sim demo`.
type demoOptions struct {
	amibake  string   // the amibake binary ("" finds one)
	latency  string   // default or zero
	template string   // "" is the embedded tutorial
	build    []string // flags for amibake build, before the template
}

func parseDemoArgs(args []string, stderr io.Writer) (demoOptions, error) {
	fs := flag.NewFlagSet("ec2sim demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); fs.PrintDefaults() }
	var o demoOptions
	fs.StringVar(&o.amibake, "amibake", "", "the amibake binary (default: amibake next to ec2sim, else on PATH)")
	fs.StringVar(&o.latency, "latency", "default", "latency profile: default (realistic but quick) or zero")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.latency != "default" && o.latency != "zero" {
		return o, fmt.Errorf("-latency %q: want default or zero", o.latency)
	}
	if rest := fs.Args(); len(rest) > 0 {
		o.template, o.build = rest[0], rest[1:]
	}
	return o, nil
}

// findAmibake returns the amibake binary to run: the flag's, else the one
// installed next to this executable (make build puts both in bin/), else
// the first on PATH.
func findAmibake(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if self, err := os.Executable(); err == nil {
		next := filepath.Join(filepath.Dir(self), "amibake")
		if fi, err := os.Stat(next); err == nil && fi.Mode().IsRegular() {
			return next, nil
		}
	}
	if p, err := exec.LookPath("amibake"); err == nil {
		return p, nil
	}
	return "", errors.New("no amibake binary next to ec2sim or on PATH: run `make build` (bin/amibake) or pass -amibake PATH")
}

// demoEnv is the child's environment: the caller's, with the AWS settings
// that would point elsewhere removed and the simulator's added.
func demoEnv(environ []string, url string) []string {
	drop := map[string]bool{
		"AWS_PROFILE": true, "AWS_DEFAULT_PROFILE": true, "AWS_SESSION_TOKEN": true,
		"AWS_ENDPOINT_URL_EC2": true, "AWS_ENDPOINT_URL_STS": true,
	}
	set := map[string]string{
		"AWS_ENDPOINT_URL":          url,
		"AMIBAKE_CHECKIP_URL":       url + "/_sim/myip",
		"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ACCESS_KEY_ID":         "AKIDAMIBAKEDEMO",
		"AWS_SECRET_ACCESS_KEY":     "amibake-demo",
	}
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok || drop[k] {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range []string{"AWS_ENDPOINT_URL", "AMIBAKE_CHECKIP_URL", "AWS_EC2_METADATA_DISABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		env = append(env, k+"="+set[k])
	}
	return env
}

// runDemo is `ec2sim demo`: it returns amibake's exit status (2 on a usage
// error, 1 when the simulator or amibake cannot start).
//
// Signals: Ctrl-C in a terminal reaches every process of the foreground
// group, amibake included, so the demo ignores SIGINT and keeps serving
// while amibake cancels and cleans up (a forwarded copy would count as
// amibake's second interrupt and stop its cleanups). SIGTERM, which a
// supervisor sends to one process, is passed on to amibake.
func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, opts ec2sim.Options) int {
	o, err := parseDemoArgs(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "ec2sim demo:", err)
		return 2
	}
	bin, err := findAmibake(o.amibake)
	if err != nil {
		fmt.Fprintln(stderr, "ec2sim demo:", err)
		return 1
	}
	path := o.template
	if path == "" {
		dir, err := os.MkdirTemp("", "ec2sim-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "ec2sim demo:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "hello_ami.json")
		if err := os.WriteFile(path, examples.TutorialJSON, 0o600); err != nil {
			fmt.Fprintln(stderr, "ec2sim demo:", err)
			return 1
		}
	}
	if o.latency == "zero" {
		opts.Latency = ec2sim.ZeroLatency()
	} else if opts.Latency == (ec2sim.Latency{}) {
		opts.Latency = ec2sim.DefaultLatency()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// The simulator outlives ctx: it serves until amibake has cleaned up.
	simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSim()
	srv, err := ec2sim.Start(simCtx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "ec2sim demo: start the EC2 simulator:", err)
		return 1
	}
	defer srv.Close()
	fmt.Fprintf(stderr, "ec2sim: EC2 API on %s; running %s build %s\n\n", srv.URL(), bin, strings.Join(append(append([]string{}, o.build...), path), " "))

	cmd := exec.Command(bin, append(append([]string{"build"}, o.build...), path)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Env = demoEnv(os.Environ(), srv.URL())
	// If the demo itself is killed, amibake is told to stop rather than
	// left retrying a simulator that is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "ec2sim demo: start amibake:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		case <-ctx.Done():
			// The caller gave up (tests): stop amibake the way SIGTERM does.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		case err := <-done:
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
			} else if err != nil {
				fmt.Fprintln(stderr, "ec2sim demo: amibake:", err)
				code = 1
			}
			// A leak is a failed demo, whatever amibake said.
			if inv := srv.Inventory(); !inv.Empty() {
				fmt.Fprintf(stderr, "ec2sim demo: left in the simulator after amibake exited: %+v\n", inv.Leftovers())
				if code == 0 {
					code = 1
				}
			}
			return code
		}
	}
}
