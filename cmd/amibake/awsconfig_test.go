package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ui"
)

// TestCommandsTakeAWSConfigFromFactory: the commands that talk to AWS get
// their configuration from the factory. The process environment names no
// endpoint and no credentials: only the factory's configuration reaches
// the simulator.
func TestCommandsTakeAWSConfigFromFactory(t *testing.T) {
	srv, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EC2": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
		"AWS_PROFILE": "", "AWS_REGION": "", "AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	creds := credentials.NewStaticCredentialsProvider("AKIAFACTORY000000001", "factory-secret", "")
	ctx := context.Background()
	c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), HTTPClient: awsclient.HTTPClient(nil), Credentials: creds})
	runKeyPair(ctx, t, c, "old", "run-old", time.Now().Add(-3*time.Hour))

	loads := 0
	for _, tc := range []struct {
		args    []string
		code    int
		out     string
		calls   string
		errText string
	}{
		{args: []string{"cleanup", "--tagged", "--region", "us-east-1", "--dry-run", "--ledger-dir", t.TempDir()},
			out: "Dry run: 1 resource(s) would be removed", calls: "DescribeKeyPairs"},
		{args: []string{"prune", "--tag", "App=none", "--keep", "1", "--region", "us-east-1", "--dry-run"},
			code: 1, errText: "no AMI matches", calls: "DescribeImages"},
		// A template's builds open their sessions through it too.
		{args: []string{"plan", "-only", "*.db", "testdata/plan/plan.pkr.hcl"}, out: "amazon-ebs.db: would bake", calls: "DescribeImages"},
	} {
		ios, _, out, errOut := ui.Test()
		f := newFactory(ios)
		f.Getenv = func(k string) string { return map[string]string{"XDG_STATE_HOME": t.TempDir()}[k] }
		f.AWSConfig = func(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
			loads++
			// The factory's settings first: the command's own (a
			// template's access options) override them.
			return config.LoadDefaultConfig(ctx, append([]func(*config.LoadOptions) error{config.WithBaseEndpoint(srv.URL()), config.WithCredentialsProvider(creds)}, optFns...)...)
		}
		before := loads
		srv.ResetCalls()
		code := exitCode(errOut, f.Secrets, execute(ctx, newRootCmd(f), tc.args))
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errText) {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
		}
		if loads == before || srv.Calls()[tc.calls] == 0 {
			t.Errorf("%v: the factory's configuration was loaded %d times; the simulator saw %v", tc.args, loads-before, srv.Calls())
		}
	}
}
