package bake

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// reuseFixture copies testdata/reuse to a temporary directory (the test
// edits the script) and returns the template's path.
func reuseFixture(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"reuse.pkr.hcl", "setup.sh"} {
		b, err := os.ReadFile(filepath.Join("testdata/reuse", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "reuse.pkr.hcl")
}

// buildAt loads path (once, as `amibake build` does) with the
// clock at now, so each run has its own timestamp() in ami_name, and runs
// it.
func (e *env) buildAt(t testing.TB, path string, now time.Time, vars map[string]string, opts Options) *run {
	t.Helper()
	lo := template.LoadOptions{Env: e.getenv, Now: now, Vars: vars}
	tmpl, diags := template.Load(path, lo)
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", path, diags)
	}
	return e.runLoaded(t, tmpl, opts)
}

// runLoaded runs a loaded template.
func (e *env) runLoaded(t testing.TB, tmpl *template.Template, opts Options) *run {
	t.Helper()
	ios, _, out, errOut := ui.Test()
	opts.Getenv = e.getenv
	opts.RunID = "run-reuse"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, _, err := Run(ctx, tmpl, ui.New(ios, ui.Options{}), opts)
	if err != nil || !res.OK() {
		t.Fatalf("build: %v %v\n%s\n%s", err, res, out, errOut)
	}
	return &run{res: res, out: out, err: errOut}
}

func imageTags(t testing.TB, e *env, region, id string) (map[string]string, []string) {
	t.Helper()
	out, err := simEC2(e, region).DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("describe %s in %s: %v", id, region, err)
	}
	tags := map[string]string{}
	for _, tg := range out.Images[0].Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	var snaps []string
	for _, bd := range out.Images[0].BlockDeviceMappings {
		if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
			snaps = append(snaps, *bd.Ebs.SnapshotId)
		}
	}
	return tags, snaps
}

func lastManifestEntry(t *testing.T, dir string) map[string]any {
	t.Helper()
	var m struct {
		Builds []map[string]any `json:"builds"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil || json.Unmarshal(b, &m) != nil || len(m.Builds) == 0 {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	return m.Builds[len(m.Builds)-1]
}

func TestReuse(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	path := reuseFixture(t)
	dir := chdir(t)
	clock := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	next := func() time.Time { clock = clock.Add(time.Minute + 7*time.Second); return clock }
	// Launches, not calls: on an eventually consistent profile a
	// RunInstances naming the new key pair or group may be refused and
	// retried.
	launches := func() int { return e.srv.Succeeded()["RunInstances"] }
	reuseOn := map[string]string{"reuse": "true"}

	// First build: nothing to reuse, so it bakes and tags the AMI, its
	// copy and their snapshots with the digest.
	first := e.buildAt(t, path, next(), reuseOn, Options{})
	a := first.res.Builds[0].Artifacts[0]
	if a.Reused || launches() != 1 || len(a.AMIs) != 2 {
		t.Fatalf("first build: reused %v, %d launches, AMIs %v\n%s", a.Reused, launches(), a.AMIs, first.out)
	}
	if !strings.Contains(first.out.String(), "No AMI carries input digest ") {
		t.Errorf("the log does not say why it bakes:\n%s", first.out)
	}
	var digest string
	east, west := a.AMIs["us-east-1"], a.AMIs["us-west-2"]
	for region, id := range a.AMIs {
		tags, snaps := imageTags(t, e, region, id)
		digest = tags[reuse.TagKey]
		if len(digest) != 64 || tags["Team"] != "platform" {
			t.Errorf("%s %s tags = %v", region, id, tags)
		}
		out, err := simEC2(e, region).DescribeSnapshots(bg(t), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
		if err != nil || len(out.Snapshots) == 0 {
			t.Fatalf("snapshots of %s: %v %v", id, snaps, err)
		}
		for _, sn := range out.Snapshots {
			if !hasTag(sn.Tags, reuse.TagKey, digest) || !hasTag(sn.Tags, "Kind", "root") {
				t.Errorf("snapshot %s of %s tags = %v", aws.ToString(sn.SnapshotId), id, sn.Tags)
			}
		}
	}

	// Nothing changed but the clock (timestamp() in ami_name): reused,
	// with no instance and the manifest saying so.
	e.srv.ResetCalls()
	second := e.buildAt(t, path, next(), reuseOn, Options{})
	b := second.res.Builds[0].Artifacts[0]
	if !b.Reused || b.AMIs["us-east-1"] != east || b.AMIs["us-west-2"] != west || launches() != 0 {
		t.Fatalf("rerun: reused %v, AMIs %v, %d launches; calls %v\n%s", b.Reused, b.AMIs, launches(), e.srv.Calls(), second.out)
	}
	for _, c := range []string{"CreateKeyPair", "CreateSecurityGroup", "CreateImage", "CopyImage"} {
		if n := e.srv.Calls()[c]; n != 0 {
			t.Errorf("a reused build called %s %d times", c, n)
		}
	}
	for _, want := range []string{"Reusing " + east + " in us-east-1: it carries input digest " + digest, "Reusing " + west + " in us-west-2",
		"Left out of the input digest as they change every run: ami_name", "Running post-processor:  (type manifest)"} {
		if !strings.Contains(second.out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, second.out)
		}
	}
	t.Logf("reused build:\n%s", second.out)
	if m := lastManifestEntry(t, dir); m["reused"] != true || m["artifact_id"] != "us-east-1:"+east+",us-west-2:"+west {
		t.Errorf("manifest entry = %v", m)
	}

	// The copy in us-west-2 went away: copied again from us-east-1, not
	// rebaked.
	if _, err := simEC2(e, "us-west-2").DeregisterImage(bg(t), &ec2.DeregisterImageInput{ImageId: aws.String(west)}); err != nil {
		t.Fatal(err)
	}
	e.srv.ResetCalls()
	third := e.buildAt(t, path, next(), nil, Options{Reuse: true})
	c := third.res.Builds[0].Artifacts[0]
	newWest := c.AMIs["us-west-2"]
	if !c.Reused || c.AMIs["us-east-1"] != east || newWest == "" || newWest == west || launches() != 0 || e.srv.Succeeded()["CopyImage"] != 1 {
		t.Fatalf("missing copy: reused %v, AMIs %v, calls %v\n%s", c.Reused, c.AMIs, e.srv.Calls(), third.out)
	}
	if tags, _ := imageTags(t, e, "us-west-2", newWest); tags[reuse.TagKey] != digest {
		t.Errorf("the new copy's tags = %v", tags)
	}
	if !strings.Contains(third.out.String(), "Reusing "+newWest+" in us-west-2: copied from the reused AMI") {
		t.Errorf("log does not say the copy was made:\n%s", third.out)
	}

	// -rebuild bakes although everything matches.
	e.srv.ResetCalls()
	fourth := e.buildAt(t, path, next(), reuseOn, Options{Rebuild: true})
	if d := fourth.res.Builds[0].Artifacts[0]; d.Reused || launches() != 1 {
		t.Fatalf("rebuild: reused %v, %d launches\n%s", d.Reused, launches(), fourth.out)
	}

	// Without reuse enabled it bakes too, and still tags.
	e.srv.ResetCalls()
	fifth := e.buildAt(t, path, next(), nil, Options{})
	f := fifth.res.Builds[0].Artifacts[0]
	if f.Reused || launches() != 1 {
		t.Fatalf("reuse off: reused %v, %d launches", f.Reused, launches())
	}
	if tags, _ := imageTags(t, e, "us-east-1", f.AMIs["us-east-1"]); tags[reuse.TagKey] != digest {
		t.Errorf("a build without reuse must still tag its AMI: %v", tags)
	}

	// One byte of the script changed: a new digest, so it bakes.
	script := filepath.Join(filepath.Dir(path), "setup.sh")
	old, _ := os.ReadFile(script)
	if err := os.WriteFile(script, bytes.Replace(old, []byte("v1"), []byte("v2"), 1), 0o700); err != nil {
		t.Fatal(err)
	}
	e.srv.ResetCalls()
	sixth := e.buildAt(t, path, next(), reuseOn, Options{})
	g := sixth.res.Builds[0].Artifacts[0]
	if g.Reused || launches() != 1 {
		t.Fatalf("changed script: reused %v, %d launches\n%s", g.Reused, launches(), sixth.out)
	}
	if tags, _ := imageTags(t, e, "us-east-1", g.AMIs["us-east-1"]); tags[reuse.TagKey] == digest || len(tags[reuse.TagKey]) != 64 {
		t.Errorf("changed script kept digest %s: %v", digest, tags)
	}
}

func hasTag(tags []types.Tag, k, v string) bool {
	for _, tg := range tags {
		if aws.ToString(tg.Key) == k && aws.ToString(tg.Value) == v {
			return true
		}
	}
	return false
}

// BenchmarkReusedBuild bakes the reuse fixture once, then measures builds
// that reuse its AMIs, at the simulator's zero and default latencies:
// reused-wall-s/op next to the full bake's bake-wall-s, and the instances
// each reused build launched (goal: under 2 s, zero).
func BenchmarkReusedBuild(b *testing.B) {
	for _, lc := range []struct {
		name string
		lat  ec2sim.Latency
	}{{"zero-latency", ec2sim.ZeroLatency()}, {"default-latency", ec2sim.DefaultLatency()}} {
		b.Run(lc.name, func(b *testing.B) {
			path := reuseFixture(b)
			e := newBenchEnv(b, lc.lat)
			clock := time.Now()
			start := time.Now()
			e.buildAt(b, path, clock, nil, Options{})
			bake := time.Since(start)
			e.srv.ResetCalls()
			var arts []*artifact.Artifact
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clock = clock.Add(time.Minute)
				r := e.buildAt(b, path, clock, nil, Options{Reuse: true})
				arts = append(arts, r.res.Builds[0].Artifacts[0])
			}
			b.StopTimer()
			for _, a := range arts {
				if !a.Reused {
					b.Fatalf("not reused: %v", a)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "reused-wall-s/op")
			b.ReportMetric(bake.Seconds(), "bake-wall-s")
			b.ReportMetric(float64(e.srv.Calls()["RunInstances"])/float64(b.N), "instances/op")
		})
	}
}
