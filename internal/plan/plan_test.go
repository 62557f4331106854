package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const tutorialAMI = "ami-06128816a1c781a57"

var fixedNow = time.Date(2026, 11, 25, 23, 44, 41, 0, time.UTC)

// env is a simulator with the environment a user would set to reach it,
// and a copy of testdata/app as the working directory (provisioner paths
// are relative to it).
type env struct {
	srv *ec2sim.Server
	dir string
}

func newEnv(t testing.TB) *env { return newEnvLatency(t, ec2sim.ZeroLatency()) }

func newEnvLatency(t testing.TB, lat ec2sim.Latency) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, ec2sim.Options{NoSSH: true, Latency: lat})
	if err != nil {
		cancel()
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close(); cancel() })
	home := t.TempDir()
	empty := filepath.Join(home, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ACCESS_KEY_ID": "AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY": "simulator-secret",
		"HOME": home, "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
	} {
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	copyTree(t, "testdata", dir)
	t.Chdir(filepath.Join(dir, "app"))
	return &env{srv: srv, dir: dir}
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			// Modes enter directory digests: set them whatever the umask.
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			return os.Chmod(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		return os.Chmod(dst, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// client is a region's EC2 client; "" is the build region, as
// awsclient.Session.EC2.
func (e *env) client(region string) *ec2.Client {
	if region == "" {
		region = "ap-northeast-1"
	}
	return ec2.New(ec2.Options{
		Region: region, BaseEndpoint: aws.String(e.srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSIMULATOR", "simulator-secret", ""),
	})
}

// plan loads path (relative to the app directory) and plans it.
func (e *env) plan(t testing.TB, path string, lo template.LoadOptions) *Document {
	t.Helper()
	return e.planWith(t, path, lo, Options{})
}

func (e *env) planWith(t testing.TB, path string, lo template.LoadOptions, opts Options) *Document {
	t.Helper()
	if lo.Now.IsZero() {
		lo.Now = fixedNow
	}
	tmpl, diags := template.Load(path, lo)
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", path, diags)
	}
	doc, err := Make(context.Background(), tmpl, opts)
	if err != nil {
		t.Fatalf("plan %s: %v", path, err)
	}
	return doc
}

func (e *env) digestOf(t testing.TB, path string, lo template.LoadOptions) string {
	t.Helper()
	return e.plan(t, path, lo).Builds[0].InputDigest
}

// registerBase registers an account-owned image named name from the
// tutorial AMI's snapshot, newer than any before it.
func (e *env) registerBase(t testing.TB, name string, tags map[string]string) string {
	t.Helper()
	ctx := context.Background()
	c := e.client("ap-northeast-1")
	src, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{tutorialAMI}})
	if err != nil || len(src.Images) != 1 {
		t.Fatalf("describe the tutorial AMI: %v", err)
	}
	in := &ec2.RegisterImageInput{
		Name: aws.String(name), RootDeviceName: aws.String("/dev/sda1"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsBlockDevice{SnapshotId: src.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId}}},
	}
	var tg []types.Tag
	for k, v := range tags {
		tg = append(tg, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if len(tg) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: tg}}
	}
	time.Sleep(2 * time.Millisecond) // creation dates have millisecond resolution
	out, err := c.RegisterImage(ctx, in)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	// It stands for an AMI registered before the plan: listed by then.
	simtest.Visible(ctx, t, c, aws.ToString(out.ImageId))
	return aws.ToString(out.ImageId)
}

func TestDigestChangesWithInputs(t *testing.T) {
	e := newEnv(t)
	const tmpl = "app.pkr.hcl"
	base := e.digestOf(t, tmpl, template.LoadOptions{})
	if again := e.digestOf(t, tmpl, template.LoadOptions{}); again != base {
		t.Fatalf("digest not stable: %s then %s", base, again)
	}

	// timestamp() in ami_name and uuidv4() in a tag change every run and
	// do not change the digest.
	later := e.plan(t, tmpl, template.LoadOptions{Now: fixedNow.Add(3*time.Hour + 7*time.Second)})
	if got := later.Builds[0].InputDigest; got != base {
		t.Errorf("a later clock changed the digest: %s vs %s", got, base)
	}
	if got, want := strings.Join(later.Builds[0].Volatile, ","), "ami_name,tags.BuildUUID"; got != want {
		t.Errorf("volatile = %s, want %s", got, want)
	}

	changes := []struct {
		name string
		do   func(t *testing.T) template.LoadOptions
	}{
		{"one byte of an uploaded script", func(t *testing.T) template.LoadOptions {
			rewrite(t, "scripts/setup.sh", func(s string) string { return strings.Replace(s, "motd", "motD", 1) })
			return template.LoadOptions{}
		}},
		{"one byte of a file in an uploaded directory", func(t *testing.T) template.LoadOptions {
			rewrite(t, "files/conf/app.conf", func(s string) string { return strings.Replace(s, "8080", "8081", 1) })
			return template.LoadOptions{}
		}},
		{"a new file in an uploaded directory", func(t *testing.T) template.LoadOptions {
			if err := os.WriteFile("files/extra", nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return template.LoadOptions{}
		}},
		{"a variable", func(t *testing.T) template.LoadOptions {
			return template.LoadOptions{Vars: map[string]string{"greeting": "hellO"}}
		}},
		{"a sensitive variable", func(t *testing.T) template.LoadOptions {
			return template.LoadOptions{Vars: map[string]string{"api_token": "tok-SECRET-1235"}}
		}},
		{"a provisioner option", func(t *testing.T) template.LoadOptions {
			return template.LoadOptions{Vars: map[string]string{"expect_disconnect": "true"}}
		}},
		{"a builder option", func(t *testing.T) template.LoadOptions {
			rewrite(t, "app.pkr.hcl", func(s string) string { return strings.Replace(s, `"t3.micro"`, `"t3.small"`, 1) })
			return template.LoadOptions{}
		}},
		{"provisioner order", func(t *testing.T) template.LoadOptions {
			rewrite(t, "app.pkr.hcl", func(s string) string {
				return strings.Replace(s, `inline = ["echo done"]`, `inline = ["echo done", "true"]`, 1)
			})
			return template.LoadOptions{}
		}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			snapshot := snapshotDir(t, ".")
			defer restoreDir(t, ".", snapshot)
			lo := c.do(t)
			if got := e.digestOf(t, tmpl, lo); got == base {
				t.Errorf("digest unchanged after changing %s", c.name)
			}
		})
	}

	// Options that cannot change the image do not change the digest.
	same := []struct{ from, to string }{
		{`ssh_timeout   = "3m"`, `ssh_timeout   = "9m"`},
		{`ami_regions   = ["us-east-1"]`, `ami_regions   = ["us-east-1", "eu-west-1"]`},
	}
	for _, s := range same {
		t.Run("unchanged by "+s.from, func(t *testing.T) {
			snapshot := snapshotDir(t, ".")
			defer restoreDir(t, ".", snapshot)
			rewrite(t, "app.pkr.hcl", func(x string) string { return strings.Replace(x, s.from, s.to, 1) })
			if got := e.digestOf(t, tmpl, template.LoadOptions{}); got != base {
				t.Errorf("digest changed by %s", s.to)
			}
		})
	}
}

func TestDigestFollowsNewestSourceAMI(t *testing.T) {
	e := newEnv(t)
	e.registerBase(t, "base-1", nil)
	const tmpl = "../filter.pkr.hcl"
	d1 := e.plan(t, tmpl, template.LoadOptions{})
	if again := e.digestOf(t, tmpl, template.LoadOptions{}); again != d1.Builds[0].InputDigest {
		t.Fatal("digest not stable")
	}
	newer := e.registerBase(t, "base-2", nil)
	d2 := e.plan(t, tmpl, template.LoadOptions{})
	if d2.Builds[0].SourceAMI.ID != newer {
		t.Fatalf("source AMI %s, want the newest %s", d2.Builds[0].SourceAMI.ID, newer)
	}
	if d2.Builds[0].InputDigest == d1.Builds[0].InputDigest {
		t.Error("a newer source AMI did not change the digest")
	}
}

func TestPlanIsReadOnlyAndFindsReusableAMIs(t *testing.T) {
	e := newEnv(t)
	const tmpl = "app.pkr.hcl"
	e.srv.ResetCalls()
	doc := e.plan(t, tmpl, template.LoadOptions{})
	calls := e.srv.Calls()
	if len(calls) == 0 {
		t.Fatal("no calls recorded")
	}
	for action := range calls {
		if !strings.HasPrefix(action, "Describe") && !strings.HasPrefix(action, "Get") {
			t.Errorf("plan called %s (%d times)", action, calls[action])
		}
	}
	if inv := e.srv.Inventory(); !inv.Empty() {
		t.Errorf("plan left resources: %+v", inv.Leftovers())
	}
	b := doc.Builds[0]
	if b.Action != ActionBake || b.Regions[0].Action != ActionBake || b.Regions[1].Action != ActionCopy {
		t.Fatalf("fresh account: action %s, regions %+v", b.Action, b.Regions)
	}

	// An AMI tagged with the digest in the build region only: copy.
	id := e.registerBase(t, "app-earlier", map[string]string{reuse.TagKey: b.InputDigest})
	// Without --reuse, build bakes all the same: so does the plan, and
	// it says what --reuse would do.
	b = e.plan(t, tmpl, template.LoadOptions{}).Builds[0]
	if b.Action != ActionBake || !strings.Contains(b.Why, "reuse is off, so the build bakes; an AMI with this input digest exists (ap-northeast-1 "+id+")") {
		t.Fatalf("without --reuse: action %s (%s), regions %+v", b.Action, b.Why, b.Regions)
	}
	reuseOn := Options{Reuse: true}
	b = e.planWith(t, tmpl, template.LoadOptions{}, reuseOn).Builds[0]
	if b.Action != ActionCopy || b.Regions[0].AMI != id || b.Regions[0].Action != ActionReuse || b.Regions[1].Action != ActionCopy {
		t.Fatalf("one region: action %s, regions %+v", b.Action, b.Regions)
	}
	// Copied to the other region: reuse.
	all, err := reuse.CopyMissing(context.Background(), reuse.SessionClients(e.client), b.InputDigest,
		map[string]string{"ap-northeast-1": id}, []string{"ap-northeast-1", "us-east-1"}, reuse.CopyOptions{Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b = e.planWith(t, tmpl, template.LoadOptions{}, reuseOn).Builds[0]
	if b.Action != ActionReuse || b.Regions[1].AMI != all["us-east-1"] {
		t.Fatalf("every region: action %s, regions %+v", b.Action, b.Regions)
	}
	// An AMI with another digest is not reused.
	b = e.planWith(t, tmpl, template.LoadOptions{Vars: map[string]string{"greeting": "other"}}, reuseOn).Builds[0]
	if b.Action != ActionBake {
		t.Errorf("another digest: action %s", b.Action)
	}
}

func TestSensitiveValuesNeverShown(t *testing.T) {
	e := newEnv(t)
	doc := e.plan(t, "app.pkr.hcl", template.LoadOptions{})
	var text, js bytes.Buffer
	if err := doc.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := doc.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String()} {
		if strings.Contains(out, "SECRET") {
			t.Errorf("%s output shows the sensitive value:\n%s", name, out)
		}
	}
}

func TestGolden(t *testing.T) {
	e := newEnv(t)
	doc := e.plan(t, "app.pkr.hcl", template.LoadOptions{})
	var text, js bytes.Buffer
	if err := doc.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := doc.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal(js.Bytes(), &parsed); err != nil || parsed["format_version"] != float64(FormatVersion) {
		t.Fatalf("JSON document: %v %v", err, parsed["format_version"])
	}
	golden(t, "plan.txt.golden", normalise(text.String()))
	golden(t, "plan.json.golden", normalise(js.String()))
}

// normalise replaces what differs between runs (the simulator's port) and
// the digests of settings, which change whenever a plugin gains a default;
// TestDigestChangesWithInputs checks the digests themselves.
func normalise(s string) string {
	s = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "127.0.0.1:PORT")
	return regexp.MustCompile(`\b[0-9a-f]{64}\b`).ReplaceAllString(s, "<sha256>")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	// The working directory is a copy; the golden files live in the source.
	path := filepath.Join(srcDir, "testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var srcDir, _ = os.Getwd()

func rewrite(t testing.TB, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := f(string(b))
	if out == string(b) {
		t.Fatalf("rewrite of %s changed nothing", path)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

func snapshotDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[p], _ = os.ReadFile(p)
		}
		return err
	})
	return out
}

func restoreDir(t testing.TB, dir string, snap map[string][]byte) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, ok := snap[p]; !ok {
				os.Remove(p)
			}
		}
		return err
	})
	for p, b := range snap {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The text of the reuse and copy actions, from a document built by hand.
func TestRenderActions(t *testing.T) {
	build := func(action string, regions ...RegionPlan) *Build {
		return &Build{
			Name: "app.amazon-ebs.x", Action: action, AMIName: "x-1", BuildRegion: "us-east-1", InputDigest: "d",
			SourceAMI: SourceAMI{ID: "ami-src", Name: "base", Owner: "123", OwnerAlias: "amazon", CreationDate: "2026-01-01T00:00:00.000Z"},
			Temporary: Temporary{Instance: "t3.micro instance", KeyPair: "existing key pair k",
				SecurityGroup: SecurityGroup{IDs: []string{"sg-1"}, Why: "security_group_ids"}},
			Provisioners: []ProvisionerInputs{{Type: "file", Files: []File{{Path: "gen.txt", Role: "upload", Generated: true}, {Path: "big.bin", Role: "upload", Size: 3 << 20}}}},
			Regions:      regions,
		}
	}
	doc := &Document{FormatVersion: FormatVersion, Builds: []*Build{
		build(ActionReuse, RegionPlan{Region: "us-east-1", AMI: "ami-1", Action: ActionReuse}, RegionPlan{Region: "eu-west-1", AMI: "ami-2", Action: ActionReuse}),
		build(ActionCopy, RegionPlan{Region: "us-east-1", Action: ActionCopy}, RegionPlan{Region: "eu-west-1", AMI: "ami-2", Action: ActionReuse}),
	}, Skipped: []Skipped{{Name: "docker.d", Reason: `builder type "docker": amibake only runs amazon-ebs`}}}
	var out bytes.Buffer
	if err := doc.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	golden(t, "actions.txt.golden", out.String())
}
