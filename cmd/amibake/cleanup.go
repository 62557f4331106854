package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reaper"
	"github.com/amibake/amibake/internal/ui"
)

// cleanupOptions are the parsed flags of `amibake cleanup`.
type cleanupOptions struct {
	runID            string
	all              bool
	tagged           bool
	olderThan        time.Duration
	regions          []string
	dryRun           bool
	includeImages    bool
	keepFailedImages bool
	ledgerDir        string
	profile          string
	endpointURL      string
	pruneAfter       time.Duration
	// Whether --older-than and --prune-after were given: they go with
	// one mode only, and their defaults must not count as given.
	olderThanSet, pruneAfterSet bool
}

// newCleanupCmd is `amibake cleanup`; runF, when set, runs instead of the
// cleanup (tests of flag parsing).
func newCleanupCmd(f *factory, runF func(context.Context, *cleanupOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(ctx context.Context, o *cleanupOptions) error { return runCleanup(ctx, f, o) }
	}
	o := &cleanupOptions{}
	cmd := &cobra.Command{
		Use:   "cleanup (--run-id ID | --all | --tagged --older-than D --region r,...)",
		Short: "Remove what interrupted or killed runs left behind",
		Long: `Remove the temporary instances, volumes, security groups, key pairs and
launch templates (spot builds), and the images of runs that did not succeed, that a run left behind (after SIGKILL,
a crash, -on-error=abort, or a second Ctrl-C).

  --run-id ID   the run named in amibake's "what is left" message: what its
                local ledger lists, and anything tagged with its run id in the
                regions it used (with --region, a run whose ledger is on
                another machine is found by its tags alone)
  --all         every run in the local ledger whose process is gone
  --tagged      every resource tagged amibake:run-id in the --region list
                whose amibake:created-at is older than --older-than (a CI
                reaper job on another machine; no ledger needed)

Resources are removed in dependency order: instances (waiting until they are
terminated), volumes, security groups, key pairs, launch templates, images and
snapshots. Only
resources that carry amibake's tags are ever touched.

The ledger records where each resource lives: the account (from the STS call
the build makes), region, endpoint when not AWS's default, and the profile or
role that created it (never a secret). A run is cleaned up from there, whatever
this shell points at; --profile and --endpoint-url override the recorded
profile and endpoint, and the credentials come from the SDK's usual
environment. Before looking at anything, cleanup checks that the credentials
reach the recorded account: when they do not, the resources stay in the ledger
and cleanup prints the command to run. A resource is marked gone only when EC2
in the right account and region says it does not exist.

The AMIs and snapshots of a run that did not end successfully are leftovers
in any state (a pending image is waited for, then removed);
--keep-failed-images keeps them for debugging. The AMIs of successful runs
are artifacts and stay.

--tagged leaves alone a run whose amibake:lease-until tag is in the future:
a running build pushes it forward on its resources, whatever machine it runs
on. --all also removes the local temporary files of dead runs and prunes the
journals of runs with nothing left (--prune-after). Running cleanup twice,
even at once, is safe.`,
		Example: `  amibake cleanup --run-id 20261125T234500Z-ab12cd
  amibake cleanup --all --dry-run
  amibake cleanup --tagged --older-than 2h --region us-east-1,eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.olderThanSet, o.pruneAfterSet = cmd.Flags().Changed("older-than"), cmd.Flags().Changed("prune-after")
			return runF(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.runID, "run-id", "", "clean up this run")
	fl.BoolVar(&o.all, "all", false, "clean up every run in the local ledger that is not running")
	fl.BoolVar(&o.tagged, "tagged", false, "clean up by amibake's tags in --region, without the ledger")
	fl.DurationVar(&o.olderThan, "older-than", 2*time.Hour, "with --tagged: only resources created longer ago than this")
	fl.StringSliceVar(&o.regions, "region", nil, "regions to search, with --tagged (default: AWS_REGION) or --run-id")
	fl.BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	fl.BoolVar(&o.includeImages, "include-images", false, "no effect: images of unfinished runs are removed by default")
	_ = fl.MarkDeprecated("include-images", "images and snapshots of runs that did not succeed are now removed by default; --keep-failed-images keeps them")
	fl.BoolVar(&o.keepFailedImages, "keep-failed-images", false, "keep the AMIs and snapshots of runs that did not succeed (for debugging)")
	fl.StringVar(&o.ledgerDir, "ledger-dir", "", "the run ledger's directory (default $XDG_STATE_HOME/amibake/runs)")
	fl.StringVar(&o.profile, "profile", "", "use this shared-config profile instead of the one each run recorded")
	fl.StringVar(&o.endpointURL, "endpoint-url", "", "use this EC2 and STS endpoint instead of the one each run recorded")
	fl.DurationVar(&o.pruneAfter, "prune-after", 7*24*time.Hour, "with --all: remove the journals of runs with nothing left after this long (0 keeps them)")
	return cmd
}

func runCleanup(ctx context.Context, f *factory, o *cleanupOptions) error {
	if o.pruneAfterSet && !o.all {
		return &usageError{errors.New("--prune-after goes with --all")}
	}
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
	case !o.tagged && o.olderThanSet:
		return &usageError{errors.New("--older-than goes with --tagged")}
	case o.all && len(o.regions) > 0:
		return &usageError{errors.New("--region goes with --tagged or --run-id; --all finds the regions in the ledger")}
	case o.olderThan < 0:
		return &usageError{errors.New("--older-than must not be negative")}
	case o.pruneAfter < 0:
		return &usageError{errors.New("--prune-after must not be negative")}
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

	acc := newAccess(ctx, f.awsShared(), append(regions, "us-east-1")[0])
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	r := reaper.New(reaper.Options{
		Clients: acc.client, Identity: acc.identity, DryRun: o.dryRun, KeepFailedImages: o.keepFailedImages, Log: f.Log,
		Overrides: ledger.Location{Profile: o.profile, Endpoint: o.endpointURL},
		Progress:  func(msg string) { fmt.Fprintln(errOut, "cleanup: "+msg) },
	})
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
		if rep != nil && !o.dryRun && o.pruneAfter > 0 {
			pruned, perr := ledger.Prune(dir, o.pruneAfter, time.Now())
			rep.Pruned = pruned
			err = errors.Join(err, perr)
		}
		if rep != nil {
			rep.OnDisk, _ = ledger.Count(dir)
		}
	default:
		rep, err = r.Tagged(ctx, regions, o.olderThan, dir)
	}
	if rep != nil && (len(rep.Items) > 0 || len(rep.Skipped) > 0 || err == nil) {
		if o.all && len(rep.Items) == 0 && len(rep.Skipped) == 0 {
			fmt.Fprintf(f.IO.Out, "Nothing to clean up: %d run(s) in %s, none left anything.\n", rep.OnDisk, dir)
		} else {
			fmt.Fprint(f.IO.Out, f.Secrets.Mask(rep.String()))
		}
		if len(rep.Pruned) > 0 {
			fmt.Fprintf(f.IO.Out, "Pruned the journals of %d finished run(s) older than %s; %d left in %s.\n", len(rep.Pruned), o.pruneAfter, rep.OnDisk, dir)
		}
	}
	if err != nil {
		return err
	}
	if ferr := rep.Err(); ferr != nil {
		if rep.Count(reaper.Failed) == 0 {
			return &exitError{code: 1, err: fmt.Errorf("cleanup could not verify %d resource(s); they stay in the ledger:\n%w", rep.Count(reaper.NotVerified), ferr)}
		}
		return &exitError{code: 1, err: fmt.Errorf("cleanup could not remove %d resource(s) (and could not verify %d); run the same command again to retry:\n%w", rep.Count(reaper.Failed), rep.Count(reaper.NotVerified), ferr)}
	}
	return nil
}

// access opens AWS sessions the way each run recorded (profile,
// credentials file, role, endpoint), once per location, on first use; the
// rest comes from the factory's AWS configuration (the SDK's environment).
type access struct {
	ctx           context.Context
	shared        *awsclient.Shared
	defaultRegion string
	mu            sync.Mutex
	sessions      map[ledger.Location]*accessSession
}

type accessSession struct {
	once sync.Once
	sess *awsclient.Session
	err  error

	idOnce  sync.Once
	account string
	idErr   error
}

func newAccess(ctx context.Context, shared *awsclient.Shared, defaultRegion string) *access {
	return &access{ctx: ctx, shared: shared, defaultRegion: defaultRegion, sessions: map[ledger.Location]*accessSession{}}
}

func (a *access) session(loc ledger.Location) (*awsclient.Session, error) {
	loc = loc.Access()
	a.mu.Lock()
	s, ok := a.sessions[loc]
	if !ok {
		s = &accessSession{}
		a.sessions[loc] = s
	}
	a.mu.Unlock()
	s.once.Do(func() {
		opts := awsclient.Options{Region: a.defaultRegion, Profile: loc.Profile, SharedCredentialsFile: loc.CredentialsFile,
			CustomEndpointEC2: loc.Endpoint, SkipCredentialValidation: true}
		if loc.RoleARN != "" {
			opts.AssumeRole = &awsclient.AssumeRole{RoleARN: loc.RoleARN}
		}
		s.sess, s.err = awsclient.New(a.ctx, a.shared, opts)
		if s.err != nil && loc.Profile != "" {
			s.err = fmt.Errorf("%w (the run recorded profile %q: define it here, or pass --profile)", s.err, loc.Profile)
		}
	})
	return s.sess, s.err
}

func (a *access) client(loc ledger.Location, region string) (reaper.EC2API, error) {
	sess, err := a.session(loc)
	if err != nil {
		return nil, err
	}
	return sess.EC2(region), nil
}

// identity asks STS, at the location's STS endpoint, whose credentials
// these are (once per location).
func (a *access) identity(ctx context.Context, loc ledger.Location) (string, error) {
	sess, err := a.session(loc)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	s := a.sessions[loc.Access()]
	a.mu.Unlock()
	s.idOnce.Do(func() {
		out, err := sts.NewFromConfig(sess.Config(), func(o *sts.Options) {
			if loc.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(loc.STSEndpoint)
			}
		}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			s.idErr = fmt.Errorf("sts GetCallerIdentity: %w", err)
			return
		}
		s.account = aws.ToString(out.Account)
	})
	return s.account, s.idErr
}
