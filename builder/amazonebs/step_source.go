package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/template"
)

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// stepPrevalidate fails the build before anything is created when an AMI
// of the same name exists in the build region, unless it will be
// deregistered (force_deregister or -force).
type stepPrevalidate struct{}

func (stepPrevalidate) Name() string { return "prevalidate AMI name" }

func (stepPrevalidate) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.SkipCreateAMI {
		return nil
	}
	name, err := s.render("ami_name", c.AMIName)
	if err != nil {
		return err
	}
	if err := CheckAMIName(name); err != nil {
		return fmt.Errorf("ami_name: %w", err)
	}
	s.AMIName = name
	force := c.ForceDeregister || s.Force
	if force {
		s.UI.Say("Force Deregister flag found, skipping prevalidating AMI Name")
	} else {
		s.UI.Say("Prevalidating AMI Name: " + name)
	}
	ids, err := imagesNamed(ctx, s.ec2(""), name)
	if err != nil {
		return err
	}
	if len(ids) > 0 && !force {
		return fmt.Errorf("AMI name %q is used by an existing AMI: %s (set force_deregister or use -force to replace it)", name, strings.Join(ids, ", "))
	}
	if len(ids) > 0 {
		s.ExistingImages = map[string][]string{s.Region: ids}
	}
	return nil
}

func (stepPrevalidate) Cleanup(context.Context, *State) error { return nil }

func imagesNamed(ctx context.Context, client ec2.DescribeImagesAPIClient, name string) ([]string, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}},
	})
	if err != nil {
		return nil, fmt.Errorf("look for existing AMIs named %q: %w", name, err)
	}
	var ids []string
	for _, im := range out.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	return ids, nil
}

// stepSourceAMI resolves source_ami / source_ami_filter to one image and
// fills the build-time template data.
type stepSourceAMI struct{}

func (stepSourceAMI) Name() string { return "source AMI" }

func (stepSourceAMI) Run(ctx context.Context, s *State) error {
	im := s.ResolvedSource
	// An image resolved for other settings (source_ami changed since) is
	// not trusted: describe the one the config names.
	if im == nil || (s.Config.SourceAMI != "" && aws.ToString(im.ImageId) != s.Config.SourceAMI) {
		var err error
		if im, err = ResolveSourceAMI(ctx, s.ec2(""), s.Config, s.Region); err != nil {
			return err
		}
	}
	s.SourceImage = im
	s.BuildTime = BuildTimeData(s.Region, im)
	s.UI.Message("Found Image ID: " + aws.ToString(im.ImageId))
	return nil
}

// ResolveSourceAMI finds the one EBS-backed image that source_ami or
// source_ami_filter names in region (most_recent picks the newest), with
// one DescribeImages call. amibake plan and the input digest use it too,
// so that they resolve exactly the image a build would launch.
func ResolveSourceAMI(ctx context.Context, client ec2.DescribeImagesAPIClient, c *Config, region string) (*types.Image, error) {
	in := &ec2.DescribeImagesInput{}
	if c.SourceAMI != "" {
		in.ImageIds = []string{c.SourceAMI}
	}
	what := "source_ami " + c.SourceAMI
	if f := c.SourceAMIFilter; f != nil {
		in.Filters = ec2Filters(c.Parsed.AMIFilters)
		in.Owners = f.Owners
		if f.IncludeDeprecated {
			in.IncludeDeprecated = aws.Bool(true)
		}
		what = "source_ami_filter " + describeFilters(c.Parsed.AMIFilters, f.Owners)
	}
	if len(in.ImageIds) == 0 && len(in.Filters) == 0 {
		return nil, errors.New("neither source_ami nor source_ami_filter is set")
	}
	out, err := client.DescribeImages(ctx, in)
	if err != nil {
		if apiCode(err) == "InvalidAMIID.NotFound" || apiCode(err) == "InvalidAMIID.Malformed" {
			return nil, fmt.Errorf("no AMI matches %s in %s: %w", what, region, err)
		}
		return nil, fmt.Errorf("describe the source AMI (%s): %w", what, err)
	}
	images := out.Images
	switch {
	case len(images) == 0:
		return nil, fmt.Errorf("no AMI matches %s in %s", what, region)
	case len(images) > 1 && (c.SourceAMIFilter == nil || !c.SourceAMIFilter.MostRecent):
		return nil, fmt.Errorf("%d AMIs match %s: make the filter more specific, or set most_recent = true", len(images), what)
	}
	sort.SliceStable(images, func(i, j int) bool {
		return aws.ToString(images[i].CreationDate) > aws.ToString(images[j].CreationDate)
	})
	im := images[0]
	if im.RootDeviceType != "" && im.RootDeviceType != types.DeviceTypeEbs {
		return nil, fmt.Errorf("source AMI %s has an %s root device; amazon-ebs needs an EBS-backed AMI", aws.ToString(im.ImageId), im.RootDeviceType)
	}
	return &im, nil
}

// BuildTimeData is the build-time template data ({{ .SourceAMI }}, ...)
// of a build in region from source image im: what ami_name, tags and
// descriptions are rendered with.
func BuildTimeData(region string, im *types.Image) template.BuildTimeData {
	return template.BuildTimeData{
		BuildRegion:           region,
		SourceAMI:             aws.ToString(im.ImageId),
		SourceAMIName:         aws.ToString(im.Name),
		SourceAMIOwner:        aws.ToString(im.OwnerId),
		SourceAMIOwnerName:    aws.ToString(im.ImageOwnerAlias),
		SourceAMICreationDate: aws.ToString(im.CreationDate),
		SourceAMITags:         tagMap(im.Tags),
	}
}

func (stepSourceAMI) Cleanup(context.Context, *State) error { return nil }

// DescribeFilters prints filters (and owners) for messages, keys sorted.
func DescribeFilters(f map[string]string, owners []string) string { return describeFilters(f, owners) }

func describeFilters(f map[string]string, owners []string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, f[k]))
	}
	if len(owners) > 0 {
		parts = append(parts, "owners="+strings.Join(owners, ","))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// stepDeregister removes AMIs named like the new one, in every target
// region, when forced; it runs just before the image is created so that a
// build that fails earlier leaves the old AMI in place.
type stepDeregister struct{}

func (stepDeregister) Name() string { return "deregister existing AMI" }

func (stepDeregister) Run(ctx context.Context, s *State) error {
	c := s.Config
	if !(c.ForceDeregister || s.Force) || c.SkipCreateAMI {
		return nil
	}
	regions := append([]string{s.Region}, c.AMIRegions...)
	for _, region := range dedupe(regions) {
		ids := s.ExistingImages[region]
		if region != s.Region {
			var err error
			if ids, err = imagesNamed(ctx, s.ec2(region), s.AMIName); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if err := deregister(ctx, s, region, id, c.ForceDeleteSnapshot); err != nil {
				return err
			}
			s.UI.Say(fmt.Sprintf("Deregistered AMI id: %s", id))
		}
	}
	return nil
}

func (stepDeregister) Cleanup(context.Context, *State) error { return nil }

// deregister removes an AMI and, with snapshots, its EBS snapshots.
func deregister(ctx context.Context, s *State, region, id string, snapshots bool) error {
	client := s.ec2(region)
	var snaps []string
	if snapshots {
		var out *ec2.DescribeImagesOutput
		err := s.deleteRetry(ctx, id, "describe AMI "+id, func(ctx context.Context) error {
			var err error
			out, err = client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
			return err
		})
		if err != nil {
			return fmt.Errorf("describe AMI %s before deregistering it: %w", id, err)
		}
		if out != nil {
			for _, im := range out.Images {
				snaps = append(snaps, imageSnapshots(&im)...)
			}
		}
	}
	own := s.ownImage(id)
	if own {
		// Before DeregisterImage: once the image is gone, nothing but
		// the journal ties its snapshots to this run.
		if err := s.journalSnapshots(region, snaps); err != nil {
			return fmt.Errorf("before deregistering AMI %s: %w", id, err)
		}
	}
	if err := s.deleteRetry(ctx, id, "deregister AMI "+id, func(ctx context.Context) error {
		_, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)})
		return err
	}); err != nil {
		return fmt.Errorf("deregister AMI %s in %s: %w", id, region, err)
	}
	for _, sn := range snaps {
		if err := s.deleteRetry(ctx, sn, "delete snapshot "+sn, func(ctx context.Context) error {
			_, err := client.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(sn)})
			return err
		}); err != nil {
			return fmt.Errorf("delete snapshot %s of AMI %s: %w", sn, id, err)
		}
		if own {
			s.deleted(ledger.KindSnapshot, region, sn)
		}
		s.UI.Say("Deleted snapshot: " + sn)
	}
	return nil
}
