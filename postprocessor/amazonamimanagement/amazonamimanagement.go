// Package amazonamimanagement is the community amazon-ami-management
// post-processor (github.com/wata727/packer-plugin-amazon-ami-management)
// with its options, so templates that carry it work unchanged: after a
// successful build it deletes the old AMIs tagged
// Amazon_AMI_Management_Identifier = identifier (or carrying `tags`), and
// their snapshots, in each of `regions`, keeping that region's newest
// `keep_releases` AMIs or those younger than `keep_days`. It runs
// amibake's prune: AMIs in use by an instance or a launch template's
// default or latest version, or shared with other accounts, stay; so does
// the AMI the build just made; snapshots another AMI uses stay; deletions
// are journaled.
package amazonamimanagement

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/prune"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/postprocessor"
	"github.com/amibake/amibake/provisioner"
)

// IdentifierTag is the tag the plugin's identifier matches.
const IdentifierTag = "Amazon_AMI_Management_Identifier"

// Config is every option the plugin documents (v1.4), with the access
// options and `region`, which its v0.x templates carry.
type Config struct {
	Identifier   string            `hcl:"identifier,optional"`
	Tags         map[string]string `hcl:"tags,optional"`
	KeepReleases int               `hcl:"keep_releases,optional"`
	KeepDays     int               `hcl:"keep_days,optional"`
	Regions      []string          `hcl:"regions,optional"`
	DryRun       bool              `hcl:"dry_run,optional"`

	// The access options: the builder's, as the plugin embeds Packer's
	// AccessConfig; `region` is also the v0.x templates' region.
	awsclient.AccessConfig
}

// PostProcessor prunes after a build.
type PostProcessor struct {
	cfg Config
	// JournalDir is where the prune journals go (prune.Dir of the process
	// environment when empty).
	JournalDir string
	// Shared is the run's AWS state (one credential check for the builds
	// and their post-processors); nil opens its own.
	Shared *awsclient.Shared
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

var _ postprocessor.PostProcessor = (*PostProcessor)(nil)

// New decodes and checks the block, with the plugin's rules: an identifier
// or tags; keep_releases or keep_days, at least 1, not both; regions.
func New(b *template.Block, build map[string]cty.Value) (*PostProcessor, hcl.Diagnostics) {
	var cfg Config
	diags := b.Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	bad := func(name, detail, summary string) {
		diags = append(diags, provisioner.Errorf(b, name, detail, "%s", summary))
	}
	switch {
	case cfg.Identifier == "" && len(cfg.Tags) == 0:
		bad("identifier", "Set identifier to the value of the AMIs' "+IdentifierTag+" tag, or tags to the tags they carry.", "empty `identifier` is not allowed")
	case cfg.Identifier != "" && len(cfg.Tags) > 0:
		bad("tags", "Set identifier or tags, not both.", "`identifier` and `tags` cannot be set at the same time")
	}
	switch {
	case cfg.KeepReleases != 0 && cfg.KeepDays != 0:
		bad("keep_days", "Keep either the newest keep_releases AMIs or those younger than keep_days.", "`keep_releases` and `keep_days` cannot be set as the same time")
	case cfg.KeepReleases == 0 && cfg.KeepDays == 0:
		bad("keep_releases", "Set keep_releases (how many AMIs to keep) or keep_days (for how many days).", "`keep_releases` or `keep_days` must be greater than 1")
	case cfg.KeepReleases < 0:
		bad("keep_releases", "keep_releases is how many AMIs to keep: 1 or more.", "`keep_releases` must be greater than 1")
	case cfg.KeepDays < 0:
		bad("keep_days", "keep_days is for how many days AMIs are kept: 1 or more.", "`keep_days` must be greater than 1")
	}
	if len(cfg.Regions) == 0 && cfg.Region == "" {
		bad("regions", `List the regions whose AMIs are managed: regions = ["us-east-1"].`, "empty `regions` is not allowed")
	}
	for _, p := range cfg.AccessConfig.Check() {
		bad(p.Option, p.Detail, p.Summary)
	}
	for _, opt := range cfg.AccessConfig.Unimplemented() {
		detail := "amibake cannot honour " + opt + " yet; remove it."
		if opt == "mfa_code" {
			detail = "amibake cannot pass a one-time MFA code; use a profile whose role has mfa_serial (the SDK asks for the code), or credentials from the environment."
		}
		bad(opt, detail, opt+" is not supported by amibake")
	}
	if cfg.Polling != nil {
		bad("aws_polling", "aws_polling paces waits, and amazon-ami-management does not wait; remove it.", "aws_polling has no effect in amazon-ami-management")
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return &PostProcessor{cfg: cfg, Now: time.Now}, diags
}

// Config returns the decoded configuration.
func (p *PostProcessor) Config() Config { return p.cfg }

// Regions are the regions managed: regions, else the v0.x region.
func (p *PostProcessor) Regions() []string {
	if len(p.cfg.Regions) > 0 {
		return p.cfg.Regions
	}
	return []string{p.cfg.Region}
}

// Options is the prune the configuration describes, in every region of
// regions (PostProcess runs it one region at a time); the artifact's AMIs
// (this build's) always stay.
func (p *PostProcessor) Options(in *artifact.Artifact, now time.Time) prune.Options {
	sel := prune.Selection{Tags: p.cfg.Tags}
	if p.cfg.Identifier != "" {
		sel.Tags = map[string]string{IdentifierTag: p.cfg.Identifier}
	}
	rules := prune.Rules{Keep: -1, Now: now}
	if p.cfg.KeepReleases > 0 {
		rules.Keep = p.cfg.KeepReleases
	}
	if p.cfg.KeepDays > 0 {
		rules.Within = time.Duration(p.cfg.KeepDays) * 24 * time.Hour
	}
	o := prune.Options{
		Selection: sel, GroupBy: prune.GroupBy{Kind: prune.GroupAll}, Rules: rules,
		Regions: p.Regions(), OnlyRegions: true,
	}
	if in != nil && len(in.AMIs) > 0 {
		o.Protect = prune.ProtectIDs(in.AMIs, "the AMI this build produced")
	}
	return o
}

// PostProcess prunes and returns the artifact unchanged. As the plugin
// does, each region is managed on its own: keep_releases counts the AMIs
// of that region.
func (p *PostProcessor) PostProcess(ctx context.Context, u ui.UI, in *artifact.Artifact) (*artifact.Artifact, bool, error) {
	regions := p.Regions()
	say := func(msg string) {
		if p.cfg.DryRun {
			msg = "[DryRun] " + msg
		}
		u.Message(msg)
	}
	sess, err := p.cfg.AccessConfig.Open(ctx, p.Shared, regions[0])
	if err != nil {
		return in, true, fmt.Errorf("amazon-ami-management: %w", err)
	}
	dir := p.JournalDir
	if dir == "" {
		dir = prune.Dir(os.Getenv)
	}
	clients := func(region string) (prune.EC2, error) { return sess.EC2(region), nil }
	var failed []string
	for _, region := range regions {
		say("Processing in " + region)
		o := p.Options(in, p.Now())
		o.Regions = []string{region}
		res, err := prune.Run(ctx, clients, prune.RunOptions{Options: o, DryRun: p.cfg.DryRun, JournalDir: dir, Progress: u.Message})
		if errors.Is(err, prune.ErrNothingSelected) {
			say(err.Error() + ": nothing to delete")
			continue
		}
		if err != nil {
			return in, true, fmt.Errorf("amazon-ami-management: %w", err)
		}
		for _, d := range res.Plan.Images {
			switch {
			case d.Action == prune.ActionDelete && p.cfg.DryRun:
				say(fmt.Sprintf("Deleting image: %s", d.ImageID))
			case d.Action == prune.ActionKeep && (strings.HasPrefix(d.Reason, "in use by ") || strings.HasPrefix(d.Reason, "shared with ")):
				say(fmt.Sprintf("[WARN] %s is %s. Skipped...", d.ImageID, d.Reason))
			}
		}
		say(prune.Summarize(res.Plan, p.cfg.DryRun))
		failed = append(failed, res.Failed()...)
	}
	if len(failed) > 0 {
		return in, true, fmt.Errorf("amazon-ami-management: %d AMI(s) or snapshot(s) could not be deleted:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return in, true, nil
}
