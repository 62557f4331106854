package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
)

func TestCleanupUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"cleanup"}, 2},
		{[]string{"cleanup", "--all", "--tagged"}, 2},
		{[]string{"cleanup", "--run-id", "../etc"}, 2},
		{[]string{"cleanup", "--all", "--region", "us-east-1"}, 2},
		{[]string{"cleanup", "--tagged"}, 2}, // no region anywhere
		{[]string{"cleanup", "--tagged", "--region", "us-east-1", "--older-than", "-1h"}, 2},
		{[]string{"cleanup", "--run-id", "r1", "--prune-after", "1h"}, 2},
		{[]string{"cleanup", "--all", "--prune-after", "-1h"}, 2},
		{[]string{"cleanup", "--run-id", "nosuchrun", "--ledger-dir", t.TempDir()}, 1},
		{[]string{"cleanup", "--all", "--ledger-dir", t.TempDir()}, 0},
	} {
		code, out, _ := runTemplateCmd(t, map[string]string{}, tt.args...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d (%s)", tt.args, code, tt.code, out)
		}
	}
}

func TestCleanupAgainstSimulator(t *testing.T) {
	srv, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The command finds the simulator the way it would find AWS: through
	// the SDK's environment.
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIASIMULATOR000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "simulator-secret-key-value")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "x", "")})
	runKeyPair(ctx, t, c, "old", "run-old", time.Now().Add(-3*time.Hour))
	runKeyPair(ctx, t, c, "young", "run-young", time.Now())
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("users-own")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"cleanup", "--tagged", "--older-than", "2h", "--region", "us-east-1", "--ledger-dir", dir}

	code, out, _ := runTemplateCmd(t, nil, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "would remove") || !strings.Contains(out, "Dry run: 1 resource(s) would be removed") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if n := len(srv.Inventory().Regions["us-east-1"].KeyPairs); n != 3 {
		t.Fatalf("dry run removed something: %d key pairs", n)
	}
	code, out, _ = runTemplateCmd(t, nil, args...)
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Fatalf("cleanup: exit %d\n%s", code, out)
	}
	if got := srv.Inventory().Regions["us-east-1"].KeyPairs; strings.Join(got, ",") != "users-own,young" {
		t.Errorf("key pairs left: %v", got)
	}
	if strings.Contains(out, "simulator-secret-key-value") {
		t.Error("the secret key reached the output")
	}

	// --run-id: a run whose process died with a key pair recorded.
	j, err := ledger.Open(dir, "run-dead")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := j.ForBuild("amazon-ebs.x").Intend(ledger.KindKeyPair, "us-east-1", "dead")
	runKeyPair(ctx, t, c, "dead", "run-dead", time.Now())
	j.ForBuild("amazon-ebs.x").Created(e, "dead")
	j.Close()
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--run-id", "run-dead", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Fatalf("cleanup --run-id: exit %d\n%s", code, out)
	}
	// --run-id with --region: a run whose ledger is elsewhere, by its tags.
	runKeyPair(ctx, t, c, "remote", "run-remote", time.Now())
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--run-id", "run-remote", "--region", "us-east-1", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Fatalf("cleanup --run-id --region: exit %d\n%s", code, out)
	}
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "Nothing to clean up") {
		t.Errorf("cleanup --all after: exit %d\n%s", code, out)
	}
}

// The shell points at another endpoint (another account): cleanup keeps
// the run and says what to run; with no override it cleans up where the
// run recorded, whatever AWS_ENDPOINT_URL says.
func TestCleanupUsesTheRecordedLocation(t *testing.T) {
	right, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(), AccountID: "111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	defer right.Close()
	wrong, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(), AccountID: "222222222222"})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	t.Setenv("AWS_ENDPOINT_URL", wrong.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIASIMULATOR000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "simulator-secret-key-value")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(right.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIASIMULATOR000001", "x", "")})
	dir := t.TempDir()
	j, err := ledger.Open(dir, "run-far")
	if err != nil {
		t.Fatal(err)
	}
	j.Start("t")
	rec := j.ForBuildAt("amazon-ebs.x", ledger.Location{Account: "111111111111", Endpoint: right.URL(), STSEndpoint: right.URL()})
	e, _ := rec.Intend(ledger.KindKeyPair, "us-east-1", "far")
	runKeyPair(ctx, t, c, "far", "run-far", time.Now())
	rec.Created(e, "far")
	j.Close()

	code, out, errOut := runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir, "--endpoint-url", wrong.URL())
	if code != 1 || !strings.Contains(out, "1 not verified") || !strings.Contains(out, "amibake cleanup --run-id run-far --endpoint-url "+right.URL()) {
		t.Fatalf("from the wrong endpoint: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(right.Inventory().Regions["us-east-1"].KeyPairs); n != 1 {
		t.Fatal("the wrong cleanup removed the key pair")
	}
	code, out, errOut = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Fatalf("from the recorded endpoint: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(right.Inventory().Regions["us-east-1"].KeyPairs); n != 0 {
		t.Error("key pair left")
	}
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "Nothing to clean up: 1 run(s)") {
		t.Errorf("third cleanup: exit %d\n%s", code, out)
	}
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir, "--prune-after", "1ns")
	if code != 0 || !strings.Contains(out, "Pruned the journals of 1 finished run(s)") || !strings.Contains(out, "0 left in") {
		t.Errorf("prune: exit %d\n%s", code, out)
	}
}

// killingProxy forwards to the simulator and, on the first answered call
// of action, kills the build (SIGKILL) before the answer reaches it: the
// resource exists and the build never hears of it. With waitLease, the
// call waits until the build has pushed its lease once (a CreateTags of
// amibake:lease-until), so that a second runner can tell it is dead.
type killingProxy struct {
	url       string
	action    string
	waitLease bool
	kill      func()

	leased chan struct{}
	killed chan struct{}
	once   sync.Once
}

type actionKey struct{}

// fleetLaunched matches a CreateFleet answer that names an instance.
var fleetLaunched = regexp.MustCompile(`<instanceIds>\s*<item>\s*i-`)

func startKillingProxy(t *testing.T, target, action string, waitLease bool) *killingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &killingProxy{action: action, waitLease: waitLease, leased: make(chan struct{}), killed: make(chan struct{})}
	var leaseOnce sync.Once
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Context().Value(actionKey{}) != p.action {
			return nil
		}
		// An instant fleet answers 200 with its errors inside when it
		// launched nothing (on an eventually consistent EC2, a key pair or
		// template not visible yet), and the build asks again: the kill
		// waits for the answer that launched an instance.
		if p.action == "CreateFleet" {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if !fleetLaunched.Match(body) {
				return nil
			}
		}
		fired := false
		p.once.Do(func() {
			fired = true
			close(p.killed) // first: the test may see the build exit before kill returns
			p.kill()
		})
		if fired {
			return errors.New("the build was killed before it heard the answer")
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		action := form.Get("Action")
		if action == "CreateTags" && strings.Contains(string(body), url.QueryEscape(ledger.TagLeaseUntil)) {
			leaseOnce.Do(func() { close(p.leased) })
		}
		if action == p.action && p.waitLease {
			select {
			case <-p.leased:
			case <-time.After(30 * time.Second):
				t.Errorf("the build pushed no lease before %s", action)
			}
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actionKey{}, action)))
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// noSSHImageTemplate bakes an AMI without connecting to the instance.
const noSSHImageTemplate = `source "amazon-ebs" "img" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  communicator  = "none"
  ami_name      = "img ${uuidv4()}"
}
build { sources = ["source.amazon-ebs.img"] }
`

func writeKillTemplate(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.pkr.hcl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A build SIGKILLed at the worst moment leaves nothing once the README's
// cleanup has run, checked against the simulator's inventory: a spot
// build killed as its instant fleet launched (its launch template, which
// the build deletes right after CreateFleet, included), cleaned up from
// its own ledger or by a second runner's `cleanup --tagged` with another
// state directory; and a build killed while its AMI is pending (the AMI
// and the snapshots its block device mappings name).
func TestCleanupAfterSIGKILL(t *testing.T) {
	const spot = `source "amazon-ebs" "spot" {
  region              = "ap-northeast-1"
  source_ami          = "ami-06128816a1c781a57"
  spot_price          = "auto"
  spot_instance_types = ["t3.micro", "t2.micro"]
  ssh_username        = "root"
  ami_name            = "spot ${uuidv4()}"
}
build { sources = ["source.amazon-ebs.spot"] }
`
	for _, tc := range []struct {
		name, template, killOn string
		lat                    ec2sim.Latency
		tagged                 bool // clean up as a second runner: --tagged, another state directory
		before                 func(ec2sim.RegionInventory) bool
	}{
		{name: "spot build, cleanup --all", template: spot, killOn: "CreateFleet",
			before: func(r ec2sim.RegionInventory) bool { return len(r.LaunchTemplates) == 1 && len(r.Instances) == 1 }},
		{name: "spot build, cleanup --tagged from another runner", template: spot, killOn: "CreateFleet", tagged: true,
			before: func(r ec2sim.RegionInventory) bool { return len(r.LaunchTemplates) == 1 && len(r.Instances) == 1 }},
		{name: "pending AMI, cleanup --all", template: noSSHImageTemplate, killOn: "CreateImage", lat: ec2sim.Latency{ImagePending: 2 * time.Second},
			before: func(r ec2sim.RegionInventory) bool { return len(r.Images) == 1 && len(r.Snapshots) == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := buildEnvLatency(t, true, tc.lat)
			base := srv.Inventory().Regions["ap-northeast-1"]
			proxy := startKillingProxy(t, srv.URL(), tc.killOn, tc.tagged)
			t.Setenv("AWS_ENDPOINT_URL", proxy.url)
			t.Setenv("AMIBAKE_LEASE", "3s")
			tmpl := writeKillTemplate(t, tc.template)
			c := startChild(t, "build", "-color=false", tmpl)
			proxy.kill = func() { _ = c.cmd.Process.Signal(syscall.SIGKILL) }
			code := c.exit(t)
			select {
			case <-proxy.killed:
			default:
				t.Fatalf("the build ended (exit %d) before %s:\n%s", code, tc.killOn, c.output())
			}
			inv := srv.Inventory().Regions["ap-northeast-1"]
			if !tc.before(inv) {
				t.Fatalf("after the kill at %s the simulator holds %+v", tc.killOn, inv)
			}
			killedAt := time.Now()

			dir := ledger.DefaultDir(os.Getenv)
			args := []string{"cleanup", "--all", "--ledger-dir", dir}
			if tc.tagged {
				// The build's lease (3 s) must lapse before another
				// runner may take its resources.
				time.Sleep(time.Until(killedAt.Add(4 * time.Second)))
				args = []string{"cleanup", "--tagged", "--older-than", "0s", "--region", "ap-northeast-1", "--ledger-dir", t.TempDir()}
			}
			code, out, errOut := runTemplateCmd(t, nil, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
			}
			t.Logf("%v:\n%s%s", args, out, errOut)
			after := srv.Inventory().Regions["ap-northeast-1"]
			if !srv.Inventory().Empty() || !slices.Equal(after.Images, base.Images) || !slices.Equal(after.Snapshots, base.Snapshots) {
				t.Errorf("left after %v: %+v (before the build: %d images, %d snapshots)", args, after, len(base.Images), len(base.Snapshots))
			}
			if tc.killOn == "CreateFleet" && !strings.Contains(out, "launch-template") {
				t.Errorf("the report does not name the launch template:\n%s", out)
			}
			// The killed run's own ledger, where the build ran: whatever
			// removed its resources, a cleanup there verifies them gone.
			code, out, errOut = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", dir)
			runs, _ := ledger.List(dir)
			if code != 0 || len(runs) != 1 || len(runs[0].Left()) != 0 || !runs[0].Swept {
				t.Errorf("cleanup --all in the build's ledger: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

// A build whose AMI failed and whose cleanup deregistered it but could not
// delete its snapshot (untagged: the AMI never became available, and the
// journal names only the AMI): `cleanup --all` finds the snapshot through
// its description, which names the AMI, instead of calling the run clean.
func TestCleanupFindsTheSnapshotOfADeregisteredAMI(t *testing.T) {
	srv := buildEnv(t, true)
	if err := srv.SetFaults(ec2sim.FaultSettings{Rules: []ec2sim.FaultRule{
		{Action: "CreateImage", Fault: ec2sim.FaultImageFailed, Calls: []int{1}},
		{Action: "DeleteSnapshot", Fault: ec2sim.FaultUnauthorized, Calls: []int{1}},
	}}); err != nil {
		t.Fatal(err)
	}
	tmpl := writeKillTemplate(t, noSSHImageTemplate)
	base := srv.Inventory().Regions["ap-northeast-1"].Snapshots
	code, out, errOut := runBuildCmd(t, "-color=false", tmpl)
	if code != 1 || !strings.Contains(out+errOut, "delete snapshot") {
		t.Fatalf("build: exit %d, want 1 with the snapshot it could not delete:\n%s%s", code, out, errOut)
	}
	if left := srv.Inventory().Regions["ap-northeast-1"]; len(left.Images) != 0 || len(left.Snapshots) != len(base)+1 {
		t.Fatalf("after the build: %+v", left)
	}
	code, out, errOut = runTemplateCmd(t, nil, "cleanup", "--all", "--ledger-dir", ledger.DefaultDir(os.Getenv))
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Errorf("cleanup --all: exit %d\n%s%s", code, out, errOut)
	}
	if after := srv.Inventory().Regions["ap-northeast-1"].Snapshots; !slices.Equal(after, base) {
		t.Errorf("snapshots after cleanup: %v, before the build: %v", after, base)
	}
}

// runKeyPair creates key pair name with the tags a build of run made at
// created gives it, and waits until EC2 lists it: it stands for a key
// pair a build left earlier.
func runKeyPair(ctx context.Context, t *testing.T, c *ec2.Client, name, run string, created time.Time) {
	t.Helper()
	var ts []types.Tag
	for k, v := range ledger.Tags(run, "amazon-ebs.x", created) {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: ts}}})
	if err != nil {
		t.Fatalf("create key pair %s: %v", name, err)
	}
	simtest.Visible(ctx, t, c, aws.ToString(out.KeyPairId))
}
