package reaper

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
)

// endpointClients reaches whichever simulator the location names, and
// fallback (the shell's own endpoint) when it names none: what the
// command's clients do with a recorded or overridden endpoint.
func endpointClients(fallback string) (ClientFactory, IdentityFunc) {
	url := func(loc ledger.Location, sts bool) string {
		switch {
		case sts && loc.STSEndpoint != "":
			return loc.STSEndpoint
		case loc.Endpoint != "":
			return loc.Endpoint
		}
		return fallback
	}
	clients := func(loc ledger.Location, region string) (EC2API, error) {
		return simClient(url(loc, false), region), nil
	}
	identity := func(ctx context.Context, loc ledger.Location) (string, error) {
		out, err := sts.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(url(loc, true)),
			Credentials: credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "simulator-secret", "")}).
			GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Account), nil
	}
	return clients, identity
}

// A run recorded in one account and endpoint, cleaned up from a shell
// that points at another: nothing is written off as gone, the run is not
// swept, and the message names the command; from the recorded location
// (the default) the same cleanup removes everything.
func TestCleanupChecksTheRecordedAccount(t *testing.T) {
	right := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), AccountID: "111111111111"})
	wrong := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), AccountID: "222222222222"})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(right.URL(), region)}
	dir := t.TempDir()
	const run = "run-where"
	loc := ledger.Location{Account: "111111111111", Endpoint: right.URL(), STSEndpoint: right.URL(), Profile: "ci"}
	j, err := ledger.Open(dir, run)
	if err != nil {
		t.Fatal(err)
	}
	j.Start("t")
	rec := j.ForBuildAt("amazon-ebs.test", loc)
	tags := tagsFor(run, time.Now())
	e, _ := rec.Intend(ledger.KindSecurityGroup, region, run)
	sg := f.group(run, tags)
	rec.Created(e, sg)
	e, _ = rec.Intend(ledger.KindInstance, region, "tok-where")
	rec.Created(e, f.instance("tok-where", tags, sg))
	e, _ = rec.Intend(ledger.KindKeyPair, region, run)
	rec.Created(e, f.keyPair(run, tags))
	j.Close()

	clients, identity := endpointClients(wrong.URL())
	opts := fastOpts(right.URL())
	opts.Clients, opts.Identity = clients, identity
	opts.Overrides = ledger.Location{Endpoint: wrong.URL()} // cleanup --endpoint-url <wrong>
	rep, err := New(opts).All(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("from the wrong endpoint:\n%s", rep)
	if n := rep.Count(NotVerified); n != 3 || rep.Count(AlreadyGone) != 0 || rep.Err() == nil {
		t.Fatalf("want 3 not verified, none gone, an error:\n%s", rep)
	}
	msg := rep.String()
	for _, want := range []string{"account 111111111111", "account 222222222222", "amibake cleanup --run-id run-where --profile ci --endpoint-url " + right.URL(),
		"aws ec2 describe-instances --instance-ids i-"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report does not say %q:\n%s", want, msg)
		}
	}
	r, _ := ledger.Read(dir, run)
	if len(r.Left()) != 3 || r.Swept {
		t.Fatalf("after the wrong cleanup: left %d swept %v", len(r.Left()), r.Swept)
	}
	if inv := inventory(right, region); len(inv.Instances) != 1 || len(inv.SecurityGroups) != 1 {
		t.Fatalf("the wrong cleanup touched the run: %+v", inv)
	}

	opts.Overrides = ledger.Location{}
	rep, err = New(opts).All(ctx, dir)
	if err != nil || rep.Err() != nil {
		t.Fatalf("from the recorded location: %v\n%s", err, rep)
	}
	if inv := inventory(right, region); len(inv.Instances)+len(inv.SecurityGroups)+len(inv.KeyPairs)+len(inv.Volumes) != 0 {
		t.Errorf("left: %+v", inv)
	}
	if r, _ := ledger.Read(dir, run); len(r.Left()) != 0 || !r.Swept {
		t.Errorf("after the right cleanup: left %+v swept %v", r.Left(), r.Swept)
	}
}

// Two runners: a build on runner A keeps its lease fresh; runner B's
// `cleanup --tagged --older-than` (its own, empty ledger) leaves it alone
// although it is older than --older-than; once A's process is gone and
// the lease has run out, the same sweep removes it.
func TestLeaseAcrossRunners(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dirA, dirB := t.TempDir(), t.TempDir()
	const run = "run-long"
	j, err := ledger.Open(dirA, run)
	if err != nil {
		t.Fatal(err)
	}
	j.Start("t")
	rec := j.ForBuild("amazon-ebs.test")
	tags := tagsFor(run, time.Now().Add(-3*time.Hour)) // a build running for 3 hours
	e, _ := rec.Intend(ledger.KindSecurityGroup, region, run)
	sg := f.group(run, tags)
	rec.Created(e, sg)
	e, _ = rec.Intend(ledger.KindInstance, region, "tok-long")
	inst := f.instance("tok-long", tags, sg)
	rec.Created(e, inst)
	// Key pairs are journaled by name; the lease goes on their key-... id.
	e, _ = rec.Intend(ledger.KindKeyPair, region, "long-key")
	f.keyPair("long-key", tags)
	rec.Created(e, "long-key")
	// A spot build's launch template, journaled by the builder: CreateTags
	// takes lt- ids, so it is leased like the rest.
	e, _ = rec.Intend(ledger.KindLaunchTemplate, region, "amibake_long")
	lt := f.launchTemplate("amibake_long", tags)
	rec.Created(e, lt)
	// An instance the build is terminating (recorded deleted, still
	// shutting down) is still the live run's.
	e, _ = rec.Intend(ledger.KindInstance, region, "tok-going")
	going := f.instance("tok-going", tags)
	rec.Created(e, going)
	rec.Deleted(ledger.KindInstance, region, going)

	keeper := &Keeper{Dir: dirA, RunID: run, Lease: 1500 * time.Millisecond, Interval: 200 * time.Millisecond}
	keeper.Register("amazon-ebs.test", func(r string) TagAPI { return simClient(srv.URL(), r) })
	if err := keeper.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := f.c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"long-key"}})
	if err != nil || len(keys.KeyPairs) != 1 {
		t.Fatal(err)
	}
	leased := false
	for _, tg := range keys.KeyPairs[0].Tags {
		leased = leased || aws.ToString(tg.Key) == ledger.TagLeaseUntil
	}
	if !leased {
		t.Errorf("the key pair has no lease tag: %+v", keys.KeyPairs[0].Tags)
	}
	lts, err := f.c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{lt}})
	if err != nil || len(lts.LaunchTemplates) != 1 {
		t.Fatal(err)
	}
	if _, ok := tagMap(lts.LaunchTemplates[0].Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })[ledger.TagLeaseUntil]; !ok {
		t.Errorf("the launch template has no lease tag: %+v", lts.LaunchTemplates[0].Tags)
	}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); keeper.Run(kctx) }()

	sweepB := func() *Report {
		t.Helper()
		rep, err := New(fastOpts(srv.URL())).Tagged(ctx, []string{region}, 2*time.Hour, dirB)
		if err != nil || rep.Err() != nil {
			t.Fatalf("runner B: %v\n%s", err, rep)
		}
		return rep
	}
	// Several sweeps over more than one lease: the keeper keeps it alive.
	for range 4 {
		rep := sweepB()
		if rep.Count(Removed) != 0 || !strings.Contains(rep.String(), "is alive (lease until") {
			t.Fatalf("runner B took a live build's resources:\n%s", rep)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if inv := inventory(srv, region); len(inv.Instances) != 2 || len(inv.KeyPairs) != 1 || len(inv.LaunchTemplates) != 1 {
		t.Fatalf("live build's resources gone: %+v", inv)
	}
	// Runner A dies: no more refreshes, no more lock.
	stop()
	<-done
	j.Close()
	time.Sleep(1600 * time.Millisecond)
	rep := sweepB()
	t.Logf("after the lease ran out:\n%s", rep)
	inv := inventory(srv, region)
	if slices.Contains(inv.Instances, inst) || slices.Contains(inv.Instances, going) || slices.Contains(inv.SecurityGroups, sg) || len(inv.KeyPairs) != 0 || len(inv.LaunchTemplates) != 0 {
		t.Errorf("dead build not reaped: %+v\n%s", inv, rep)
	}
}

// An available AMI whose lease lapsed belonged to a run that never
// finished; one without the tag (a successful build lifted it) stays.
func TestTaggedImagesAndLease(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	inst := f.instance("", nil)
	old := time.Now().Add(-3 * time.Hour)
	mk := func(name string, lease string) string {
		tags := tagsFor("run-"+name, old)
		if lease != "" {
			tags[ledger.TagLeaseUntil] = lease
		}
		out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(name),
			TagSpecifications: tagSpec("image", tags)})
		if err != nil {
			t.Fatal(err)
		}
		simtest.Visible(ctx, t, f.c, aws.ToString(out.ImageId)) // made earlier than the cleanup
		return aws.ToString(out.ImageId)
	}
	dead := mk("dead", ledger.CreatedAt(time.Now().Add(-time.Minute)))
	live := mk("live", ledger.CreatedAt(time.Now().Add(time.Hour)))
	artifact := mk("artifact", "")
	rep, err := New(fastOpts(srv.URL())).Tagged(ctx, []string{region}, time.Hour, "")
	if err != nil || rep.Err() != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	imgs := inventory(srv, region).Images
	if slices.Contains(imgs, dead) || !slices.Contains(imgs, live) || !slices.Contains(imgs, artifact) {
		t.Errorf("images left %v: want %s removed, %s and %s kept\n%s", imgs, dead, live, artifact, rep)
	}
}

// A killed run's local temporary files (named after it) are removed by
// the next cleanup; a live run's and other runs' are not.
func TestTempFilesOfDeadRuns(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	dead, _ := ledger.Open(dir, "run-dead")
	dead.Start("t")
	dead.Close()
	// A dead run that also left a resource: cleaned under its lock.
	withRes, _ := ledger.Open(dir, "run-res")
	withRes.Start("t")
	e, _ := withRes.Intend(ledger.KindKeyPair, region, "res")
	withRes.Created(e, fixture{t, testCtx(t), simClient(srv.URL(), region)}.keyPair("res", tagsFor("run-res", time.Now())))
	withRes.Close()
	live, _ := ledger.Open(dir, "run-live")
	live.Start("t")
	defer live.Close()
	mk := func(name string) string {
		p := tmp + "/" + name
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deadFile := mk(ledger.TempPrefix("run-dead") + "packer-shell123")
	resFile := mk(ledger.TempPrefix("run-res") + "packer-shell000")
	liveFile := mk(ledger.TempPrefix("run-live") + "packer-shell456")
	other := mk("packer-shell789")
	rep, err := New(fastOpts(srv.URL())).All(testCtx(t), dir)
	if err != nil || rep.Err() != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	for _, p := range []string{deadFile, resFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("dead run's temp file %s stays: %v\n%s", p, err, rep)
		}
	}
	for _, p := range []string{liveFile, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// An instance cleanup cannot terminate: the group it holds fails at once,
// saying why, instead of a 10-minute wait in silence.
func TestUnterminatedInstanceDoesNotStall(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(),
		Faults: []ec2sim.FaultRule{{Action: "TerminateInstances", Fault: ec2sim.FaultUnauthorized, Probability: 1}}})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	tags := tagsFor("run-stuck", time.Now().Add(-3*time.Hour))
	sg := f.group("stuck", tags)
	f.instance("tok-stuck", tags, sg)
	opts := fastOpts(srv.URL())
	opts.WaitTimeout = time.Minute
	start := time.Now()
	rep, _ := New(opts).Tagged(ctx, []string{region}, time.Hour, "")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cleanup took %s", d)
	}
	if rep.Count(Failed) != 2 || !strings.Contains(rep.Err().Error(), "could not be terminated and may hold it") {
		t.Errorf("report:\n%s\n%v", rep, rep.Err())
	}
	srv.SetFaults(ec2sim.FaultSettings{})
}

// A journaled instance that Describe shows terminated (the build's own
// TerminateInstances went through, then it was killed) is already gone,
// not a failure (seen twice in a 500-build soak).
func TestTerminatedInstanceIsGone(t *testing.T) {
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ctx := testCtx(t)
	f := fixture{t, ctx, simClient(srv.URL(), region)}
	dir := t.TempDir()
	j, _ := ledger.Open(dir, "run-term")
	j.Start("t")
	e, _ := j.Intend(ledger.KindInstance, region, "tok-term")
	inst := f.instance("tok-term", tagsFor("run-term", time.Now()))
	j.Created(e, inst)
	j.Close()
	if _, err := f.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	rep, err := New(fastOpts(srv.URL())).All(ctx, dir)
	if err != nil || rep.Err() != nil || rep.Count(AlreadyGone) < 1 {
		t.Fatalf("%v %v\n%s", err, rep.Err(), rep)
	}
	if r, _ := ledger.Read(dir, "run-term"); len(r.Left()) != 0 || !r.Swept {
		t.Errorf("left %+v swept %v", r.Left(), r.Swept)
	}
}
