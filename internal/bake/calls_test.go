package bake

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
)

// TestTutorialAPICalls pins the API calls of the tutorial build by action,
// so that a change that adds one (a second credential check, the source
// AMI described twice, a digest lookup without reuse) fails here rather
// than only moving a benchmark figure. One session per build: a single
// GetCallerIdentity, then one DescribeImages each for the AMI name check,
// the source AMI and the wait for the new image; reuse adds one to look
// for the digest in the one target region.
//
// The counts are the product's on a consistent cloud: the simulator runs
// the none profile whatever EC2SIM_CONSISTENCY says, as retries of
// NotFound (eventual consistency) add calls by chance.
func TestTutorialAPICalls(t *testing.T) {
	e := newEnvOpts(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.NoConsistencyLag()})
	chdir(t)
	bake := map[string]int{
		"GetCallerIdentity": 1,
		"DescribeImages":    3, // AMI name in use?, source AMI, image available
		"ImportKeyPair":     1, "CreateSecurityGroup": 1, "AuthorizeSecurityGroupIngress": 1,
		"RunInstances": 1, "DescribeInstances": 2, // running, stopped
		"GetConsoleOutput": 1, "StopInstances": 1, "CreateImage": 1,
		// As Packer, tags by CreateTags after the AMI is available: tags
		// (amibake:input-digest) on the AMI and its snapshots, then
		// amibake's own tags on the snapshots.
		"CreateTags":         2,
		"TerminateInstances": 1, "DeleteKeyPair": 1, "DeleteSecurityGroup": 1,
	}
	bakeLookingFirst := maps.Clone(bake)
	bakeLookingFirst["DescribeImages"]++ // nothing carries the digest yet
	// Each build loads at its own time, hence its own AMI name.
	clock := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		name string
		opts Options
		want map[string]int
	}{
		// In this order: the first build tags the AMI that the last reuses.
		{"reuse, nothing to reuse", Options{Reuse: true}, bakeLookingFirst},
		{"no reuse", Options{}, bake},
		{"rebuild", Options{Reuse: true, Rebuild: true}, bake},
		{"reused", Options{Reuse: true}, map[string]int{"GetCallerIdentity": 1, "DescribeImages": 2}}, // source AMI, digest
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.srv.ResetCalls()
			clock = clock.Add(time.Minute)
			r := e.buildAt(t, tutorialPath, clock, nil, tc.opts)
			got := e.srv.Calls()
			for k, v := range got {
				if v == 0 {
					delete(got, k)
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("calls by action:\n got %v\nwant %v\n%s", got, tc.want, r.out)
			}
			sum := 0
			for _, v := range got {
				sum += v
			}
			t.Logf("%d calls", sum)
		})
	}
}

var dataSourcePath, _ = filepath.Abs("testdata/datasource/hello_ami.pkr.hcl")

// TestDataSourceAPICalls: the HCL2 tutorial with its source AMI found by an
// amazon-ami data source makes the JSON tutorial's calls plus the data
// source's own DescribeImages. The template is loaded once, so the data
// source runs once, and it shares the build's AWS state, so the build's
// credential check is the data source's.
func TestDataSourceAPICalls(t *testing.T) {
	// Counts are the product's on a consistent cloud: on a lagging one,
	// each build's retries differ (as in TestTutorialAPICalls).
	e := newEnvOpts(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.NoConsistencyLag()})
	chdir(t)
	calls := func() map[string]int {
		got := e.srv.Calls()
		for k, v := range got {
			if v == 0 {
				delete(got, k)
			}
		}
		return got
	}
	clock := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	e.srv.ResetCalls()
	e.buildAt(t, tutorialPath, clock, nil, Options{})
	want := calls()
	want["DescribeImages"]++ // the data source's lookup

	e.srv.ResetCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shared := awsclient.NewShared()
	tmpl, diags := Load(ctx, dataSourcePath, template.LoadOptions{Env: e.getenv, Now: clock.Add(time.Minute)}, shared)
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", dataSourcePath, diags)
	}
	if got := tmpl.DataSources[0].Value.GetAttr("id").AsString(); got != "ami-06128816a1c781a57" {
		t.Fatalf("data source id = %s", got)
	}
	r := e.runLoaded(t, tmpl, Options{Shared: shared})
	got := calls()
	if !maps.Equal(got, want) {
		t.Errorf("calls by action:\n got %v\nwant %v (the JSON tutorial's and one DescribeImages)\n%s", got, want, r.out)
	}
	total := 0
	for _, n := range got {
		total += n
	}
	t.Logf("%d calls", total)
}

// TestDataSourceCancelled: the load's context reaches the data source, so
// a cancelled build (Ctrl-C) makes no lookup.
func TestDataSourceCancelled(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	e.srv.ResetCalls()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, diags := Load(ctx, dataSourcePath, template.LoadOptions{Env: e.getenv}, awsclient.NewShared())
	if !diags.HasErrors() || !strings.Contains(diags.Error(), context.Canceled.Error()) {
		t.Fatalf("load with a cancelled context: %v, want %q", diags, context.Canceled)
	}
	for action, n := range e.srv.Calls() {
		if n > 0 {
			t.Errorf("%s called %d times after the cancel", action, n)
		}
	}
}
