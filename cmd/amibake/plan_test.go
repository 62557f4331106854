package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ec2sim"
)

// planEnv starts a simulator and points the AWS SDK at it the way a user
// would, with environment variables.
func planEnv(t *testing.T) *ec2sim.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
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
	return srv
}

func TestPlanCommand(t *testing.T) {
	srv := planEnv(t)
	const tmpl = "testdata/plan/plan.pkr.hcl"
	cases := []struct {
		name   string
		args   []string
		code   int
		want   []string
		absent []string
	}{
		{name: "text", args: []string{"plan", tmpl}, want: []string{
			"amazon-ebs.web: would bake", "amazon-ebs.db: would bake", "ami-06128816a1c781a57",
			"opens TCP port 22 to 10.1.0.0/16", "Volatile:        ami_name", "1. shell (1 inline)",
		}},
		{name: "single-dash flags", args: []string{"plan", "-only", "*.db", "-var", "name=api", tmpl},
			want: []string{"amazon-ebs.db: would bake"}, absent: []string{"amazon-ebs.web"}},
		{name: "json", args: []string{"plan", "--json", "-except=*.db", tmpl}, want: []string{`"format_version": 1`, `"name": "amazon-ebs.web"`}},
		{name: "no template", args: []string{"plan"}, code: 2},
		{name: "missing template", args: []string{"plan", "testdata/plan/nope.pkr.hcl"}, code: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv.ResetCalls()
			code, out, errOut := runTemplateCmd(t, nil, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			all := out + errOut
			if strings.Contains(all, "hunter2") {
				t.Errorf("the sensitive value reached the output:\n%s", all)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(out, a) {
					t.Errorf("output has %q:\n%s", a, out)
				}
			}
			for action, n := range srv.Calls() {
				if !strings.HasPrefix(action, "Describe") && !strings.HasPrefix(action, "Get") {
					t.Errorf("plan called %s %d times", action, n)
				}
			}
			if c.name == "json" {
				var doc struct {
					FormatVersion int `json:"format_version"`
					Builds        []struct {
						Name        string   `json:"name"`
						InputDigest string   `json:"input_digest"`
						Volatile    []string `json:"volatile"`
					} `json:"builds"`
				}
				if err := json.Unmarshal([]byte(out), &doc); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				if len(doc.Builds) != 1 || len(doc.Builds[0].InputDigest) != 64 || len(doc.Builds[0].Volatile) != 1 {
					t.Errorf("document: %+v", doc)
				}
			}
		})
	}
	if inv := srv.Inventory(); !inv.Empty() {
		t.Errorf("plan created resources: %+v", inv.Leftovers())
	}
}

func TestPlanCommandReportsBadOptionsBeforeCalling(t *testing.T) {
	srv := planEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.pkr.hcl")
	src := "source \"amazon-ebs\" \"x\" {\n  region = \"ap-northeast-1\"\n  source_ami = \"ami-06128816a1c781a57\"\n  instance_type = \"t3.micro\"\n  ssh_username = \"root\"\n  ami_name = \"x\"\n}\nbuild {\n  sources = [\"source.amazon-ebs.x\"]\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	code, _, errOut := runTemplateCmd(t, nil, "plan", path)
	if code != 1 || !strings.Contains(errOut, "bad.pkr.hcl line 6") || !strings.Contains(errOut, "ami_name") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d kinds of AWS calls made before the offline check failed: %v", n, srv.Calls())
	}
}

func TestPlanCommandSkipsOtherBuilders(t *testing.T) {
	planEnv(t)
	code, out, errOut := runTemplateCmd(t, nil, "plan", "testdata/validate/docker.pkr.hcl")
	if code != 0 || !strings.Contains(out, "skipped: builder type \"docker\"") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
