// Command soak runs many builds of a small template against the EC2
// simulator with faults switched on, interrupting and killing some of
// them, and checks against the simulator's inventory that none hangs and
// nothing is left (see internal/soak):
//
//	go run ./cmd/soak -n 30 -seed 1     (make soak N=30 SEED=1)
//
// Its last line is the summary:
//
//	soak: N builds, S succeeded, F failed with a clear error, H hung, L resources leaked, C API calls per build (median), P95 wall s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amibake/amibake/internal/soak"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := soak.DefaultConfig()
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.N, "n", c.N, "number of builds")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of every random choice (faults, signals, moments)")
	fs.IntVar(&c.Parallel, "parallel", c.Parallel, "builds running at once")
	fs.StringVar(&c.Bin, "bin", c.Bin, "the amibake binary (make build)")
	fs.StringVar(&c.Template, "template", "", "template to build (default: a small built-in one)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "a build running longer than this is hung")
	fs.BoolVar(&c.Faults, "faults", c.Faults, "inject faults: throttling 10%, 5xx 5%, capacity 5% of launches, failed images 2%, SSH drops 5%")
	fs.StringVar(&c.Consistency, "consistency", c.Consistency, "the simulator's eventual-consistency profile: harsh, default or none")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "the builds' AMIBAKE_LEASE (how far ahead they push their lease)")
	fs.DurationVar(&c.SweepEvery, "sweep-every", c.SweepEvery, "a second runner's `cleanup --tagged --older-than 0s` this often during the builds (0: none)")
	fs.StringVar(&c.SweepRegion, "sweep-region", c.SweepRegion, "the region the second runner sweeps (the template's)")
	fs.IntVar(&c.WrongEndpointEvery, "wrong-endpoint-every", c.WrongEndpointEvery, "clean every k-th killed build from another account's endpoint first (0: never)")
	fs.Float64Var(&c.Spot, "spot", c.Spot, "share of builds on a spot instance (a launch template and an instant fleet), with the built-in template")
	fs.BoolVar(&c.Verbose, "v", false, "print every build's and cleanup's output")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory (ledgers, template) for a look afterwards")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sum, err := soak.Run(ctx, c, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	fmt.Fprintln(stdout, sum.Line())
	if sum.Bad() {
		return 1
	}
	return 0
}
