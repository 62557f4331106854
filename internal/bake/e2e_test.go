package bake

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// env is the test's environment: only the simulator's endpoint and the
// what-is-my-IP URL point anywhere, as a user would set them.
type env struct {
	srv  *ec2sim.Server
	vars map[string]string
	dir  string
}

func newEnv(t testing.TB, lat ec2sim.Latency) *env {
	t.Helper()
	return newEnvOpts(t, ec2sim.Options{Latency: lat})
}

// newEnvOpts is newEnv on a simulator with opts (a consistency profile).
func newEnvOpts(t testing.TB, opts ec2sim.Options) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the simulator's instances run sshd, which needs root (make test runs as root)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("start simulator: %v", err)
	}
	e := &env{srv: srv, dir: t.TempDir()}
	t.Cleanup(func() {
		if inv := srv.Inventory(); !inv.Empty() {
			t.Errorf("resources left behind: %+v", inv.Leftovers())
		}
		_ = srv.Close()
		cancel()
	})
	e.vars = map[string]string{
		"AWS_ENDPOINT_URL":          srv.URL(),
		"AMIBAKE_CHECKIP_URL":       srv.URL() + "/_sim/myip",
		"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ACCESS_KEY_ID":         "AKIDSIMULATOR",
		"AWS_SECRET_ACCESS_KEY":     "simulator-secret",
		"HOME":                      e.dir,
	}
	for k, v := range e.vars {
		t.Setenv(k, v)
	}
	empty := filepath.Join(e.dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "PACKER_RUN_UUID", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return e
}

func (e *env) getenv(k string) string { return os.Getenv(k) }

type run struct {
	res      *Result
	out, err *bytes.Buffer
	runErr   error
}

func (e *env) build(t *testing.T, path string, lo template.LoadOptions, opts Options) *run {
	t.Helper()
	lo.Env = e.getenv
	tmpl, diags := template.Load(path, lo)
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", path, diags)
	}
	ios, _, out, errOut := ui.Test()
	root := ui.New(ios, ui.Options{})
	opts.Getenv = e.getenv
	if opts.RunID == "" {
		opts.RunID = "run-test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, bdiags, err := Run(ctx, tmpl, root, opts)
	if err != nil {
		err = fmt.Errorf("%w: %s", err, bdiags.Error())
	}
	return &run{res: res, out: out, err: errOut, runErr: err}
}

func TestTutorialJSONUnchanged(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	r := e.build(t, "../../examples/tutorial/hello_ami.json", template.LoadOptions{}, Options{OnError: pipeline.OnErrorCleanup})
	if r.runErr != nil || !r.res.OK() {
		t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
	}
	out := r.out.String()
	if !regexp.MustCompile(`--> amazon-ebs: AMIs were created:\nap-northeast-1: ami-[0-9a-f]+\n`).MatchString(out) {
		t.Errorf("no artifact summary:\n%s", out)
	}
	t.Logf("%s\n%s\ncalls %v", out, r.err, e.srv.Calls())
	if strings.Contains(out+r.err.String(), "fuga") {
		t.Error("the secret key reached the output")
	}
}
