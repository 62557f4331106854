package reaper

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ledger"
)

func (s *sweep) findInstances(ctx context.Context, qs [][]types.Filter) ([]*found, error) {
	var out []*found
	for _, q := range qs {
		p := ec2.NewDescribeInstancesPaginator(s.c, &ec2.DescribeInstancesInput{Filters: q})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list instances in %s: %w", s.region, err)
			}
			for _, res := range page.Reservations {
				for _, in := range res.Instances {
					f := &found{kind: ledger.KindInstance, id: aws.ToString(in.InstanceId), token: aws.ToString(in.ClientToken),
						tags: tagMap(in.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
					if in.State != nil {
						f.state = string(in.State.Name)
					}
					if in.LaunchTime != nil {
						f.created = *in.LaunchTime
					}
					out = append(out, f)
				}
			}
		}
	}
	return dedupe(out), nil
}

func (s *sweep) findVolumes(ctx context.Context) ([]*found, error) {
	var out []*found
	for _, q := range s.queries(ledger.KindVolume, "volume-id", "") {
		p := ec2.NewDescribeVolumesPaginator(s.c, &ec2.DescribeVolumesInput{Filters: q})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list volumes in %s: %w", s.region, err)
			}
			for _, v := range page.Volumes {
				f := &found{kind: ledger.KindVolume, id: aws.ToString(v.VolumeId), state: string(v.State),
					tags: tagMap(v.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
				if v.CreateTime != nil {
					f.created = *v.CreateTime
				}
				for _, a := range v.Attachments {
					if a.State != types.VolumeAttachmentStateDetached && aws.ToString(a.InstanceId) != "" {
						f.attached = append(f.attached, aws.ToString(a.InstanceId))
					}
				}
				out = append(out, f)
			}
		}
	}
	return dedupe(out), nil
}

func (s *sweep) findGroups(ctx context.Context) ([]*found, error) {
	var out []*found
	for _, q := range s.queries(ledger.KindSecurityGroup, "group-id", "group-name") {
		p := ec2.NewDescribeSecurityGroupsPaginator(s.c, &ec2.DescribeSecurityGroupsInput{Filters: q})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list security groups in %s: %w", s.region, err)
			}
			for _, g := range page.SecurityGroups {
				out = append(out, &found{kind: ledger.KindSecurityGroup, id: aws.ToString(g.GroupId), name: aws.ToString(g.GroupName),
					tags: tagMap(g.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })})
			}
		}
	}
	return dedupe(out), nil
}

func (s *sweep) findKeyPairs(ctx context.Context) ([]*found, error) {
	ids, tokens := s.sc.ledgerIDs(ledger.KindKeyPair)
	// The ledger may name a key pair by id or by name.
	var byID, byName []string
	for _, id := range ids {
		if strings.HasPrefix(id, "key-") {
			byID = append(byID, id)
		} else {
			byName = append(byName, id)
		}
	}
	byName = append(byName, tokens...)
	qs := [][]types.Filter{{s.tagFilter()}}
	if len(byID) > 0 {
		qs = append(qs, []types.Filter{{Name: aws.String("key-pair-id"), Values: escapeAll(byID)}})
	}
	if len(byName) > 0 {
		qs = append(qs, []types.Filter{{Name: aws.String("key-name"), Values: escapeAll(byName)}})
	}
	var out []*found
	for _, q := range qs {
		page, err := s.c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: q})
		if err != nil {
			return nil, fmt.Errorf("list key pairs in %s: %w", s.region, err)
		}
		for _, k := range page.KeyPairs {
			f := &found{kind: ledger.KindKeyPair, id: aws.ToString(k.KeyPairId), name: aws.ToString(k.KeyName),
				tags: tagMap(k.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
			if k.CreateTime != nil {
				f.created = *k.CreateTime
			}
			if f.id == "" {
				f.id = f.name
			}
			out = append(out, f)
		}
	}
	return dedupe(out), nil
}

func (s *sweep) findImages(ctx context.Context) ([]*found, error) {
	return s.describeImages(ctx, s.queries(ledger.KindImage, "image-id", "name"))
}

func (s *sweep) imagesByID(ctx context.Context, id string) ([]*found, error) {
	return s.describeImages(ctx, [][]types.Filter{{{Name: aws.String("image-id"), Values: []string{id}}}})
}

func (s *sweep) describeImages(ctx context.Context, qs [][]types.Filter) ([]*found, error) {
	var out []*found
	for _, q := range qs {
		p := ec2.NewDescribeImagesPaginator(s.c, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: q})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list images in %s: %w", s.region, err)
			}
			for _, img := range page.Images {
				f := &found{kind: ledger.KindImage, id: aws.ToString(img.ImageId), name: aws.ToString(img.Name), state: string(img.State),
					tags: tagMap(img.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
				if t, err := ledger.ParseCreatedAt(aws.ToString(img.CreationDate)); err == nil {
					f.created = t
				}
				for _, bdm := range img.BlockDeviceMappings {
					if bdm.Ebs != nil && aws.ToString(bdm.Ebs.SnapshotId) != "" {
						f.snapshots = append(f.snapshots, aws.ToString(bdm.Ebs.SnapshotId))
					}
				}
				out = append(out, f)
			}
		}
	}
	return dedupe(out), nil
}

func (s *sweep) findSnapshots(ctx context.Context, qs [][]types.Filter) ([]*found, error) {
	var out []*found
	for _, q := range qs {
		p := ec2.NewDescribeSnapshotsPaginator(s.c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: q})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list snapshots in %s: %w", s.region, err)
			}
			for _, sn := range page.Snapshots {
				f := &found{kind: ledger.KindSnapshot, id: aws.ToString(sn.SnapshotId), state: string(sn.State),
					tags: tagMap(sn.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
				if sn.StartTime != nil {
					f.created = *sn.StartTime
				}
				out = append(out, f)
			}
		}
	}
	return dedupe(out), nil
}

// findLaunchTemplates lists the launch templates tagged for the scope,
// those the ledger names by id (one call each: EC2 fails the whole call
// when one id does not exist, and has no launch-template-id filter) and
// those it names by name.
func (s *sweep) findLaunchTemplates(ctx context.Context) ([]*found, error) {
	ids, names := s.sc.ledgerIDs(ledger.KindLaunchTemplate)
	var byName []string
	var inputs []*ec2.DescribeLaunchTemplatesInput
	for _, id := range ids {
		if strings.HasPrefix(id, "lt-") {
			inputs = append(inputs, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}})
		} else {
			byName = append(byName, id)
		}
	}
	byName = append(byName, names...)
	qs := [][]types.Filter{{s.tagFilter()}}
	if len(byName) > 0 {
		qs = append(qs, []types.Filter{{Name: aws.String("launch-template-name"), Values: escapeAll(byName)}})
	}
	for _, q := range qs {
		inputs = append(inputs, &ec2.DescribeLaunchTemplatesInput{Filters: q})
	}
	var out []*found
	for _, in := range inputs {
		p := ec2.NewDescribeLaunchTemplatesPaginator(s.c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if isGone(err) && len(in.LaunchTemplateIds) > 0 {
				break // a Describe by id says it does not exist
			}
			if err != nil {
				return nil, fmt.Errorf("list launch templates in %s: %w", s.region, err)
			}
			for _, lt := range page.LaunchTemplates {
				f := &found{kind: ledger.KindLaunchTemplate, id: aws.ToString(lt.LaunchTemplateId), name: aws.ToString(lt.LaunchTemplateName),
					tags: tagMap(lt.Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })}
				if lt.CreateTime != nil {
					f.created = *lt.CreateTime
				}
				out = append(out, f)
			}
		}
	}
	return dedupe(out), nil
}
