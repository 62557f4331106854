// Package reuse finds AMIs already baked from the same inputs (tagged with
// the build's input digest) and copies one to the regions that lack it, so
// that a build whose inputs did not change launches nothing.
package reuse

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TagKey is the tag that carries the input digest on an AMI and its
// snapshots.
const TagKey = "amibake:input-digest"

// EC2 is what Find and Copy call; *ec2.Client implements it.
type EC2 interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	CopyImage(ctx context.Context, in *ec2.CopyImageInput, opts ...func(*ec2.Options)) (*ec2.CopyImageOutput, error)
}

// Clients returns the EC2 client of a region (awsclient.Session.EC2 fits).
type Clients func(region string) EC2

// SessionClients adapts a func returning *ec2.Client.
func SessionClients(f func(region string) *ec2.Client) Clients {
	return func(region string) EC2 { return f(region) }
}

// Find looks in each region for an available AMI owned by the account and
// tagged with digest. found maps region to AMI id for the regions that have
// one; when several match, the newest wins. Only DescribeImages is called.
func Find(ctx context.Context, clients Clients, digest string, regions []string) (map[string]string, error) {
	if digest == "" {
		return nil, errors.New("find reusable AMIs: empty digest")
	}
	found := map[string]string{}
	for _, region := range regions {
		if _, done := found[region]; done {
			continue
		}
		im, err := findIn(ctx, clients(region), digest)
		if err != nil {
			return found, fmt.Errorf("look for an AMI with %s=%s in %s: %w", TagKey, digest, region, err)
		}
		if im != nil {
			found[region] = aws.ToString(im.ImageId)
		}
	}
	return found, nil
}

func findIn(ctx context.Context, client EC2, digest string) (*types.Image, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners: []string{"self"},
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagKey), Values: []string{digest}},
			{Name: aws.String("state"), Values: []string{"available"}},
		},
	})
	if err != nil {
		return nil, err
	}
	images := out.Images
	if len(images) == 0 {
		return nil, nil
	}
	sort.SliceStable(images, func(i, j int) bool {
		return aws.ToString(images[i].CreationDate) > aws.ToString(images[j].CreationDate)
	})
	return &images[0], nil
}

// CopyOptions tune CopyMissing.
type CopyOptions struct {
	// Name and Description of the copies; default the source AMI's name.
	Name, Description string
	// Tags are set on each copy besides TagKey (ami tags of the build).
	Tags map[string]string
	// Encrypted and KMSKeyIDs (region -> key) as the build's encrypt_boot
	// and region_kms_key_ids.
	Encrypted bool
	KMSKeyIDs map[string]string
	// Poll is the delay between DescribeImages while waiting; default 2s.
	Poll time.Duration
	// Timeout bounds the wait for each copy; default 30 minutes.
	Timeout time.Duration
	// OnCopy is told about each copy as it starts (for the log, journal).
	OnCopy func(region, amiID string)
}

// CopyMissing copies the AMI found in one region to every region in
// regions that has none, tags each copy with the digest, waits until each
// is available and returns found completed with the copies. A copy that
// fails leaves the regions copied so far in the returned map.
func CopyMissing(ctx context.Context, clients Clients, digest string, found map[string]string, regions []string, opts CopyOptions) (map[string]string, error) {
	out := make(map[string]string, len(regions))
	for k, v := range found {
		out[k] = v
	}
	if len(found) == 0 {
		return out, errors.New("copy a reusable AMI: none was found to copy from")
	}
	// Copy from a stable source: the first region, in order, that has one.
	srcRegion := ""
	for _, r := range regions {
		if _, ok := found[r]; ok {
			srcRegion = r
			break
		}
	}
	if srcRegion == "" {
		for r := range found {
			if srcRegion == "" || r < srcRegion {
				srcRegion = r
			}
		}
	}
	srcID := found[srcRegion]
	name, desc := opts.Name, opts.Description
	if name == "" {
		d, err := clients(srcRegion).DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{srcID}})
		if err != nil {
			return out, fmt.Errorf("describe AMI %s in %s to copy it: %w", srcID, srcRegion, err)
		}
		if len(d.Images) == 1 {
			name = aws.ToString(d.Images[0].Name)
			if desc == "" {
				desc = aws.ToString(d.Images[0].Description)
			}
		}
	}
	tags := []types.Tag{{Key: aws.String(TagKey), Value: aws.String(digest)}}
	keys := make([]string, 0, len(opts.Tags))
	for k := range opts.Tags {
		if k != TagKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(opts.Tags[k])})
	}
	pending := map[string]string{}
	var order []string
	for _, region := range regions {
		if _, ok := out[region]; ok {
			continue
		}
		if _, ok := pending[region]; ok {
			continue
		}
		in := &ec2.CopyImageInput{
			Name: aws.String(name), SourceImageId: aws.String(srcID), SourceRegion: aws.String(srcRegion),
			ClientToken: aws.String(clientToken(digest, region)),
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeImage, Tags: tags},
				{ResourceType: types.ResourceTypeSnapshot, Tags: tags},
			},
		}
		if desc != "" {
			in.Description = aws.String(desc)
		}
		if opts.Encrypted || opts.KMSKeyIDs[region] != "" {
			in.Encrypted = aws.Bool(true)
			if k := opts.KMSKeyIDs[region]; k != "" {
				in.KmsKeyId = aws.String(k)
			}
		}
		res, err := clients(region).CopyImage(ctx, in)
		if err != nil {
			return out, fmt.Errorf("copy AMI %s from %s to %s: %w", srcID, srcRegion, region, err)
		}
		id := aws.ToString(res.ImageId)
		pending[region] = id
		order = append(order, region)
		if opts.OnCopy != nil {
			opts.OnCopy(region, id)
		}
	}
	for _, region := range order {
		id := pending[region]
		if err := waitAvailable(ctx, clients(region), id, opts); err != nil {
			return out, fmt.Errorf("wait for the copy %s of AMI %s in %s: %w", id, srcID, region, err)
		}
		out[region] = id
	}
	return out, nil
}

// clientToken makes a retried copy of the same digest to the same region
// idempotent.
func clientToken(digest, region string) string {
	t := "amibake-" + region + "-" + digest
	if len(t) > 64 {
		t = t[:64]
	}
	return t
}

func waitAvailable(ctx context.Context, client EC2, id string, opts CopyOptions) error {
	poll, limit := opts.Poll, opts.Timeout
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if limit <= 0 {
		limit = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil && !notFound(err) {
			return err
		}
		if err == nil && len(out.Images) == 1 {
			switch out.Images[0].State {
			case types.ImageStateAvailable:
				return nil
			case types.ImageStateFailed, types.ImageStateError, types.ImageStateInvalid, types.ImageStateDeregistered:
				reason := ""
				if sr := out.Images[0].StateReason; sr != nil {
					reason = ": " + aws.ToString(sr.Message)
				}
				return fmt.Errorf("the copy is %s%s", out.Images[0].State, reason)
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

func notFound(err error) bool {
	var ae interface{ ErrorCode() string }
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidAMIID.NotFound"
}
