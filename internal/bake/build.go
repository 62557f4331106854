// Package bake runs the builds of a loaded template: it checks every
// selected build before creating anything, runs them (in parallel up to a
// limit), each with its provisioners and post-processor chains, and reports
// the artifacts the way Packer does.
package bake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/plan"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// Options configure a run.
type Options struct {
	// Only and Except select builds by name (globs), as -only and -except
	// do; the template loader may already have applied them.
	Only, Except []string
	// ParallelBuilds limits concurrent builds; 0 means no limit.
	ParallelBuilds int
	OnError        pipeline.OnError
	Force          bool
	Debug          bool
	// RunID names the run's journal and is the amibake:run-id tag.
	RunID string
	// RunUUID is PACKER_RUN_UUID, which provisioners and manifests see.
	RunUUID string
	// Ledger records what the run creates, and where (account, endpoint,
	// profile, role); nil records nothing.
	Ledger interface {
		ForBuildAt(build string, loc ledger.Location) ledger.Recorder
	}
	// OnSession, when set, is handed each build's AWS session before the
	// build creates anything (the run's lease keeper tags with it).
	OnSession func(build string, sess *awsclient.Session)
	Getenv    func(string) string
	Log       *slog.Logger
	// CleanupContext is the parent of cleanups: cancelling the run's ctx
	// starts cleanups, cancelling this one stops them.
	CleanupContext context.Context
	// Shared is the AWS state shared by the builds; nil makes one.
	Shared *awsclient.Shared
	// Now is time.Now unless a test sets it.
	Now func() time.Time
	// BeforeStep, when set, is called before each step of every build,
	// after the -debug pause (progress displays, tests).
	BeforeStep func(ctx context.Context, build, step string) error
	// Reuse looks for AMIs baked from the same inputs (the
	// amibake:input-digest tag) before launching anything, for every build
	// (a build's own `reuse = true` enables it for that build only).
	// Rebuild bakes even when such AMIs exist; the new AMI is tagged all
	// the same.
	// Options read from the clock or randomness, such as timestamp() in
	// ami_name, stay out of the input digest: the template's load marks
	// them (template.Volatile).
	Reuse, Rebuild bool
}

// BuildResult is one build's outcome.
type BuildResult struct {
	Name string
	// Label is the name Packer prints for the build (template.Build.Display).
	Label     string
	Artifacts []*artifact.Artifact
	Err       error
	Duration  time.Duration
}

func (r *BuildResult) label() string {
	if r.Label != "" {
		return r.Label
	}
	return r.Name
}

// Result is the run's outcome, builds in template order.
type Result struct {
	Builds []*BuildResult
}

// OK reports whether every build succeeded.
func (r *Result) OK() bool {
	for _, b := range r.Builds {
		if b.Err != nil {
			return false
		}
	}
	return true
}

// ErrPreflight is returned when a build cannot start; nothing was created.
var ErrPreflight = errors.New("the template cannot be built")

// prepared is a build checked and ready to run.
type prepared struct {
	b   *template.Build
	cfg *amazonebs.Config
}

// Preflight decodes and checks every build, refusing builder types other
// than amazon-ebs and options amibake does not implement, so that a run
// fails before it creates anything.
func Preflight(t *template.Template) ([]prepared, hcl.Diagnostics) {
	var out []prepared
	var diags hcl.Diagnostics
	for _, b := range t.Builds {
		d := plugins.ValidateBuild(b)
		diags = append(diags, d...)
		if b.Source == nil || b.Source.Type != plugins.BuilderAmazonEBS {
			typ := "<none>"
			var rng *hcl.Range
			if b.Source != nil {
				typ, rng = b.Source.Type, b.Source.DefRange.Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Cannot build %q: builder type %q", b.Name, typ),
				Detail:   "amibake only runs amazon-ebs builders; skip this build with -except=" + b.Name + ".",
				Subject:  rng,
			})
			continue
		}
		cfg, cd := amazonebs.NewConfig(b.Source)
		if cd.HasErrors() {
			continue // already reported by ValidateBuild
		}
		if un := cfg.Unimplemented(); len(un) > 0 {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Cannot build %q: options not implemented by amibake", b.Name),
				Detail:   strings.Join(un, ", ") + ": amibake accepts these Packer options but cannot honour them yet; remove them to build.",
				Subject:  b.Source.DefRange.Ptr(),
			})
			continue
		}
		out = append(out, prepared{b: b, cfg: cfg})
	}
	return out, diags
}

// Run runs the template's builds. It returns ErrPreflight (with the
// diagnostics printed by the caller from the returned diags) when a build
// cannot start; otherwise every build's result.
func Run(ctx context.Context, t *template.Template, root *ui.Root, opts Options) (*Result, hcl.Diagnostics, error) {
	if len(opts.Only)+len(opts.Except) > 0 {
		sel := *t
		sel.Builds = nil
		for _, b := range t.Builds {
			if provisioner.Applies(opts.Only, opts.Except, b.Name) {
				sel.Builds = append(sel.Builds, b)
			}
		}
		t = &sel
	}
	builds, diags := Preflight(t)
	if diags.HasErrors() {
		return nil, diags, ErrPreflight
	}
	if len(builds) == 0 {
		return nil, diags, fmt.Errorf("%w: no builds selected (check -only and -except)", ErrPreflight)
	}
	if opts.Shared == nil {
		opts.Shared = awsclient.NewShared()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CleanupContext == nil {
		opts.CleanupContext = context.Background()
	}
	started := opts.Now()
	parallel := opts.ParallelBuilds
	if opts.Debug {
		parallel = 1 // pauses between steps make sense for one build at a time
		root.Say("Debug mode enabled. Builds will not be parallelized.")
	}
	if parallel <= 0 || parallel > len(builds) {
		parallel = len(builds)
	}

	res := &Result{Builds: make([]*BuildResult, len(builds))}
	uis := make([]ui.UI, len(builds))
	// Packer prints the colour legend only when it colours (not with
	// -color=false, nor in machine-readable output).
	legend := !root.MachineReadable() && root.IO().ColorEnabled()
	for i, p := range builds {
		uis[i] = root.ForBuild(p.b.Display())
		if legend {
			root.InColorOf(uis[i], p.b.Display()+": output will be in this color.")
		}
	}
	if legend {
		root.Message("")
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, p := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				res.Builds[i] = &BuildResult{Name: p.b.Name, Label: p.b.Display(), Err: fmt.Errorf("build cancelled before it started: %w", context.Cause(ctx))}
				return
			}
			defer func() { <-sem }()
			res.Builds[i] = runOne(ctx, t, p, uis[i], root, opts)
			r := res.Builds[i]
			if r.Err != nil {
				root.Error(fmt.Sprintf("Build '%s' errored after %s: %v", r.label(), humanDuration(r.Duration), r.Err))
			} else {
				root.Say(fmt.Sprintf("Build '%s' finished after %s.", r.label(), humanDuration(r.Duration)))
			}
		}()
	}
	wg.Wait()
	root.Say("\n==> Wait completed after " + humanDuration(opts.Now().Sub(started)))
	report(root, uis, res)
	return res, diags, nil
}

func runOne(ctx context.Context, t *template.Template, p prepared, bui ui.UI, root *ui.Root, opts Options) *BuildResult {
	start := opts.Now()
	r := &BuildResult{Name: p.b.Name, Label: p.b.Display()}
	defer func() { r.Duration = opts.Now().Sub(start) }()

	sess, src, reused := decide(ctx, t, p, bui, opts, r)
	if reused {
		return r
	}

	if sess == nil {
		// Opened here rather than in the builder so that the journal can
		// record where the build's resources live before any exists.
		var err error
		if sess, err = amazonebs.OpenSession(ctx, opts.Shared, p.cfg); err != nil {
			r.Err = err
			return r
		}
	}
	var rec ledger.Recorder = ledger.Nop{}
	if opts.Ledger != nil {
		rec = opts.Ledger.ForBuildAt(p.b.Name, Location(sess, p.cfg, opts.Getenv))
	}
	if opts.OnSession != nil {
		opts.OnSession(p.b.Name, sess)
	}
	b := &amazonebs.Builder{
		Config: p.cfg, Name: p.b.Name, PackerName: p.b.PackerBuildName(), RunID: opts.RunID, RunUUID: opts.RunUUID, UI: bui, Secrets: root.Secrets(),
		Ledger: rec, Shared: opts.Shared, Session: sess, SourceImage: src, Force: opts.Force, Debug: opts.Debug,
		OnError: opts.OnError, CleanupContext: opts.CleanupContext, Getenv: opts.Getenv,
		Log: opts.Log, Now: opts.Now,
		Provision: func(ctx context.Context, comm communicator.Communicator, info *provisioner.Build) error {
			return provision(ctx, p.b, p.b.Provisioners, bui, comm, info)
		},
	}
	if opts.Debug {
		b.Hooks.BeforeStep = func(ctx context.Context, name string) error {
			_, err := bui.Ask(ctx, fmt.Sprintf("Pausing before step '%s'. Press enter to continue. ", name))
			if errors.Is(err, ui.ErrNoPrompt) {
				return nil // no terminal to pause on: carry on
			}
			return err
		}
	}
	if opts.BeforeStep != nil {
		prev := b.Hooks.BeforeStep
		b.Hooks.BeforeStep = func(ctx context.Context, name string) error {
			if prev != nil {
				if err := prev(ctx, name); err != nil {
					return err
				}
			}
			return opts.BeforeStep(ctx, p.b.Name, name)
		}
	}
	if opts.OnError == pipeline.OnErrorAsk {
		b.Hooks.AskOnError = func(ctx context.Context, name string, err error) pipeline.Decision {
			bui.Error(fmt.Sprintf("Step %q failed: %v", name, err))
			for {
				ans, aerr := bui.Ask(ctx, "[c] Clean up and exit, [a] abort without cleanup, or [r] retry step (build may fail even if retry succeeds)? ")
				if aerr != nil {
					return pipeline.DecideCleanup
				}
				switch strings.ToLower(strings.TrimSpace(ans)) {
				case "c", "cleanup":
					return pipeline.DecideCleanup
				case "a", "abort":
					return pipeline.DecideAbort
				case "r", "retry":
					return pipeline.DecideRetry
				}
			}
		}
	}
	if ecp := p.b.ErrorCleanupProvisioner; ecp != nil && (opts.OnError == pipeline.OnErrorCleanup || opts.OnError == pipeline.OnErrorRunCleanupProvisioner) {
		b.ErrorCleanup = func(ctx context.Context, comm communicator.Communicator, info *provisioner.Build) {
			if comm == nil {
				return // never connected: nothing to run it on
			}
			bui.Say("Provisioning step had errors: Running the cleanup provisioner, if present...")
			if err := provision(ctx, p.b, []*template.Provisioner{ecp}, bui, comm, info); err != nil {
				bui.Error(fmt.Sprintf("Error running the error-cleanup-provisioner: %v", err))
			}
		}
	}
	a, err := b.Run(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	r.Artifacts = []*artifact.Artifact{a}
	arts, err := postProcess(ctx, p.b, a, bui, opts)
	r.Artifacts = append(r.Artifacts, arts...)
	r.Err = err
	return r
}

// decide computes the build's input digest before anything is created.
// With reuse on, an AMI baked from the same inputs is reused (copied to the
// target regions that lack it) and its artifact post-processed: it returns
// reused true with r filled. Otherwise the build bakes: the digest goes
// into the AMI and snapshot tags, and the source AMI is pinned to the
// image the digest was computed from, since a newer one could match the
// filter before the source step runs. The session and that image are
// returned for the builder, which would otherwise check the credentials
// and describe the source AMI again; either is nil when it could not be
// had, and the builder then reports the failure itself.
func decide(ctx context.Context, t *template.Template, p prepared, bui ui.UI, opts Options, r *BuildResult) (sess *awsclient.Session, src *types.Image, reused bool) {
	wantReuse := plan.ReuseOn(opts.Reuse, p.b.Reuse, opts.Rebuild)
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sess, err := plan.Session(ctx, opts.Shared, p.cfg)
	if err != nil {
		if wantReuse {
			r.Err = fmt.Errorf("open the AWS session to look for a reusable AMI: %w", err)
			return nil, nil, true
		}
		// The builder opens the same session and reports the failure.
		log.Debug("input digest skipped", "build", p.b.Name, "err", err)
		return nil, nil, false
	}
	dec, err := plan.Decide(ctx, plan.DecideInput{
		Input: plan.Input{Build: p.b, Config: p.cfg, Sensitive: t.Sensitive},
		EC2:   sess.EC2, BuildRegion: sess.Region(),
		// Without reuse the digest only tags the AMI: nothing to look up.
		DigestOnly: !wantReuse || p.cfg.SkipCreateAMI,
	})
	switch {
	case err != nil && wantReuse:
		r.Err = fmt.Errorf("compute the input digest to look for a reusable AMI: %w", err)
		return nil, nil, true
	case err != nil:
		bui.Error("Cannot compute the input digest; the AMI will not be tagged for reuse: " + err.Error())
		return sess, nil, false
	}
	log.Debug("input digest", "build", p.b.Name, "digest", dec.Digest.Sum, "source_ami", aws.ToString(dec.SourceImage.ImageId),
		"action", dec.Action, "found", dec.Found, "volatile", dec.Digest.Volatile)
	if wantReuse && !p.cfg.SkipCreateAMI && dec.Action != plan.ActionBake {
		amis := dec.Found
		if dec.Action == plan.ActionCopy {
			co := dec.CopyOptions(p.cfg)
			co.OnCopy = func(region, id string) { bui.Say("Copying the reused AMI to " + region + ": " + id) }
			if amis, err = reuse.CopyMissing(ctx, reuse.SessionClients(sess.EC2), dec.Digest.Sum, dec.Found, dec.Regions, co); err != nil {
				r.Err = fmt.Errorf("copy the reused AMI to the regions that lack it: %w", err)
				return nil, nil, true
			}
		}
		for _, region := range dec.Regions {
			why := "it carries input digest " + dec.Digest.Sum + " (same source AMI " + aws.ToString(dec.SourceImage.ImageId) +
				", builder options, provisioners and files), so nothing that goes into the image changed"
			if _, had := dec.Found[region]; !had {
				why = "copied from the reused AMI, " + why
			}
			bui.Say(fmt.Sprintf("Reusing %s in %s: %s", amis[region], region, why))
		}
		if len(dec.Digest.Volatile) > 0 {
			bui.Say("Left out of the input digest as they change every run: " + strings.Join(dec.Digest.Volatile, ", "))
		}
		a := dec.Artifact(p.b.PackerBuildName(), amis)
		r.Artifacts = []*artifact.Artifact{a}
		arts, err := postProcess(ctx, p.b, a, bui, opts)
		r.Artifacts = append(r.Artifacts, arts...)
		r.Err = err
		return nil, nil, true
	}
	if wantReuse && dec.Action == plan.ActionBake {
		bui.Say("No AMI carries input digest " + dec.Digest.Sum + ": baking")
	}
	// The config is this build's own (Preflight decodes one per build).
	p.cfg.Parsed.AMITags = withTag(p.cfg.Parsed.AMITags, reuse.TagKey, dec.Digest.Sum)
	p.cfg.Parsed.SnapshotTags = withTag(p.cfg.Parsed.SnapshotTags, reuse.TagKey, dec.Digest.Sum)
	p.cfg.SourceAMI, p.cfg.SourceAMIFilter = aws.ToString(dec.SourceImage.ImageId), nil
	return sess, dec.SourceImage, false
}

// Location is where a build's resources live, for the journal: the
// account and caller STS answered, the EC2 and STS endpoints when not
// AWS's default, the profile, credentials file and role. Never a secret.
func Location(sess *awsclient.Session, c *amazonebs.Config, getenv func(string) string) ledger.Location {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg := sess.Config()
	loc := ledger.Location{Profile: c.Profile, CredentialsFile: c.SharedCredentialsFile}
	if sess.Identity != nil {
		loc.Account, loc.Caller = sess.Identity.Account, sess.Identity.ARN
	}
	base := aws.ToString(cfg.BaseEndpoint) // AWS_ENDPOINT_URL, endpoint_url
	loc.Endpoint = firstNonEmpty(c.CustomEndpointEC2, getenv("AWS_ENDPOINT_URL_EC2"), base)
	loc.STSEndpoint = firstNonEmpty(getenv("AWS_ENDPOINT_URL_STS"), base)
	if loc.Profile == "" {
		if p := getenv("AWS_PROFILE"); p != "default" {
			loc.Profile = p
		}
	}
	if c.AssumeRole != nil {
		loc.RoleARN = c.AssumeRole.RoleARN
	}
	return loc
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func withTag(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// provision runs provisioners in order, each built now that the build's
// generated data (build.Host, ...) is known.
func provision(ctx context.Context, b *template.Build, provs []*template.Provisioner, bui ui.UI, comm communicator.Communicator, info *provisioner.Build) error {
	vars := plugins.BuildVars(info, nil)
	for _, tp := range provs {
		common := provisioner.CommonOf(tp)
		if !provisioner.Applies(common.Only, common.Except, b.Name) {
			continue
		}
		p, diags := plugins.NewProvisioner(tp, b.Name, vars)
		if diags.HasErrors() {
			return fmt.Errorf("provisioner %s: %s", tp.Type, diags.Error())
		}
		// Packer reports the provisioner's error as it is: CI scripts
		// match it in the error lines of -machine-readable output.
		if err := provisioner.Run(ctx, bui, comm, info, p, common); err != nil {
			return err
		}
	}
	return nil
}

// postProcess runs each chain on the builder's artifact and returns the
// artifacts the chains produced (beyond the builder's own, always kept).
func postProcess(ctx context.Context, b *template.Build, in *artifact.Artifact, bui ui.UI, opts Options) ([]*artifact.Artifact, error) {
	info := &provisioner.Build{Name: b.Name, PackerName: b.PackerBuildName(), Type: "amazon-ebs", RunUUID: opts.RunUUID}
	if in != nil {
		info.Region = in.Data["BuildRegion"]
		info.SourceAMI = in.Data["SourceAMI"]
		info.SourceAMIName = in.Data["SourceAMIName"]
	}
	vars := plugins.BuildVars(info, nil)
	var out []*artifact.Artifact
	for _, chain := range b.PostProcessors {
		cur := in
		for _, tpp := range chain {
			if !provisioner.Applies(tpp.Only, tpp.Except, b.Name) {
				continue
			}
			pp, diags := plugins.NewPostProcessor(tpp, vars)
			if diags.HasErrors() {
				return out, fmt.Errorf("post-processor %s: %s", tpp.Type, diags.Error())
			}
			configurePostProcessor(pp, opts)
			bui.Say(postProcessorLine(b, tpp))
			next, _, err := pp.PostProcess(ctx, bui, cur)
			if err != nil {
				return out, fmt.Errorf("post-processor %s failed: %w", tpp.Type, err)
			}
			// Packer lists what every post-processor returns, even its
			// input unchanged (manifest): the tutorial ends with two
			// artifacts, the same AMI twice.
			if next != nil {
				out = append(out, next)
				cur = next
			}
		}
	}
	return out, nil
}

// postProcessorLine is Packer's: "Running post-processor: manifest" for
// JSON, "Running post-processor: NAME (type manifest)" for HCL2, where
// the name is often empty.
func postProcessorLine(b *template.Build, pp *template.PostProcessor) string {
	if !b.IsHCL2() {
		return "Running post-processor: " + pp.Type
	}
	return fmt.Sprintf("Running post-processor: %s (type %s)", pp.Name, pp.Type)
}

// report prints Packer's closing summary and machine-readable artifacts.
func report(root *ui.Root, uis []ui.UI, res *Result) {
	var failed []*BuildResult
	for _, b := range res.Builds {
		if b.Err != nil {
			failed = append(failed, b)
		}
	}
	if len(failed) > 0 {
		root.Machine("error-count", strconv.Itoa(len(failed)))
		root.Error("\n==> Some builds didn't complete successfully and had errors:")
		for i, b := range res.Builds {
			if b.Err == nil {
				continue
			}
			uis[i].Machine("error", b.Err.Error())
			root.Error(fmt.Sprintf("--> %s: %v", b.label(), b.Err))
		}
	}
	artifacts := 0
	for _, b := range res.Builds {
		artifacts += len(b.Artifacts)
	}
	if artifacts == 0 {
		// Packer's wording when nothing was produced.
		root.Say("\n==> Builds finished but no artifacts were created.")
		return
	}
	root.Say("\n==> Builds finished. The artifacts of successful builds are:")
	for i, b := range res.Builds {
		if b.Err != nil && len(b.Artifacts) == 0 {
			continue
		}
		u := uis[i]
		u.Machine("artifact-count", strconv.Itoa(len(b.Artifacts)))
		for n, a := range b.Artifacts {
			idx := strconv.Itoa(n)
			u.Machine("artifact", idx, "builder-id", amazonebs.BuilderID)
			u.Machine("artifact", idx, "id", a.ID())
			u.Machine("artifact", idx, "string", a.String()+"\n")
			u.Machine("artifact", idx, "files-count", strconv.Itoa(len(a.Files)))
			for fi, f := range a.Files {
				u.Machine("artifact", idx, "file", strconv.Itoa(fi), f)
			}
			u.Machine("artifact", idx, "end")
			// Packer's line ends with the artifact's newline: an empty
			// line after each artifact.
			root.Say(fmt.Sprintf("--> %s: %s\n", b.label(), a.String()))
			if !root.MachineReadable() {
				root.Message("")
			}
		}
	}
}

// humanDuration prints a duration Packer's way: the two largest units.
func humanDuration(d time.Duration) string {
	if d < time.Millisecond {
		return "0 seconds"
	}
	units := []struct {
		n    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}, {time.Millisecond, "millisecond"}}
	var parts []string
	for _, u := range units {
		if len(parts) == 2 {
			break
		}
		if v := d / u.n; v > 0 || len(parts) > 0 {
			if v == 0 {
				break
			}
			name := u.name
			if v != 1 {
				name += "s"
			}
			parts = append(parts, fmt.Sprintf("%d %s", v, name))
			d -= v * u.n
		}
	}
	return strings.Join(parts, " ")
}
