package main

import (
	"context"
	"path/filepath"
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
	key := func(name string, created time.Time, run string) {
		var ts []types.Tag
		for k, v := range ledger.Tags(run, "amazon-ebs.x", created) {
			ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String(name),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: ts}}})
		if err != nil {
			t.Fatal(err)
		}
		// It stands for a key pair a build left earlier: listed by now.
		simtest.Visible(ctx, t, c, aws.ToString(out.KeyPairId))
	}
	key("old", time.Now().Add(-3*time.Hour), "run-old")
	key("young", time.Now(), "run-young")
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
	key("dead", time.Now(), "run-dead")
	j.ForBuild("amazon-ebs.x").Created(e, "dead")
	j.Close()
	code, out, _ = runTemplateCmd(t, nil, "cleanup", "--run-id", "run-dead", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "1 removed") {
		t.Fatalf("cleanup --run-id: exit %d\n%s", code, out)
	}
	// --run-id with --region: a run whose ledger is elsewhere, by its tags.
	key("remote", time.Now(), "run-remote")
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
	var ts []types.Tag
	for k, v := range ledger.Tags("run-far", "amazon-ebs.x", time.Now()) {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	far, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("far"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: ts}}})
	if err != nil {
		t.Fatal(err)
	}
	simtest.Visible(ctx, t, c, aws.ToString(far.KeyPairId))
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
