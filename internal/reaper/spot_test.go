package reaper

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
)

// launchTemplate creates a launch template the way a spot build does, with
// amibake's tags in the create call (or none, for tags == nil).
func (f fixture) launchTemplate(name string, tags map[string]string) string {
	f.t.Helper()
	out, err := f.c.CreateLaunchTemplate(f.ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(f.sourceAMI())},
		TagSpecifications:  tagSpec(types.ResourceTypeLaunchTemplate, tags)})
	if err != nil {
		f.t.Fatalf("CreateLaunchTemplate: %v", err)
	}
	// It stands for a template made some time before: listed by now.
	id := aws.ToString(out.LaunchTemplate.LaunchTemplateId)
	simtest.Visible(f.ctx, f.t, f.c, id)
	return id
}

// spotJournal opens the journal of a spot build's run in dir.
func spotJournal(t *testing.T, dir, run string) (*ledger.Journal, ledger.Recorder) {
	t.Helper()
	j, err := ledger.Open(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	j.Start("spot.pkr.hcl")
	return j, j.ForBuild("amazon-ebs.spot")
}

func withLease(tags map[string]string, until time.Time) map[string]string {
	tags[ledger.TagLeaseUntil] = ledger.CreatedAt(until)
	return tags
}

// A killed spot build's launch template goes with the rest of its run,
// whether the journal names it (by name before the create call, by id
// after) or only its tags do; another run's and an untagged one stay.
func TestLaunchTemplatesFromTheLedger(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dir := t.TempDir()
	const run = "run-spot"
	tags := tagsFor(run, time.Now())
	j, rec := spotJournal(t, dir, run)
	e, _ := rec.Intend(ledger.KindSecurityGroup, region, run)
	sg := f.group(run, tags)
	rec.Created(e, sg)
	// Journaled with its id; journaled by name only (the response was
	// lost); not journaled at all (what the builder does today).
	e, _ = rec.Intend(ledger.KindLaunchTemplate, region, "amibake_lt-id")
	rec.Created(e, f.launchTemplate("amibake_lt-id", tags))
	rec.Intend(ledger.KindLaunchTemplate, region, "amibake_lt-name")
	f.launchTemplate("amibake_lt-name", tags)
	f.launchTemplate("amibake_lt-tags", tags)
	// Journaled, but its create call never created it.
	rec.Intend(ledger.KindLaunchTemplate, region, "amibake_lt-never")
	rec.Intend(ledger.KindInstance, region, "tok-spot")
	f.instance("tok-spot", tags, sg)
	other := f.launchTemplate("amibake_other-run", tagsFor("run-other", time.Now()))
	users := f.launchTemplate("users-own", nil)
	j.Close()
	if n := len(inventory(srv, region).LaunchTemplates); n != 5 {
		t.Fatalf("fixture: %d launch templates", n)
	}

	dry, err := New(Options{Clients: simClients(srv.URL()), DryRun: true}).Run(ctx, dir, run)
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(dry, ledger.KindLaunchTemplate, WouldRemove); n != 3 {
		t.Errorf("dry run would remove %d launch templates, want 3:\n%s", n, dry)
	}
	rep, err := New(fastOpts(srv.URL())).All(ctx, dir)
	if err != nil || rep.Err() != nil {
		t.Fatalf("All: %v %v\n%s", err, rep.Err(), rep)
	}
	t.Logf("report:\n%s", rep)
	inv := inventory(srv, region)
	if want := []string{other, users}; !sameSet(inv.LaunchTemplates, want) {
		t.Errorf("launch templates left: %v, want only %v", inv.LaunchTemplates, want)
	}
	if len(inv.Instances)+len(inv.SecurityGroups)+len(inv.Volumes) != 0 {
		t.Errorf("left: %+v", inv)
	}
	if n := countKind(rep, ledger.KindLaunchTemplate, Removed); n != 3 {
		t.Errorf("%d launch templates removed, want 3:\n%s", n, rep)
	}
	r, _ := ledger.Read(dir, run)
	if left := r.Left(); len(left) != 0 || !r.Swept {
		t.Errorf("ledger: swept %v, left %+v", r.Swept, left)
	}
	rep, err = New(fastOpts(srv.URL())).Run(ctx, dir, run)
	if err != nil || rep.Count(Removed)+rep.Count(Failed) != 0 {
		t.Errorf("second cleanup: %v\n%s", err, rep)
	}
}

// A launch template journaled by id that a Describe no longer finds is
// gone; one the Describe cannot reach stays in the ledger.
func TestLaunchTemplateGoneOnlyWithProof(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	for _, tt := range []struct {
		name     string
		describe error // what DescribeLaunchTemplates by id answers
		want     Outcome
		swept    bool
	}{
		{"describe says not found", nil, AlreadyGone, true},
		{"describe fails", &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "no"}, Failed, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := ledger.Open(dir, "run-lt")
			j.Start("t")
			rec := j.ForBuild("amazon-ebs.spot")
			e, _ := rec.Intend(ledger.KindLaunchTemplate, region, "amibake_gone")
			id := f.launchTemplate("amibake_gone-"+strings.ReplaceAll(tt.name, " ", "-"), tagsFor("run-lt", time.Now()))
			rec.Created(e, id)
			j.Close()
			if _, err := f.c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
			opts := fastOpts(srv.URL())
			opts.Clients = func(ledger.Location, string) (EC2API, error) {
				return &ltDescribeEC2{EC2API: simClient(srv.URL(), region), err: tt.describe}, nil
			}
			rep, err := New(opts).All(ctx, dir)
			if got := itemOf(rep, id); got == nil && tt.want != Failed || got != nil && got.Outcome != tt.want {
				t.Errorf("outcome of %s: %+v, want %s\n%s", id, got, tt.want, rep)
			}
			if failed := err != nil || rep.Err() != nil; failed != (tt.want == Failed) {
				t.Errorf("error %v %v, want one: %v\n%s", err, rep.Err(), tt.want == Failed, rep)
			}
			r, _ := ledger.Read(dir, "run-lt")
			if r.Swept != tt.swept || (len(r.Left()) == 0) != tt.swept {
				t.Errorf("swept %v, left %+v; want swept %v", r.Swept, r.Left(), tt.swept)
			}
		})
	}
}

// ltDescribeEC2 fails DescribeLaunchTemplates with err, when set.
type ltDescribeEC2 struct {
	EC2API
	err error
}

func (c *ltDescribeEC2) DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, o ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.EC2API.DescribeLaunchTemplates(ctx, in, o...)
}

// `cleanup --tagged` on another runner: a launch template carries no
// lease of its own (the builder does not journal it, so its keeper never
// pushes one), so its run's other resources speak for it. A run whose
// leases have all lapsed is dead; one with a live lease anywhere is alive;
// a run without any lease is judged by age (DefaultLease).
func TestTaggedLaunchTemplatesFollowTheirRunsLease(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	now := time.Now()
	made := now.Add(-time.Minute) // older than --older-than, younger than DefaultLease
	type want struct{ lt, kp bool }
	cases := []struct {
		run   string
		lease time.Time // on the key pair; zero: none
		stays want
	}{
		{"run-dead", now.Add(-10 * time.Second), want{false, false}},
		{"run-alive", now.Add(time.Minute), want{true, true}},
		{"run-unleased", time.Time{}, want{true, true}},
	}
	lts := map[string]string{}
	for _, c := range cases {
		kt := tagsFor(c.run, made)
		if !c.lease.IsZero() {
			kt = withLease(kt, c.lease)
		}
		f.keyPair("kp-"+c.run, kt)
		lts[c.run] = f.launchTemplate("amibake_"+c.run, tagsFor(c.run, made))
	}
	rep, err := New(fastOpts(srv.URL())).Tagged(ctx, []string{region}, 30*time.Second, "")
	if err != nil || rep.Err() != nil {
		t.Fatalf("Tagged: %v %v\n%s", err, rep.Err(), rep)
	}
	t.Logf("report:\n%s", rep)
	inv := inventory(srv, region)
	for _, c := range cases {
		if got := slices.Contains(inv.LaunchTemplates, lts[c.run]); got != c.stays.lt {
			t.Errorf("%s: launch template stays = %v, want %v", c.run, got, c.stays.lt)
		}
		if got := slices.Contains(inv.KeyPairs, "kp-"+c.run); got != c.stays.kp {
			t.Errorf("%s: key pair stays = %v, want %v", c.run, got, c.stays.kp)
		}
	}
	if it := itemOf(rep, lts["run-alive"]); it == nil || !strings.Contains(it.Detail, "on another of its resources") {
		t.Errorf("the live run's launch template: %+v", it)
	}
}

// A cleanup cut short between DeregisterImage and DeleteSnapshot: the
// snapshot of an image that never became available has no tags of its own
// (amibake, as Packer, tags snapshots once their AMI is available), so the
// reaper tags and journals it before deregistering, and the next cleanup
// finds it without the image: from the ledger, or by tags alone.
func TestSnapshotsOfADeregisteredImageStayFindable(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.Latency{ImagePending: 300 * time.Millisecond}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	inst := f.instance("", nil)
	for _, tt := range []struct {
		run   string
		again func(dir, run string) (*Report, error)
	}{
		{"run-cut-ledger", func(dir, run string) (*Report, error) { return New(fastOpts(srv.URL())).All(ctx, dir) }},
		{"run-cut-tags", func(_, run string) (*Report, error) {
			return New(fastOpts(srv.URL())).RunTagged(ctx, run, []string{region})
		}},
	} {
		t.Run(tt.run, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := ledger.Open(dir, tt.run)
			j.Start("t")
			rec := j.ForBuild("amazon-ebs.img")
			e, _ := rec.Intend(ledger.KindImage, region, tt.run)
			out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(tt.run),
				TagSpecifications: tagSpec(types.ResourceTypeImage, tagsFor(tt.run, time.Now()))})
			if err != nil {
				t.Fatal(err)
			}
			rec.Created(e, aws.ToString(out.ImageId))
			j.Close()
			before := inventory(srv, region).Snapshots
			if len(before) != 1 {
				t.Fatalf("snapshots: %v", before)
			}

			opts := fastOpts(srv.URL())
			opts.Clients = func(ledger.Location, string) (EC2API, error) {
				return &noDeleteSnapshotEC2{EC2API: simClient(srv.URL(), region)}, nil
			}
			rep, _ := New(opts).All(ctx, dir)
			t.Logf("cut short:\n%s", rep)
			inv := inventory(srv, region)
			if len(inv.Images) != 0 || !slices.Equal(inv.Snapshots, before) {
				t.Fatalf("after the first cleanup: images %v snapshots %v", inv.Images, inv.Snapshots)
			}
			r, _ := ledger.Read(dir, tt.run)
			if r.Swept || !slices.ContainsFunc(r.Left(), func(res ledger.Resource) bool { return res.ID == before[0] }) {
				t.Errorf("the journal does not list snapshot %s: swept %v, left %+v", before[0], r.Swept, r.Left())
			}
			sn, err := f.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: before}, simtest.RetryNotFound)
			if err != nil || len(sn.Snapshots) != 1 || tagMap(sn.Snapshots[0].Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })[ledger.TagRunID] != tt.run {
				t.Errorf("snapshot %s not tagged with its run: %v %+v", before[0], err, sn)
			}

			rep, err = tt.again(dir, tt.run)
			if err != nil || rep.Err() != nil {
				t.Fatalf("second cleanup: %v %v\n%s", err, rep.Err(), rep)
			}
			if inv := inventory(srv, region); len(inv.Snapshots) != 0 {
				t.Errorf("snapshots left: %v\n%s", inv.Snapshots, rep)
			}
		})
	}
}

// noDeleteSnapshotEC2 fails every DeleteSnapshot, as a cleanup killed
// right after DeregisterImage would leave things.
type noDeleteSnapshotEC2 struct{ EC2API }

func (*noDeleteSnapshotEC2) DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "cut short"}
}

func countKind(rep *Report, kind ledger.Kind, o Outcome) int {
	n := 0
	for _, it := range rep.Items {
		if it.Kind == kind && it.Outcome == o {
			n++
		}
	}
	return n
}

func itemOf(rep *Report, id string) *Item {
	for i := range rep.Items {
		if rep.Items[i].ID == id {
			return &rep.Items[i]
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Snapshots whose AMI is gone: the run's journaled AMI was deregistered
// but its snapshot, untagged, stayed. The snapshot's description names
// the AMI, so the run's cleanup removes it; a snapshot naming an AMI the
// run did not journal, or tagged for another run, stays.
func TestOrphanSnapshotsOfTheRunsAMIs(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	inst := f.instance("", nil)
	mk := func(name string) (ami, snap string) {
		out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		ami = aws.ToString(out.ImageId)
		im, err := f.c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}}, simtest.RetryNotFound)
		if err != nil || len(im.Images) != 1 || len(im.Images[0].BlockDeviceMappings) == 0 {
			t.Fatalf("describe %s: %v %+v", ami, err, im)
		}
		snap = aws.ToString(im.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
		if _, err := f.c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
			t.Fatal(err)
		}
		return ami, snap
	}
	ours, oursSnap := mk("ours")
	_, strangerSnap := mk("not-journaled")
	_, otherSnap := mk("other-run")
	if _, err := f.c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{otherSnap},
		Tags: []types.Tag{{Key: aws.String(ledger.TagRunID), Value: aws.String("run-other")}}}, simtest.RetryNotFound); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	j, _ := ledger.Open(dir, "run-orphan")
	j.Start("t")
	rec := j.ForBuild("amazon-ebs.img")
	e, _ := rec.Intend(ledger.KindImage, region, "ours")
	rec.Created(e, ours)
	j.Close()

	dry, err := New(Options{Clients: simClients(srv.URL()), DryRun: true}).All(ctx, dir)
	if err != nil || itemOf(dry, oursSnap) == nil || itemOf(dry, oursSnap).Outcome != WouldRemove {
		t.Errorf("dry run: %v\n%s", err, dry)
	}
	rep, err := New(fastOpts(srv.URL())).All(ctx, dir)
	if err != nil || rep.Err() != nil {
		t.Fatalf("All: %v %v\n%s", err, rep.Err(), rep)
	}
	t.Logf("report:\n%s", rep)
	if got := inventory(srv, region).Snapshots; !sameSet(got, []string{strangerSnap, otherSnap}) {
		t.Errorf("snapshots left: %v, want %s (not journaled) and %s (another run's)", got, strangerSnap, otherSnap)
	}
	r, _ := ledger.Read(dir, "run-orphan")
	if !r.Swept || len(r.Left()) != 0 {
		t.Errorf("swept %v, left %+v", r.Swept, r.Left())
	}
}

// fleetInstance launches one instance through an instant fleet from
// launch template lt, as a spot build does, tagged with tags.
func (f fixture) fleetInstance(lt, token string, tags map[string]string) string {
	f.t.Helper()
	out, err := f.c.CreateFleet(f.ctx, &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(token),
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(lt), Version: aws.String("$Latest")},
			Overrides:                   []types.FleetLaunchTemplateOverridesRequest{{InstanceType: types.InstanceTypeT3Micro}},
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
		TagSpecifications:           append(tagSpec(types.ResourceTypeInstance, tags), tagSpec(types.ResourceTypeVolume, tags)...),
	})
	if err != nil || len(out.Instances) != 1 || len(out.Instances[0].InstanceIds) != 1 {
		f.t.Fatalf("CreateFleet: %v %+v", err, out)
	}
	// It stands for a killed run's instance, cleaned up some time after.
	id := out.Instances[0].InstanceIds[0]
	simtest.Visible(f.ctx, f.t, f.c, id)
	return id
}

// A spot build killed before the CreateFleet answer journaled the
// instance by the fleet's ClientToken, which the fleet's instance does not
// carry; it carries the id of the launch template the build journaled
// (EC2's aws:ec2launchtemplate:id tag). The cleanup pairs the two at once,
// whatever became of the template, instead of waiting out Settle for an
// intent it cannot match.
func TestSpotInstanceIntentMatchedByItsLaunchTemplate(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	for _, tt := range []struct {
		name, run string
		// answered: the build journaled the template's id (its create
		// call answered); deleted: and deleted it after the fleet call.
		answered, deleted bool
	}{
		{"template deleted by the build", "run-fleet-deleted", true, true},
		{"template left", "run-fleet-left", true, false},
		{"template's create answer lost", "run-fleet-lost", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Settle is an hour: a cleanup that waits for the intent
			// fails on the test's deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			f := fixture{t, ctx, simClient(srv.URL(), region)}
			dir := t.TempDir()
			run := tt.run
			tags := tagsFor(run, time.Now())
			j, rec := spotJournal(t, dir, run)
			rec.Intend(ledger.KindInstance, region, "tok-"+run)
			e, _ := rec.Intend(ledger.KindLaunchTemplate, region, "amibake_"+run)
			lt := f.launchTemplate("amibake_"+run, tags)
			if tt.answered {
				rec.Created(e, lt)
			}
			id := f.fleetInstance(lt, "tok-"+run, tags)
			if tt.deleted {
				if _, err := f.c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(lt)}); err != nil {
					t.Fatal(err)
				}
				rec.Deleted(ledger.KindLaunchTemplate, region, lt)
			}
			// Another run's fleet instance, from its own template.
			otherTags := tagsFor("run-other-"+run, time.Now())
			other := f.fleetInstance(f.launchTemplate("amibake_other-"+run, otherTags), "tok-other-"+run, otherTags)
			j.Close()

			opts := fastOpts(srv.URL())
			opts.Settle = time.Hour
			rep, err := New(opts).Run(ctx, dir, run)
			if err != nil || rep.Err() != nil {
				t.Fatalf("cleanup: %v %v\n%s", err, rep.Err(), rep)
			}
			if it := itemOf(rep, id); it == nil || it.Outcome != Removed {
				t.Errorf("instance %s: %+v\n%s", id, it, rep)
			}
			r, _ := ledger.Read(dir, run)
			for _, res := range r.Resources {
				if res.Kind == ledger.KindInstance && res.ID != id {
					t.Errorf("instance intent recorded as %q, want the fleet's %s", res.ID, id)
				}
			}
			if left := r.Left(); len(left) != 0 || !r.Swept {
				t.Errorf("ledger: swept %v, left %+v", r.Swept, left)
			}
			d, err := f.c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id, other}})
			if err != nil {
				t.Fatal(err)
			}
			for _, res := range d.Reservations {
				for _, in := range res.Instances {
					terminated := in.State.Name == types.InstanceStateNameTerminated
					if mine := aws.ToString(in.InstanceId) == id; mine != terminated {
						t.Errorf("instance %s (this run's: %v) is %s", aws.ToString(in.InstanceId), mine, in.State.Name)
					}
				}
			}
			// Leave the simulator as found for the next row.
			if _, err := f.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{other}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
