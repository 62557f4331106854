package prune

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Selection says which of the account's AMIs a prune looks at. Values are
// EC2 filter patterns (* and ? wildcards).
type Selection struct {
	Tags map[string]string
	Name string
}

// Empty reports whether the selection names nothing (it would select every
// AMI of the account, which a prune refuses).
func (s Selection) Empty() bool { return len(s.Tags) == 0 && s.Name == "" }

func (s Selection) String() string {
	var parts []string
	if s.Name != "" {
		parts = append(parts, fmt.Sprintf("name %q", s.Name))
	}
	for _, k := range sortedKeys(s.Tags) {
		parts = append(parts, fmt.Sprintf("tag %s=%s", k, s.Tags[k]))
	}
	return strings.Join(parts, ", ")
}

// describeImagesInput is the request that lists the selection: the
// account's own AMIs (Owners=self; an owner sees its deprecated AMIs
// whatever IncludeDeprecated says), filtered by name and tags, available
// ones only (a pending AMI is a build still running).
func describeImagesInput(s Selection) *ec2.DescribeImagesInput {
	in := &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}}},
	}
	if s.Name != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("name"), Values: []string{s.Name}})
	}
	for _, k := range sortedKeys(s.Tags) {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{s.Tags[k]}})
	}
	return in
}

// Find lists the selected AMIs in each region. With follow, the regions
// where copies came from (a copy's SourceRegion) are searched too, so a
// release's original is found with its copies. It returns the images and
// every region searched.
func Find(ctx context.Context, clients Clients, sel Selection, regions []string, follow bool) ([]Image, []string, error) {
	var out []Image
	searched := []string{}
	queue := slices.Clone(regions)
	for len(queue) > 0 {
		region := queue[0]
		queue = queue[1:]
		if region == "" || slices.Contains(searched, region) {
			continue
		}
		searched = append(searched, region)
		client, err := clients(region)
		if err != nil {
			return nil, nil, err
		}
		p := ec2.NewDescribeImagesPaginator(client, describeImagesInput(sel))
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("list the AMIs (%s) in %s: %w", sel, region, err)
			}
			for _, im := range page.Images {
				img := imageOf(region, im)
				out = append(out, img)
				if follow && img.SourceRegion != "" && !slices.Contains(searched, img.SourceRegion) {
					queue = append(queue, img.SourceRegion)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Region != out[j].Region {
			return out[i].Region < out[j].Region
		}
		return out[i].ID < out[j].ID
	})
	return out, searched, nil
}

func imageOf(region string, im types.Image) Image {
	img := Image{
		Region: region, ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name),
		Public: aws.ToBool(im.Public), Tags: map[string]string{},
		SourceRegion: aws.ToString(im.SourceImageRegion), SourceImageID: aws.ToString(im.SourceImageId),
	}
	img.Created, _ = time.Parse("2006-01-02T15:04:05.000Z", aws.ToString(im.CreationDate))
	if d := aws.ToString(im.DeprecationTime); d != "" {
		img.Deprecation, _ = time.Parse("2006-01-02T15:04:05.000Z", d)
	}
	for _, t := range im.Tags {
		img.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	for _, b := range im.BlockDeviceMappings {
		if b.Ebs != nil && aws.ToString(b.Ebs.SnapshotId) != "" {
			img.Snapshots = append(img.Snapshots, aws.ToString(b.Ebs.SnapshotId))
		}
	}
	return img
}

// usedStates are the instance states that keep their AMI: an instance that
// is pending, running, stopping or stopped can still be started, rebooted
// or (its root volume replaced) relaunched from it.
var usedStates = []string{"pending", "running", "stopping", "stopped"}

// usage finds, in one region, which of ids are used by an instance or by a
// launch template's default or latest version, and which are shared.
func usage(ctx context.Context, client EC2, region string, candidates []Image, u Usage) error {
	if len(candidates) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, im := range candidates {
		want[im.ID] = true
	}
	ip := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: usedStates}},
	})
	for ip.HasMorePages() {
		page, err := ip.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list the instances in %s (to keep the AMIs they use): %w", region, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				id := aws.ToString(in.ImageId)
				k := region + "/" + id
				if want[id] && u.InUse[k] == "" {
					state := ""
					if in.State != nil {
						state = string(in.State.Name)
					}
					u.InUse[k] = fmt.Sprintf("instance %s (%s)", aws.ToString(in.InstanceId), state)
				}
			}
		}
	}
	// Without a template named, EC2 describes the $Default and $Latest
	// versions of every launch template of the account.
	lp := ec2.NewDescribeLaunchTemplateVersionsPaginator(client, &ec2.DescribeLaunchTemplateVersionsInput{
		Versions: []string{"$Default", "$Latest"},
	})
	for lp.HasMorePages() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list the launch templates' default and latest versions in %s (to keep the AMIs they launch): %w", region, err)
		}
		for _, v := range page.LaunchTemplateVersions {
			if v.LaunchTemplateData == nil {
				continue
			}
			id := aws.ToString(v.LaunchTemplateData.ImageId)
			k := region + "/" + id
			if want[id] && u.InUse[k] == "" {
				which := "latest"
				if aws.ToBool(v.DefaultVersion) {
					which = "default"
				}
				u.InUse[k] = fmt.Sprintf("launch template %s (%s version %d)", aws.ToString(v.LaunchTemplateName), which, aws.ToInt64(v.VersionNumber))
			}
		}
	}
	for _, im := range candidates {
		k := region + "/" + im.ID
		if u.InUse[k] != "" {
			continue
		}
		if im.Public {
			u.Shared[k] = "everyone (public)"
			continue
		}
		out, err := client.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
			ImageId: aws.String(im.ID), Attribute: types.ImageAttributeNameLaunchPermission,
		})
		if err != nil {
			return fmt.Errorf("read the launch permissions of %s in %s (to keep shared AMIs): %w", im.ID, region, err)
		}
		var with []string
		for _, p := range out.LaunchPermissions {
			switch {
			case p.Group == types.PermissionGroupAll:
				with = append(with, "everyone (public)")
			case aws.ToString(p.UserId) != "":
				with = append(with, "account "+aws.ToString(p.UserId))
			case aws.ToString(p.OrganizationArn) != "":
				with = append(with, aws.ToString(p.OrganizationArn))
			case aws.ToString(p.OrganizationalUnitArn) != "":
				with = append(with, aws.ToString(p.OrganizationalUnitArn))
			}
		}
		if len(with) > 0 {
			u.Shared[k] = strings.Join(with, ", ")
		}
	}
	return nil
}

// snapshotUsers lists, per snapshot, the account's AMIs in the region
// whose block devices name it (any state: a pending AMI uses its
// snapshots too).
func snapshotUsers(ctx context.Context, client EC2, region string, snaps []string, users map[string][]string) error {
	for start := 0; start < len(snaps); start += 100 {
		chunk := snaps[start:min(start+100, len(snaps))]
		p := ec2.NewDescribeImagesPaginator(client, &ec2.DescribeImagesInput{
			Owners:  []string{"self"},
			Filters: []types.Filter{{Name: aws.String("block-device-mapping.snapshot-id"), Values: chunk}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list the AMIs that use the snapshots in %s: %w", region, err)
			}
			for _, im := range page.Images {
				// "Recently deregistered images appear in the returned
				// results for a short interval" (DescribeImages, EC2 API
				// reference): they use nothing any more.
				if im.State == types.ImageStateDeregistered {
					continue
				}
				for _, b := range im.BlockDeviceMappings {
					if b.Ebs == nil {
						continue
					}
					sn := aws.ToString(b.Ebs.SnapshotId)
					if slices.Contains(chunk, sn) {
						k := region + "/" + sn
						if !slices.Contains(users[k], aws.ToString(im.ImageId)) {
							users[k] = append(users[k], aws.ToString(im.ImageId))
						}
					}
				}
			}
		}
	}
	return nil
}

// RegionLister is what AllRegions calls; *ec2.Client implements it.
type RegionLister interface {
	DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
}

// AllRegions lists the regions enabled for the account (DescribeRegions
// without AllRegions answers those), for a prune that looks everywhere.
func AllRegions(ctx context.Context, c RegionLister) ([]string, error) {
	out, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return nil, fmt.Errorf("list the account's regions: %w", err)
	}
	var rs []string
	for _, r := range out.Regions {
		rs = append(rs, aws.ToString(r.RegionName))
	}
	sort.Strings(rs)
	return rs, nil
}
