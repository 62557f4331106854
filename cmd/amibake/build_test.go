package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/ui"
)

// buildEnv starts a simulator and points the process environment at it,
// as a user would: AWS_ENDPOINT_URL and the what-is-my-IP URL.
func buildEnv(t *testing.T, noSSH bool) *ec2sim.Server {
	t.Helper()
	return buildEnvLatency(t, noSSH, ec2sim.ZeroLatency())
}

func buildEnvLatency(t *testing.T, noSSH bool, lat ec2sim.Latency) *ec2sim.Server {
	t.Helper()
	if os.Geteuid() != 0 && !noSSH {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, ec2sim.Options{Latency: lat, NoSSH: noSSH})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if inv := srv.Inventory(); !inv.Empty() {
			t.Errorf("resources left behind: %+v", inv.Leftovers())
		}
		_ = srv.Close()
		cancel()
	})
	home := t.TempDir()
	empty := filepath.Join(home, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AMIBAKE_CHECKIP_URL": srv.URL() + "/_sim/myip",
		"AWS_EC2_METADATA_DISABLED": "true", "HOME": home, "XDG_STATE_HOME": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_ACCESS_KEY_ID": "AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY": "simulator-secret",
		"AWS_PROFILE": "", "AWS_REGION": "", "NO_COLOR": "1",
	} {
		t.Setenv(k, v)
	}
	t.Chdir(t.TempDir())
	return srv
}

func runBuildCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := ui.Test()
	f := newFactory(ios)
	f.Getenv = os.Getenv
	root := newRootCmd(f)
	root.SetArgs(append([]string{"build"}, args...))
	code := exitCode(errOut, f.Secrets, root.ExecuteContext(context.Background()))
	return code, out.String(), errOut.String()
}

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var tutorialJSON string

func init() { tutorialJSON, _ = filepath.Abs("../../examples/tutorial/hello_ami.json") }

func TestBuildCommandTutorial(t *testing.T) {
	buildEnv(t, false)
	code, out, errOut := runBuildCmd(t, "-color=false", tutorialJSON)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !regexp.MustCompile(`==> Builds finished. The artifacts of successful builds are:\n--> amazon-ebs: AMIs were created:\nap-northeast-1: ami-[0-9a-f]+\n`).MatchString(out) {
		t.Errorf("stdout:\n%s", out)
	}
	runs, _ := filepath.Glob(filepath.Join(os.Getenv("HOME"), ".local/state/amibake/runs/*"))
	if len(runs) == 0 {
		t.Error("no run journal written")
	}
	if strings.Contains(out+errOut, "fuga") {
		t.Error("the template's secret_key reached the output")
	}
}

func TestBuildCommandMachineReadable(t *testing.T) {
	buildEnv(t, false)
	code, out, errOut := runBuildCmd(t, "-machine-readable", tutorialJSON)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, re := range []string{
		// Packer 1.16: ui lines have an empty target.
		`(?m)^\d+,,ui,say,==> amazon-ebs: Connected to SSH!$`,
		`(?m)^\d+,,ui,say,\\n==> Wait completed after .*$`,
		`(?m)^\d+,amazon-ebs,artifact-count,1$`,
		`(?m)^\d+,amazon-ebs,artifact,0,builder-id,mitchellh.amazonebs$`,
		`(?m)^\d+,amazon-ebs,artifact,0,id,ap-northeast-1:ami-[0-9a-f]+$`,
		`(?m)^\d+,amazon-ebs,artifact,0,string,AMIs were created:\\nap-northeast-1: ami-[0-9a-f]+\\n$`,
		`(?m)^\d+,amazon-ebs,artifact,0,end$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no line matching %s in:\n%s", re, out)
		}
	}
}

func TestBuildCommandErrors(t *testing.T) {
	srv := buildEnv(t, true)
	dir := t.TempDir()
	unimpl := filepath.Join(dir, "unimpl.pkr.hcl")
	_ = os.WriteFile(unimpl, []byte(`source "amazon-ebs" "x" {
  region = "us-east-1"
  source_ami = "ami-1"
  instance_type = "t3.micro"
  ssh_username = "ubuntu"
  ami_name = "x-1"
  vault_aws_engine {
    name = "v"
  }
}
build { sources = ["source.amazon-ebs.x"] }
`), 0o600)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no template", nil, 2, ""},
		{"bad on-error", []string{"-on-error=explode", tutorialJSON}, 2, ""},
		{"bad parallel", []string{"-parallel-builds=-1", tutorialJSON}, 2, ""},
		{"bad var", []string{"-var", "novalue", tutorialJSON}, 2, ""},
		{"missing file", []string{"nope.json"}, 1, "nope.json"},
		{"unimplemented option", []string{unimpl}, 1, "vault_aws_engine"},
		{"no build selected", []string{"-only=nothing", tutorialJSON}, 1, ""},
	} {
		// Usage errors are printed by main's exitCode on the process's
		// stderr; only the exit code is checked for them.
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBuildCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s\n%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
	if n := srv.Calls()["RunInstances"]; n != 0 {
		t.Errorf("a refused build launched %d instances", n)
	}
}

func TestBuildCommandAMIDataSource(t *testing.T) {
	// The source AMI comes from an amazon-ami data source.
	tmpl := repoPath(t, "cmd/amibake/testdata/validate/datasource.pkr.hcl")
	buildEnv(t, false)
	code, out, errOut := runBuildCmd(t, tmpl)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "Found Image ID: ami-") || !strings.Contains(out, "us-east-1: ami-") {
		t.Errorf("stdout:\n%s", out)
	}
}

// TestBuildCommandReuse: the JSON tutorial (timestamped name, no build
// block) is reused with Packer's single-dash -reuse, and --rebuild bakes.
func TestBuildCommandReuse(t *testing.T) {
	srv := buildEnv(t, false)
	code, out, errOut := runBuildCmd(t, "-color=false", tutorialJSON)
	if code != 0 {
		t.Fatalf("first build: exit %d\n%s\n%s", code, out, errOut)
	}
	baked := regexp.MustCompile(`ap-northeast-1: (ami-[0-9a-f]+)\n`).FindStringSubmatch(out)
	if baked == nil {
		t.Fatalf("no AMI in:\n%s", out)
	}
	for _, tc := range []struct {
		args      []string
		launches  int
		wantInOut string
	}{
		{[]string{"-reuse"}, 0, "Reusing " + baked[1] + " in ap-northeast-1: it carries input digest "},
		{[]string{"--reuse", "-rebuild", "-force"}, 1, "Launching a source AWS instance"},
	} {
		srv.ResetCalls()
		code, out, errOut := runBuildCmd(t, append(append([]string{"-color=false"}, tc.args...), tutorialJSON)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", tc.args, code, out, errOut)
		}
		// Successful calls: a RunInstances refused (NotFound on a new
		// group, eventual consistency) and retried launched nothing.
		if n := srv.Succeeded()["RunInstances"]; n != tc.launches || !strings.Contains(out, tc.wantInOut) {
			t.Errorf("%v: %d instances launched (want %d), output lacks %q?\n%s", tc.args, n, tc.launches, tc.wantInOut, out)
		}
	}
}

// TestBuildAbortSaysHowToCleanUp: -on-error=abort and
// run-cleanup-provisioner leave the build's resources, print the run id
// and the cleanup command, and that command removes everything.
func TestBuildAbortSaysHowToCleanUp(t *testing.T) {
	tmpl := repoPath(t, "internal/bake/testdata/failing.pkr.hcl")
	for _, mode := range []string{"abort", "run-cleanup-provisioner"} {
		t.Run(mode, func(t *testing.T) {
			srv := buildEnv(t, false)
			code, out, errOut := runBuildCmd(t, "-on-error="+mode, tmpl)
			if code != 1 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			if got := strings.Contains(out+errOut, "error-cleanup-provisioner-ran"); got != (mode == "run-cleanup-provisioner") {
				t.Errorf("error-cleanup-provisioner ran = %v\n%s", got, out)
			}
			m := regexp.MustCompile(`Cleanup was skipped \(-on-error=` + mode + `\) so that you can inspect what failed\. Run (\S+) left \d+ resource\(s\):`).FindStringSubmatch(errOut)
			if m == nil || !strings.Contains(errOut, "amibake cleanup --run-id "+m[1]) {
				t.Fatalf("no run id and cleanup command:\n%s", errOut)
			}
			if srv.Inventory().Empty() {
				t.Fatal("nothing was left to inspect")
			}
			code, cout, cerr := runTemplateCmd(t, map[string]string{"HOME": os.Getenv("HOME")}, "cleanup", "-run-id", m[1])
			if code != 0 {
				t.Fatalf("cleanup: exit %d\n%s\n%s", code, cout, cerr)
			}
		})
	}
}

// -on-error=abort keeps what the failed build made and says how to remove
// it; the journal records where it lives; the next build warns about it in
// one line; cleanup --all removes it.
func TestBuildAbortJournalAndWarning(t *testing.T) {
	srv := buildEnv(t, true)
	tmpl := filepath.Join(t.TempDir(), "abort.pkr.hcl")
	_ = os.WriteFile(tmpl, []byte(`source "amazon-ebs" "x" {
  region        = "eu-west-1"
  instance_type = "t3.micro"
  communicator  = "none"
  ami_name      = "abort-test"
  source_ami_filter {
    filters     = { name = "debian-12-amd64-*" }
    owners      = ["136693071363"]
    most_recent = true
  }
}
build { sources = ["source.amazon-ebs.x"] }
`), 0o600)
	// The AMI fails after CreateImage.
	if err := srv.SetFaults(ec2sim.FaultSettings{Rules: []ec2sim.FaultRule{{Action: "CreateImage", Fault: ec2sim.FaultImageFailed, Probability: 1}}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBuildCmd(t, "-color=false", "-on-error=abort", tmpl)
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`Run (\S+) left \d+ resource\(s\):`).FindStringSubmatch(errOut)
	if m == nil || !strings.Contains(errOut, "amibake cleanup --run-id "+m[1]) {
		t.Fatalf("no run id and cleanup command:\n%s\n%s", out, errOut)
	}
	dir := filepath.Join(os.Getenv("HOME"), ".local/state/amibake/runs")
	run, err := ledger.Read(dir, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Resources) == 0 {
		t.Fatal("nothing journaled")
	}
	for _, res := range run.Resources {
		if res.Location.Account != "123456789012" || res.Location.Endpoint != srv.URL() || res.Location.STSEndpoint != srv.URL() {
			t.Errorf("%s %s recorded at %+v", res.Kind, res.ID, res.Location)
		}
	}
	if inv := srv.Inventory().Regions["eu-west-1"]; len(inv.Instances) != 1 || len(inv.Images) != 1 {
		t.Fatalf("abort did not keep the instance and AMI: %+v", inv)
	}
	// The next build warns, in one line, with the command.
	code, out, errOut = runBuildCmd(t, "-color=false", "-only=nothing", tmpl)
	if code != 1 || !strings.Contains(errOut, "Warning: 1 earlier run(s) whose process is gone left") || !strings.Contains(errOut, "remove them with: amibake cleanup --all") {
		t.Errorf("no warning about the aborted run: exit %d\n%s\n%s", code, out, errOut)
	}
	// AMIBAKE_LEASE is checked.
	t.Setenv("AMIBAKE_LEASE", "soon")
	if code, _, _ := runBuildCmd(t, tmpl); code != 2 {
		t.Errorf("AMIBAKE_LEASE=soon: exit %d, want 2", code)
	}
	t.Setenv("AMIBAKE_LEASE", "")
	code, out, errOut = runTemplateCmd(t, map[string]string{"HOME": os.Getenv("HOME")}, "cleanup", "--all", "--ledger-dir", dir)
	if code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("cleanup: exit %d\n%s\n%s", code, out, errOut)
	}
	inv := srv.Inventory().Regions["eu-west-1"]
	if len(inv.Images)+len(inv.Snapshots) != 0 {
		t.Errorf("the aborted run's AMI survived cleanup: %+v\n%s", inv, out)
	}
}
