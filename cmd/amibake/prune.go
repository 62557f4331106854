package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/plan"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/prune"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// pruneOptions are the parsed flags and argument of `amibake prune`.
type pruneOptions struct {
	tf            templateFlags
	tags          []string
	name          string
	groupBy       string
	keep          int
	keepWithin    string
	regions       []string
	allRegions    bool
	includeShared bool
	dryRun        bool
	asJSON        bool
	yes           bool
	deprecate     bool
	args          []string // no template, or one
}

// newPruneCmd is `amibake prune`; runF, when set, runs instead of the prune
// (tests of flag parsing).
func newPruneCmd(f *factory, runF func(context.Context, *pruneOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(ctx context.Context, o *pruneOptions) error { return runPrune(ctx, f, o, o.args) }
	}
	o := &pruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune [TEMPLATE] (--tag k=v | --name PATTERN) (--keep N | --keep-within D) [flags]",
		Short: "Delete old AMIs and their snapshots, keeping the newest and those in use",
		Long: `Delete the account's old AMIs and their EBS snapshots in every region, keeping
the newest releases and every AMI still in use.

Selection: --tag key=value (repeatable) and/or --name PATTERN (EC2 wildcards
* and ?), or a TEMPLATE: the AMIs its builds produce (the ami_name with its
timestamp part left out, and the build's tags).

Grouping (--group-by): name (the AMI name without its timestamp, the
default), build (the amibake:build tag), tag:KEY (an identifier tag) or all.
A release is one bake and its copies: the ami_regions copies and the copies
--reuse makes carry its name and input digest, so they count once, as new
as the newest of them.

Keep rules: --keep N keeps the N newest releases of each group, --keep-within
D those younger than D (36h, 30d, 2w); with both, either keeps. With a
TEMPLATE, the release carrying the input digest the template has now is kept
too (a --reuse build would reuse it).

Never deleted: an AMI used by a pending, running, stopping or stopped
instance, or by a launch template's default or latest version, or shared
with other accounts (unless --include-shared). Each is listed with why.

An AMI goes with DeregisterImage, then its snapshots with DeleteSnapshot,
only those no other AMI uses. Every deletion is written to a journal first
($XDG_STATE_HOME/amibake/prune): the next prune finishes one that was
interrupted. --deprecate sets a deprecation time (EC2's DeprecationTime)
instead of deleting.

Regions: --region, else the configured (or the template's) region, the
template's ami_regions, the regions where this machine's builds made AMIs,
and the regions copies came from. --all-regions searches every region the
account has enabled (a CI runner without this machine's ledger).

Safe by default: --dry-run prints the table of what would be kept and
deleted and why (--json for CI); a real run asks on a terminal, and
elsewhere needs --yes. Exit status 1 when anything that should have gone
did not.`,
		Example: `  amibake prune --tag Project=web --keep 3 --dry-run
  amibake prune examples/tutorial/hello_ami.json --keep 5 --keep-within 14d --yes
  amibake prune --name 'hello_ami *' --keep 3 --region us-east-1,eu-west-1 --json --yes`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
	}
	o.tf.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&o.tags, "tag", nil, "select AMIs with this tag: key=value (repeatable; * and ? wildcards)")
	fl.StringVar(&o.name, "name", "", "select AMIs whose name matches this pattern (* and ? wildcards)")
	fl.StringVar(&o.groupBy, "group-by", "name", "group AMIs by name (without its timestamp), build, tag:KEY or all")
	fl.IntVar(&o.keep, "keep", -1, "keep the N newest releases of each group")
	fl.StringVar(&o.keepWithin, "keep-within", "", "keep the releases younger than this (36h, 30d, 2w)")
	fl.StringSliceVar(&o.regions, "region", nil, "regions to prune (comma-separated; default: see above)")
	fl.BoolVar(&o.allRegions, "all-regions", false, "search every region enabled for the account (DescribeRegions)")
	fl.BoolVar(&o.includeShared, "include-shared", false, "also delete AMIs shared with other accounts")
	fl.BoolVar(&o.dryRun, "dry-run", false, "print what would be kept and deleted, change nothing")
	fl.BoolVar(&o.asJSON, "json", false, "print a versioned JSON document instead of the table")
	fl.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (needed without a terminal)")
	fl.BoolVar(&o.deprecate, "deprecate", false, "set a deprecation time instead of deleting")
	cmd.RunE = runPacker(wantArgs(0, 1, "prune takes at most one template"), func(cmd *cobra.Command, args []string) error {
		o.args = args
		return runF(cmd.Context(), o)
	})
	return cmd
}

// pruneJob is one prune: the whole selection, or one template build.
type pruneJob struct {
	label   string
	opts    prune.Options
	clients prune.Clients
}

func runPrune(ctx context.Context, f *factory, o *pruneOptions, args []string) error {
	by, err := prune.ParseGroupBy(o.groupBy)
	if err != nil {
		return &usageError{err}
	}
	rules := prune.Rules{Keep: o.keep, Now: time.Now(), Deprecate: o.deprecate}
	if o.keepWithin != "" {
		if rules.Within, err = prune.ParseAge(o.keepWithin); err != nil {
			return &usageError{err}
		}
	}
	switch {
	case o.keep < -1:
		return &usageError{fmt.Errorf("--keep %d: want 0 or more", o.keep)}
	case o.keep < 0 && rules.Within == 0:
		return &usageError{errors.New("prune needs a keep rule: --keep N (the newest N releases of each group) and/or --keep-within D\nSee 'amibake prune --help'.")}
	case o.keep == 0 && rules.Within == 0 && !o.yes && !o.dryRun:
		return &usageError{errors.New("--keep 0 deletes every selected AMI: add --yes if that is what you want (or --dry-run to see them)")}
	case !o.dryRun && !o.yes && !f.IO.IsStdinTTY():
		return &usageError{errors.New("prune deletes AMIs and asks first, but there is no terminal to ask on: add --yes to proceed, or --dry-run to see what it would delete")}
	}
	sel := prune.Selection{Name: o.name}
	for _, kv := range o.tags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return &usageError{fmt.Errorf("--tag %q: want key=value", kv)}
		}
		if sel.Tags == nil {
			sel.Tags = map[string]string{}
		}
		sel.Tags[k] = v
	}
	var regions []string
	for _, r := range o.regions {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	if o.allRegions && len(regions) > 0 {
		return &usageError{errors.New("--all-regions and --region do not go together")}
	}
	var jobs []pruneJob
	if len(args) == 1 {
		jobs, err = templateJobs(ctx, f, o, args[0], sel, regions)
		if err != nil {
			return err
		}
	} else {
		if sel.Empty() {
			return &usageError{errors.New("prune needs a selection: --tag key=value, --name PATTERN, or a TEMPLATE\nSee 'amibake prune --help'.")}
		}
		if len(regions) == 0 {
			regions = defaultRegions(f, "")
		}
		switch {
		case len(regions) == 0 && o.allRegions:
			return &usageError{errors.New("--all-regions asks a region for the account's regions: set AWS_REGION")}
		case len(regions) == 0:
			return &usageError{errors.New("prune needs --region (or AWS_REGION)")}
		}
		clients := envClients(ctx, f.awsShared(), regions[0])
		if o.allRegions {
			c, err := clients(regions[0])
			if err == nil {
				rl, ok := c.(prune.RegionLister)
				if !ok {
					return fmt.Errorf("the EC2 client cannot list regions")
				}
				regions, err = prune.AllRegions(ctx, rl)
			}
			if err != nil {
				return &exitError{code: 1, err: err}
			}
		}
		jobs = []pruneJob{{opts: prune.Options{Selection: sel, Regions: regions}, clients: clients}}
	}

	out := &ui.MaskingWriter{W: f.IO.Out, Secrets: f.Secrets}
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	var failed []string
	nothing := 0
	for _, job := range jobs {
		job.opts.GroupBy, job.opts.Rules, job.opts.IncludeShared = by, rules, o.includeShared
		if job.label != "" && !o.asJSON {
			fmt.Fprintf(out, "==> %s\n", job.label)
		}
		res, err := prune.Run(ctx, job.clients, prune.RunOptions{
			Options: job.opts, DryRun: o.dryRun, JournalDir: prune.Dir(f.Getenv),
			Progress: func(s string) { fmt.Fprintln(errOut, s) },
			Confirm: func(p *prune.Plan) (bool, error) {
				if o.yes {
					return true, nil
				}
				return confirmPrune(ctx, f, p)
			},
		})
		switch {
		case errors.Is(err, prune.ErrNothingSelected):
			nothing++
			fmt.Fprintln(errOut, f.Secrets.Mask(err.Error())+".")
			if o.asJSON {
				_ = prune.NewDocument(res, o.dryRun).WriteJSON(out)
			}
			continue
		case errors.Is(err, prune.ErrNotConfirmed):
			return &exitError{code: 1, err: err}
		case err != nil:
			return &exitError{code: 1, err: fmt.Errorf("prune: %w", err)}
		}
		if o.asJSON {
			if err := prune.NewDocument(res, o.dryRun).WriteJSON(out); err != nil {
				return err
			}
		} else {
			if res.Resumed != nil && len(res.Resumed.Images)+len(res.Resumed.Snapshots) > 0 {
				fmt.Fprintln(out, "Finished what an interrupted prune left:")
				_ = prune.WriteTable(out, res.Resumed, false)
				fmt.Fprintln(out)
			}
			if err := prune.WriteTable(out, res.Plan, o.dryRun); err != nil {
				return err
			}
		}
		failed = append(failed, res.Failed()...)
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d AMI(s) or snapshot(s) that should have gone are still there; run the same command again to retry:\n  %s", len(failed), strings.Join(failed, "\n  "))}
	}
	if nothing == len(jobs) {
		return &exitError{code: 1}
	}
	return nil
}

// confirmPrune prints the plan and asks on the terminal.
func confirmPrune(ctx context.Context, f *factory, p *prune.Plan) (bool, error) {
	w := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	_ = prune.WriteTable(w, p, true)
	verb := "Delete"
	n := p.Count(prune.ActionDelete)
	if p.Count(prune.ActionDeprecate) > 0 {
		verb, n = "Deprecate", p.Count(prune.ActionDeprecate)
	}
	fmt.Fprintf(w, "%s %d AMI(s) and %d snapshot(s)? Type yes to go on: ", verb, n, p.SnapshotCount(prune.ActionDelete))
	ans := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(f.IO.In).ReadString('\n')
		ans <- strings.TrimSpace(s)
	}()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case a := <-ans:
		return strings.EqualFold(a, "yes") || strings.EqualFold(a, "y"), nil
	}
}

// templateJobs loads a template and makes one prune per amazon-ebs build:
// its AMIs (name and tags), its regions, its access options, and the
// release its inputs make now kept.
func templateJobs(ctx context.Context, f *factory, o *pruneOptions, path string, extra prune.Selection, regions []string) ([]pruneJob, error) {
	lo, err := o.tf.loadOptions(f)
	if err != nil {
		return nil, err
	}
	t, diags := template.LoadContext(ctx, path, lo)
	if t != nil {
		f.Secrets.Add(t.Sensitive...)
	}
	if t != nil && !diags.HasErrors() {
		for _, b := range t.Builds {
			diags = append(diags, plugins.ValidateBuild(b)...)
		}
	}
	if diags.HasErrors() {
		files := map[string]*hcl.File{}
		if t != nil {
			files = t.Files
		}
		_ = template.WriteDiagnostics(&ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}, files, diags, f.IO.ColorEnabled())
		return nil, &exitError{code: 1}
	}
	shared := f.awsShared()
	var jobs []pruneJob
	for _, b := range t.Builds {
		cfg, d := plugins.NewBuilderConfig(b)
		if d.HasErrors() || cfg == nil {
			continue // another builder type: validate reported it
		}
		sess, err := plan.Session(ctx, shared, cfg)
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("build %s: %w", b.Name, err)}
		}
		dec, err := plan.Decide(ctx, plan.DecideInput{
			Input: plan.Input{Build: b, Config: cfg, Sensitive: t.Sensitive},
			EC2:   sess.EC2, BuildRegion: sess.Region(), DigestOnly: true,
		})
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("build %s: compute the input digest: %w", b.Name, err)}
		}
		bt := dec.BuildTime()
		name, err := template.RenderBuildTime(cfg.AMIName, bt)
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("build %s: render ami_name: %w", b.Name, err)}
		}
		tags := map[string]string{}
		for k, v := range cfg.Parsed.AMITags {
			rk, err1 := template.RenderBuildTime(k, bt)
			rv, err2 := template.RenderBuildTime(v, bt)
			if err1 == nil && err2 == nil {
				tags[rk] = rv
			}
		}
		sel := prune.ForBuild(name, tags)
		for k, v := range extra.Tags {
			if sel.Tags == nil {
				sel.Tags = map[string]string{}
			}
			sel.Tags[k] = v
		}
		if extra.Name != "" {
			sel.Name = extra.Name
		}
		rs := regions
		switch {
		case o.allRegions:
			if rs, err = prune.AllRegions(ctx, sess.EC2("")); err != nil {
				return nil, &exitError{code: 1, err: err}
			}
		case len(rs) == 0:
			rs = append(plan.Regions(cfg, sess.Region()), defaultRegions(f, sess.Region())...)
		}
		jobs = append(jobs, pruneJob{
			label:   fmt.Sprintf("%s: AMIs named %q%s", b.Name, sel.Name, tagText(sel.Tags)),
			opts:    prune.Options{Selection: sel, Regions: rs, Protect: prune.ProtectDigest(dec.Digest.Sum)},
			clients: func(region string) (prune.EC2, error) { return sess.EC2(region), nil },
		})
	}
	if len(jobs) == 0 {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s has no amazon-ebs build to prune the AMIs of", path)}
	}
	return jobs, nil
}

func tagText(tags map[string]string) string {
	if len(tags) == 0 {
		return ""
	}
	var parts []string
	for k, v := range tags {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return " with tags " + strings.Join(parts, ", ")
}

// defaultRegions: the given region (or AWS_REGION), then the regions where
// this machine's builds made AMIs (their copies live there).
func defaultRegions(f *factory, first string) []string {
	var out []string
	add := func(r string) {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	add(first)
	add(f.Getenv("AWS_REGION"))
	add(f.Getenv("AWS_DEFAULT_REGION"))
	if len(out) == 0 {
		return nil
	}
	if runs, _ := ledger.List(ledger.DefaultDir(f.Getenv)); len(runs) > 0 {
		for _, r := range prune.LedgerRegions(runs) {
			add(r)
		}
	}
	return out
}

// envClients opens the AWS configuration through shared (the factory's:
// environment, shared files, AWS_ENDPOINT_URL) once, on first use.
func envClients(ctx context.Context, shared *awsclient.Shared, defaultRegion string) prune.Clients {
	var (
		mu      sync.Mutex
		sess    *awsclient.Session
		loadErr error
	)
	return func(region string) (prune.EC2, error) {
		mu.Lock()
		defer mu.Unlock()
		if sess == nil && loadErr == nil {
			sess, loadErr = awsclient.New(ctx, shared, awsclient.Options{Region: defaultRegion, SkipCredentialValidation: true})
		}
		if loadErr != nil {
			return nil, loadErr
		}
		return sess.EC2(region), nil
	}
}
