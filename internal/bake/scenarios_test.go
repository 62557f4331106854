package bake

import (
	"context"
	"encoding/json"
	"errors"
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
	gossh "golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/template"
)

func simEC2(e *env, region string) *ec2.Client {
	return ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(e.srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSIMULATOR", "simulator-secret", "")})
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestFullBuild(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	tmpl := abs(t, "testdata/full/full.pkr.hcl")
	dir := chdir(t)
	r := e.build(t, tmpl, template.LoadOptions{}, Options{RunUUID: "11111111-2222-3333-4444-555555555555"})
	if r.runErr != nil || !r.res.OK() {
		t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
	}
	a := r.res.Builds[0].Artifacts[0]
	east, west := a.AMIs["us-east-1"], a.AMIs["us-west-2"]
	if east == "" || west == "" {
		t.Fatalf("AMIs = %v", a.AMIs)
	}

	// Downloads.
	greeting, err := os.ReadFile(filepath.Join(dir, "greeting.txt"))
	if err != nil || !regexp.MustCompile(`^hello, i-[0-9a-f]+\n`).Match(greeting) {
		t.Errorf("greeting.txt = %q, %v", greeting, err)
	}
	for f, want := range map[string]string{"downloaded/app.conf": "hello from a file\n", "downloaded/sub/nested.txt": "nested\n"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", f, b, err)
		}
	}

	// Both regions: build-time tags, description, sharing, snapshot tags.
	for region, id := range a.AMIs {
		c := simEC2(e, region)
		out, err := c.DescribeImages(bg(t), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil || len(out.Images) != 1 {
			t.Fatalf("describe %s: %v", id, err)
		}
		im := out.Images[0]
		tags := map[string]string{}
		for _, tg := range im.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if !strings.HasPrefix(tags["Base"], "ami-") || tags["Region"] != "us-east-1" || tags["Team"] != "platform" || tags["amibake:run-id"] != "run-test" {
			t.Errorf("%s tags = %v", region, tags)
		}
		// As Packer: run_tags reach the AMI (CreateImage, then CopyImage
		// for the copy) unless skip_ami_run_tags.
		if tags["Purpose"] != "test" {
			t.Errorf("%s: run_tags must reach the AMI: %v", region, tags)
		}
		if !strings.HasPrefix(aws.ToString(im.Description), "built from ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-") {
			t.Errorf("%s description = %q", region, aws.ToString(im.Description))
		}
		perm, err := c.DescribeImageAttribute(bg(t), &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
		if err != nil || len(perm.LaunchPermissions) != 1 || aws.ToString(perm.LaunchPermissions[0].UserId) != "111122223333" {
			t.Errorf("%s launch permissions = %+v, %v", region, perm, err)
		}
		snaps, err := c.DescribeSnapshots(bg(t), &ec2.DescribeSnapshotsInput{SnapshotIds: a.Snapshots[region]})
		if err != nil || len(snaps.Snapshots) == 0 {
			t.Fatalf("snapshots %v: %v", a.Snapshots[region], err)
		}
		for _, sn := range snaps.Snapshots {
			found := false
			for _, tg := range sn.Tags {
				found = found || aws.ToString(tg.Key) == "Kind" && aws.ToString(tg.Value) == "root"
			}
			if !found {
				t.Errorf("snapshot %s tags %v", aws.ToString(sn.SnapshotId), sn.Tags)
			}
		}
	}

	// The manifest, in Packer's format.
	var m struct {
		Builds []struct {
			Name          string            `json:"name"`
			BuilderType   string            `json:"builder_type"`
			BuildTime     int64             `json:"build_time"`
			ArtifactID    string            `json:"artifact_id"`
			PackerRunUUID string            `json:"packer_run_uuid"`
			CustomData    map[string]string `json:"custom_data"`
		} `json:"builds"`
		LastRunUUID string `json:"last_run_uuid"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil || json.Unmarshal(b, &m) != nil || len(m.Builds) != 1 {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	got := m.Builds[0]
	if got.ArtifactID != "us-east-1:"+east+",us-west-2:"+west || got.BuilderType != "amazon-ebs" || got.PackerRunUUID != "11111111-2222-3333-4444-555555555555" ||
		m.LastRunUUID != got.PackerRunUUID || got.CustomData["greeting"] != "hello" || got.BuildTime == 0 {
		t.Errorf("manifest = %s", b)
	}

	// An instance launched from the AMI sees what provisioning wrote.
	checkLaunch(t, e, "us-east-1", east, "ubuntu", "cat /etc/greeting /opt/app/app.conf", "hello from a file")
}

// checkLaunch runs an instance from ami, logs in and runs cmd, expecting
// want in its output; then removes the instance and its key.
func checkLaunch(t *testing.T, e *env, region, ami, user, cmd, want string) {
	t.Helper()
	c := simEC2(e, region)
	_, priv, err := genKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := gossh.ParsePrivateKey(priv)
	if _, err := c.ImportKeyPair(bg(t), &ec2.ImportKeyPairInput{KeyName: aws.String("check"), PublicKeyMaterial: gossh.MarshalAuthorizedKey(signer.PublicKey())}); err != nil {
		t.Fatal(err)
	}
	defer c.DeleteKeyPair(context.Background(), &ec2.DeleteKeyPairInput{KeyName: aws.String("check")})
	// The default group admits only its members: open SSH to the host.
	sg, err := c.CreateSecurityGroup(bg(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String("check"), Description: aws.String("SSH for the check")})
	if err != nil {
		t.Fatal(err)
	}
	// The group, the key pair and the AMI are new: calls naming them retry
	// NotFound, as the EC2 guide asks of every client.
	if _, err := c.AuthorizeSecurityGroupIngress(bg(t), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}}}}, simtest.RetryNotFound); err != nil {
		t.Fatal(err)
	}
	out, err := c.RunInstances(bg(t), &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: types.InstanceTypeT3Micro, KeyName: aws.String("check"), SecurityGroupIds: []string{aws.ToString(sg.GroupId)}}, simtest.RetryNotFound)
	if err != nil {
		t.Fatalf("launch from %s: %v", ami, err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	defer func() {
		ctx := context.Background()
		_, _ = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, simtest.RetryNotFound)
		_ = ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay = 50 * time.Millisecond }).
			Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 30*time.Second)
		_, _ = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	}()
	desc, err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) { o.MinDelay = 50 * time.Millisecond }).
		WaitForOutput(bg(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	host := aws.ToString(desc.Reservations[0].Instances[0].PublicIpAddress)
	comm, err := ssh.Connect(bg(t), ssh.Config{Host: host, User: user, PrivateKey: priv, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("ssh to %s: %v", host, err)
	}
	defer comm.Close()
	var buf strings.Builder
	res, err := comm.Run(bg(t), &communicator.Cmd{Command: cmd, Stdout: &buf, Stderr: &buf})
	if err != nil || res.ExitStatus != 0 || !strings.Contains(buf.String(), want) {
		t.Errorf("on an instance of %s, %q = %d %v: %s", ami, cmd, res.ExitStatus, err, buf.String())
	}
}

func TestFailingProvisionerOnError(t *testing.T) {
	tmpl := abs(t, "testdata/failing.pkr.hcl")
	for _, tt := range []struct {
		mode         pipeline.OnError
		cleanupProv  bool
		cleanedUp    bool
		wantAbortErr bool
	}{
		{pipeline.OnErrorCleanup, true, true, false},
		// Packer: the error-cleanup-provisioner runs, then nothing else
		// is cleaned up, as with abort.
		{pipeline.OnErrorRunCleanupProvisioner, true, false, true},
		{pipeline.OnErrorAsk, false, true, false}, // nobody to ask: clean up
		{pipeline.OnErrorAbort, false, false, true},
	} {
		t.Run(map[pipeline.OnError]string{0: "cleanup", 1: "abort", 2: "ask", 3: "run-cleanup-provisioner"}[tt.mode], func(t *testing.T) {
			e := newEnv(t, ec2sim.ZeroLatency())
			chdir(t)
			r := e.build(t, tmpl, template.LoadOptions{}, Options{OnError: tt.mode})
			if r.runErr != nil || r.res.OK() {
				t.Fatalf("want a failed build, got %v ok=%v", r.runErr, r.res != nil && r.res.OK())
			}
			all := r.out.String() + r.err.String()
			berr := r.res.Builds[0].Err
			if !strings.Contains(berr.Error(), "exit status: 3") {
				t.Errorf("build error = %v", berr)
			}
			if got := strings.Contains(all, "error-cleanup-provisioner-ran"); got != tt.cleanupProv {
				t.Errorf("error-cleanup-provisioner ran = %v, want %v\n%s", got, tt.cleanupProv, all)
			}
			if got := strings.Contains(all, "Terminating the source AWS instance"); got != tt.cleanedUp {
				t.Errorf("cleaned up = %v, want %v\n%s", got, tt.cleanedUp, all)
			}
			if got := errors.Is(berr, pipeline.ErrAborted); got != tt.wantAbortErr {
				t.Errorf("aborted = %v, want %v", got, tt.wantAbortErr)
			}
			if !tt.cleanedUp {
				for _, want := range []string{`Step "provision" failed, aborting...`, `aborted: skipping cleanup of step "launch source instance"`} {
					if !strings.Contains(all, want) {
						t.Errorf("log lacks %q:\n%s", want, all)
					}
				}
				inv := e.srv.Inventory()
				if inv.Empty() {
					t.Fatal("-on-error=abort left nothing to inspect")
				}
				removeLeftovers(t, e)
			}
		})
	}
}

// removeLeftovers deletes what an aborted build left, so that the test's
// final inventory check passes only because of this.
func removeLeftovers(t *testing.T, e *env) {
	t.Helper()
	for region, ri := range e.srv.Inventory().Leftovers() {
		c := simEC2(e, region)
		if len(ri.Instances) > 0 {
			if _, err := c.TerminateInstances(bg(t), &ec2.TerminateInstancesInput{InstanceIds: ri.Instances}); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range ri.KeyPairs {
			_, _ = c.DeleteKeyPair(bg(t), &ec2.DeleteKeyPairInput{KeyName: aws.String(k)})
		}
		for _, g := range ri.SecurityGroups {
			_, _ = c.DeleteSecurityGroup(bg(t), &ec2.DeleteSecurityGroupInput{GroupId: aws.String(g)})
		}
		for _, v := range ri.Volumes {
			_, _ = c.DeleteVolume(bg(t), &ec2.DeleteVolumeInput{VolumeId: aws.String(v)})
		}
	}
}

func TestParallelBuilds(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	tmpl := abs(t, "testdata/parallel.pkr.hcl")
	dir := chdir(t)
	start := time.Now()
	r := e.build(t, tmpl, template.LoadOptions{}, Options{ParallelBuilds: 2})
	wall := time.Since(start)
	if r.runErr != nil || !r.res.OK() {
		t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
	}
	var sum time.Duration
	for _, b := range r.res.Builds {
		sum += b.Duration
		if len(b.Artifacts) == 0 || len(b.Artifacts[0].AMIs) != 1 {
			t.Errorf("%s artifacts %v", b.Name, b.Artifacts)
		}
	}
	if wall >= sum {
		t.Errorf("builds did not overlap: wall %s, sum of builds %s", wall, sum)
	}
	out := r.out.String()
	for _, want := range []string{"==> amazon-ebs.one: Connected to SSH!", "==> amazon-ebs.two: Connected to SSH!",
		"--> amazon-ebs.one: AMIs were created:\nap-northeast-1: ami-", "--> amazon-ebs.two: AMIs were created:\neu-west-1: ami-"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if strings.Count(string(b), `"artifact_id"`) != 2 {
		t.Errorf("manifest should list both builds:\n%s", b)
	}
}

func TestForceDeregister(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	tmpl := abs(t, "testdata/fixed_name.json")
	chdir(t)
	first := e.build(t, tmpl, template.LoadOptions{}, Options{})
	if first.runErr != nil || !first.res.OK() {
		t.Fatalf("first build: %v\n%s", first.runErr, first.err)
	}
	old := first.res.Builds[0].Artifacts[0].AMIs["ap-northeast-1"]

	launches := e.srv.Calls()["RunInstances"]
	second := e.build(t, tmpl, template.LoadOptions{}, Options{})
	if second.res.OK() || !strings.Contains(second.res.Builds[0].Err.Error(), "is used by an existing AMI: "+old) {
		t.Fatalf("second build should fail on the name: %v", second.res.Builds[0].Err)
	}
	if e.srv.Calls()["RunInstances"] != launches {
		t.Error("the name clash was found after launching an instance")
	}

	for name, run := range map[string]func() *run{
		"force_deregister": func() *run {
			return e.build(t, tmpl, template.LoadOptions{Vars: map[string]string{"force": "true"}}, Options{})
		},
		"-force": func() *run { return e.build(t, tmpl, template.LoadOptions{}, Options{Force: true}) },
	} {
		r := run()
		if r.runErr != nil || !r.res.OK() {
			t.Fatalf("%s: %v\n%s", name, r.res.Builds[0].Err, r.err)
		}
		out, err := simEC2(e, "ap-northeast-1").DescribeImages(bg(t), &ec2.DescribeImagesInput{Owners: []string{"self"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) == old {
			t.Errorf("%s: images %v, want only a new one", name, out.Images)
		}
		old = aws.ToString(out.Images[0].ImageId)
		if !strings.Contains(r.out.String(), "Deregistered AMI id:") {
			t.Errorf("%s: log:\n%s", name, r.out)
		}
	}
}
