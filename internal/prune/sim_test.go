package prune

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reuse"
)

// world is an API-only simulator with the account's AMIs made by CopyImage
// from the public catalogue (a bake needs SSH; a copy has its own
// snapshot just the same).
type world struct {
	t   *testing.T
	ctx context.Context
	url string
	src map[string]string // region → a catalogue image to copy
	// made are the AMIs baked since the world last settled.
	made [][2]string
}

// settle waits until every AMI baked so far is listed with its snapshot:
// releases are older than the prune that finds them. Done before the code
// under test looks, at once for all, as each wait takes up to the
// profile's window.
func (w *world) settle() {
	w.t.Helper()
	for _, m := range w.made {
		simtest.Visible(w.ctx, w.t, w.ec2(m[0]), m[1])
	}
	w.made = nil
}

func newWorld(t *testing.T, faults ...ec2sim.FaultRule) *world {
	t.Helper()
	srv, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(), Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &world{t: t, ctx: ctx, url: srv.URL(), src: map[string]string{}}
}

func (w *world) ec2(region string) *ec2.Client {
	return ec2.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "simulator-secret", ""),
		BaseEndpoint: aws.String(w.url),
		HTTPClient:   awsclient.HTTPClient(nil),
	}, func(o *ec2.Options) { o.RetryMaxAttempts = 3 })
}

func (w *world) clients() Clients {
	w.settle()
	return func(region string) (EC2, error) { return w.ec2(region), nil }
}

// bake makes an AMI named name in region (a copy of a catalogue image, or
// of from when set), tagged.
func (w *world) bake(region, name string, from *[2]string, tags map[string]string) string {
	w.t.Helper()
	c := w.ec2(region)
	srcRegion, srcID := region, ""
	if from != nil {
		srcRegion, srcID = from[0], from[1]
	} else {
		if w.src[region] == "" {
			out, err := c.DescribeImages(w.ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
			if err != nil || len(out.Images) == 0 {
				w.t.Fatalf("catalogue in %s: %v", region, err)
			}
			w.src[region] = aws.ToString(out.Images[0].ImageId)
		}
		srcID = w.src[region]
	}
	var ts []types.Tag
	for _, k := range sortedKeys(tags) {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	in := &ec2.CopyImageInput{Name: aws.String(name), SourceImageId: aws.String(srcID), SourceRegion: aws.String(srcRegion)}
	if len(ts) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ts}}
	}
	// The source may be an AMI made a moment ago.
	out, err := c.CopyImage(w.ctx, in, simtest.RetryNotFound)
	if err != nil {
		w.t.Fatalf("copy %s to %s: %v", name, region, err)
	}
	id := aws.ToString(out.ImageId)
	w.made = append(w.made, [2]string{region, id})
	time.Sleep(3 * time.Millisecond) // creation dates have millisecond precision
	return id
}

func (w *world) images(region string) []string {
	w.t.Helper()
	w.settle()
	out, err := w.ec2(region).DescribeImages(w.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, im := range out.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	sort.Strings(ids)
	return ids
}

func (w *world) snapshots(region string) []string {
	w.t.Helper()
	w.settle()
	out, err := w.ec2(region).DescribeSnapshots(w.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Snapshots {
		ids = append(ids, aws.ToString(s.SnapshotId))
	}
	sort.Strings(ids)
	return ids
}

func (w *world) snapshotOf(region, ami string) string {
	w.t.Helper()
	out, err := w.ec2(region).DescribeImages(w.ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}}, simtest.RetryNotFound)
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func minus(all []string, gone ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(gone, s) {
			out = append(out, s)
		}
	}
	return sortedCopy(out)
}

// TestPruneInTheSimulator: eight releases in us-east-1 with copies in
// eu-west-1, one reused into eu-west-1 later, and every reason to keep an
// AMI: an instance, a launch template's default and latest versions, a
// share, and a snapshot another AMI was registered from.
func TestPruneInTheSimulator(t *testing.T) {
	w := newWorld(t)
	const east, west = "us-east-1", "eu-west-1"
	tags := map[string]string{"Project": "web"}
	var e, wst []string
	for i := 1; i <= 8; i++ {
		name := fmt.Sprintf("web %d", 1000000000+i)
		tg := map[string]string{"Project": "web", reuse.TagKey: fmt.Sprintf("d%d", i)}
		e = append(e, w.bake(east, name, nil, tg))
		if i != 5 {
			wst = append(wst, w.bake(west, name, &[2]string{east, e[i-1]}, tg))
		} else {
			wst = append(wst, "")
		}
	}
	// Release 5 reaches eu-west-1 last, by a --reuse copy: the release is
	// as new as that copy.
	wst[4] = w.bake(west, "web 1000000005", &[2]string{east, e[4]}, map[string]string{"Project": "web", reuse.TagKey: "d5"})
	other := w.bake(east, "other 1000000001", nil, map[string]string{"Project": "api"})

	ce, cw := w.ec2(east), w.ec2(west)
	// In use: an instance of release 1 (us-east-1); a launch template in
	// eu-west-1 whose default version launches release 2 and whose latest
	// launches release 3.
	run, err := ce.RunInstances(w.ctx, &ec2.RunInstancesInput{ImageId: aws.String(e[0]), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro}, simtest.RetryNotFound)
	if err != nil {
		t.Fatal(err)
	}
	instance := aws.ToString(run.Instances[0].InstanceId)
	simtest.Visible(w.ctx, t, ce, instance)
	lt, err := cw.CreateLaunchTemplate(w.ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(wst[1])}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.CreateLaunchTemplateVersion(w.ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId,
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(wst[2])}}, simtest.RetryNotFound); err != nil {
		t.Fatal(err)
	}
	simtest.Visible(w.ctx, t, cw, aws.ToString(lt.LaunchTemplate.LaunchTemplateId))
	// Shared: release 4 in us-east-1 with another account.
	if _, err := ce.ModifyImageAttribute(w.ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(e[3]),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String("111122223333")}}}}, simtest.RetryNotFound); err != nil {
		t.Fatal(err)
	}
	// Release 6's us-east-1 snapshot also backs a hand-registered AMI.
	snap6 := w.snapshotOf(east, e[5])
	manual, err := ce.RegisterImage(w.ctx, &ec2.RegisterImageInput{Name: aws.String("manual"), RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/xvda"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(snap6)}}}}, simtest.RetryNotFound)
	if err != nil {
		t.Fatal(err)
	}
	simtest.Visible(w.ctx, t, ce, aws.ToString(manual.ImageId))
	beforeE, beforeW := w.images(east), w.images(west)
	snapsE, snapsW := w.snapshots(east), w.snapshots(west)
	dir := t.TempDir()
	opts := RunOptions{
		Options: Options{Selection: Selection{Tags: tags}, GroupBy: GroupBy{Kind: GroupName}, Rules: Rules{Keep: 2, Now: time.Now()},
			Regions: []string{west}}, // us-east-1 is found through the copies' SourceRegion
		JournalDir: dir,
	}

	// A dry run changes nothing and says why for each.
	dry := opts
	dry.DryRun = true
	res, err := Run(w.ctx, w.clients(), dry)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.images(east); !slices.Equal(got, beforeE) {
		t.Fatalf("dry run changed us-east-1: %v", got)
	}
	reasons := map[string]string{}
	for _, d := range res.Plan.Images {
		reasons[d.Region+"/"+d.ImageID] = d.Action + ": " + d.Reason
	}
	for k, want := range map[string]string{
		east + "/" + e[0]:   "keep: in use by instance " + instance + " (running)",
		west + "/" + wst[1]: "keep: in use by launch template web (default version 1)",
		west + "/" + wst[2]: "keep: in use by launch template web (latest version 2)",
		east + "/" + e[3]:   "keep: shared with account 111122223333 (--include-shared to delete it anyway)",
		east + "/" + e[4]:   "keep: release 1 of 8: among the 2 newest", // its copy is the newest AMI
		west + "/" + wst[4]: "keep: release 1 of 8: among the 2 newest",
		east + "/" + e[7]:   "keep: release 2 of 8: among the 2 newest",
		east + "/" + e[6]:   "delete: release 3 of 8: not among the 2 newest",
	} {
		if reasons[k] != want {
			t.Errorf("%s: %q, want %q", k, reasons[k], want)
		}
	}
	if _, ok := reasons[east+"/"+other]; ok {
		t.Errorf("%s (Project=api) was selected", other)
	}
	var tbl strings.Builder
	if err := WriteTable(&tbl, res.Plan, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "Would delete 8 AMI(s) and 7 snapshot(s) in eu-west-1, us-east-1; kept 8 AMI(s). Dry run: nothing was changed.") {
		t.Errorf("table:\n%s", tbl.String())
	}

	// The real run.
	res, err = Run(w.ctx, w.clients(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Failed(); len(f) > 0 {
		t.Fatalf("failed: %v", f)
	}
	goneE := []string{e[1], e[2], e[5], e[6]}
	goneW := []string{wst[0], wst[3], wst[5], wst[6]}
	if got, want := w.images(east), minus(beforeE, goneE...); !slices.Equal(got, want) {
		t.Errorf("us-east-1 AMIs %v, want %v", got, want)
	}
	if got, want := w.images(west), minus(beforeW, goneW...); !slices.Equal(got, want) {
		t.Errorf("eu-west-1 AMIs %v, want %v", got, want)
	}
	var goneSnapsE, goneSnapsW []string
	for _, id := range []string{e[1], e[2], e[6]} { // e[5]'s snapshot backs the manual AMI
		for _, d := range res.Plan.Images {
			if d.ImageID == id {
				goneSnapsE = append(goneSnapsE, d.Snapshots...)
			}
		}
	}
	for _, id := range goneW {
		for _, d := range res.Plan.Images {
			if d.ImageID == id {
				goneSnapsW = append(goneSnapsW, d.Snapshots...)
			}
		}
	}
	if got, want := w.snapshots(east), minus(snapsE, goneSnapsE...); !slices.Equal(got, want) || !slices.Contains(got, snap6) {
		t.Errorf("us-east-1 snapshots %v, want %v (with %s, used by %s)", got, want, snap6, aws.ToString(manual.ImageId))
	}
	if got, want := w.snapshots(west), minus(snapsW, goneSnapsW...); !slices.Equal(got, want) {
		t.Errorf("eu-west-1 snapshots %v, want %v", got, want)
	}
	// Every deletion went through a journal that ended well.
	runs, err := ledger.List(dir)
	if err != nil || len(runs) != 1 || runs[0].Status != ledger.StatusSucceeded || len(runs[0].Left()) != 0 {
		t.Fatalf("journal: %v %+v", err, runs)
	}
	deleted := 0
	for _, r := range runs[0].Resources {
		if r.Deleted {
			deleted++
		}
	}
	if deleted != 8+7 {
		t.Errorf("journal records %d deletions, want 15", deleted)
	}

	// A second prune does nothing.
	res, err = Run(w.ctx, w.clients(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Plan.Count(ActionDelete); n != 0 {
		t.Errorf("second prune deletes %d", n)
	}
	if runs, _ := ledger.List(dir); len(runs) != 1 {
		t.Errorf("a prune with nothing to do wrote a journal: %d", len(runs))
	}

	// Deprecation instead of deletion: keep 1 deprecates the rest that
	// is not in use, once.
	dep := opts
	dep.Rules = Rules{Keep: 1, Now: time.Now(), Deprecate: true}
	res, err = Run(w.ctx, w.clients(), dep)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("deprecate: %v %v", err, res.Failed())
	}
	if n := res.Plan.Count(ActionDeprecate); n != 2 {
		t.Errorf("deprecated %d, want release 8 in both regions", n)
	}
	out, err := ce.DescribeImages(w.ctx, &ec2.DescribeImagesInput{ImageIds: []string{e[7]}})
	if err != nil || aws.ToString(out.Images[0].DeprecationTime) == "" {
		t.Errorf("%s has no DeprecationTime: %v", e[7], err)
	}
	res, err = Run(w.ctx, w.clients(), dep)
	if err != nil || res.Plan.Count(ActionDeprecate) != 0 {
		t.Errorf("second deprecation: %v, %d", err, res.Plan.Count(ActionDeprecate))
	}
}

// TestPruneResumes: a prune killed after deregistering an AMI, before
// deleting its snapshot, is finished by the next one.
func TestPruneResumes(t *testing.T) {
	w := newWorld(t)
	const region = "us-east-1"
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, w.bake(region, fmt.Sprintf("app %d", 1000000000+i), nil, map[string]string{"App": "x"}))
	}
	dir := t.TempDir()
	o := Options{Selection: Selection{Tags: map[string]string{"App": "x"}}, Rules: Rules{Keep: 2, Now: time.Now()}, Regions: []string{region}}
	p, err := MakePlan(w.ctx, w.clients(), o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count(ActionDelete) != 1 || p.SnapshotCount(ActionDelete) != 1 {
		t.Fatalf("plan: %+v", p)
	}
	snap := p.Snapshots[0].SnapshotID
	// The killed prune: journaled, deregistered, then nothing.
	j, err := ledger.Open(dir, ledger.NewRunID())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Start("prune"); err != nil {
		t.Fatal(err)
	}
	if err := Record(p, j); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ec2(region).DeregisterImage(w.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(ids[0])}); err != nil {
		t.Fatal(err)
	}
	_ = j.Close()
	if !slices.Contains(w.snapshots(region), snap) {
		t.Fatal("the snapshot went with the AMI")
	}
	// The next prune (with nothing of its own to do) finishes it.
	res, err := Run(w.ctx, w.clients(), RunOptions{Options: o, JournalDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(w.snapshots(region), snap) {
		t.Errorf("the interrupted prune's snapshot %s is still there", snap)
	}
	if res.Resumed == nil || res.Resumed.SnapshotCount(ActionDelete) != 1 {
		t.Errorf("resumed: %+v", res.Resumed)
	}
	runs, _ := ledger.List(dir)
	if len(runs) != 1 || runs[0].Status != ledger.StatusSucceeded || len(runs[0].Left()) != 0 {
		t.Errorf("journal after resume: %+v", runs)
	}
	if got := filepath.Base(Dir(func(k string) string { return map[string]string{"XDG_STATE_HOME": "/state"}[k] })); got != "prune" {
		t.Errorf("Dir: %s", got)
	}
}

// TestNothingSelected says so.
func TestNothingSelected(t *testing.T) {
	w := newWorld(t)
	_, err := MakePlan(w.ctx, w.clients(), Options{Selection: Selection{Name: "nope *"}, Rules: Rules{Keep: 1}, Regions: []string{"us-east-1"}})
	if err == nil || !strings.Contains(err.Error(), `no AMI matches (name "nope *") among the AMIs this account owns in us-east-1`) {
		t.Errorf("err = %v", err)
	}
}

// TestPruneInterruptedByCancel: a prune cancelled (Ctrl-C) after its first
// deregistration ends its journal as interrupted, and the next prune
// finishes what it had decided.
func TestPruneInterruptedByCancel(t *testing.T) {
	w := newWorld(t)
	const region = "us-east-1"
	for i := 1; i <= 4; i++ {
		w.bake(region, fmt.Sprintf("app %d", 1000000000+i), nil, map[string]string{"App": "y"})
	}
	before := w.snapshots(region)
	dir := t.TempDir()
	o := RunOptions{Options: Options{Selection: Selection{Tags: map[string]string{"App": "y"}}, Rules: Rules{Keep: 1, Now: time.Now()}, Regions: []string{region}}, JournalDir: dir}
	ctx, cancel := context.WithCancel(w.ctx)
	o.Progress = func(msg string) {
		if strings.HasPrefix(msg, "Deregistered") {
			cancel()
		}
	}
	res, err := Run(ctx, w.clients(), o)
	if err == nil || len(res.Failed()) == 0 {
		t.Fatalf("cancelled prune: err %v, failed %v", err, res.Failed())
	}
	if got := len(w.images(region)); got != 3 {
		t.Fatalf("after the cancel: %d AMIs, want 3 (one deregistered)", got)
	}
	runs, _ := ledger.List(dir)
	if len(runs) != 1 || runs[0].Status != ledger.StatusInterrupted || len(runs[0].Left()) != 5 {
		t.Fatalf("journal: %+v", runs)
	}
	o.Progress = nil
	res, err = Run(w.ctx, w.clients(), o)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("resume: %v %v", err, res.Failed())
	}
	if got := len(w.images(region)); got != 1 {
		t.Errorf("after the resume: %d AMIs, want 1", got)
	}
	if got := len(w.snapshots(region)); got != len(before)-3 {
		t.Errorf("after the resume: %d snapshots, want %d", got, len(before)-3)
	}
	runs, _ = ledger.List(dir)
	for _, r := range runs {
		if len(r.Left()) > 0 {
			t.Errorf("journal %s still lists %d", r.ID, len(r.Left()))
		}
	}
}

// TestPruneGoesOnAfterAFailure: an AMI EC2 refuses to deregister
// (UnauthorizedOperation, once) is reported, its snapshot stays, the rest
// goes; the journal ends failed and the next prune retries it.
func TestPruneGoesOnAfterAFailure(t *testing.T) {
	w := newWorld(t, ec2sim.FaultRule{Action: "DeregisterImage", Fault: "UnauthorizedOperation", Calls: []int{1}})
	const region = "us-east-1"
	for i := 1; i <= 4; i++ {
		w.bake(region, fmt.Sprintf("app %d", 1000000000+i), nil, map[string]string{"App": "z"})
	}
	snaps := len(w.snapshots(region))
	dir := t.TempDir()
	o := RunOptions{Options: Options{Selection: Selection{Tags: map[string]string{"App": "z"}}, Rules: Rules{Keep: 1, Now: time.Now()}, Regions: []string{region}}, JournalDir: dir}
	res, err := Run(w.ctx, w.clients(), o)
	if err != nil {
		t.Fatal(err)
	}
	failed := res.Failed()
	if len(failed) != 1 || !strings.Contains(failed[0], "UnauthorizedOperation") {
		t.Fatalf("failed: %v", failed)
	}
	if got := len(w.images(region)); got != 2 {
		t.Errorf("%d AMIs left, want 2 (the newest and the one refused)", got)
	}
	if got := len(w.snapshots(region)); got != snaps-2 {
		t.Errorf("%d snapshots left, want %d: the refused AMI keeps its own", got, snaps-2)
	}
	var kept string
	for _, s := range res.Plan.Snapshots {
		if strings.HasPrefix(s.Result, "kept: its AMI") {
			kept = s.SnapshotID
		}
	}
	if kept == "" {
		t.Errorf("no snapshot reported kept for the refused AMI: %+v", res.Plan.Snapshots)
	}
	if runs, _ := ledger.List(dir); len(runs) != 1 || runs[0].Status != ledger.StatusFailed {
		t.Fatalf("journal: %+v", runs)
	}
	res, err = Run(w.ctx, w.clients(), o)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("retry: %v %v", err, res.Failed())
	}
	if got := len(w.images(region)); got != 1 {
		t.Errorf("after the retry: %d AMIs, want 1", got)
	}
	if slices.Contains(w.snapshots(region), kept) {
		t.Errorf("after the retry: %s is still there", kept)
	}
}

// laggingEC2 answers DeleteSnapshot with InvalidSnapshot.InUse naming the
// AMI just deregistered, as an eventually consistent EC2 can, a few times.
type laggingEC2 struct {
	EC2
	lag  int
	seen map[string]string // snapshot → the AMI that used it
}

func (l *laggingEC2) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	if l.lag > 0 {
		l.lag--
		id := aws.ToString(in.SnapshotId)
		return nil, &smithy.GenericAPIError{Code: "InvalidSnapshot.InUse", Message: "The snapshot " + id + " is currently in use by " + l.seen[id]}
	}
	return l.EC2.DeleteSnapshot(ctx, in, opts...)
}

// TestSnapshotInUseByADeregisteredAMI: EC2 lagging behind a
// deregistration is waited for, not taken for a real user of the snapshot.
func TestSnapshotInUseByADeregisteredAMI(t *testing.T) {
	w := newWorld(t)
	const region = "us-east-1"
	for i := 1; i <= 2; i++ {
		w.bake(region, fmt.Sprintf("lag %d", 1000000000+i), nil, map[string]string{"App": "lag"})
	}
	defer func(wait, poll time.Duration) { InUseWait, InUsePoll = wait, poll }(InUseWait, InUsePoll)
	InUseWait, InUsePoll = 2*time.Second, 10*time.Millisecond
	o := Options{Selection: Selection{Tags: map[string]string{"App": "lag"}}, Rules: Rules{Keep: 1, Now: time.Now()}, Regions: []string{region}}
	p, err := MakePlan(w.ctx, w.clients(), o)
	if err != nil || len(p.Snapshots) != 1 {
		t.Fatalf("plan: %v %+v", err, p)
	}
	lag := &laggingEC2{EC2: w.ec2(region), lag: 3, seen: map[string]string{p.Snapshots[0].SnapshotID: p.Snapshots[0].ImageID}}
	Execute(w.ctx, func(string) (EC2, error) { return lag, nil }, p, nopJournal{}, time.Now(), nil)
	if got := p.Snapshots[0].Result; got != ResultDeleted {
		t.Errorf("snapshot result %q, want deleted after EC2 caught up", got)
	}
	// Lagging for longer than InUseWait is a failure (journaled, retried
	// by the next prune), never "kept".
	w.bake(region, "lag 1000000003", nil, map[string]string{"App": "lag"})
	p, err = MakePlan(w.ctx, w.clients(), o)
	if err != nil || len(p.Snapshots) != 1 {
		t.Fatalf("plan: %v %+v", err, p)
	}
	InUseWait = 50 * time.Millisecond
	lag = &laggingEC2{EC2: w.ec2(region), lag: 1000, seen: map[string]string{p.Snapshots[0].SnapshotID: p.Snapshots[0].ImageID}}
	Execute(w.ctx, func(string) (EC2, error) { return lag, nil }, p, nopJournal{}, time.Now(), nil)
	if got := p.Snapshots[0].Result; !strings.HasPrefix(got, ResultFailed) || !strings.Contains(got, "the next prune tries again") {
		t.Errorf("snapshot result %q, want a failure", got)
	}
	// In use by an AMI that exists (registered from it since the plan):
	// kept, at once.
	w.bake(region, "lag 1000000004", nil, map[string]string{"App": "lag"})
	p, err = MakePlan(w.ctx, w.clients(), o)
	if err != nil || len(p.Snapshots) < 1 {
		t.Fatalf("plan: %v %+v", err, p)
	}
	var newest string
	for _, d := range p.Images {
		if d.Action == ActionKeep {
			newest = d.ImageID
		}
	}
	lag = &laggingEC2{EC2: w.ec2(region), lag: 1000, seen: map[string]string{}}
	for _, sn := range p.Snapshots {
		lag.seen[sn.SnapshotID] = newest
	}
	Execute(w.ctx, func(string) (EC2, error) { return lag, nil }, p, nopJournal{}, time.Now(), nil)
	for _, sn := range p.Snapshots {
		if !strings.HasPrefix(sn.Result, "kept: ") || !strings.Contains(sn.Result, newest) {
			t.Errorf("snapshot %s result %q, want kept for %s", sn.SnapshotID, sn.Result, newest)
		}
	}
}

type nopJournal struct{ ledger.Nop }

func (nopJournal) Kept(ledger.Kind, string, string) error { return nil }
