package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

const region = "us-east-1"

// fastOpts polls fast; Settle, how long a create may stay unseen, is
// short but covers the consistency profile the simulator follows.
func fastOpts(url string) Options {
	return Options{Clients: simClients(url), Poll: 5 * time.Millisecond, Settle: 20*time.Millisecond + simtest.EnvWindow(), WaitTimeout: 5 * time.Second}
}

// helperMain is a second process: REAPER_HELPER=crash records an intent,
// launches an instance and dies by SIGKILL before recording its id;
// REAPER_HELPER=tagged runs a tag cleanup and prints the report.
func helperMain(mode string) int {
	url, dir := os.Getenv("SIM_URL"), os.Getenv("LEDGER_DIR")
	ctx := context.Background()
	switch mode {
	case "crash":
		j, err := ledger.Open(dir, "run-crash")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		j.Start("crash.pkr.hcl")
		rec := j.ForBuild("amazon-ebs.crash")
		if _, err := rec.Intend(ledger.KindInstance, region, "tok-crash"); err != nil {
			return 3
		}
		c := simClient(url, region)
		f := fixture{t: &exitT{}, ctx: ctx, c: c}
		f.instance("tok-crash", ledger.Tags("run-crash", "amazon-ebs.crash", time.Now()))
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "tagged":
		rep, err := New(fastOpts(url)).Tagged(ctx, []string{region, "eu-west-1"}, 2*time.Hour, dir)
		fmt.Print(rep.String())
		if err != nil || rep.Err() != nil {
			fmt.Fprintln(os.Stderr, err, rep.Err())
			return 1
		}
		return 0
	}
	return 2
}

// exitT lets fixture run outside a test.
type exitT struct{ testing.TB }

func (*exitT) Helper()                   {}
func (*exitT) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(4) }

func helperCmd(mode, url, dir string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REAPER_HELPER="+mode, "SIM_URL="+url, "LEDGER_DIR="+dir)
	return cmd
}

func TestRunReapsLedgerIntentsAndTags(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dir := t.TempDir()
	const run = "run-a"
	tags := tagsFor(run, time.Now())

	j, err := ledger.Open(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	j.Start("a.pkr.hcl")
	rec := j.ForBuild("amazon-ebs.test")
	e, _ := rec.Intend(ledger.KindKeyPair, region, "amibake_run-a")
	rec.Created(e, f.keyPair("amibake_run-a", tags))
	e, _ = rec.Intend(ledger.KindSecurityGroup, region, "amibake_run-a")
	sg := f.group("amibake_run-a", tags)
	rec.Created(e, sg)
	rec.Intend(ledger.KindInstance, region, "tok-a") // response lost
	inst := f.instance("tok-a", tags, sg)
	// Someone else's key pair with the name an intent used (the create
	// call failed as a duplicate), and another run's key pair.
	rec.Intend(ledger.KindKeyPair, region, "user-key")
	f.keyPair("user-key", nil)
	f.keyPair("other-run", tagsFor("run-b", time.Now()))
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, []byte("not really a key"), 0o600)
	e, _ = rec.Intend(ledger.KindLocalFile, "", keyFile)
	rec.Created(e, keyFile)
	j.Close()

	before := inventory(srv, region)
	if len(before.Instances) != 1 || len(before.Volumes) == 0 {
		t.Fatalf("fixture inventory: %+v", before)
	}

	dry, err := New(Options{Clients: simClients(srv.URL()), DryRun: true}).Run(ctx, dir, run)
	if err != nil {
		t.Fatal(err)
	}
	if after := inventory(srv, region); !slices.Equal(after.KeyPairs, before.KeyPairs) || len(after.Instances) != 1 {
		t.Fatalf("dry run removed something: %+v", after)
	}
	if n := dry.Count(WouldRemove); n < 5 { // instance, volume, group, key pair, key file
		t.Errorf("dry run would remove %d:\n%s", n, dry)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Error("dry run removed the key file")
	}

	rep, err := New(fastOpts(srv.URL())).Run(ctx, dir, run)
	if err != nil || rep.Err() != nil {
		t.Fatalf("Run: %v %v\n%s", err, rep.Err(), rep)
	}
	t.Logf("report:\n%s", rep)
	after := inventory(srv, region)
	if len(after.Instances) != 0 || len(after.SecurityGroups) != 0 || len(after.Volumes) != 0 {
		t.Errorf("left behind: %+v", after)
	}
	if !slices.Equal(after.KeyPairs, []string{"other-run", "user-key"}) {
		t.Errorf("key pairs = %v, want only the untagged one and the other run's", after.KeyPairs)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Error("key file not removed")
	}
	for _, it := range rep.Items {
		if it.Name == "user-key" && it.Outcome != Skipped && it.Outcome != AlreadyGone {
			t.Errorf("untagged key pair: %+v", it)
		}
		if it.ID == inst && it.Outcome != Removed {
			t.Errorf("instance: %+v", it)
		}
	}
	r, _ := ledger.Read(dir, run)
	if left := r.Left(); len(left) != 0 {
		t.Errorf("ledger still lists %+v", left)
	}

	// Twice is a no-op.
	rep, err = New(fastOpts(srv.URL())).Run(ctx, dir, run)
	if err != nil || rep.Count(Removed) != 0 || rep.Count(Failed) != 0 {
		t.Errorf("second Run: %v\n%s", err, rep)
	}
}

func TestCrashBetweenCreateAndResponse(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	dir := t.TempDir()
	out, err := helperCmd("crash", srv.URL(), dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die by SIGKILL: %v %s", err, out)
	}
	if n := len(inventory(srv, region).Instances); n != 1 {
		t.Fatalf("helper launched %d instances", n)
	}
	r, err := ledger.Read(dir, "run-crash")
	if err != nil {
		t.Fatal(err)
	}
	left := r.Left()
	if r.Running || len(left) != 1 || left[0].ID != "" {
		t.Fatalf("ledger after crash: running %v left %+v", r.Running, left)
	}
	rep, err := New(fastOpts(srv.URL())).All(testCtx(t), dir)
	if err != nil || rep.Count(Removed) < 1 {
		t.Fatalf("All: %v\n%s", err, rep)
	}
	if inv := inventory(srv, region); len(inv.Instances)+len(inv.Volumes) != 0 {
		t.Errorf("left after cleanup: %+v", inv)
	}
	r, _ = ledger.Read(dir, "run-crash")
	if left := r.Left(); len(left) != 0 || r.Resources[0].ID == "" {
		t.Errorf("ledger: left %+v, resources %+v", left, r.Resources)
	}
}

func TestTaggedFromSecondProcess(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	old := time.Now().Add(-3 * time.Hour)
	var keep []string
	for _, reg := range []string{region, "eu-west-1"} {
		f := fixture{t, ctx, simClient(srv.URL(), reg)}
		sg := f.group("old-"+reg, tagsFor("run-old", old))
		f.instance("", tagsFor("run-old", old), sg)
		f.keyPair("old-"+reg, tagsFor("run-old", old))
		f.keyPair("young-"+reg, tagsFor("run-young", time.Now()))
		keep = append(keep, f.group("untagged-"+reg, nil))
	}
	dir := t.TempDir()

	// Dry run first, in this process.
	dry, err := New(Options{Clients: simClients(srv.URL()), DryRun: true}).Tagged(ctx, []string{region, "eu-west-1"}, 2*time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := dry.Count(WouldRemove); n != 8 { // per region: instance, volume, group, key pair
		t.Errorf("dry run would remove %d, want 8:\n%s", n, dry)
	}

	out, err := helperCmd("tagged", srv.URL(), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup process: %v\n%s", err, out)
	}
	t.Logf("second process:\n%s", out)
	for _, reg := range []string{region, "eu-west-1"} {
		inv := inventory(srv, reg)
		if len(inv.Instances)+len(inv.Volumes) != 0 || !slices.Equal(inv.KeyPairs, []string{"young-" + reg}) ||
			len(inv.SecurityGroups) != 1 || !slices.Contains(keep, inv.SecurityGroups[0]) {
			t.Errorf("%s after tagged cleanup: %+v", reg, inv)
		}
	}
	if !strings.Contains(string(out), "younger than --older-than") {
		t.Errorf("report does not say why the young key pair stayed:\n%s", out)
	}
}

func TestTwoReapersAtOnce(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.Latency{ShuttingDown: 30 * time.Millisecond}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	old := time.Now().Add(-3 * time.Hour)
	for i := range 3 {
		sg := f.group(fmt.Sprintf("g%d", i), tagsFor("run-x", old))
		f.instance("", tagsFor("run-x", old), sg)
		f.keyPair(fmt.Sprintf("k%d", i), tagsFor("run-x", old))
	}
	var wg sync.WaitGroup
	reps := make([]*Report, 2)
	errs := make([]error, 2)
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = New(fastOpts(srv.URL())).Tagged(ctx, []string{region}, time.Hour, "")
		}()
	}
	wg.Wait()
	for i, rep := range reps {
		if errs[i] != nil || rep.Err() != nil {
			t.Errorf("reaper %d: %v %v\n%s", i, errs[i], rep.Err(), rep)
		}
	}
	if inv := inventory(srv, region); len(inv.Instances)+len(inv.SecurityGroups)+len(inv.KeyPairs)+len(inv.Volumes) != 0 {
		t.Errorf("left: %+v", inv)
	}
}

// busyEC2 answers DependencyViolation to the first n DeleteSecurityGroup calls.
type busyEC2 struct {
	EC2API
	n, calls atomic.Int32
}

func (b *busyEC2) DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, o ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	if b.calls.Add(1) <= b.n.Load() {
		return nil, &smithy.GenericAPIError{Code: "DependencyViolation", Message: "resource " + aws.ToString(in.GroupId) + " has a dependent object"}
	}
	return b.EC2API.DeleteSecurityGroup(ctx, in, o...)
}

func TestDependencyViolationRetry(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	for _, tt := range []struct {
		name      string
		busy      int32
		wantCalls int32
		want      Outcome
	}{
		{"frees up after two tries", 2, 3, Removed},
		{"never frees up", 1 << 30, 0, Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.group("busy-"+tt.name, tagsFor("run-busy", time.Now().Add(-3*time.Hour)))
			b := &busyEC2{EC2API: simClient(srv.URL(), region)}
			b.n.Store(tt.busy)
			opts := fastOpts(srv.URL())
			opts.WaitTimeout = 100 * time.Millisecond
			opts.Clients = func(ledger.Location, string) (EC2API, error) { return b, nil }
			rep, _ := New(opts).Tagged(ctx, []string{region}, time.Hour, "")
			if len(rep.Items) != 1 || rep.Items[0].Outcome != tt.want {
				t.Fatalf("report:\n%s", rep)
			}
			if tt.wantCalls > 0 && b.calls.Load() != tt.wantCalls {
				t.Errorf("DeleteSecurityGroup called %d times, want %d", b.calls.Load(), tt.wantCalls)
			}
			if tt.want == Failed && !strings.Contains(rep.Err().Error(), "still in use after") {
				t.Errorf("error does not say what happened: %v", rep.Err())
			}
		})
	}
}

func TestFailedImagesByTags(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(),
		Faults: []ec2sim.FaultRule{{Action: "CreateImage", Fault: ec2sim.FaultImageFailed, Calls: []int{1}}}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	old := time.Now().Add(-3 * time.Hour)
	inst := f.instance("", nil)
	images := map[string]string{}
	for _, name := range []string{"failed", "good"} {
		out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(name),
			TagSpecifications: append(tagSpec(types.ResourceTypeImage, tagsFor("run-img", old)), tagSpec(types.ResourceTypeSnapshot, tagsFor("run-img", old))...)})
		if err != nil {
			t.Fatal(err)
		}
		images[name] = aws.ToString(out.ImageId)
		simtest.Visible(ctx, t, f.c, images[name]) // made earlier than the cleanup
	}
	snaps := len(inventory(srv, region).Snapshots)

	opts := fastOpts(srv.URL())
	opts.KeepFailedImages = true
	rep, err := New(opts).Tagged(ctx, []string{region}, time.Hour, "")
	if err != nil || !slices.Contains(inventory(srv, region).Images, images["failed"]) {
		t.Fatalf("with --keep-failed-images: %v\n%s", err, rep)
	}
	if !strings.Contains(rep.String(), "kept by --keep-failed-images") {
		t.Errorf("report does not say why the image stays:\n%s", rep)
	}
	rep, err = New(fastOpts(srv.URL())).Tagged(ctx, []string{region}, time.Hour, "")
	if err != nil || rep.Err() != nil {
		t.Fatalf("default: %v\n%s", err, rep)
	}
	t.Logf("report:\n%s", rep)
	inv := inventory(srv, region)
	if slices.Contains(inv.Images, images["failed"]) || !slices.Contains(inv.Images, images["good"]) {
		t.Errorf("images after cleanup: %v (failed %s, good %s)", inv.Images, images["failed"], images["good"])
	}
	if len(inv.Snapshots) != snaps-1 {
		t.Errorf("snapshots: %d before, %d after; want the failed image's removed", snaps, len(inv.Snapshots))
	}
	if len(inv.Instances) != 1 {
		t.Errorf("the untagged instance was touched: %+v", inv)
	}
}

// An AMI of a run that did not succeed is a leftover whatever its state:
// an available one is removed, a pending one is waited for and removed;
// a succeeded run's AMI stays.
func TestImagesOfUnfinishedRuns(t *testing.T) {
	// Images stay pending for longer than a new one may stay unseen, so
	// that the cleanup meets one pending whatever the profile.
	pending := 1500*time.Millisecond + simtest.EnvWindow()
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.Latency{ImagePending: pending}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dir := t.TempDir()
	inst := f.instance("", nil)
	mk := func(run string, status ledger.Status) string {
		j, err := ledger.Open(dir, run)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		j.Start("t")
		tags := tagsFor(run, time.Now())
		e, _ := j.Intend(ledger.KindImage, region, run)
		out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(run),
			TagSpecifications: append(tagSpec(types.ResourceTypeImage, tags), tagSpec(types.ResourceTypeSnapshot, tags)...)})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.ImageId)
		j.Created(e, id)
		if status != "" {
			j.End(status)
		}
		return id
	}
	killedAvail := mk("run-killed", "") // the process died: no end record
	failedAvail := mk("run-failed", ledger.StatusFailed)
	good := mk("run-ok", ledger.StatusSucceeded)
	// Made earlier than the cleanup: listed, and available after the sleep.
	simtest.Visible(ctx, t, f.c, killedAvail, failedAvail, good)
	time.Sleep(pending + 100*time.Millisecond)
	var progress []string
	opts := fastOpts(srv.URL())
	opts.Progress = func(m string) { progress = append(progress, m) }
	// A fresh image of a killed run, still pending.
	pending2 := mk("run-killed-2", "")
	rep, err := New(opts).All(ctx, dir)
	if err != nil || rep.Err() != nil {
		t.Fatalf("All: %v %v\n%s", err, rep.Err(), rep)
	}
	t.Logf("report:\n%s", rep)
	inv := inventory(srv, region)
	for _, id := range []string{killedAvail, failedAvail, pending2} {
		if slices.Contains(inv.Images, id) {
			t.Errorf("image %s of a run that did not succeed stays: %v", id, inv.Images)
		}
	}
	if !slices.Contains(inv.Images, good) {
		t.Errorf("the successful run's AMI %s was removed", good)
	}
	if len(inv.Snapshots) != 1 {
		t.Errorf("snapshots left: %v, want only the successful AMI's", inv.Snapshots)
	}
	if !slices.ContainsFunc(progress, func(m string) bool { return strings.Contains(m, "waiting for image "+pending2) }) {
		t.Errorf("cleanup did not say it waited for the pending image: %q", progress)
	}
}

func TestRunningRunIsSkipped(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	dir := t.TempDir()
	j, _ := ledger.Open(dir, "run-live")
	defer j.Close()
	j.Start("live")
	e, _ := j.Intend(ledger.KindKeyPair, region, "live")
	j.Created(e, fixture{t, testCtx(t), simClient(srv.URL(), region)}.keyPair("live", tagsFor("run-live", time.Now())))

	rep, err := New(fastOpts(srv.URL())).All(testCtx(t), dir)
	if err != nil || len(rep.Skipped) != 1 || !strings.Contains(rep.String(), "still running (process") {
		t.Errorf("All: %v\n%s", err, rep)
	}
	if _, err := New(fastOpts(srv.URL())).Run(testCtx(t), dir, "run-live"); err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Errorf("Run of a live run: %v", err)
	}
	if len(inventory(srv, region).KeyPairs) != 1 {
		t.Error("a live run's key pair was removed")
	}
}

// Two `cleanup --all` at once on one ledger: each run is taken by one of
// them (the other sees it locked or already clean), nothing fails.
func TestTwoCleanupAllAtOnce(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.Latency{ShuttingDown: 20 * time.Millisecond}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dir := t.TempDir()
	for i := range 4 {
		run := fmt.Sprintf("run-%d", i)
		j, err := ledger.Open(dir, run)
		if err != nil {
			t.Fatal(err)
		}
		j.Start("t")
		tags := tagsFor(run, time.Now())
		e, _ := j.Intend(ledger.KindSecurityGroup, region, run)
		sg := f.group(run, tags)
		j.Created(e, sg)
		e, _ = j.Intend(ledger.KindInstance, region, "tok-"+run)
		j.Created(e, f.instance("tok-"+run, tags, sg))
		j.Close()
	}
	var wg sync.WaitGroup
	reps := make([]*Report, 2)
	errs := make([]error, 2)
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = New(fastOpts(srv.URL())).All(ctx, dir)
		}()
	}
	wg.Wait()
	removed := 0
	for i, rep := range reps {
		if errs[i] != nil || rep.Err() != nil {
			t.Errorf("cleanup %d: %v %v\n%s", i, errs[i], rep.Err(), rep)
		}
		removed += rep.Count(Removed)
	}
	if inv := inventory(srv, region); len(inv.Instances)+len(inv.SecurityGroups)+len(inv.Volumes) != 0 {
		t.Errorf("left: %+v", inv)
	}
	if removed < 8 { // 4 instances and 4 groups, each removed by one of them
		t.Errorf("removed %d, want at least 8:\n%s\n%s", removed, reps[0], reps[1])
	}
	runs, _ := ledger.List(dir)
	for _, r := range runs {
		if len(r.Left()) != 0 {
			t.Errorf("run %s still lists %+v", r.ID, r.Left())
		}
	}
}
