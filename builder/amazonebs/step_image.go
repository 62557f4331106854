package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"

	"github.com/amibake/amibake/internal/ledger"
)

// imageTagSpecs are the TagSpecifications of a new AMI (CreateImage,
// CopyImage, RegisterImage): what Packer sends there, run_tags on the
// image and its snapshots unless skip_ami_run_tags, and amibake's own
// tags on the image only. tags, snapshot_tags and amibake's own snapshot
// tags come later by CreateTags (stepTagImage), as in Packer, so a
// template without run_tags needs no endpoint support for snapshot
// TagSpecifications (moto answers 500 for them).
func (s *State) imageTagSpecs() ([]types.TagSpecification, error) {
	c := s.Config
	runTags, err := s.renderTags("run_tags", c.Parsed.RunTags)
	if err != nil {
		return nil, err
	}
	return imageTagSpecs(s.ownTags(), runTags, c.SkipAMIRunTags), nil
}

// imageTagSpecs is the pure part of (*State).imageTagSpecs.
func imageTagSpecs(own, runTags map[string]string, skipRunTags bool) []types.TagSpecification {
	if skipRunTags {
		runTags = nil
	}
	image := map[string]string{}
	for k, v := range runTags {
		image[k] = v
	}
	for k, v := range own {
		image[k] = v
	}
	specs := []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(image)}}
	if len(runTags) > 0 {
		specs = append(specs, types.TagSpecification{ResourceType: types.ResourceTypeSnapshot, Tags: ec2Tags(runTags)})
	}
	return specs
}

// copyTagSpecs are CopyImage's TagSpecifications: amibake's own tags on
// the new AMI (for the ledger); the user's come from CopyImageTags, as in
// Packer, and tags/snapshot_tags by CreateTags afterwards.
func copyTagSpecs(own map[string]string) []types.TagSpecification {
	return []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(own)}}
}

// imageTagCalls are the CreateTags calls of one region's AMI, in Packer's
// order: tags on the AMI and its snapshots, then snapshot_tags on the
// snapshots (amibake adds its own tags to the snapshots in that call, so
// that `amibake cleanup` finds them).
func imageTagCalls(ami string, snaps []string, tags, snapTags, own map[string]string) []*ec2.CreateTagsInput {
	var calls []*ec2.CreateTagsInput
	if len(tags) > 0 {
		calls = append(calls, &ec2.CreateTagsInput{Resources: append([]string{ami}, snaps...), Tags: ec2Tags(tags)})
	}
	st := map[string]string{}
	for k, v := range snapTags {
		st[k] = v
	}
	for k, v := range own {
		st[k] = v
	}
	if len(snaps) > 0 && len(st) > 0 {
		calls = append(calls, &ec2.CreateTagsInput{Resources: append([]string(nil), snaps...), Tags: ec2Tags(st)})
	}
	return calls
}

// stepTagImage tags the AMI and its snapshots in every region, after the
// copies and the sharing, as Packer's StepCreateTags does.
type stepTagImage struct{}

func (stepTagImage) Name() string { return "tag AMI" }

func (stepTagImage) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.SkipCreateAMI || len(s.AMIs) == 0 {
		return nil
	}
	tags, err := s.renderTags("tags", c.Parsed.AMITags)
	if err != nil {
		return err
	}
	snapTags, err := s.renderTags("snapshot_tags", c.Parsed.SnapshotTags)
	if err != nil {
		return err
	}
	regions := make([]string, 0, len(s.AMIs))
	for r := range s.AMIs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	own := s.ownTags()
	for _, region := range regions {
		id, snaps := s.AMIs[region], s.Snapshots[region]
		if lines := tagImageLines(id, snaps, tags, snapTags); len(lines) > 0 {
			s.UI.Say(lines[0])
			for _, l := range lines[1:] {
				s.UI.Message(l)
			}
		}
		for _, sn := range snaps {
			s.born(sn) // just made: NotFound may mean not visible yet
		}
		var api createTagsAPI = s.ec2(region)
		for _, in := range imageTagCalls(id, snaps, tags, snapTags, own) {
			err := s.retryNotFound(ctx, "tag "+strings.Join(in.Resources, ", "), func(ctx context.Context) error {
				_, err := api.CreateTags(ctx, in)
				return err
			})
			if err != nil {
				return fmt.Errorf("tag %s in %s: %w", strings.Join(in.Resources, ", "), region, err)
			}
		}
	}
	return nil
}

// addingTagLines are Packer's `Adding tag: "K": "V"` lines for the
// user's tags (not amibake's own, such as the input digest), sorted.
func addingTagLines(m map[string]string) []string {
	var out []string
	for _, t := range ec2Tags(m) {
		if strings.HasPrefix(aws.ToString(t.Key), "amibake:") {
			continue
		}
		out = append(out, fmt.Sprintf("Adding tag: %q: %q", aws.ToString(t.Key), aws.ToString(t.Value)))
	}
	return out
}

// tagImageLines is what Packer's StepCreateTags prints for one region's
// AMI (nothing when there are no user tags): the first line is a step.
func tagImageLines(ami string, snaps []string, tags, snapTags map[string]string) []string {
	at, st := addingTagLines(tags), addingTagLines(snapTags)
	if len(at)+len(st) == 0 {
		return nil
	}
	out := []string{fmt.Sprintf("Adding tags to AMI (%s)...", ami)}
	for _, sn := range snaps {
		out = append(out, "Tagging snapshot: "+sn)
	}
	out = append(out, "Creating AMI tags")
	out = append(out, at...)
	out = append(out, "Creating snapshot tags")
	return append(out, st...)
}

func (stepTagImage) Cleanup(context.Context, *State) error { return nil }

// stepSkipNotices prints Packer's lines for its AMI steps that have nothing
// to do: deprecation without deprecate_at (stepShare sets it otherwise),
// and deregistration protection, which amibake refuses to build with.
type stepSkipNotices struct{}

func (stepSkipNotices) Name() string { return "skip notices" }

func (stepSkipNotices) Run(_ context.Context, s *State) error {
	if s.Config.SkipCreateAMI {
		return nil
	}
	if s.Config.Parsed.DeprecateAt == "" {
		s.UI.Say("Skipping Enable AMI deprecation...")
	}
	s.UI.Say("Skipping Enable AMI deregistration protection...")
	return nil
}

func (stepSkipNotices) Cleanup(context.Context, *State) error { return nil }

func (s *State) description() (string, error) {
	return s.render("ami_description", s.Config.AMIDescription)
}

// stepCreateImage creates the AMI from the stopped instance (CreateImage),
// or from snapshots of its volumes (ami_from_snapshot), and waits until it
// is available.
type stepCreateImage struct {
	entry string
	// unanswered is the name of an AMI whose CreateImage call ended
	// without saying whether it made the image.
	unanswered string
	// snaps are the snapshots ami_from_snapshot made; until an image
	// holds them, the cleanup deletes them itself.
	snaps []string
}

func (*stepCreateImage) Name() string { return "create AMI" }

func (st *stepCreateImage) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.SkipCreateAMI {
		s.UI.Say("Skipping AMI creation...")
		return nil
	}
	specs, err := s.imageTagSpecs()
	if err != nil {
		return err
	}
	desc, err := s.description()
	if err != nil {
		return err
	}
	api := s.ec2("")
	var id string
	if c.AMIFromSnapshot {
		id, err = st.fromSnapshots(ctx, s, api, specs, desc)
	} else {
		id, err = st.fromInstance(ctx, s, api, specs, desc)
	}
	if err != nil {
		return err
	}
	s.ImageID = id
	s.AMIs = map[string]string{s.Region: id}
	s.UI.Message("AMI: " + id)
	s.UI.Say("Waiting for AMI to become ready...")
	im, err := waitImage(ctx, s, s.Region, id)
	if err != nil {
		return err
	}
	s.Snapshots = map[string][]string{s.Region: imageSnapshots(im)}

	if c.EncryptBoot != nil && *c.EncryptBoot {
		if err := st.encrypt(ctx, s, id, desc); err != nil {
			return err
		}
	}
	if in := imdsSupportInput(c, s.ImageID); in != nil && !c.AMIFromSnapshot { // RegisterImage already set it
		if _, err := api.ModifyImageAttribute(ctx, in); err != nil {
			return fmt.Errorf("set imds_support on AMI %s: %w", s.ImageID, err)
		}
	}
	return nil
}

// fromInstance makes the AMI with CreateImage.
func (st *stepCreateImage) fromInstance(ctx context.Context, s *State, api createImageAPI, specs []types.TagSpecification, desc string) (string, error) {
	c := s.Config
	name := s.AMIName
	if c.EncryptBoot != nil && *c.EncryptBoot {
		// The encrypted copy takes the real name; names are unique.
		name = "amibake-unencrypted-" + uuid.NewString()
	}
	instanceID := aws.ToString(s.Instance.InstanceId)
	// Packer's lines; it prints the second even without run_tags.
	s.UI.Say(fmt.Sprintf("Creating AMI %s from instance %s", name, instanceID))
	s.UI.Say("Attaching run tags to AMI...")
	entry, err := s.intend(ledger.KindImage, s.Region, name)
	if err != nil {
		return "", fmt.Errorf("record the AMI in the run journal: %w", err)
	}
	out, err := api.CreateImage(ctx, createImageInput(c, instanceID, name, desc, specs))
	if err != nil {
		if maybeCreated(ctx, err) {
			st.unanswered = name // names are unique: prevalidation saw none
		}
		return "", fmt.Errorf("create AMI %q from instance %s: %w", name, instanceID, err)
	}
	id := aws.ToString(out.ImageId)
	s.born(id)
	st.entry = entry
	if err := s.created(entry, id); err != nil {
		return "", fmt.Errorf("record AMI %s in the run journal: %w", id, err)
	}
	return id, nil
}

// encrypt copies the AMI to an encrypted one in the same region and
// deregisters the unencrypted original (Packer's encrypt_boot).
func (st *stepCreateImage) encrypt(ctx context.Context, s *State, id, desc string) error {
	s.UI.Say(fmt.Sprintf("Copying AMI %s to an encrypted AMI...", id))
	token := uuid.NewString()
	entry, err := s.intend(ledger.KindImage, s.Region, token)
	if err != nil {
		return fmt.Errorf("record the encrypted AMI in the run journal: %w", err)
	}
	out, err := s.ec2("").CopyImage(ctx, copyImageInput(s.Config, imageCopy{
		SourceID: id, SourceRegion: s.Region, Region: s.Region,
		Name: s.AMIName, Description: desc, Token: token, Own: s.ownTags(),
	}))
	if err != nil {
		return fmt.Errorf("copy AMI %s to an encrypted AMI: %w", id, err)
	}
	encID := aws.ToString(out.ImageId)
	s.born(encID)
	_ = s.created(entry, encID)
	s.AMIs[s.Region] = encID
	s.ImageID = encID
	s.UI.Say("Waiting for the encrypted AMI to become ready...")
	im, err := waitImage(ctx, s, s.Region, encID)
	if err != nil {
		return err
	}
	s.UI.Say("Deregistering the unencrypted AMI " + id + "...")
	if err := deregister(ctx, s, s.Region, id, true); err != nil {
		return err
	}
	s.deleted(ledger.KindImage, s.Region, id)
	s.Snapshots[s.Region] = imageSnapshots(im)
	return nil
}

// fromSnapshots snapshots the stopped instance's EBS volumes and
// registers an AMI from them.
func (st *stepCreateImage) fromSnapshots(ctx context.Context, s *State, api createImageAPI, specs []types.TagSpecification, desc string) (string, error) {
	snaps, err := st.snapshotVolumes(ctx, s, api)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(snaps))
	for i, sn := range snaps {
		ids[i] = sn.SnapshotID
	}
	s.UI.Say("Waiting for the snapshots to complete...")
	if err := waitSnapshots(ctx, s, ids); err != nil {
		return "", err
	}
	reg := registerImageInput(s.Config, s.SourceImage, s.Instance.RootDeviceName, s.AMIName, desc, specs[0], snaps)
	s.UI.Say("Registering the AMI from snapshots: " + s.AMIName)
	entry, err := s.intend(ledger.KindImage, s.Region, s.AMIName)
	if err != nil {
		return "", fmt.Errorf("record the AMI in the run journal: %w", err)
	}
	out, err := api.RegisterImage(ctx, reg)
	if err != nil {
		return "", fmt.Errorf("register AMI %q from snapshots %s: %w", s.AMIName, strings.Join(ids, ", "), err)
	}
	st.entry = entry
	s.born(aws.ToString(out.ImageId))
	_ = s.created(entry, aws.ToString(out.ImageId))
	return aws.ToString(out.ImageId), nil
}

// snapshotVolumes snapshots every EBS volume of the stopped instance.
func (st *stepCreateImage) snapshotVolumes(ctx context.Context, s *State, api createImageAPI) ([]deviceSnapshot, error) {
	in := s.Instance
	// CreateSnapshot is amibake's own call (Packer has no
	// ami_from_snapshot): its snapshots carry amibake's tags and run_tags.
	runTags, err := s.renderTags("run_tags", s.Config.Parsed.RunTags)
	if err != nil {
		return nil, err
	}
	if s.Config.SkipAMIRunTags {
		runTags = nil
	}
	snapSpec := s.tagSpec(types.ResourceTypeSnapshot, runTags)
	var snaps []deviceSnapshot
	for _, m := range in.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.VolumeId == nil {
			continue
		}
		vol := aws.ToString(m.Ebs.VolumeId)
		dev := aws.ToString(m.DeviceName)
		s.UI.Say(fmt.Sprintf("Creating snapshot of %s (%s)...", dev, vol))
		entry, err := s.intend(ledger.KindSnapshot, s.Region, vol+"@"+s.RunID)
		if err != nil {
			return nil, fmt.Errorf("record the snapshot in the run journal: %w", err)
		}
		// The volume came with RunInstances moments ago: EC2 may not know
		// it yet (eventual consistency). A NotFound created nothing, so a
		// retry cannot make two snapshots.
		var out *ec2.CreateSnapshotOutput
		err = s.retryNotFound(ctx, "snapshot volume "+vol, func(ctx context.Context) error {
			var err error
			out, err = api.CreateSnapshot(ctx, createSnapshotInput(vol, dev, aws.ToString(in.InstanceId), s.AMIName, snapSpec))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("snapshot volume %s (%s): %w", vol, dev, err)
		}
		id := aws.ToString(out.SnapshotId)
		_ = s.created(entry, id)
		s.born(id)
		st.snaps = append(st.snaps, id)
		snaps = append(snaps, deviceSnapshot{Device: dev, SnapshotID: id})
	}
	if len(snaps) == 0 {
		return nil, fmt.Errorf("instance %s has no EBS volume to snapshot", aws.ToString(in.InstanceId))
	}
	return snaps, nil
}

// Cleanup deregisters what was produced when the build did not finish.
func (st *stepCreateImage) Cleanup(ctx context.Context, s *State) error {
	if s.Succeeded {
		return nil
	}
	if name := st.unanswered; name != "" {
		st.unanswered = ""
		ids, err := s.imagesNamed(ctx, s.Region, name)
		if err != nil {
			return fmt.Errorf("after an unanswered CreateImage: %w", err)
		}
		for _, id := range ids {
			s.born(id)
			s.UI.Say(fmt.Sprintf("Deregistering AMI %s, made by a CreateImage call that was cut short...", id))
			if err := deregister(ctx, s, s.Region, id, true); err != nil {
				return err
			}
			s.deleted(ledger.KindImage, s.Region, id)
		}
	}
	if len(s.AMIs) == 0 {
		// ami_from_snapshot failed before an image held its snapshots.
		var errs []error
		for _, id := range st.snaps {
			s.UI.Say("Deleting snapshot " + id + ", made for an AMI that was not registered...")
			err := s.deleteRetry(ctx, id, "delete snapshot "+id, func(ctx context.Context) error {
				_, err := s.ec2("").DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("delete snapshot %s: %w", id, err))
				continue
			}
			s.deleted(ledger.KindSnapshot, s.Region, id)
		}
		st.snaps = nil
		return errors.Join(errs...)
	}
	return deregisterAll(ctx, s)
}

func deregisterAll(ctx context.Context, s *State) error {
	var errs []error
	regions := make([]string, 0, len(s.AMIs))
	for r := range s.AMIs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		id := s.AMIs[r]
		s.UI.Say(fmt.Sprintf("Deregistering the AMI and deleting associated snapshots because of cancellation, or error... (%s: %s)", r, id))
		if err := deregister(ctx, s, r, id, true); err != nil {
			errs = append(errs, err)
			continue
		}
		s.deleted(ledger.KindImage, r, id)
		delete(s.AMIs, r)
	}
	return errors.Join(errs...)
}

func imageSnapshots(im *types.Image) []string {
	var out []string
	for _, b := range im.BlockDeviceMappings {
		if b.Ebs != nil && b.Ebs.SnapshotId != nil {
			out = append(out, aws.ToString(b.Ebs.SnapshotId))
		}
	}
	return out
}

// waitImage waits for an AMI to be available, telling the user the
// snapshots' progress and the time elapsed while it is pending.
func waitImage(ctx context.Context, s *State, region, id string) (*types.Image, error) {
	client := s.ec2(region)
	start := time.Now()
	var image *types.Image
	lastShown := ""
	err := s.Waits.poll(ctx, fmt.Sprintf("AMI %s in %s to become available", id, region), imageWaitLimit, func(ctx context.Context) (bool, error) {
		out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil {
			if apiCode(err) == "InvalidAMIID.NotFound" {
				return false, nil // not visible yet
			}
			return false, fmt.Errorf("describe AMI %s: %w", id, err)
		}
		if len(out.Images) == 0 {
			return false, nil
		}
		im := out.Images[0]
		switch im.State {
		case types.ImageStateAvailable:
			if err := s.journalSnapshots(region, imageSnapshots(&im)); err != nil {
				return false, err
			}
			image = &im
			return true, nil
		case types.ImageStateFailed, types.ImageStateError, types.ImageStateInvalid, types.ImageStateDeregistered:
			reason := ""
			if im.StateReason != nil {
				reason = ": " + aws.ToString(im.StateReason.Message)
			}
			return false, fmt.Errorf("AMI %s in %s is %s%s; amibake removes it: run the build again, and if the image fails again check the source AMI and the block device mappings", id, region, im.State, reason)
		}
		if snaps := imageSnapshots(&im); len(snaps) > 0 {
			// Journaled while pending: a run killed now leaves them to
			// `cleanup` by id.
			if err := s.journalSnapshots(region, snaps); err != nil {
				return false, err
			}
			if p := snapshotProgress(ctx, client, snaps); p != "" {
				line := fmt.Sprintf("AMI %s: snapshot progress %s (%s elapsed)", id, p, time.Since(start).Round(time.Second))
				if p != lastShown {
					s.UI.Message(line)
					lastShown = p
				}
			}
		}
		return false, nil
	})
	return image, err
}

// snapshotProgress returns "42%" (the least advanced snapshot) or "".
func snapshotProgress(ctx context.Context, client ec2.DescribeSnapshotsAPIClient, ids []string) string {
	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
	if err != nil || len(out.Snapshots) == 0 {
		return ""
	}
	low := ""
	lowN := 101
	for _, sn := range out.Snapshots {
		p := aws.ToString(sn.Progress)
		var n int
		if _, err := fmt.Sscanf(strings.TrimSuffix(p, "%"), "%d", &n); err == nil && n < lowN {
			lowN, low = n, fmt.Sprintf("%d%%", n)
		}
	}
	return low
}

// waitSnapshots waits for snapshots to complete, showing their progress.
func waitSnapshots(ctx context.Context, s *State, ids []string) error {
	client := s.ec2("")
	start := time.Now()
	last := ""
	return s.Waits.poll(ctx, "snapshots "+strings.Join(ids, ", ")+" to complete", imageWaitLimit, func(ctx context.Context) (bool, error) {
		out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids})
		if err != nil {
			if apiCode(err) == "InvalidSnapshot.NotFound" {
				return false, nil
			}
			return false, fmt.Errorf("describe snapshots %s: %w", strings.Join(ids, ", "), err)
		}
		done := len(out.Snapshots) == len(ids)
		lowN := 100
		for _, sn := range out.Snapshots {
			switch sn.State {
			case types.SnapshotStateError:
				return false, fmt.Errorf("snapshot %s failed: %s", aws.ToString(sn.SnapshotId), aws.ToString(sn.StateMessage))
			case types.SnapshotStateCompleted:
			default:
				done = false
			}
			var n int
			if _, err := fmt.Sscanf(strings.TrimSuffix(aws.ToString(sn.Progress), "%"), "%d", &n); err == nil && n < lowN {
				lowN = n
			}
		}
		if !done {
			p := fmt.Sprintf("%d%%", lowN)
			if p != last {
				s.UI.Message(fmt.Sprintf("Snapshot progress %s (%s elapsed)", p, time.Since(start).Round(time.Second)))
				last = p
			}
		}
		return done, nil
	})
}

// stepCopy copies the AMI to ami_regions, in parallel.
type stepCopy struct{}

func (stepCopy) Name() string { return "copy AMI to regions" }

func (stepCopy) Run(ctx context.Context, s *State) error {
	c := s.Config
	if c.SkipCreateAMI {
		return nil
	}
	var regions []string
	for _, r := range c.AMIRegions {
		if r != s.Region {
			regions = append(regions, r)
		}
	}
	if len(regions) == 0 {
		return nil
	}
	desc, err := s.description()
	if err != nil {
		return err
	}
	s.UI.Say(fmt.Sprintf("Copying/Encrypting AMI (%s) to other regions...", s.ImageID))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, region := range regions {
		s.UI.Message("Copying to: " + region)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, snaps, err := copyTo(ctx, s, region, desc)
			mu.Lock()
			defer mu.Unlock()
			if id != "" {
				s.AMIs[region] = id
				s.Snapshots[region] = snaps
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	s.UI.Message("Waiting for all copies to complete...")
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c.SkipSaveBuildRegion && !contains(c.AMIRegions, s.Region) {
		s.UI.Say("Deregistering the AMI in the build region because skip_save_build_region is set...")
		if err := deregister(ctx, s, s.Region, s.ImageID, true); err != nil {
			return err
		}
		s.deleted(ledger.KindImage, s.Region, s.ImageID)
		delete(s.AMIs, s.Region)
		delete(s.Snapshots, s.Region)
	}
	return nil
}

func (stepCopy) Cleanup(context.Context, *State) error { return nil }

func copyTo(ctx context.Context, s *State, region, desc string) (string, []string, error) {
	c := s.Config
	token := uuid.NewString()
	entry, err := s.intend(ledger.KindImage, region, token)
	if err != nil {
		return "", nil, fmt.Errorf("record the copy to %s in the run journal: %w", region, err)
	}
	in := copyImageInput(c, imageCopy{
		SourceID: s.ImageID, SourceRegion: s.Region, Region: region,
		Name: s.AMIName, Description: desc, Token: token, Own: s.ownTags(),
	})
	out, err := s.ec2(region).CopyImage(ctx, in)
	if err != nil {
		return "", nil, fmt.Errorf("copy AMI %s to %s: %w", s.ImageID, region, err)
	}
	id := aws.ToString(out.ImageId)
	s.born(id)
	_ = s.created(entry, id)
	im, err := waitImage(ctx, s, region, id)
	if err != nil {
		return id, nil, err
	}
	return id, imageSnapshots(im), nil
}

// stepShare grants launch and create-volume permissions (ami_users,
// ami_groups, ami_org_arns, ami_ou_arns, snapshot_users, snapshot_groups)
// and schedules deprecation (deprecate_at) in every region.
type stepShare struct{}

func (stepShare) Name() string { return "share AMI" }

func (stepShare) Run(ctx context.Context, s *State) error {
	if s.Config.SkipCreateAMI {
		return nil
	}
	regions := make([]string, 0, len(s.AMIs))
	for r := range s.AMIs {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, region := range regions {
		if err := shareIn(ctx, s, s.ec2(region), region); err != nil {
			return err
		}
	}
	return nil
}

// shareIn shares one region's AMI and snapshots and sets its deprecation.
func shareIn(ctx context.Context, s *State, api shareImageAPI, region string) error {
	c := s.Config
	id := s.AMIs[region]
	if in := launchPermissionInput(c, id); in != nil {
		s.UI.Say(fmt.Sprintf("Modifying attributes on AMI (%s)...", id))
		s.UI.Message("Modifying: launchPermission")
		if _, err := api.ModifyImageAttribute(ctx, in); err != nil {
			return fmt.Errorf("share AMI %s in %s: %w", id, region, err)
		}
	}
	for _, sn := range s.Snapshots[region] {
		in := createVolumePermissionInput(c, sn)
		if in == nil {
			break
		}
		s.UI.Say(fmt.Sprintf("Modifying attributes on snapshot (%s)...", sn))
		// A copied snapshot can be new enough to be unknown for a
		// moment (EC2's eventual consistency).
		err := s.retryNotFound(ctx, "snapshot "+sn+" to be visible", func(ctx context.Context) error {
			_, err := api.ModifySnapshotAttribute(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("share snapshot %s in %s: %w", sn, region, err)
		}
	}
	if in := deprecationInput(c, id); in != nil {
		s.UI.Say(fmt.Sprintf("Setting AMI (%s) deprecation to %s...", id, c.Parsed.DeprecateAt))
		if _, err := api.EnableImageDeprecation(ctx, in); err != nil {
			return fmt.Errorf("set deprecation of AMI %s in %s: %w", id, region, err)
		}
	}
	return nil
}

func (stepShare) Cleanup(context.Context, *State) error { return nil }

// stepFinish marks the build as successful, so that the cleanups keep
// the AMIs.
type stepFinish struct{}

func (stepFinish) Name() string { return "finish" }
func (stepFinish) Run(ctx context.Context, s *State) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("build cancelled: %w", context.Cause(ctx))
	}
	s.Succeeded = true
	return nil
}
func (stepFinish) Cleanup(context.Context, *State) error { return nil }
