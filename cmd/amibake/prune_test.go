package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/prune"
	"github.com/amibake/amibake/internal/ui"
)

// runCmd runs amibake with args and returns the exit code and streams;
// stdin is a terminal when tty, with input on it.
func runCmd(t *testing.T, tty bool, input string, args ...string) (int, string, string) {
	t.Helper()
	ios, in, out, errOut := ui.Test()
	ios.SetStdinTTY(tty)
	in.WriteString(input)
	f := newFactory(ios)
	f.Getenv = os.Getenv
	root := newRootCmd(f)
	root.SetArgs(args)
	code := exitCode(errOut, f.Secrets, root.ExecuteContext(context.Background()))
	return code, out.String(), errOut.String()
}

var artifactLineRe = regexp.MustCompile(`(?m)^(ap-northeast-1|us-west-2): (ami-[0-9a-f]+)$`)

// nextSecond waits for the next wall-clock second: the AMI names carry
// the build time to the second, and EC2 refuses a duplicate name.
func nextSecond() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) }

func simSession(t *testing.T) *awsclient.Session {
	t.Helper()
	sess, err := awsclient.New(context.Background(), nil, awsclient.Options{Region: "ap-northeast-1", SkipCredentialValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func inventoryOf(srv *ec2sim.Server, region string) (images, snapshots []string) {
	ri := srv.Inventory().Regions[region]
	return slices.Clone(ri.Images), slices.Clone(ri.Snapshots)
}

func without(all []string, gone ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(gone, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// TestPruneTwelveCommits bakes twelve commits of the tutorial into two
// regions, some with --reuse (one reuse copies a release to the second
// region, the last reverts to an old version), launches an instance from
// an old AMI and points a launch template at two others, then prunes with
// --keep 3: exactly the right AMIs and snapshots go in both regions, those
// in use stay with their reasons, and a second prune does nothing.
func TestPruneTwelveCommits(t *testing.T) {
	tmpl := repoPath(t, "cmd/amibake/testdata/prune/commit.pkr.hcl")
	srv := buildEnv(t, false)
	const east, west = "ap-northeast-1", "us-west-2"
	commits := []struct {
		version     string
		copy, reuse bool
	}{
		{"v1", true, false}, {"v2", true, false}, {"v3", true, false}, {"v3", true, true},
		{"v4", true, false}, {"v5", false, false}, {"v5", true, true}, {"v6", true, false},
		{"v7", true, false}, {"v8", true, false}, {"v9", true, false}, {"v2", true, true},
	}
	amis := map[string]map[string]string{} // version → region → AMI
	for i, c := range commits {
		nextSecond()
		args := []string{"build", "-color=false", "-var", "version=" + c.version, "-var", fmt.Sprintf("copy=%v", c.copy)}
		if c.reuse {
			args = append(args, "--reuse")
		}
		code, out, errOut := runCmd(t, false, "", append(args, tmpl)...)
		if code != 0 {
			t.Fatalf("commit %d: exit %d\n%s\n%s", i+1, code, out, errOut)
		}
		if amis[c.version] == nil {
			amis[c.version] = map[string]string{}
		}
		for _, m := range artifactLineRe.FindAllStringSubmatch(out, -1) {
			if prev := amis[c.version][m[1]]; prev != "" && prev != m[2] {
				t.Fatalf("commit %d baked %s again in %s (%s, had %s)", i+1, c.version, m[1], m[2], prev)
			}
			amis[c.version][m[1]] = m[2]
		}
	}
	if amis["v5"][west] == "" || amis["v2"][east] == "" {
		t.Fatalf("artifacts: %v", amis)
	}
	imagesE, snapsE := inventoryOf(srv, east)
	imagesW, snapsW := inventoryOf(srv, west)
	if len(imagesE) != 9 || len(imagesW) != 9 {
		t.Fatalf("after 12 commits: %d AMIs in %s, %d in %s, want 9 and 9", len(imagesE), east, len(imagesW), west)
	}

	sess := simSession(t)
	ctx := context.Background()
	ce := sess.EC2(east)
	snapOf := map[string][]string{}
	for _, region := range []string{east, west} {
		out, err := sess.EC2(region).DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range out.Images {
			for _, b := range im.BlockDeviceMappings {
				if b.Ebs != nil {
					snapOf[aws.ToString(im.ImageId)] = append(snapOf[aws.ToString(im.ImageId)], aws.ToString(b.Ebs.SnapshotId))
				}
			}
		}
	}
	// In use: an instance of v1, and a launch template whose default
	// version launches v3 and whose latest launches v6.
	run, err := ce.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amis["v1"][east]), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT2Micro})
	if err != nil {
		t.Fatal(err)
	}
	instance := aws.ToString(run.Instances[0].InstanceId)
	// They stand for an instance and a template made before the prune.
	simtest.Visible(ctx, t, ce, instance)
	lt, err := ce.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(amis["v3"][east]), InstanceType: types.InstanceTypeT2Micro}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId,
		SourceVersion: aws.String("1"), LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(amis["v6"][east])}}, simtest.RetryNotFound); err != nil {
		t.Fatal(err)
	}
	simtest.Visible(ctx, t, ce, aws.ToString(lt.LaunchTemplate.LaunchTemplateId))
	t.Cleanup(func() {
		_, _ = ce.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instance}})
		_, _ = ce.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId})
		for i := 0; i < 100 && len(srv.Inventory().Regions[east].Instances)+len(srv.Inventory().Regions[east].Volumes) > 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})

	pruneArgs := []string{"prune", tmpl, "-var", "version=v2", "--keep", "3"}
	// Without a terminal and without --yes, a real prune refuses.
	if code, _, errOut := runCmd(t, false, "", pruneArgs...); code != 2 || !strings.Contains(errOut, "add --yes to proceed, or --dry-run") {
		t.Errorf("no terminal, no --yes: exit %d\n%s", code, errOut)
	}
	// On a terminal, answering no changes nothing.
	if code, _, errOut := runCmd(t, true, "no\n", pruneArgs...); code != 1 || !strings.Contains(errOut, "Type yes to go on") || !strings.Contains(errOut, "nothing was changed") {
		t.Errorf("answered no: exit %d\n%s", code, errOut)
	}
	// The dry run: the table, with every reason.
	code, out, errOut := runCmd(t, false, "", append(pruneArgs, "--dry-run")...)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		amis["v1"][east] + ".*keep  *in use by instance " + instance + ` \(running\)`,
		amis["v3"][east] + `.*keep  *in use by launch template web \(default version 1\)`,
		amis["v6"][east] + `.*keep  *in use by launch template web \(latest version 2\)`,
		amis["v2"][east] + `.*keep  *what the template builds now \(input digest`,
		amis["v2"][west] + `.*keep  *what the template builds now`,
		amis["v9"][west] + `.*keep  *release 1 of 9: among the 3 newest`,
		amis["v5"][east] + `.*delete  *release 5 of 9: not among the 3 newest`,
		`Would delete 7 AMI\(s\) and 7 snapshot\(s\) in ap-northeast-1, us-west-2; kept 11 AMI\(s\). Dry run: nothing was changed.`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("dry-run table lacks %q:\n%s", want, out)
		}
	}
	if got, _ := inventoryOf(srv, east); !slices.Equal(got, imagesE) {
		t.Fatal("the dry run changed something")
	}

	// The real prune.
	code, out, errOut = runCmd(t, false, "", append(pruneArgs, "--yes", "--json")...)
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s\n%s", code, out, errOut)
	}
	var doc prune.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if doc.Summary.DeletedImages != 7 || doc.Summary.DeletedSnapshots != 7 || doc.Summary.Failed != 0 {
		t.Errorf("summary %+v", doc.Summary)
	}
	goneE := []string{amis["v4"][east], amis["v5"][east]}
	goneW := []string{amis["v1"][west], amis["v3"][west], amis["v4"][west], amis["v5"][west], amis["v6"][west]}
	var goneSnapsE, goneSnapsW []string
	for _, id := range goneE {
		goneSnapsE = append(goneSnapsE, snapOf[id]...)
	}
	for _, id := range goneW {
		goneSnapsW = append(goneSnapsW, snapOf[id]...)
	}
	gotE, gotSnapsE := inventoryOf(srv, east)
	gotW, gotSnapsW := inventoryOf(srv, west)
	if want := without(imagesE, goneE...); !slices.Equal(gotE, want) {
		t.Errorf("%s AMIs after prune: %v, want %v", east, gotE, want)
	}
	if want := without(imagesW, goneW...); !slices.Equal(gotW, want) {
		t.Errorf("%s AMIs after prune: %v, want %v", west, gotW, want)
	}
	if want := without(snapsE, goneSnapsE...); !slices.Equal(gotSnapsE, want) {
		t.Errorf("%s snapshots after prune: %v, want %v", east, gotSnapsE, want)
	}
	if want := without(snapsW, goneSnapsW...); !slices.Equal(gotSnapsW, want) {
		t.Errorf("%s snapshots after prune: %v, want %v", west, gotSnapsW, want)
	}
	journals, _ := filepath.Glob(filepath.Join(os.Getenv("HOME"), ".local/state/amibake/prune/*.jsonl"))
	if len(journals) != 1 {
		t.Errorf("prune journals: %v", journals)
	}

	// A second prune does nothing.
	code, out, errOut = runCmd(t, false, "", append(pruneArgs, "--yes")...)
	if code != 0 || !strings.Contains(out, "Deleted 0 AMI(s) and 0 snapshot(s)") {
		t.Errorf("second prune: exit %d\n%s\n%s", code, out, errOut)
	}
	if got, _ := inventoryOf(srv, east); !slices.Equal(got, gotE) {
		t.Error("the second prune changed something")
	}
}

// TestPostProcessorKeepsTwo runs a template carrying amazon-ami-management
// with keep_releases = 2 three times: two AMIs are left, the newest two.
func TestPostProcessorKeepsTwo(t *testing.T) {
	tmpl := repoPath(t, "cmd/amibake/testdata/prune/managed.pkr.hcl")
	srv := buildEnv(t, false)
	var made []string
	for i := 1; i <= 3; i++ {
		nextSecond()
		code, out, errOut := runCmd(t, false, "", "build", "-color=false", tmpl)
		if code != 0 {
			t.Fatalf("build %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
		m := artifactLineRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("build %d: no artifact in\n%s", i, out)
		}
		made = append(made, m[2])
		if i == 3 && !strings.Contains(out, "Deregistered "+made[0]) {
			t.Errorf("build 3 output does not say it deregistered %s:\n%s", made[0], out)
		}
	}
	images, snaps := inventoryOf(srv, "ap-northeast-1")
	if want := []string{made[1], made[2]}; !slices.Equal(images, without(want)) {
		t.Errorf("AMIs left: %v, want %v", images, without(want))
	}
	if len(snaps) != 2 {
		t.Errorf("snapshots left: %v, want the two AMIs' own", snaps)
	}
}

// Bad input that needs no cloud.
func TestPruneUsage(t *testing.T) {
	buildEnv(t, true)
	t.Setenv("AWS_REGION", "us-east-1")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"prune", "--keep", "3", "--dry-run"}, 2, "prune needs a selection"},
		{[]string{"prune", "--tag", "App=x", "--dry-run"}, 2, "prune needs a keep rule"},
		{[]string{"prune", "--tag", "App=x", "--keep", "0"}, 2, "--keep 0 deletes every selected AMI: add --yes"},
		{[]string{"prune", "--tag", "App", "--keep", "1", "--dry-run"}, 2, `--tag "App": want key=value`},
		{[]string{"prune", "--tag", "App=x", "--keep-within", "3x", "--dry-run"}, 2, "--keep-within \"3x\""},
		{[]string{"prune", "--tag", "App=x", "--keep", "1", "--group-by", "colour", "--dry-run"}, 2, "--group-by \"colour\""},
		{[]string{"prune", "--tag", "App=x", "--keep", "1", "--dry-run"}, 1, "no AMI matches (tag App=x) among the AMIs this account owns in us-east-1."},
		{[]string{"prune", "--tag", "App=x", "--keep", "1", "--dry-run", "--all-regions"}, 1, "ap-northeast-1, ap-northeast-2"},
		{[]string{"prune", "--tag", "App=x", "--keep", "1", "--dry-run", "--all-regions", "--region", "us-east-1"}, 2, "--all-regions and --region do not go together"},
	} {
		code, _, errOut := runCmd(t, false, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d\n%s\nwant %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// TestPruneByTag: --tag selection in the listed regions, --deprecate, and
// the JSON document, against an API-only simulator (the AMIs are copies of
// catalogue images).
func TestPruneByTag(t *testing.T) {
	srv := buildEnv(t, true)
	t.Setenv("AWS_REGION", "us-east-1")
	sess := simSession(t)
	ctx := context.Background()
	cat, err := sess.EC2("us-east-1").DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
	if err != nil {
		t.Fatal(err)
	}
	src := aws.ToString(cat.Images[0].ImageId)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("svc %d", 1795600000+i)
		east, err := sess.EC2("us-east-1").CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String(name), SourceImageId: aws.String(src), SourceRegion: aws.String("us-east-1"),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("Service"), Value: aws.String("svc")}}}}})
		if err != nil {
			t.Fatal(err)
		}
		// The source was made a moment ago; both stand for releases made
		// before the prune.
		west, err := sess.EC2("eu-west-1").CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String(name), SourceImageId: east.ImageId, SourceRegion: aws.String("us-east-1"), CopyImageTags: aws.Bool(true)}, simtest.RetryNotFound)
		if err != nil {
			t.Fatal(err)
		}
		simtest.Visible(ctx, t, sess.EC2("us-east-1"), aws.ToString(east.ImageId))
		simtest.Visible(ctx, t, sess.EC2("eu-west-1"), aws.ToString(west.ImageId))
		time.Sleep(5 * time.Millisecond)
	}
	base := []string{"prune", "--tag", "Service=svc", "--keep", "1", "--region", "us-east-1,eu-west-1", "--yes", "--json"}
	code, out, errOut := runCmd(t, false, "", append(base, "--deprecate")...)
	if code != 0 {
		t.Fatalf("deprecate: exit %d\n%s\n%s", code, out, errOut)
	}
	var doc prune.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Summary.DeprecatedImages != 4 || doc.Summary.DeletedImages != 0 {
		t.Fatalf("deprecate: %v %+v", err, doc.Summary)
	}
	code, out, errOut = runCmd(t, false, "", base...)
	if code != 0 {
		t.Fatalf("prune: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Summary.DeletedImages != 4 || doc.Summary.DeletedSnapshots != 4 || doc.Summary.KeptImages != 2 {
		t.Fatalf("prune: %v %+v", err, doc.Summary)
	}
	for _, r := range []string{"us-east-1", "eu-west-1"} {
		if images, snaps := inventoryOf(srv, r); len(images) != 1 || len(snaps) != 1 {
			t.Errorf("%s: %v %v, want one AMI and its snapshot", r, images, snaps)
		}
	}
}
