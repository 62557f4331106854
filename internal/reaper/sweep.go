package reaper

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ledger"
)

// sweep is one region's cleanup.
type sweep struct {
	r      *Reaper
	c      EC2API
	region string
	sc     *scope
	rep    *Report

	instances, volumes, groups, keys, images, snapshots, templates []*found
	inLedger                                                       map[string]bool // ids the ledger names
	unmatched                                                      []ledger.Resource
	terminated                                                     map[string]bool // instances this sweep saw terminate
	notTerminated                                                  []string        // instances it failed to terminate
	adopted                                                        map[string]bool // snapshots this sweep journaled
}

func (s *sweep) tagFilter() types.Filter {
	if s.sc.runID != "" {
		return types.Filter{Name: aws.String("tag:" + ledger.TagRunID), Values: []string{escapeFilter(s.sc.runID)}}
	}
	return types.Filter{Name: aws.String("tag-key"), Values: []string{ledger.TagRunID}}
}

// queries returns the filter sets whose results, together, are the
// candidates of a kind: by tag, by the ledger's ids, by its tokens.
func (s *sweep) queries(kind ledger.Kind, idFilter, tokenFilter string) [][]types.Filter {
	qs := [][]types.Filter{{s.tagFilter()}}
	ids, tokens := s.sc.ledgerIDs(kind)
	if len(ids) > 0 && idFilter != "" {
		qs = append(qs, []types.Filter{{Name: aws.String(idFilter), Values: escapeAll(ids)}})
	}
	if len(tokens) > 0 && tokenFilter != "" {
		qs = append(qs, []types.Filter{{Name: aws.String(tokenFilter), Values: escapeAll(tokens)}})
	}
	return qs
}

func dedupe(fs []*found) []*found {
	seen := map[string]bool{}
	var out []*found
	for _, f := range fs {
		if !seen[f.id] {
			seen[f.id] = true
			out = append(out, f)
		}
	}
	return out
}

// tagLaunchTemplateID is the tag EC2 puts on every instance launched from
// a launch template: "Instances that are launched using a launch template
// are automatically assigned two tags with the keys
// aws:ec2launchtemplate:id and aws:ec2launchtemplate:version" (EC2 User
// Guide, "Launch EC2 instances using a launch template"). An instant
// fleet's instance is launched from one, and users cannot set aws: tags.
const tagLaunchTemplateID = "aws:ec2launchtemplate:id"

func (s *sweep) discover(ctx context.Context) error {
	var err error
	// Launch templates first: their ids find a spot build's instance.
	if s.templates, err = s.findLaunchTemplates(ctx); err != nil {
		return err
	}
	qs := s.queries(ledger.KindInstance, "instance-id", "client-token")
	if ids := s.fleetTemplates(); len(ids) > 0 {
		qs = append(qs, []types.Filter{s.tagFilter(), {Name: aws.String("tag:" + tagLaunchTemplateID), Values: escapeAll(ids)}})
	}
	if s.instances, err = s.findInstances(ctx, qs); err != nil {
		return err
	}
	if s.volumes, err = s.findVolumes(ctx); err != nil {
		return err
	}
	if s.groups, err = s.findGroups(ctx); err != nil {
		return err
	}
	if s.keys, err = s.findKeyPairs(ctx); err != nil {
		return err
	}
	if s.images, err = s.findImages(ctx); err != nil {
		return err
	}
	if s.snapshots, err = s.findSnapshots(ctx, s.queries(ledger.KindSnapshot, "snapshot-id", "")); err != nil {
		return err
	}
	s.inLedger = map[string]bool{}
	orphans, err := s.orphanSnapshots(ctx)
	if err != nil {
		return err
	}
	s.snapshots = dedupe(append(s.snapshots, orphans...))
	s.unmatched = nil
	s.sc.runLease = s.runLeases()
	for kind, fs := range map[ledger.Kind][]*found{
		ledger.KindInstance: s.instances, ledger.KindVolume: s.volumes, ledger.KindSecurityGroup: s.groups,
		ledger.KindKeyPair: s.keys, ledger.KindImage: s.images, ledger.KindSnapshot: s.snapshots,
		ledger.KindLaunchTemplate: s.templates,
	} {
		matched, unmatched := s.sc.matchLedger(kind, fs)
		for _, f := range matched {
			s.inLedger[f.id] = true
		}
		s.unmatched = append(s.unmatched, unmatched...)
	}
	return nil
}

// fleetTemplates fills sc.fleetTemplates, by build, with the ids of the
// launch templates the run journaled here (by id, or by a name a template
// found now carries) when an instance intent of the build is unanswered,
// and returns them all, sorted.
func (s *sweep) fleetTemplates() []string {
	s.sc.fleetTemplates = map[string]map[string]bool{}
	waiting := map[string]bool{}
	for _, res := range s.sc.ledger {
		if res.Kind == ledger.KindInstance && res.ID == "" && res.Token != "" {
			waiting[res.Build] = true
		}
	}
	var all []string
	for _, res := range s.sc.templates {
		if !waiting[res.Build] {
			continue
		}
		id := res.ID
		if id == "" {
			for _, f := range s.templates {
				if f.name == res.Token && f.tags[ledger.TagRunID] == s.sc.runID {
					id = f.id
				}
			}
		}
		if id == "" {
			continue
		}
		if s.sc.fleetTemplates[res.Build] == nil {
			s.sc.fleetTemplates[res.Build] = map[string]bool{}
		}
		if !s.sc.fleetTemplates[res.Build][id] {
			s.sc.fleetTemplates[res.Build][id] = true
			all = append(all, id)
		}
	}
	sort.Strings(all)
	return all
}

// runLeases returns, per run, the latest amibake:lease-until on its
// resources that still exist here. A run's keeper pushes the lease on all
// of them at once, so a run whose leases have all run out is dead: even
// its resources that never got a lease of their own (made after the last
// refresh, or never journaled) are then its leftovers.
func (s *sweep) runLeases() map[string]time.Time {
	out := map[string]time.Time{}
	for _, fs := range [][]*found{s.instances, s.volumes, s.groups, s.keys, s.images, s.snapshots, s.templates} {
		for _, f := range fs {
			switch f.state {
			case string(types.InstanceStateNameTerminated), string(types.VolumeStateDeleted), string(types.ImageStateDeregistered):
				continue
			}
			rid, v := f.tags[ledger.TagRunID], f.tags[ledger.TagLeaseUntil]
			if rid == "" || v == "" {
				continue
			}
			if until, err := ledger.ParseCreatedAt(v); err == nil && until.After(out[rid]) {
				out[rid] = until
			}
		}
	}
	return out
}

// youngestUnaccounted returns the intent time of the youngest ledger
// entry not found that eventual consistency may still be hiding.
func (s *sweep) youngestUnaccounted() time.Time {
	var young time.Time
	horizon := s.r.opt.Now().Add(-s.r.opt.Settle)
	for _, res := range s.unmatched {
		if res.Intended.After(horizon) && res.Intended.After(young) {
			young = res.Intended
		}
	}
	return young
}

// unaccountedList names the ledger entries not found yet that eventual
// consistency may still be hiding, for a progress message.
func (s *sweep) unaccountedList() string {
	horizon := s.r.opt.Now().Add(-s.r.opt.Settle)
	var names []string
	for _, res := range s.unmatched {
		if !res.Intended.After(horizon) {
			continue
		}
		name := res.ID
		if name == "" {
			name = res.Token
		}
		names = append(names, string(res.Kind)+" "+name)
	}
	if len(names) > 3 {
		names = append(names[:3], fmt.Sprintf("%d more", len(names)-3))
	}
	return strings.Join(names, ", ")
}

// accountUnmatched settles the ledger entries nothing was found for: an
// id that is gone, or a create call that never created anything.
func (s *sweep) accountUnmatched() {
	for _, res := range s.unmatched {
		it := Item{Run: s.sc.runID, Region: s.region, Kind: res.Kind, ID: res.ID, Name: res.Token, Outcome: AlreadyGone}
		if res.ID == "" {
			it.Detail = "the create call created nothing"
		}
		s.rep.add(it)
		if s.sc.j == nil {
			continue
		}
		if res.ID == "" {
			_ = s.sc.j.Resolved(res.Entry)
		} else {
			_ = s.sc.j.Deleted(res.Kind, s.region, res.ID)
		}
	}
}

// item reports f; ineligible resources are reported as skipped and the
// second result is false.
func (s *sweep) item(f *found) (*Item, bool) {
	it := &Item{Run: f.tags[ledger.TagRunID], Region: s.region, Kind: f.kind, ID: f.id, Name: f.name}
	if it.Run == "" {
		it.Run = s.sc.runID
	}
	if ok, why := s.sc.eligible(f); !ok {
		it.Outcome, it.Detail = Skipped, why
		s.rep.add(*it)
		return nil, false
	}
	return it, true
}

func (s *sweep) done(it *Item, err error, what string) {
	switch {
	case err == nil && s.r.opt.DryRun:
		it.Outcome = WouldRemove
	case err == nil:
		it.Outcome = Removed
	case isGone(err):
		it.Outcome = AlreadyGone
	default:
		it.Outcome, it.Err = Failed, fmt.Errorf("%s %s in %s: %w", what, it.ID, s.region, err)
		it.Detail = err.Error()
	}
	s.rep.add(*it)
	if s.sc.j != nil && (it.Outcome == Removed || it.Outcome == AlreadyGone) {
		_ = s.sc.j.Deleted(it.Kind, s.region, it.ID)
		if it.Name != "" && it.Name != it.ID {
			// The ledger may know a key pair by its name.
			_ = s.sc.j.Deleted(it.Kind, s.region, it.Name)
		}
	}
}

// Instances: terminate, then wait until they are terminated, so that
// their volumes, groups and key pairs can go.
func (s *sweep) removeInstances(ctx context.Context) {
	var act []*Item
	var terminate, wait []string
	s.terminated = map[string]bool{}
	for _, f := range s.instances {
		if f.state == string(types.InstanceStateNameTerminated) {
			s.terminated[f.id] = true
			if s.inLedger[f.id] {
				s.done(&Item{Run: s.sc.runID, Region: s.region, Kind: f.kind, ID: f.id}, notFound, "")
			}
			continue
		}
		it, ok := s.item(f)
		if !ok {
			continue
		}
		act = append(act, it)
		wait = append(wait, f.id)
		if f.state != string(types.InstanceStateNameShuttingDown) {
			terminate = append(terminate, f.id)
		}
	}
	if len(act) == 0 {
		return
	}
	if s.r.opt.DryRun {
		for _, it := range act {
			s.done(it, nil, "")
		}
		return
	}
	errs := map[string]error{}
	if len(terminate) > 0 {
		_, err := s.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: terminate})
		if err != nil {
			// One id that is gone fails the whole call: go one by one.
			for _, id := range terminate {
				if _, err := s.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil && !isGone(err) {
					errs[id] = fmt.Errorf("terminate: %w", err)
				}
			}
		}
	}
	var waitFor []string
	for _, id := range wait {
		if errs[id] == nil {
			waitFor = append(waitFor, id)
		}
	}
	if err := s.waitTerminated(ctx, waitFor); err != nil {
		for _, id := range waitFor {
			errs[id] = err
		}
	}
	for _, it := range act {
		s.done(it, errs[it.ID], "terminate instance")
		if errs[it.ID] == nil {
			s.terminated[it.ID] = true
		} else {
			s.notTerminated = append(s.notTerminated, it.ID)
		}
	}
}

var notFound = &apiError{code: "NotFound"}

type apiError struct{ code string }

func (e *apiError) Error() string                 { return e.code }
func (e *apiError) ErrorCode() string             { return e.code }
func (e *apiError) ErrorMessage() string          { return e.code }
func (e *apiError) ErrorFault() smithy.ErrorFault { return smithy.FaultUnknown }

func (s *sweep) waitTerminated(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	deadline := s.r.opt.Now().Add(s.r.opt.WaitTimeout)
	delay := s.r.opt.Poll
	for {
		fs, err := s.findInstances(ctx, [][]types.Filter{{{Name: aws.String("instance-id"), Values: ids}}})
		if err != nil {
			return fmt.Errorf("wait for instances to terminate: %w", err)
		}
		var pending []string
		for _, f := range fs {
			if f.state != string(types.InstanceStateNameTerminated) {
				pending = append(pending, f.id+" ("+f.state+")")
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if s.r.opt.Now().Add(delay).After(deadline) {
			return fmt.Errorf("waited %s for instances to terminate, still: %v", s.r.opt.WaitTimeout, pending)
		}
		s.r.opt.Progress(fmt.Sprintf("waiting for instances to terminate in %s: %s (%s so far)", s.region, strings.Join(pending, ", "),
			s.r.opt.WaitTimeout-deadline.Sub(s.r.opt.Now()).Round(time.Second)))
		if err := sleep(ctx, delay); err != nil {
			return fmt.Errorf("wait for instances %v to terminate: %w", pending, err)
		}
		delay = min(delay*2, 15*time.Second)
	}
}

func (s *sweep) removeVolumes(ctx context.Context) {
	if !s.r.opt.DryRun {
		// Terminating instances deleted or detached their volumes.
		before := s.volumes
		var err error
		if s.volumes, err = s.findVolumes(ctx); err != nil {
			s.rep.add(Item{Run: s.sc.runID, Region: s.region, Kind: ledger.KindVolume, Outcome: Failed, Err: err, Detail: err.Error()})
			return
		}
		now := map[string]bool{}
		for _, f := range s.volumes {
			now[f.id] = true
		}
		for _, f := range before {
			if !now[f.id] && s.inLedger[f.id] {
				s.done(&Item{Run: s.sc.runID, Region: s.region, Kind: f.kind, ID: f.id}, notFound, "")
			}
		}
	}
	for _, f := range s.volumes {
		if f.state == string(types.VolumeStateDeleting) || f.state == string(types.VolumeStateDeleted) {
			continue
		}
		it, ok := s.item(f)
		if !ok {
			continue
		}
		if s.r.opt.DryRun {
			s.done(it, nil, "")
			continue
		}
		if other := s.attachedElsewhere(f); other != "" {
			it.Outcome, it.Detail = Skipped, "attached to instance "+other+", which this cleanup did not terminate"
			s.rep.add(*it)
			continue
		}
		err := s.r.retryBusy(ctx, "delete volume "+f.id, func(ctx context.Context) error {
			_, err := s.c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(f.id)})
			return err
		})
		s.done(it, err, "delete volume")
	}
}

func (s *sweep) attachedElsewhere(f *found) string {
	for _, id := range f.attached {
		if !s.terminated[id] {
			return id
		}
	}
	return ""
}

func (s *sweep) removeGroups(ctx context.Context) {
	for _, f := range s.groups {
		it, ok := s.item(f)
		if !ok {
			continue
		}
		if s.r.opt.DryRun {
			s.done(it, nil, "")
			continue
		}
		del := func(ctx context.Context) error {
			_, err := s.c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(f.id)})
			return err
		}
		var err error
		if len(s.notTerminated) > 0 {
			// An instance this sweep could not terminate may hold the
			// group: waiting would wait for what cannot happen.
			if err = del(ctx); err != nil && isBusy(err) {
				err = fmt.Errorf("%w; instance(s) %s could not be terminated and may hold it: run the same cleanup again once they can be", err, strings.Join(s.notTerminated, ", "))
			}
		} else {
			// An instance's network interface holds its group for a while
			// after the instance is gone: DependencyViolation until then.
			err = s.r.retryBusy(ctx, "delete security group "+f.id, del)
		}
		s.done(it, err, "delete security group")
	}
}

// removeEach removes each eligible resource of fs with one delete call,
// for kinds nothing else holds.
func (s *sweep) removeEach(ctx context.Context, fs []*found, what string, del func(context.Context, *found) error) {
	for _, f := range fs {
		it, ok := s.item(f)
		if !ok {
			continue
		}
		if s.r.opt.DryRun {
			s.done(it, nil, "")
			continue
		}
		s.done(it, del(ctx, f), what)
	}
}

func (s *sweep) removeKeyPairs(ctx context.Context) {
	s.removeEach(ctx, s.keys, "delete key pair", func(ctx context.Context, f *found) error {
		in := &ec2.DeleteKeyPairInput{KeyPairId: aws.String(f.id)}
		if f.id == "" {
			in = &ec2.DeleteKeyPairInput{KeyName: aws.String(f.name)}
		}
		_, err := s.c.DeleteKeyPair(ctx, in)
		return err
	})
}

// Launch templates: a spot build's instant fleet needs its template only
// for the CreateFleet call; an instant fleet itself keeps nothing running
// that its instance's termination does not end (EC2 places a one-time
// request), so the template is all a killed spot build leaves besides the
// usual resources.
func (s *sweep) removeLaunchTemplates(ctx context.Context) {
	s.removeEach(ctx, s.templates, "delete launch template", func(ctx context.Context, f *found) error {
		_, err := s.c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(f.id)})
		return err
	})
}

// Images: what a run made is an artifact only if the run says so
// (scope.imagesAreArtifacts). Any other image goes, whatever its state
// (a pending one is waited for first), and its snapshots with it, unless
// KeepFailedImages keeps it for a look.
func (s *sweep) removeImages(ctx context.Context) {
	handled := map[string]bool{}
	for _, f := range s.images {
		if f.state == string(types.ImageStateDeregistered) {
			continue
		}
		if (f.state == string(types.ImageStateAvailable) || f.state == "disabled") && s.sc.imagesAreArtifacts(f) {
			if s.inLedger[f.id] {
				s.rep.add(Item{Run: s.sc.runID, Region: s.region, Kind: f.kind, ID: f.id, Name: f.name, Outcome: Kept, Detail: "available AMI of a successful run"})
				if s.sc.j != nil {
					_ = s.sc.j.Kept(f.kind, s.region, f.id)
				}
			}
			for _, snap := range f.snapshots {
				handled[snap] = true
			}
			continue
		}
		it, ok := s.item(f)
		if !ok {
			for _, snap := range f.snapshots {
				handled[snap] = true
			}
			continue
		}
		if s.r.opt.KeepFailedImages {
			it.Outcome, it.Detail = Skipped, f.state+" image of a run that did not succeed, kept by --keep-failed-images"
			s.rep.add(*it)
			for _, snap := range f.snapshots {
				handled[snap] = true
			}
			continue
		}
		var err error
		if !s.r.opt.DryRun {
			if f.state == string(types.ImageStatePending) {
				// Deregistering a pending image can leave its snapshot
				// being made: wait until EC2 is done with it.
				if f, err = s.waitImage(ctx, f); err == nil && f == nil {
					s.done(it, notFound, "")
					continue
				}
			}
			if err == nil {
				s.adoptSnapshots(ctx, f)
				_, err = s.c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(it.ID)})
			}
		}
		s.done(it, err, "deregister image")
		if err != nil && !isGone(err) {
			continue
		}
		if f != nil {
			for _, snap := range f.snapshots {
				handled[snap] = true
				s.removeSnapshot(ctx, snap, nil, f)
			}
		}
	}
	for _, f := range s.snapshots {
		if handled[f.id] {
			continue
		}
		s.removeSnapshot(ctx, f.id, f, nil)
	}
}

// adoptSnapshots makes the snapshots of an image about to be deregistered
// findable without it: once the image is gone they are the only trace, and
// a snapshot made by CreateImage carries amibake's tags only once its AMI
// became available. It records them in the run's journal (ledger mode) and
// gives the untagged ones the image's amibake tags, so that a cleanup cut
// short between DeregisterImage and DeleteSnapshot leaves them findable.
func (s *sweep) adoptSnapshots(ctx context.Context, image *found) {
	var untagged []string
	for _, id := range image.snapshots {
		if f := s.snapshotFound(id); f == nil || f.tags[ledger.TagRunID] == "" {
			untagged = append(untagged, id)
		}
	}
	// CreateImage made them with the image.
	s.adopt(ctx, image.snapshots, untagged, image.tags, image.created)
}

// adopt journals snapshots (ledger mode) and gives the untagged ones
// amibake's tags from tags (their image's, or the run's); created is when
// they were made, as far as the caller knows (zero: not known).
func (s *sweep) adopt(ctx context.Context, ids, untagged []string, tags map[string]string, created time.Time) {
	for _, id := range ids {
		if s.sc.j != nil && !s.inLedger[id] && !s.adopted[id] {
			rec := s.sc.j.ForBuildAt(tags[ledger.TagBuild], s.sc.recorded)
			if e, err := rec.Intend(ledger.KindSnapshot, s.region, id); err == nil {
				_ = rec.Created(e, id)
				if s.adopted == nil {
					s.adopted = map[string]bool{}
				}
				s.adopted[id] = true
			}
		}
	}
	var ts []types.Tag
	for _, k := range []string{ledger.TagRunID, ledger.TagBuild, ledger.TagCreatedAt, ledger.TagLeaseUntil} {
		if v, ok := tags[k]; ok {
			ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
	}
	if len(untagged) == 0 || len(ts) == 0 {
		return
	}
	// A snapshot made moments ago (an image found as soon as it showed
	// up) may not be known to CreateTags yet: InvalidSnapshot.NotFound.
	what := "tag snapshots " + strings.Join(untagged, ", ") + " in " + s.region
	if err := s.r.retryNotFound(ctx, what, created, func(ctx context.Context) error {
		_, err := s.c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: untagged, Tags: ts})
		return err
	}); err != nil {
		s.r.opt.Log.Debug("reaper: tag snapshots that only their image tied to the run", "snapshots", untagged, "err", err)
	}
}

// orphanSnapshots finds the snapshots of the run's journaled AMIs that no
// longer have their image (deregistered by a build or cleanup that was
// stopped, or failed, before it deleted them): EC2 names the AMI in the
// description of the snapshots CreateImage and CopyImage make, and they
// carry no tags of their own when the AMI never became available. They
// are the run's: ledger mode only, and not for the AMIs it keeps.
func (s *sweep) orphanSnapshots(ctx context.Context) ([]*found, error) {
	if !s.sc.fromLedger {
		return nil, nil
	}
	var patterns []string
	build := ""
	for _, res := range s.sc.ledger {
		if res.Kind != ledger.KindImage || !strings.HasPrefix(res.ID, "ami-") || s.sc.kept[res.ID] {
			continue
		}
		build = res.Build
		id := escapeFilter(res.ID)
		patterns = append(patterns, "Created by CreateImage(*) for "+id, "Created by CreateImage(*) for "+id+" *", "Copied for DestinationAmi "+id+" *")
	}
	if len(patterns) == 0 {
		return nil, nil
	}
	fs, err := s.findSnapshots(ctx, [][]types.Filter{{{Name: aws.String("description"), Values: patterns}}})
	if err != nil {
		return nil, err
	}
	var out []*found
	for _, f := range fs {
		if rid := f.tags[ledger.TagRunID]; rid != "" && rid != s.sc.runID {
			continue // someone else's, whatever its description says
		}
		if f.tags[ledger.TagRunID] == "" {
			f.tags = map[string]string{ledger.TagRunID: s.sc.runID, ledger.TagBuild: build}
			if !s.r.opt.DryRun {
				s.adopt(ctx, []string{f.id}, []string{f.id}, f.tags, f.created)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func (s *sweep) snapshotFound(id string) *found {
	for _, f := range s.snapshots {
		if f.id == id {
			return f
		}
	}
	return nil
}

// waitImage waits, up to WaitTimeout, for a pending image to be
// available or failed, saying what it waits for; nil when it is gone.
func (s *sweep) waitImage(ctx context.Context, f *found) (*found, error) {
	start := s.r.opt.Now()
	delay := s.r.opt.Poll
	for {
		s.r.opt.Progress(fmt.Sprintf("waiting for image %s of run %s in %s to leave the pending state before removing it (%s so far)",
			f.id, f.tags[ledger.TagRunID], s.region, s.r.opt.Now().Sub(start).Round(time.Second)))
		if err := sleep(ctx, delay); err != nil {
			return f, fmt.Errorf("wait for pending image %s: %w", f.id, err)
		}
		fs, err := s.imagesByID(ctx, f.id)
		if err != nil {
			return f, err
		}
		if len(fs) == 0 {
			return nil, nil
		}
		if fs[0].state != string(types.ImageStatePending) {
			return fs[0], nil
		}
		f = fs[0]
		if s.r.opt.Now().Sub(start) > s.r.opt.WaitTimeout {
			return f, fmt.Errorf("image %s still pending after %s; run the same cleanup again later", f.id, s.r.opt.WaitTimeout)
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// removeSnapshot deletes a tagged snapshot that no remaining image uses.
// image, when set, is the run's image the snapshot was made for: as in
// Packer, a snapshot gets its tags by CreateTags once the AMI is
// available, so the snapshot of an image that never got there has none of
// its own and belongs to the run through its image.
func (s *sweep) removeSnapshot(ctx context.Context, id string, f, image *found) {
	if f == nil {
		fs, err := s.findSnapshots(ctx, [][]types.Filter{{{Name: aws.String("snapshot-id"), Values: []string{id}}}})
		if err != nil {
			s.rep.add(Item{Run: s.sc.runID, Region: s.region, Kind: ledger.KindSnapshot, ID: id, Outcome: Failed, Err: err, Detail: err.Error()})
			return
		}
		if len(fs) == 0 {
			return
		}
		f = fs[0]
	}
	if image != nil && f.tags[ledger.TagRunID] == "" {
		adopted := *f
		adopted.tags = maps.Clone(image.tags)
		f = &adopted
	}
	if s.sc.kept[id] {
		return // an artifact's snapshot
	}
	it, ok := s.item(f)
	if !ok {
		return
	}
	if s.r.opt.KeepFailedImages {
		it.Outcome, it.Detail = Skipped, "snapshot of a run that did not succeed, kept by --keep-failed-images"
		s.rep.add(*it)
		return
	}
	if !s.r.opt.DryRun {
		out, err := s.c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("block-device-mapping.snapshot-id"), Values: []string{id}}}})
		if err != nil {
			s.done(it, err, "find images of snapshot")
			return
		}
		for _, img := range out.Images {
			if img.State != types.ImageStateDeregistered {
				it.Outcome, it.Detail = Kept, "used by image "+aws.ToString(img.ImageId)
				s.rep.add(*it)
				return
			}
		}
	}
	var err error
	if !s.r.opt.DryRun {
		err = s.r.retryBusy(ctx, "delete snapshot "+id, func(ctx context.Context) error {
			_, err := s.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
			return err
		})
	}
	s.done(it, err, "delete snapshot")
}
