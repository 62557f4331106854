// Command ec2sim runs the local EC2 simulator: the EC2 Query API (and STS
// GetCallerIdentity) on loopback, with instances that are real SSH hosts.
//
//	go run ./cmd/ec2sim            # then paste the printed export line
//	ec2sim demo [TEMPLATE]         # start, run bin/amibake build against itself, stop
//
// Instances' sshd listen on port 22 of their own 127.x.y.z addresses,
// which needs root (as do the namespaces and overlays instances run in, and
// `make setup`, which builds the Debian system they boot); -no-ssh runs an
// API-only simulator as any user.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "demo" { // demo.go
		os.Exit(runDemo(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr, ec2sim.Options{}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

type faultFlags []ec2sim.FaultRule

func (f *faultFlags) String() string {
	var s []string
	for _, r := range *f {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

type lagFlags []ec2sim.Lag

func (f *lagFlags) String() string { return fmt.Sprint(len(*f), " lag rules") }

func (f *lagFlags) Set(v string) error {
	l, err := ec2sim.ParseLag(v)
	if err != nil {
		return err
	}
	*f = append(*f, l)
	return nil
}

func (f *faultFlags) Set(v string) error {
	r, err := ec2sim.ParseFaultRule(v)
	if err != nil {
		return err
	}
	*f = append(*f, r)
	return nil
}

// parseFlags turns the command line into simulator options.
func parseFlags(args []string, stderr io.Writer) (ec2sim.Options, string, error) {
	fs := flag.NewFlagSet("ec2sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts ec2sim.Options
	var faults faultFlags
	var lags lagFlags
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:0", "listen address (loopback only)")
	profile := fs.String("latency", "default", "latency profile: default (realistic in shape but quick), ec2 (EC2's own durations for a small instance: a bake takes minutes) or zero")
	scale := fs.Float64("time-scale", 1, "multiply every latency by this factor (e.g. -latency ec2 -time-scale 0.05)")
	consistency := fs.String("consistency", "", "eventual-consistency profile: default (as EC2: a few new instances, groups and key pairs seen late), harsh (every new resource unknown to every call for 1-2s) or none; default: none with -latency zero, else default")
	fs.Var(&lags, "lag", "replace the consistency profile's lags with this one, KIND:CALLS%P@MIN-MAX (repeatable), e.g. instance:describe,tag%0.05@100ms-1s")
	region := fs.String("region", "us-east-1", "region to print in the environment")
	fs.StringVar(&opts.StateDir, "state-dir", "", "directory for instances' root filesystems (root-owned, not under /tmp; default /var/lib/amibake-ec2sim)")
	fs.BoolVar(&opts.NoSSH, "no-ssh", false, "run instances without SSH servers (API only; needs no root)")
	fs.IntVar(&opts.SSHPort, "ssh-port", 22, "port the instances' sshd listen on")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed for fault injection and SSH drops (0: random)")
	fs.Var(&faults, "fault", "inject a fault, ACTION:FAULT[@N,M][%P][#COUNT] (repeatable), e.g. RunInstances:InsufficientInstanceCapacity@1 or '*:RequestLimitExceeded%0.1'")
	fs.Float64Var(&opts.SSHDropProbability, "ssh-drop", 0, "probability that an SSH command's connection is dropped mid-command")
	fs.DurationVar(&opts.SSHStartDelay, "ssh-start-delay", 0, "extra delay before each instance's sshd starts (slow SSH)")
	verbose := fs.Bool("v", false, "debug logging to stderr")
	lat := map[string]*time.Duration{}
	for _, name := range []string{"request", "pending", "ssh-ready", "stopping", "shutting-down", "image-pending", "snapshot-pending", "console-post"} {
		lat[name] = fs.Duration("latency-"+name, -1, "override the profile's "+name+" latency")
	}
	if err := fs.Parse(args); err != nil {
		return opts, "", err
	}
	if fs.NArg() > 0 {
		return opts, "", fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch *profile {
	case "default":
		opts.Latency = ec2sim.DefaultLatency()
	case "ec2":
		opts.Latency = ec2sim.EC2Latency()
	case "zero":
		opts.Latency = ec2sim.ZeroLatency()
	default:
		return opts, "", fmt.Errorf("-latency %q: want default, ec2 or zero", *profile)
	}
	if *scale <= 0 {
		return opts, "", fmt.Errorf("-time-scale %v: want a positive factor", *scale)
	}
	if *scale != 1 {
		opts.Latency = opts.Latency.Scaled(*scale)
	}
	if *consistency == "" {
		*consistency = "default"
		if *profile == "zero" {
			*consistency = "none"
		}
	}
	var err error
	if opts.Consistency, err = ec2sim.ConsistencyProfile(*consistency); err != nil {
		return opts, "", fmt.Errorf("-consistency: %w", err)
	}
	if len(lags) > 0 {
		opts.Consistency = ec2sim.Consistency{Name: "custom", Lags: lags}
	}
	for name, dst := range map[string]*time.Duration{
		"request": &opts.Latency.Request, "pending": &opts.Latency.Pending, "ssh-ready": &opts.Latency.SSHReady,
		"stopping": &opts.Latency.Stopping, "shutting-down": &opts.Latency.ShuttingDown, "image-pending": &opts.Latency.ImagePending,
		"snapshot-pending": &opts.Latency.SnapshotPending, "console-post": &opts.Latency.ConsolePost,
	} {
		if *lat[name] >= 0 {
			*dst = *lat[name]
		}
	}
	opts.Faults = faults
	if *verbose {
		opts.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return opts, *region, nil
}

// run starts the simulator and serves until ctx ends. ready, when not nil,
// receives the server once it listens (tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- *ec2sim.Server) int {
	opts, region, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "ec2sim:", err)
		return 2
	}
	srv, err := ec2sim.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ec2sim: EC2 API on %s (admin: %s/_sim/inventory, /_sim/calls, /_sim/events, /_sim/faults, /_sim/myip)\n", srv.URL(), srv.URL())
	// AMIBAKE_CHECKIP_URL keeps amibake's public-IP detection on loopback
	// too: without it a build would ask checkip.amazonaws.com.
	fmt.Fprintf(stdout, "export AWS_ENDPOINT_URL=%s AWS_ACCESS_KEY_ID=AKIASIMULATOR000001 AWS_SECRET_ACCESS_KEY=simulator-secret AWS_REGION=%s AMIBAKE_CHECKIP_URL=%s/_sim/myip AWS_EC2_METADATA_DISABLED=true\n", srv.URL(), region, srv.URL())
	if ready != nil {
		ready <- srv
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "ec2sim: stopping (terminating every instance)")
	// Start's own watcher closes the server on ctx too; Close waits for
	// whichever call runs the shutdown, so nothing is left when we exit.
	if err := srv.Close(); err != nil {
		fmt.Fprintln(stderr, "ec2sim: stop:", err)
		return 1
	}
	return 0
}
