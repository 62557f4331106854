package plan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
)

// The path `amibake build --reuse` takes: decide, copy what is missing,
// and hand the post-processors a reused artifact.
func TestDecideCopyAndArtifact(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lo := template.LoadOptions{Now: fixedNow}
	tmpl, diags := template.Load("app.pkr.hcl", lo)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b := tmpl.Builds[0]
	in := DecideInput{
		Input: Input{Build: b, Sensitive: tmpl.Sensitive},
		EC2:   e.client, BuildRegion: "ap-northeast-1",
	}
	dec, err := Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Action != ActionBake || len(dec.Found) != 0 || len(dec.Regions) != 2 {
		t.Fatalf("fresh: %+v", dec)
	}
	id := e.registerBase(t, "app-baked-before", map[string]string{reuse.TagKey: dec.Digest.Sum})
	e.srv.ResetCalls()
	if dec, err = Decide(ctx, in); err != nil {
		t.Fatal(err)
	}
	if dec.Action != ActionCopy || dec.Found["ap-northeast-1"] != id {
		t.Fatalf("after tagging: %s %v", dec.Action, dec.Found)
	}
	for action := range e.srv.Calls() {
		if action != "DescribeImages" {
			t.Errorf("Decide called %s", action)
		}
	}
	cfg, _ := decodeConfig(b)
	opts := dec.CopyOptions(cfg)
	if opts.Tags["Base"] != "ubuntu/images/hvm-ssd/ubuntu-bionic-18.04-amd64-server-20190212.1" || opts.Tags["Greeting"] != "hello" {
		t.Errorf("copy tags not rendered: %v", opts.Tags)
	}
	opts.Poll = time.Millisecond
	amis, err := reuse.CopyMissing(ctx, reuse.SessionClients(e.client), dec.Digest.Sum, dec.Found, dec.Regions, opts)
	if err != nil {
		t.Fatal(err)
	}
	a := dec.Artifact(b.Name, amis)
	if !a.Reused || len(a.AMIs) != 2 || a.AMIs["ap-northeast-1"] != id || a.Data["InputDigest"] != dec.Digest.Sum || a.Data["SourceAMI"] != tutorialAMI {
		t.Errorf("artifact %+v", a)
	}
	out, err := e.client("us-east-1").DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amis["us-east-1"]}})
	if err != nil || len(out.Images) != 1 || aws.ToString(out.Images[0].Name) != "app-baked-before" {
		t.Fatalf("copy: %v %+v", err, out)
	}
	if dec, err = Decide(ctx, in); err != nil || dec.Action != ActionReuse {
		t.Fatalf("after the copy: %v %v", dec.Action, err)
	}
}

// BenchmarkReusePath is what `build --reuse` does before handing the
// post-processors a reused artifact when every region has the AMI: open the
// session (credentials check), resolve the source AMI, digest, look up the
// tag in each region. No instance is launched.
func BenchmarkReusePath(b *testing.B) {
	b.Run("zero-latency", func(b *testing.B) { benchReusePath(b, ec2sim.ZeroLatency()) })
	// The latency profile of the build benchmarks (BenchmarkTutorialOverhead).
	b.Run("default-latency", func(b *testing.B) { benchReusePath(b, ec2sim.DefaultLatency()) })
}

func benchReusePath(b *testing.B, lat ec2sim.Latency) {
	e := newEnvLatency(b, lat)
	ctx := context.Background()
	lo := template.LoadOptions{Now: fixedNow}
	tmpl, diags := template.Load("app.pkr.hcl", lo)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	bld := tmpl.Builds[0]
	cfg, _ := decodeConfig(bld)
	in := DecideInput{Input: Input{Build: bld, Config: cfg, Sensitive: tmpl.Sensitive}}
	sess, err := Session(ctx, nil, cfg)
	if err != nil {
		b.Fatal(err)
	}
	in.EC2, in.BuildRegion = sess.EC2, sess.Region()
	dec, err := Decide(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	id := e.registerBase(b, "app-reused", map[string]string{reuse.TagKey: dec.Digest.Sum})
	waitAvailable(b, e, id)
	if _, err := reuse.CopyMissing(ctx, reuse.SessionClients(e.client), dec.Digest.Sum, map[string]string{"ap-northeast-1": id}, dec.Regions, reuse.CopyOptions{Poll: 10 * time.Millisecond}); err != nil {
		b.Fatal(err)
	}
	e.srv.ResetCalls()
	for b.Loop() {
		sess, err := Session(ctx, nil, cfg)
		if err != nil {
			b.Fatal(err)
		}
		in.EC2 = sess.EC2
		dec, err := Decide(ctx, in)
		if err != nil || dec.Action != ActionReuse {
			b.Fatalf("%v %v", dec, err)
		}
		_ = dec.Artifact(bld.Name, dec.Found)
	}
	b.StopTimer()
	if n := e.srv.Calls()["RunInstances"]; n != 0 {
		b.Fatalf("%d instances launched", n)
	}
}

func waitAvailable(b testing.TB, e *env, id string) {
	b.Helper()
	for i := 0; i < 1000; i++ {
		out, err := e.client("").DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err == nil && len(out.Images) == 1 && out.Images[0].State == "available" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s never became available", id)
}

// TestExplain: plan and build share the reuse rule, and plan says why.
func TestExplain(t *testing.T) {
	found := map[string]string{"us-east-1": "ami-1"}
	for _, tc := range []struct {
		name                       string
		flag, block, rebuild, skip bool
		lookup                     string
		amis                       map[string]string
		wantAction, wantWhy        string
	}{
		{"no --reuse: bake even with a match", false, false, false, false, ActionReuse, found, ActionBake, "reuse is off, so the build bakes; an AMI with this input digest exists (us-east-1 ami-1): `amibake build --reuse`"},
		{"no --reuse, no match", false, false, false, false, ActionBake, nil, ActionBake, "reuse is off (it is on with --reuse"},
		{"--reuse and a match everywhere", true, false, false, false, ActionReuse, found, ActionReuse, "reuse is on and every target region"},
		{"reuse = true in the build block", false, true, false, false, ActionReuse, found, ActionReuse, "reuse is on"},
		{"--reuse, some regions", true, false, false, false, ActionCopy, found, ActionCopy, "the others get copies"},
		{"--reuse, nothing found", true, false, false, false, ActionBake, nil, ActionBake, "reuse is on, but no AMI"},
		{"--rebuild wins", true, true, true, false, ActionReuse, found, ActionBake, "--rebuild bakes regardless; an AMI with this input digest exists (us-east-1 ami-1)"},
		{"skip_create_ami", true, false, false, true, ActionReuse, found, ActionBake, "skip_create_ami"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := ReuseOn(tc.flag, tc.block, tc.rebuild) && !tc.skip
			action, why := Explain(on, tc.rebuild, tc.skip, tc.lookup, tc.amis)
			if action != tc.wantAction || !strings.Contains(why, tc.wantWhy) {
				t.Errorf("got %s (%q), want %s (%q)", action, why, tc.wantAction, tc.wantWhy)
			}
		})
	}
}
