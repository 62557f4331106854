package reaper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/amibake/amibake/internal/ledger"
)

// Options configure a Reaper.
type Options struct {
	Clients ClientFactory
	// Identity, when set, is asked for the caller's account before any
	// resource of a ledger location is looked at; a run recorded in
	// another account is then kept, not written off as gone.
	Identity IdentityFunc
	// Overrides, when set, replace the recorded endpoint and profile
	// (cleanup --endpoint-url, --profile).
	Overrides ledger.Location
	DryRun    bool
	// KeepFailedImages keeps the AMIs and snapshots of runs that did not
	// succeed (for debugging); by default they are leftovers like the
	// rest, whatever their state.
	KeepFailedImages bool
	// Progress, when set, is told what a cleanup is waiting for, as it
	// waits (the command prints it).
	Progress func(msg string)
	Log      *slog.Logger
	Now      func() time.Time
	// WaitTimeout bounds each wait: instances terminating, and retries of
	// a resource still in use (DependencyViolation). Default 10 minutes.
	WaitTimeout time.Duration
	// Poll is the first delay between polls and retries; it doubles up to
	// 15 s. Default 1 s. Looks for resources EC2 may not show yet (see
	// Settle) start at Poll or 0.5 s, whichever is shorter.
	Poll time.Duration
	// Settle is how long a resource may stay invisible after its create
	// call (EC2's eventual consistency): a ledger entry younger than this
	// that is not found yet is looked for again, with backoff, until it
	// is found or Settle has passed, before it counts as never created or
	// already gone; a call that names a resource made less than Settle ago
	// retries NotFound as long. Default 20 s.
	Settle time.Duration
}

// Reaper removes resources amibake runs left.
type Reaper struct{ opt Options }

// New returns a Reaper.
func New(opt Options) *Reaper {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.WaitTimeout <= 0 {
		opt.WaitTimeout = 10 * time.Minute
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Settle <= 0 {
		opt.Settle = 20 * time.Second
	}
	if opt.Progress == nil {
		opt.Progress = func(string) {}
	}
	return &Reaper{opt: opt}
}

// access applies the overrides to a recorded access location.
func (r *Reaper) access(loc ledger.Location) ledger.Location {
	loc = loc.Access()
	if o := r.opt.Overrides; o.Endpoint != "" {
		loc.Endpoint, loc.STSEndpoint = o.Endpoint, o.Endpoint
	}
	if o := r.opt.Overrides; o.Profile != "" {
		loc.Profile, loc.CredentialsFile = o.Profile, o.CredentialsFile
	}
	return loc
}

// Run removes what run runID in the ledger dir left: the ids it recorded,
// the create calls it recorded without an id (found by ClientToken, name
// or tags), and anything tagged with its run id in the regions it used.
// It takes the run's lock: a run whose process is alive, or that another
// cleanup is working on, is skipped with a note in the report.
func (r *Reaper) Run(ctx context.Context, dir, runID string) (*Report, error) {
	rep := &Report{DryRun: r.opt.DryRun}
	err := r.run(ctx, dir, runID, rep, true)
	return rep, err
}

// All runs Run for every run in the ledger that is not running and has
// something left, or has not been searched by its tags since it ended (a
// resource the run wrongly believed deleted is found that way, once).
func (r *Reaper) All(ctx context.Context, dir string) (*Report, error) {
	rep := &Report{DryRun: r.opt.DryRun}
	runs, listErr := ledger.List(dir)
	var errs []error
	if listErr != nil {
		errs = append(errs, listErr)
	}
	for _, run := range runs {
		if run.Running {
			rep.Skipped = append(rep.Skipped, RunNote{run.ID, runningNote(run)})
			continue
		}
		if len(run.Left()) == 0 && (run.Swept || len(run.Regions()) == 0) {
			rep.Clean++
			r.removeTempFiles(run, rep)
			continue
		}
		if err := r.run(ctx, dir, run.ID, rep, false); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return rep, errors.Join(errs...)
}

func runningNote(run *ledger.Run) string {
	if run.LastPID > 0 {
		return fmt.Sprintf("still running (process %d)", run.LastPID)
	}
	return "still running"
}

func (r *Reaper) run(ctx context.Context, dir, runID string, rep *Report, explicit bool) error {
	// Read first: Open would create a journal for a mistyped run id.
	if _, err := ledger.Read(dir, runID); err != nil {
		return fmt.Errorf("clean up run %s: %w", runID, err)
	}
	var j *ledger.Journal
	if !r.opt.DryRun {
		var err error
		j, err = ledger.Open(dir, runID)
		var le *ledger.LockedError
		if errors.As(err, &le) {
			if explicit {
				return fmt.Errorf("clean up run %s: %w; stop it first (Ctrl-C lets it clean up itself)", runID, err)
			}
			rep.Skipped = append(rep.Skipped, RunNote{runID, err.Error()})
			return nil
		}
		if err != nil {
			return fmt.Errorf("clean up run %s: %w", runID, err)
		}
		defer j.Close()
		if err := j.Reaping(); err != nil {
			return fmt.Errorf("clean up run %s: %w", runID, err)
		}
	}
	run, err := ledger.Read(dir, runID)
	if err != nil {
		return fmt.Errorf("clean up run %s: %w", runID, err)
	}
	if r.opt.DryRun && run.Running {
		rep.Skipped = append(rep.Skipped, RunNote{runID, runningNote(run)})
		return nil
	}
	left := run.Left()
	type where struct {
		loc    ledger.Location
		region string
	}
	byWhere := map[where][]ledger.Resource{}
	for _, res := range left {
		if res.Kind == ledger.KindLocalFile {
			r.removeFile(runID, res, rep, j)
			continue
		}
		w := where{res.Location.Access(), res.Region}
		byWhere[w] = append(byWhere[w], res)
	}
	r.removeTempFiles(run, rep)
	// Tags find what the ledger lost; look in every region the run used,
	// in the account each of its builds used.
	problemsBefore := rep.Count(Failed) + rep.Count(NotVerified)
	for _, loc := range run.Locations() {
		if ctx.Err() != nil {
			break
		}
		regions := map[string]bool{}
		for _, res := range run.Resources {
			if res.Kind != ledger.KindLocalFile && res.Location.Access() == loc && res.Region != "" {
				regions[res.Region] = true
			}
		}
		var sorted []string
		for region := range regions {
			sorted = append(sorted, region)
		}
		sort.Strings(sorted)
		reach := r.access(loc)
		if why, what := r.checkAccount(ctx, run, loc, reach); why != "" {
			n := 0
			for _, region := range sorted {
				for _, res := range byWhere[where{loc, region}] {
					n++
					rep.add(Item{Run: runID, Region: region, Kind: res.Kind, ID: res.ID, Name: res.Token, Outcome: NotVerified,
						Detail: why + "; check: " + VerifyCommand(res.Kind, res.ID, region, res.Location)})
				}
			}
			if n == 0 && len(sorted) > 0 {
				// Nothing listed, but the search by tags could not run.
				rep.add(Item{Run: runID, Region: sorted[0], Outcome: NotVerified, Detail: why})
			}
			rep.Notes = append(rep.Notes, RunNote{runID, what})
			continue
		}
		for _, region := range sorted {
			if ctx.Err() != nil {
				break
			}
			recorded := loc
			if accts := run.Accounts(loc); len(accts) > 0 {
				recorded.Account = accts[0]
			}
			sc := &scope{runID: runID, ledger: byWhere[where{loc, region}], j: j, loc: reach, recorded: recorded, status: run.Status, kept: run.Kept, fromLedger: true,
				templates: launchTemplatesOf(run, loc, region)}
			if err := r.region(ctx, region, sc, rep); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Swept only when every resource is accounted for: nothing failed,
	// nothing unverified, nothing kept back by a flag.
	if j != nil && rep.Count(Failed)+rep.Count(NotVerified) == problemsBefore {
		if again, err := ledger.Read(dir, runID); err == nil && len(again.Left()) == 0 {
			_ = j.Swept()
		}
	}
	return nil
}

// checkAccount returns, when loc cannot be cleaned with these
// credentials, why in short (for each resource) and in full with the
// command to run: they belong to another account than the one the run
// recorded, or the account cannot be asked. "" when it can.
func (r *Reaper) checkAccount(ctx context.Context, run *ledger.Run, loc, reach ledger.Location) (why, what string) {
	if r.opt.Identity == nil {
		return "", ""
	}
	var recorded []string
	for _, a := range run.Accounts(loc) {
		if a != "" {
			recorded = append(recorded, a)
		}
	}
	if len(recorded) == 0 {
		return "", "" // skip_credential_validation: nothing to check against
	}
	want := loc
	want.Account = recorded[0]
	got, err := r.opt.Identity(ctx, reach)
	if err != nil {
		return "account not checked", fmt.Sprintf("kept what it recorded in %s: cannot tell which account these credentials reach (%v), and \"not found\" elsewhere proves nothing; run, with credentials for account %s: %s",
			want, err, want.Account, CleanupCommandFor(run.ID, want))
	}
	for _, a := range recorded {
		if a == got {
			return "", ""
		}
	}
	return "recorded in account " + want.Account + ", credentials reach " + got,
		fmt.Sprintf("kept what it recorded in %s: these credentials reach account %s, where \"not found\" proves nothing; run, with credentials for account %s: %s",
			want, got, want.Account, CleanupCommandFor(run.ID, want))
}

// CleanupCommandFor is the command that cleans run up from the location
// it recorded: --profile and --endpoint-url as recorded.
func CleanupCommandFor(runID string, loc ledger.Location) string {
	cmd := "amibake cleanup --run-id " + runID
	if loc.Profile != "" {
		cmd += " --profile " + loc.Profile
	}
	if loc.Endpoint != "" {
		cmd += " --endpoint-url " + loc.Endpoint
	}
	return cmd
}

// VerifyCommand is the aws CLI command that shows whether a resource
// exists where the ledger recorded it.
func VerifyCommand(kind ledger.Kind, id, region string, loc ledger.Location) string {
	flags := " --region " + region + loc.CLIFlags()
	if loc.Account != "" {
		flags += " (with credentials for account " + loc.Account + ")"
	}
	if id == "" {
		return "aws ec2 describe-tags --filters Name=key,Values=" + ledger.TagRunID + flags
	}
	switch kind {
	case ledger.KindInstance:
		return "aws ec2 describe-instances --instance-ids " + id + flags
	case ledger.KindSecurityGroup:
		return "aws ec2 describe-security-groups --group-ids " + id + flags
	case ledger.KindKeyPair:
		if strings.HasPrefix(id, "key-") {
			return "aws ec2 describe-key-pairs --key-pair-ids " + id + flags
		}
		return "aws ec2 describe-key-pairs --key-names " + id + flags
	case ledger.KindVolume:
		return "aws ec2 describe-volumes --volume-ids " + id + flags
	case ledger.KindImage:
		return "aws ec2 describe-images --image-ids " + id + flags
	case ledger.KindSnapshot:
		return "aws ec2 describe-snapshots --snapshot-ids " + id + flags
	case ledger.KindLaunchTemplate:
		if strings.HasPrefix(id, "lt-") {
			return "aws ec2 describe-launch-templates --launch-template-ids " + id + flags
		}
		return "aws ec2 describe-launch-templates --launch-template-names " + id + flags
	}
	return "aws ec2 describe-tags --filters Name=resource-id,Values=" + id + flags
}

// RunTagged removes what run runID left in regions, found by its
// amibake:run-id tag alone: for a run whose ledger is on another machine.
func (r *Reaper) RunTagged(ctx context.Context, runID string, regions []string) (*Report, error) {
	rep := &Report{DryRun: r.opt.DryRun}
	var errs []error
	for _, region := range regions {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if err := r.region(ctx, region, &scope{runID: runID, loc: r.access(ledger.Location{}), now: r.opt.Now()}, rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// Tagged removes resources tagged amibake:run-id in regions whose
// amibake:created-at is older than olderThan and whose run shows no sign
// of life: its amibake:lease-until has passed (a running build keeps
// pushing it forward, wherever it runs), or, without that tag, it is
// younger than DefaultLease. Runs that are alive in the local ledger dir
// (when dir is not empty) are left alone too.
func (r *Reaper) Tagged(ctx context.Context, regions []string, olderThan time.Duration, dir string) (*Report, error) {
	rep := &Report{DryRun: r.opt.DryRun}
	alive := map[string]bool{}
	if dir != "" {
		runs, _ := ledger.List(dir)
		for _, run := range runs {
			if run.Running {
				alive[run.ID] = true
			}
		}
	}
	var errs []error
	for _, region := range regions {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		sc := &scope{cutoff: r.opt.Now().Add(-olderThan), alive: alive, now: r.opt.Now(), loc: r.access(ledger.Location{})}
		if err := r.region(ctx, region, sc, rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// removeTempFiles removes the local temporary files a dead run left in
// the directory it recorded (shell provisioners' scripts, named after the
// run: they may hold sensitive values). The caller knows the run is dead:
// it holds its lock, or saw it unlocked.
func (r *Reaper) removeTempFiles(run *ledger.Run, rep *Report) {
	if run.TempDir == "" {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(run.TempDir, ledger.TempPrefix(run.ID)+"*"))
	for _, path := range matches {
		r.removeFile(run.ID, ledger.Resource{Kind: ledger.KindLocalFile, ID: path}, rep, nil)
	}
}

func (r *Reaper) removeFile(runID string, res ledger.Resource, rep *Report, j *ledger.Journal) {
	path := res.ID
	if path == "" {
		path = res.Token
	}
	it := Item{Run: runID, Kind: ledger.KindLocalFile, Name: path}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		it.Outcome = AlreadyGone
	case err != nil:
		it.Outcome, it.Err, it.Detail = Failed, err, err.Error()
	case !st.Mode().IsRegular():
		it.Outcome, it.Detail = Skipped, "not a regular file"
	case r.opt.DryRun:
		it.Outcome = WouldRemove
	default:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			it.Outcome, it.Err, it.Detail = Failed, fmt.Errorf("remove local file %s: %w", path, err), err.Error()
		} else {
			it.Outcome = Removed
		}
	}
	rep.add(it)
	if j != nil && (it.Outcome == Removed || it.Outcome == AlreadyGone) {
		if res.ID == "" {
			_ = j.Resolved(res.Entry)
		} else {
			_ = j.Deleted(ledger.KindLocalFile, "", res.ID)
		}
	}
}

// scope is what one region's sweep may take and what it must account for.
type scope struct {
	runID  string // ledger mode: the amibake:run-id tag must be this
	ledger []ledger.Resource
	j      *ledger.Journal
	status ledger.Status   // ledger mode: how the run ended
	kept   map[string]bool // ledger mode: ids the run keeps (its artifacts)
	// fromLedger: the local ledger knows the run, and that its process is
	// gone (it holds the run's lock); otherwise only tags tell.
	fromLedger bool
	loc        ledger.Location
	// recorded is where the ledger says the resources live (loc is how
	// they are reached, overrides applied): what new entries record.
	recorded ledger.Location

	cutoff time.Time       // tagged mode: created before this
	alive  map[string]bool // tagged mode: runs running here
	now    time.Time       // tagged mode: to compare leases with
	// runLease is the latest lease each run holds on any of its
	// resources in the region (sweep.runLeases).
	runLease map[string]time.Time
	// templates are the launch templates the run journaled in the region,
	// removed or not; fleetTemplates their ids by build, once known
	// (sweep.fleetTemplates): a spot build's instance carries its
	// template's id, not the CreateFleet ClientToken its intent names.
	templates      []ledger.Resource
	fleetTemplates map[string]map[string]bool
}

// launchTemplatesOf returns the launch templates run journaled at loc in
// region, whatever became of them.
func launchTemplatesOf(run *ledger.Run, loc ledger.Location, region string) []ledger.Resource {
	var out []ledger.Resource
	for _, res := range run.Resources {
		if res.Kind == ledger.KindLaunchTemplate && res.Region == region && res.Location.Access() == loc {
			out = append(out, res)
		}
	}
	return out
}

// imagesAreArtifacts says whether an available AMI found for this scope
// stays: in ledger mode, when the run succeeded (its AMIs are its
// product); in tagged mode, unless its lease ran out (the build that made
// it never finished and so never lifted the lease).
func (sc *scope) imagesAreArtifacts(f *found) bool {
	if sc.fromLedger {
		return sc.kept[f.id] || sc.status == ledger.StatusSucceeded
	}
	_, leased := f.tags[ledger.TagLeaseUntil]
	return !leased
}

// eligible says whether the reaper may remove a resource with these tags.
func (sc *scope) eligible(f *found) (bool, string) {
	rid := f.tags[ledger.TagRunID]
	if rid == "" {
		return false, "no " + ledger.TagRunID + " tag: not amibake's, left alone"
	}
	if sc.runID != "" {
		if rid != sc.runID {
			return false, "tagged for run " + rid + ", left alone"
		}
		if !sc.fromLedger {
			// The run's ledger is elsewhere: only its lease says it is dead.
			if ok, why := sc.leaseOver(f, rid); !ok {
				return false, why
			}
		}
		return true, ""
	}
	if sc.alive[rid] {
		return false, "its run " + rid + " is still running"
	}
	if ok, why := sc.leaseOver(f, rid); !ok {
		return false, why
	}
	created := f.created
	if s, ok := f.tags[ledger.TagCreatedAt]; ok {
		if t, err := ledger.ParseCreatedAt(s); err == nil {
			created = t
		}
	}
	if created.IsZero() {
		return false, "age unknown (no " + ledger.TagCreatedAt + " tag)"
	}
	if created.After(sc.cutoff) {
		return false, "younger than --older-than"
	}
	if _, ok := f.tags[ledger.TagLeaseUntil]; !ok && sc.runLease[rid].IsZero() && sc.now.Before(created.Add(ledger.DefaultLease)) {
		// Made by a build that has not pushed a lease yet: it may be alive.
		// (A run whose other resources show a lapsed lease is dead.)
		return false, "younger than the default lease (" + ledger.DefaultLease.String() + ") and no " + ledger.TagLeaseUntil + " tag yet"
	}
	return true, ""
}

// leaseOver says whether the lease (amibake:lease-until) of f and of its
// run's other resources here has run out; a resource of a run without
// the tag anywhere passes here (its age decides).
func (sc *scope) leaseOver(f *found, rid string) (bool, string) {
	if v, ok := f.tags[ledger.TagLeaseUntil]; ok {
		until, err := ledger.ParseCreatedAt(v)
		if err != nil {
			return false, "unreadable " + ledger.TagLeaseUntil + " tag " + strconv.Quote(v) + ": left alone"
		}
		if sc.now.Before(until) {
			return false, "its run " + rid + " is alive (lease until " + ledger.CreatedAt(until) + ")"
		}
	}
	if until := sc.runLease[rid]; sc.now.Before(until) {
		return false, "its run " + rid + " is alive (lease until " + ledger.CreatedAt(until) + " on another of its resources)"
	}
	return true, ""
}

// found is a resource as Describe* returned it.
type found struct {
	kind      ledger.Kind
	id, name  string // name: key or group name, AMI name
	token     string // instances: ClientToken
	tags      map[string]string
	state     string
	created   time.Time
	snapshots []string // images
	attached  []string // volumes: instances they are attached to
	item      *Item
}

func tagMap[T any](tags []T, kv func(T) (*string, *string)) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		k, v := kv(t)
		m[aws.ToString(k)] = aws.ToString(v)
	}
	return m
}

// matchLedger pairs found resources with the ledger entries of a kind,
// returning the entries nothing matched.
func (sc *scope) matchLedger(kind ledger.Kind, fs []*found) (matched map[string]*found, unmatched []ledger.Resource) {
	matched = map[string]*found{}
	for _, res := range sc.ledger {
		if res.Kind != kind {
			continue
		}
		var hit *found
		for _, f := range fs {
			// A token or name alone may match someone else's resource:
			// only one tagged with this run is the intent's.
			if res.ID != "" && (f.id == res.ID || f.name == res.ID) ||
				res.ID == "" && res.Token != "" && (f.token == res.Token || f.name == res.Token || sc.launchedByFleet(res, f)) && f.tags[ledger.TagRunID] == sc.runID {
				hit = f
				break
			}
		}
		if hit == nil {
			unmatched = append(unmatched, res)
			continue
		}
		matched[res.Entry] = hit
		if res.ID == "" && sc.j != nil {
			_ = sc.j.Created(res.Entry, hit.id)
		}
	}
	return matched, unmatched
}

// launchedByFleet reports whether instance f is the one a spot build's
// unanswered instance intent res asked for: it came from a launch template
// the same build journaled (the caller checks the run's tag).
func (sc *scope) launchedByFleet(res ledger.Resource, f *found) bool {
	lt := f.tags[tagLaunchTemplateID]
	return res.Kind == ledger.KindInstance && lt != "" && sc.fleetTemplates[res.Build][lt]
}

func (sc *scope) ledgerIDs(kind ledger.Kind) (ids, tokens []string) {
	for _, res := range sc.ledger {
		if res.Kind != kind {
			continue
		}
		if res.ID != "" {
			ids = append(ids, res.ID)
		} else if res.Token != "" {
			tokens = append(tokens, res.Token)
		}
	}
	return ids, tokens
}

// region sweeps one region: discover, then remove in dependency order.
func (r *Reaper) region(ctx context.Context, region string, sc *scope, rep *Report) error {
	client, err := r.opt.Clients(sc.loc, region)
	if err != nil {
		return fmt.Errorf("clean up %s: EC2 client: %w", region, err)
	}
	s := &sweep{r: r, c: client, region: region, sc: sc, rep: rep}

	// Discover; while a ledger entry is unaccounted for and young enough
	// to be hidden by eventual consistency, look again soon: most new
	// resources show up within a second or two, so the cleanup polls with
	// backoff rather than sleeping out Settle, and stops as soon as every
	// entry is found or the youngest one's Settle has passed.
	first, maxDelay, maxPasses := r.settleSchedule()
	delay := first
	for pass := 1; ; pass++ {
		if err := s.discover(ctx); err != nil {
			return err
		}
		young := s.youngestUnaccounted()
		// maxPasses only matters to a clock that stands still (Options.Now).
		if young.IsZero() || r.opt.DryRun || pass >= maxPasses {
			break
		}
		left := young.Add(r.opt.Settle).Sub(r.opt.Now())
		if left <= 0 {
			break
		}
		if pass == 1 {
			r.opt.Progress(fmt.Sprintf("waiting up to %s for %s in %s to show up (EC2 is eventually consistent)",
				left.Round(100*time.Millisecond), s.unaccountedList(), region))
		}
		wait := min(delay, left)
		r.opt.Log.Debug("reaper: waiting for eventual consistency", "region", region, "pass", pass, "wait", wait, "left", left)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("clean up %s: wait for %s to show up: %w", region, s.unaccountedList(), err)
		}
		delay = min(delay*2, maxDelay)
	}
	s.accountUnmatched()
	s.removeInstances(ctx)
	s.removeVolumes(ctx)
	s.removeGroups(ctx)
	s.removeKeyPairs(ctx)
	s.removeLaunchTemplates(ctx)
	s.removeImages(ctx)
	return ctx.Err()
}

// settleMaxDelay caps the delay between looks for a resource EC2 may not
// list yet, and between retries of a call EC2 answered NotFound about one.
const settleMaxDelay = 5 * time.Second

// settleSchedule returns how the cleanup looks again for ledger entries it
// has not found yet: first delay (Poll, at most 0.5 s), doubling up to
// maxDelay (a quarter of Settle, at most settleMaxDelay), and passes, the
// most discover passes that schedule takes to cover Settle, and one more.
func (r *Reaper) settleSchedule() (first, maxDelay time.Duration, passes int) {
	first = min(r.opt.Poll, 500*time.Millisecond)
	maxDelay = max(first, min(settleMaxDelay, r.opt.Settle/4))
	passes = 2
	for d, total := first, time.Duration(0); total < r.opt.Settle; d = min(d*2, maxDelay) {
		total += d
		passes++
	}
	return first, maxDelay, passes
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryBusy calls f until it succeeds, the resource is gone, or it fails
// with something other than "still in use", backing off up to WaitTimeout.
func (r *Reaper) retryBusy(ctx context.Context, what string, f func(context.Context) error) error {
	deadline := r.opt.Now().Add(r.opt.WaitTimeout)
	delay := r.opt.Poll
	for {
		err := f(ctx)
		if err == nil || isGone(err) || !isBusy(err) {
			return err
		}
		if r.opt.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%s: still in use after %s: %w", what, r.opt.WaitTimeout, err)
		}
		r.opt.Log.Debug("reaper: still in use, retrying", "what", what, "in", delay, "err", err)
		r.opt.Progress(fmt.Sprintf("%s: still in use (%s), retrying in %s", what, errorCode(err), delay))
		if serr := sleep(ctx, delay); serr != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// retryNotFound calls f, which names a resource made at created (zero:
// unknown, taken as now), until it succeeds, fails with something other
// than NotFound, or Settle has passed since created. EC2 may answer
// NotFound about a resource created moments ago; its guide ("Eventual
// consistency in the Amazon EC2 API") says to retry with exponential
// backoff. An older resource that is not found is gone: f's error at once.
func (r *Reaper) retryNotFound(ctx context.Context, what string, created time.Time, f func(context.Context) error) error {
	if now := r.opt.Now(); created.IsZero() || created.After(now) {
		created = now
	}
	deadline := created.Add(r.opt.Settle)
	first, maxDelay, passes := r.settleSchedule()
	delay := first
	for try := 1; ; try++ {
		err := f(ctx)
		if err == nil || !isGone(err) {
			return err
		}
		left := deadline.Sub(r.opt.Now())
		if left <= 0 || try >= passes {
			return err
		}
		wait := min(delay, left)
		r.opt.Log.Debug("reaper: not found yet, retrying", "what", what, "in", wait, "err", err)
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, serr, err)
		}
		delay = min(delay*2, maxDelay)
	}
}

func escapeFilter(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`).Replace(s)
}

func escapeAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = escapeFilter(v)
	}
	sort.Strings(out)
	return out
}
