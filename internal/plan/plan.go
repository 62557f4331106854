// Package plan says what `amibake build` would do, without doing it: per
// build, the source AMI it resolves, the AMI name, the regions, the
// temporary resources and what the security group would open, the
// provisioners and the files they upload, and the build's input digest
// with whether an AMI baked from the same inputs already exists (reuse),
// exists in some target regions (copy) or not at all (bake). It makes only
// read-only calls (sts GetCallerIdentity, ec2 Describe*).
//
// The digest half (DigestBuild, ResolveSourceAMI, Decide) is
// what `amibake build --reuse` uses before launching anything.
package plan

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/digest"
	"github.com/amibake/amibake/internal/reuse"
)

// FormatVersion is the version of plan's JSON document; it changes only
// when a field changes meaning or goes away.
const FormatVersion = 1

// Actions a build would take.
const (
	ActionReuse = "reuse" // every target region has an AMI with the digest
	ActionCopy  = "copy"  // some have one: copy it to the others
	ActionBake  = "bake"  // none has one
)

// Session opens the AWS session a build's access options describe, as the
// builder does (it is amazonebs.OpenSession): a build hands it to the
// builder rather than opening a second one.
func Session(ctx context.Context, shared *awsclient.Shared, c *amazonebs.Config) (*awsclient.Session, error) {
	return amazonebs.OpenSession(ctx, shared, c)
}

// Regions are the regions a build's AMI ends up in: the build region, then
// ami_regions, without repeats.
func Regions(c *amazonebs.Config, buildRegion string) []string {
	out := []string{buildRegion}
	for _, r := range c.AMIRegions {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Decision is what a build with reuse enabled should do.
type Decision struct {
	Digest      *Digest
	SourceImage *types.Image
	BuildRegion string
	// Regions are every target region, build region first.
	Regions []string
	// Found maps the regions that already have an AMI with the digest to it.
	Found map[string]string
	// Action is ActionReuse, ActionCopy or ActionBake.
	Action string
}

// DecideInput is what Decide needs.
type DecideInput struct {
	Input
	// EC2 returns the client of a region ("" the build region), as
	// awsclient.Session.EC2.
	EC2 func(region string) *ec2.Client
	// BuildRegion is the session's region.
	BuildRegion string
	// DigestOnly skips the lookup of AMIs carrying the digest (a build
	// without reuse only tags its AMI with it): Found stays empty and
	// Action is ActionBake.
	DigestOnly bool
}

// Decide resolves the source AMI, computes the digest and, unless
// DigestOnly, looks for AMIs carrying it in every target region. Read-only.
func Decide(ctx context.Context, in DecideInput) (*Decision, error) {
	b := in.Build
	if in.Config == nil {
		cfg, diags := decodeConfig(b)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s", b.Name, diags.Error())
		}
		in.Config = cfg
	}
	im, err := ResolveSourceAMI(ctx, in.EC2(""), in.Config, in.BuildRegion)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	in.SourceAMI = aws.ToString(im.ImageId)
	d, err := DigestBuild(in.Input)
	if err != nil {
		return nil, err
	}
	regions := Regions(in.Config, in.BuildRegion)
	found := map[string]string{}
	if !in.DigestOnly {
		if found, err = reuse.Find(ctx, reuse.SessionClients(in.EC2), d.Sum, regions); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name, err)
		}
	}
	dec := &Decision{Digest: d, SourceImage: im, BuildRegion: in.BuildRegion, Regions: regions, Found: found, Action: ActionBake}
	switch {
	case len(found) == len(regions):
		dec.Action = ActionReuse
	case len(found) > 0:
		dec.Action = ActionCopy
	}
	return dec, nil
}

// Sum is digest.Version, for callers that print it.
const DigestVersion = digest.Version
