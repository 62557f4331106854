package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reaper"
)

func init() { commands = append(commands, newCleanupCmd) }

type cleanupOptions struct {
	runID         string
	all           bool
	tagged        bool
	olderThan     time.Duration
	regions       []string
	dryRun        bool
	includeImages bool
	ledgerDir     string
}

func newCleanupCmd(f *factory) *cobra.Command {
	o := &cleanupOptions{}
	cmd := &cobra.Command{
		Use:   "cleanup (--run-id ID | --all | --tagged --older-than D --region r,...)",
		Short: "Remove what interrupted or killed runs left behind",
		Long: `Remove the temporary instances, volumes, security groups and key pairs that
a run left behind (after SIGKILL, a crash, or a second Ctrl-C).

  --run-id ID   the run named in amibake's "what is left" message: what its
                local ledger lists, and anything tagged with its run id in the
                regions it used (with --region, a run whose ledger is on
                another machine is found by its tags alone)
  --all         every run in the local ledger whose process is gone
  --tagged      every resource tagged amibake:run-id in the --region list
                whose amibake:created-at is older than --older-than (a CI
                reaper job on another machine; no ledger needed)

Resources are removed in dependency order: instances (waiting until they are
terminated), volumes, security groups, key pairs. Only resources that carry
amibake's tags are ever touched. Available AMIs are artifacts and stay;
--include-images also removes images left pending or failed, and their
snapshots. Running cleanup twice, even at once, is safe.`,
		Example: `  amibake cleanup --run-id 20261125T234500Z-ab12cd
  amibake cleanup --all --dry-run
  amibake cleanup --tagged --older-than 2h --region us-east-1,eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCleanup(cmd.Context(), f, o, cmd.Flags().Changed("older-than"))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.runID, "run-id", "", "clean up this run")
	fl.BoolVar(&o.all, "all", false, "clean up every run in the local ledger that is not running")
	fl.BoolVar(&o.tagged, "tagged", false, "clean up by amibake's tags in --region, without the ledger")
	fl.DurationVar(&o.olderThan, "older-than", 2*time.Hour, "with --tagged: only resources created longer ago than this")
	fl.StringSliceVar(&o.regions, "region", nil, "regions to search, with --tagged (default: AWS_REGION) or --run-id")
	fl.BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	fl.BoolVar(&o.includeImages, "include-images", false, "also remove images left pending or failed, and their snapshots")
	fl.StringVar(&o.ledgerDir, "ledger-dir", "", "the run ledger's directory (default $XDG_STATE_HOME/amibake/runs)")
	return cmd
}

func runCleanup(ctx context.Context, f *factory, o *cleanupOptions, olderThanSet bool) error {
	modes := 0
	for _, on := range []bool{o.runID != "", o.all, o.tagged} {
		if on {
			modes++
		}
	}
	switch {
	case modes != 1:
		return &usageError{errors.New("cleanup needs exactly one of --run-id ID, --all, --tagged\nSee 'amibake cleanup --help'.")}
	case o.runID != "" && !ledger.ValidRunID(o.runID):
		return &usageError{fmt.Errorf("--run-id %q is not a run id (letters, digits, - and _)", o.runID)}
	case !o.tagged && olderThanSet:
		return &usageError{errors.New("--older-than goes with --tagged")}
	case o.all && len(o.regions) > 0:
		return &usageError{errors.New("--region goes with --tagged or --run-id; --all finds the regions in the ledger")}
	case o.olderThan < 0:
		return &usageError{errors.New("--older-than must not be negative")}
	}
	var regions []string
	for _, r := range o.regions {
		if r = strings.TrimSpace(r); r != "" {
			regions = append(regions, r)
		}
	}
	if o.tagged && len(regions) == 0 {
		for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
			if r := f.Getenv(k); r != "" {
				regions = []string{r}
				break
			}
		}
		if len(regions) == 0 {
			return &usageError{errors.New("--tagged needs --region (or AWS_REGION)")}
		}
	}
	dir := o.ledgerDir
	if dir == "" {
		dir = ledger.DefaultDir(f.Getenv)
	}

	clients := lazyClients(ctx, append(regions, "us-east-1")[0])
	r := reaper.New(reaper.Options{Clients: clients, DryRun: o.dryRun, IncludeImages: o.includeImages, Log: f.Log})
	var rep *reaper.Report
	var err error
	switch {
	case o.runID != "" && len(regions) > 0:
		// The run's ledger may be on another machine: its tags are enough.
		if _, rerr := ledger.Read(dir, o.runID); errors.Is(rerr, ledger.ErrNoRun) {
			rep, err = r.RunTagged(ctx, o.runID, regions)
		} else {
			rep, err = r.Run(ctx, dir, o.runID)
		}
	case o.runID != "":
		rep, err = r.Run(ctx, dir, o.runID)
	case o.all:
		rep, err = r.All(ctx, dir)
	default:
		rep, err = r.Tagged(ctx, regions, o.olderThan, dir)
	}
	if rep != nil && (len(rep.Items) > 0 || len(rep.Skipped) > 0 || err == nil) {
		if o.all && len(rep.Items) == 0 && len(rep.Skipped) == 0 {
			fmt.Fprintf(f.IO.Out, "Nothing to clean up: %d run(s) in %s, none left anything.\n", rep.Clean, dir)
		} else {
			fmt.Fprint(f.IO.Out, f.Secrets.Mask(rep.String()))
		}
	}
	if err != nil {
		return err
	}
	if ferr := rep.Err(); ferr != nil {
		return &exitError{code: 1, err: fmt.Errorf("cleanup could not remove %d resource(s); run the same command again to retry:\n%w", rep.Count(reaper.Failed), ferr)}
	}
	return nil
}

// lazyClients loads the AWS configuration (with amibake's retry settings
// and AWS_ENDPOINT_URL support) once, on the first region that needs it.
func lazyClients(ctx context.Context, defaultRegion string) reaper.ClientFactory {
	var (
		mu      sync.Mutex
		sess    *awsclient.Session
		loadErr error
	)
	return func(region string) (reaper.EC2API, error) {
		mu.Lock()
		defer mu.Unlock()
		if sess == nil && loadErr == nil {
			sess, loadErr = awsclient.New(ctx, nil, awsclient.Options{Region: defaultRegion, SkipCredentialValidation: true})
		}
		if loadErr != nil {
			return nil, loadErr
		}
		return sess.EC2(region), nil
	}
}
