// Package ci_test checks the CI examples: the GitHub Actions workflow
// passes actionlint, and the commands both examples run (bake.sh) bake,
// reuse and clean up against the simulator, taken from the files as the
// CI systems would read them.
package ci_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rhysd/actionlint"
	"go.yaml.in/yaml/v4"

	"github.com/amibake/amibake/internal/ec2sim"
)

func readWorkflow(t *testing.T) (*actionlint.Workflow, *actionlint.Job) {
	t.Helper()
	src, err := os.ReadFile("github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	wf, errs := actionlint.Parse(src)
	if len(errs) > 0 {
		t.Fatalf("parse github-actions.yml: %v", errs)
	}
	for _, j := range wf.Jobs {
		if j.ID.Value == "bake" {
			return wf, j
		}
	}
	t.Fatal("github-actions.yml has no job bake")
	return nil, nil
}

func TestGitHubWorkflowLint(t *testing.T) {
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFile("github-actions.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Errorf("actionlint: %d problems:\n%s", len(errs), out.String())
	}
}

// What the issue asks of the workflow, checked on its syntax tree.
func TestGitHubWorkflowShape(t *testing.T) {
	wf, job := readWorkflow(t)
	if wf.Permissions == nil || wf.Permissions.Scopes["id-token"] == nil || wf.Permissions.Scopes["id-token"].Value.Value != "write" {
		t.Error("the workflow does not ask for the OIDC token (permissions: id-token: write)")
	}
	if job.Concurrency == nil || !strings.Contains(job.Concurrency.Group.Value, "github.ref") {
		t.Error("the bake job has no concurrency group per ref")
	}
	var out *actionlint.Output
	for _, o := range job.Outputs {
		out = o
	}
	if out == nil || out.Value.Value != "${{ steps.build.outputs.ami-id }}" {
		t.Errorf("the job's output is not the build step's ami-id: %+v", out)
	}
	var creds, cleanup bool
	var runs []string
	for _, s := range job.Steps {
		switch e := s.Exec.(type) {
		case *actionlint.ExecAction:
			if strings.HasPrefix(e.Uses.Value, "aws-actions/configure-aws-credentials@") && e.Inputs["role-to-assume"] != nil {
				creds = true
			}
		case *actionlint.ExecRun:
			runs = append(runs, e.Run.Value)
			if s.If != nil && s.If.Value == "failure() || cancelled()" && e.Run.Value == "examples/ci/bake.sh cleanup" {
				cleanup = true
			}
		}
	}
	if !creds {
		t.Error("no aws-actions/configure-aws-credentials step with role-to-assume")
	}
	if !cleanup {
		t.Error("no cleanup step on failure() || cancelled()")
	}
	want := []string{"examples/ci/bake.sh install", "examples/ci/bake.sh validate", "examples/ci/bake.sh build", "examples/ci/bake.sh cleanup"}
	if !slices.Equal(runs, want) {
		t.Errorf("run steps = %q, want %q", runs, want)
	}
}

// fixture is a checkout of the repository for a CI job: examples/ci
// copied into a scratch directory (the job writes manifest.json there),
// an amibake release served on loopback, and a simulator.
type fixture struct {
	dir     string
	env     []string
	srv     *ec2sim.Server
	release string
}

var release struct {
	dir string
	err error
}

// makeRelease runs `make dist` for this platform once: the job installs
// amibake from the archive, checked against SHA256SUMS, as from GitHub.
func makeRelease(t *testing.T) string {
	t.Helper()
	if release.dir == "" && release.err == nil {
		dir, err := os.MkdirTemp("", "amibake-ci-release-")
		if err != nil {
			t.Fatal(err)
		}
		release.dir = dir
		cmd := exec.Command("make", "-s", "dist", "DIST="+filepath.Join(dir, "v0.1.0"), "VERSION=v0.1.0", "PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			release.err = err
			t.Fatalf("make dist: %v\n%s", err, out)
		}
	}
	if release.err != nil {
		t.Fatalf("make dist failed: %v", release.err)
	}
	return release.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if release.dir != "" {
		os.RemoveAll(release.dir)
	}
	os.Exit(code)
}

func newFixture(t *testing.T, opts ec2sim.Options) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	rel := httptest.NewServer(http.FileServer(http.Dir(makeRelease(t))))
	t.Cleanup(rel.Close)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); cancel() })

	f := &fixture{dir: t.TempDir(), srv: srv}
	cp := exec.Command("cp", "-R", ".", filepath.Join(f.dir, "examples", "ci"))
	if err := os.MkdirAll(filepath.Join(f.dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	home := t.TempDir()
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The runner's environment: a home, a temp directory, PATH; the
	// credentials step's work is done by the simulator's settings.
	f.env = []string{
		"HOME=" + home, "RUNNER_TEMP=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
		"AWS_ENDPOINT_URL=" + srv.URL(), "AMIBAKE_CHECKIP_URL=" + srv.URL() + "/_sim/myip",
		"AWS_ACCESS_KEY_ID=AKIDCIEXAMPLE", "AWS_SECRET_ACCESS_KEY=ci-example-secret",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + empty, "AWS_SHARED_CREDENTIALS_FILE=" + empty,
		"AMIBAKE_RELEASES_URL=" + rel.URL,
	}
	return f
}

// step runs one shell line of a job as the CI system would (bash -e for
// GitHub, sh for GitLab) in the checkout; kill, when not nil, is called
// with the process once it started.
func (f *fixture) step(t *testing.T, shell []string, line string, env []string, kill func(*os.Process)) (string, error) {
	t.Helper()
	cmd := exec.Command(shell[0], append(shell[1:], line)...)
	cmd.Dir = f.dir
	cmd.Env = append(slices.Clone(f.env), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill != nil {
		kill(cmd.Process)
	}
	err := cmd.Wait()
	t.Logf("$ %s\n%s", line, out.String())
	return out.String(), err
}

var bash = []string{"bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"}

// githubJob runs the bake job's steps in order, as GitHub Actions does:
// job env, GITHUB_OUTPUT and GITHUB_PATH, `uses:` steps stood in for, the
// cleanup step only after a failure. It returns the step outputs.
func githubJob(t *testing.T, f *fixture, kill func(step string, p *os.Process)) (map[string]string, bool) {
	t.Helper()
	_, job := readWorkflow(t)
	env := []string{"GITHUB_SHA=0123456789abcdef0123456789abcdef01234567"}
	for _, v := range job.Env.Vars {
		val := strings.ReplaceAll(v.Value.Value, "${{ github.sha }}", "0123456789abcdef0123456789abcdef01234567")
		if actionlint.ContainsExpression(val) {
			t.Fatalf("job env %s = %s: an expression the test does not stand in for", v.Name.Value, val)
		}
		env = append(env, v.Name.Value+"="+val)
	}
	ghOut := filepath.Join(t.TempDir(), "output")
	ghPath := filepath.Join(t.TempDir(), "path")
	env = append(env, "GITHUB_OUTPUT="+ghOut, "GITHUB_PATH="+ghPath)
	failed := false
	for _, s := range job.Steps {
		run, ok := s.Exec.(*actionlint.ExecRun)
		if !ok {
			continue
		}
		onFailure := s.If != nil && strings.Contains(s.If.Value, "failure()")
		if failed != onFailure {
			continue
		}
		if actionlint.ContainsExpression(run.Run.Value) {
			t.Fatalf("step %q: run: holds an expression", run.Run.Value)
		}
		// GITHUB_PATH entries go before PATH in the next steps.
		stepEnv := slices.Clone(env)
		if b, err := os.ReadFile(ghPath); err == nil {
			for _, p := range strings.Fields(string(b)) {
				stepEnv = append(stepEnv, "PATH="+p+":"+os.Getenv("PATH"))
			}
		}
		var k func(*os.Process)
		if kill != nil {
			k = func(p *os.Process) { kill(run.Run.Value, p) }
		}
		if _, err := f.step(t, bash, run.Run.Value, stepEnv, k); err != nil && !onFailure {
			failed = true
		}
	}
	outputs := map[string]string{}
	if b, err := os.ReadFile(ghOut); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				outputs[k] = v
			}
		}
	}
	return outputs, !failed
}

var amiID = regexp.MustCompile(`^ami-[0-9a-f]{17}$`)

func TestGitHubJobBakesReusesAndCleansUp(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	out, ok := githubJob(t, f, nil)
	if !ok || !amiID.MatchString(out["ami-id"]) {
		t.Fatalf("first bake: ok %v, outputs %v", ok, out)
	}
	if inv := f.srv.Inventory(); !inv.Empty() {
		t.Errorf("left behind: %+v", inv.Leftovers())
	}
	// The next commit changes nothing in the image: the AMI is reused.
	again, ok := githubJob(t, f, nil)
	if !ok || again["ami-id"] != out["ami-id"] {
		t.Errorf("second run: ok %v, ami-id %q, want the reused %q", ok, again["ami-id"], out["ami-id"])
	}
	manifest, err := os.ReadFile(filepath.Join(f.dir, "manifest.json"))
	if err != nil || !bytes.Contains(manifest, []byte(`"reused": true`)) {
		t.Errorf("the manifest does not say reused:\n%s", manifest)
	}
}

// A cancelled job whose amibake was killed (the runner's last resort):
// the cleanup step finds the run in the job's ledger and removes it all.
func TestGitHubJobKilledThenCleanedUp(t *testing.T) {
	// sshd comes up late: the bake waits for SSH with an instance running.
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), SSHStartDelay: 5 * time.Minute})
	killed := false
	_, ok := githubJob(t, f, func(step string, p *os.Process) {
		if step != "examples/ci/bake.sh build" {
			return
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			inv := f.srv.Inventory()
			if r := inv.Regions["eu-west-1"]; len(r.Instances) > 0 {
				_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
				killed = true
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Error("no instance launched within 60 s")
	})
	if ok || !killed {
		t.Fatalf("job ok %v, killed %v: want a killed bake", ok, killed)
	}
	if inv := f.srv.Inventory(); !inv.Empty() {
		t.Errorf("the cleanup step left: %+v", inv.Leftovers())
	}
}

// The GitLab job: before_script (without apt-get: the packages are
// there), script, after_script, with the job's variables.
func TestGitLabJob(t *testing.T) {
	src, err := os.ReadFile("gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ci struct {
		Bake struct {
			Variables    map[string]string `yaml:"variables"`
			BeforeScript []string          `yaml:"before_script"`
			Script       []string          `yaml:"script"`
			AfterScript  []string          `yaml:"after_script"`
			Interrupt    bool              `yaml:"interruptible"`
			Group        string            `yaml:"resource_group"`
			IDTokens     map[string]any    `yaml:"id_tokens"`
		} `yaml:"bake-ami"`
	}
	if err := yaml.Unmarshal(src, &ci); err != nil {
		t.Fatalf("gitlab-ci.yml: %v", err)
	}
	job := ci.Bake
	if job.Group == "" || !job.Interrupt || job.IDTokens["AWS_ID_TOKEN"] == nil || job.Variables["AWS_ROLE_ARN"] == "" {
		t.Fatalf("bake-ami lacks a resource_group, interruptible, the OIDC token or the role: %+v", job)
	}
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	ciVars := map[string]string{"CI_PROJECT_DIR": f.dir, "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567", "AWS_ID_TOKEN": "not-a-real-token"}
	// AWS_ROLE_ARN and the token file stay: the SDK prefers the static
	// keys of the environment, which stand in for the web identity here.
	env := []string{"CI_PROJECT_DIR=" + f.dir, "AWS_ID_TOKEN=not-a-real-token"}
	for k, v := range job.Variables {
		v = os.Expand(v, func(n string) string { return ciVars[n] })
		switch k {
		case "AMIBAKE_BIN_DIR":
			v = filepath.Join(f.dir, ".bin") // not /usr/local/bin of the test machine
		}
		env = append(env, k+"="+v)
	}
	env = append(env, "PATH="+filepath.Join(f.dir, ".bin")+":"+os.Getenv("PATH"))
	sh := []string{"sh", "-ec"}
	status := "success"
	for _, l := range append(slices.Clone(job.BeforeScript), job.Script...) {
		if strings.HasPrefix(l, "apt-get ") {
			continue
		}
		if _, err := f.step(t, sh, l, env, nil); err != nil {
			status = "failed"
			break
		}
	}
	if status != "success" {
		t.Fatal("the job failed")
	}
	dotenv, err := os.ReadFile(filepath.Join(f.dir, "bake.env"))
	if err != nil || !regexp.MustCompile(`^AMI_ID=ami-[0-9a-f]{17}\n$`).Match(dotenv) {
		t.Errorf("bake.env = %q, %v", dotenv, err)
	}
	// after_script after a failure runs the cleanup: nothing is left
	// to remove, and it says so without failing.
	for _, l := range job.AfterScript {
		if _, err := f.step(t, sh, l, append(env, "CI_JOB_STATUS=failed"), nil); err != nil {
			t.Errorf("after_script: %v", err)
		}
	}
	if inv := f.srv.Inventory(); !inv.Empty() {
		t.Errorf("left behind: %+v", inv.Leftovers())
	}
}
