package plan

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/template"
)

var tutorials = []string{"hello_ami.json", "hello_ami.pkr.hcl", "hello_ami_provisioned.json"}

func tutorialPath(name string) string {
	return filepath.Join(srcDir, "..", "..", "examples", "tutorial", name)
}

// The tutorial's {{timestamp}} (JSON) and timestamp() local (HCL2) are
// found volatile, and the two spellings of one template digest alike.
func TestTutorialDigests(t *testing.T) {
	e := newEnv(t)
	sums := map[string]string{}
	for _, name := range tutorials {
		path := tutorialPath(name)
		a := e.plan(t, path, template.LoadOptions{})
		b := e.plan(t, path, template.LoadOptions{Now: fixedNow.Add(90 * time.Second)})
		if a.Builds[0].InputDigest != b.Builds[0].InputDigest {
			t.Errorf("%s: the clock changed the digest", name)
		}
		if !slices.Equal(a.Builds[0].Volatile, []string{"ami_name"}) {
			t.Errorf("%s: volatile = %v, want [ami_name]", name, a.Builds[0].Volatile)
		}
		sums[name] = a.Builds[0].InputDigest
	}
	if sums["hello_ami.json"] != sums["hello_ami.pkr.hcl"] {
		t.Errorf("the JSON tutorial and its HCL2 twin digest differently: %s vs %s", sums["hello_ami.json"], sums["hello_ami.pkr.hcl"])
	}
	if sums["hello_ami.json"] == sums["hello_ami_provisioned.json"] {
		t.Error("adding a provisioner did not change the digest")
	}
}

// BenchmarkPlanTutorial is `amibake plan` of the tutorial against the
// zero-latency simulator: two loads, credentials check, source AMI, reuse
// lookup and the security group's VPC, per iteration.
func BenchmarkPlanTutorial(b *testing.B) {
	e := newEnv(b)
	path := tutorialPath("hello_ami.pkr.hcl")
	shared := awsclient.NewShared()
	ctx := context.Background()
	for b.Loop() {
		lo := template.LoadOptions{}
		tmpl, diags := template.Load(path, lo)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		if _, err := Make(ctx, tmpl, Options{Shared: shared}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	calls := 0
	for _, n := range e.srv.Calls() {
		calls += n
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
}

// BenchmarkDigestApp is the digest alone (no AWS): settings, provisioners
// and the files they upload.
func BenchmarkDigestApp(b *testing.B) {
	newEnv(b)
	tmpl, diags := template.Load("app.pkr.hcl", template.LoadOptions{Now: fixedNow})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	in := Input{Build: tmpl.Builds[0], SourceAMI: tutorialAMI, Sensitive: tmpl.Sensitive}
	for b.Loop() {
		if _, err := DigestBuild(in); err != nil {
			b.Fatal(err)
		}
	}
}

// Legacy JSON's {{uuid}} and {{isotime}} are volatile; a remote_file that
// is written stays in the digest.
func TestLegacyVolatile(t *testing.T) {
	e := newEnv(t)
	doc := e.plan(t, "../legacy.json", template.LoadOptions{})
	if got, want := doc.Builds[0].Volatile, []string{"ami_name", "tags.RunID"}; !slices.Equal(got, want) {
		t.Errorf("volatile = %v, want %v", got, want)
	}
	if doc.Builds[0].AMIName == "" || doc.Builds[0].InputDigest == "" {
		t.Fatalf("plan: %+v", doc.Builds[0])
	}
	base := doc.Builds[0].InputDigest
	if got := e.digestOf(t, "../legacy.json", template.LoadOptions{Vars: map[string]string{"team": "edge"}}); got == base {
		t.Error("a user variable did not change the digest")
	}
	rewrite(t, "../legacy.json", func(s string) string { return strings.Replace(s, "fixed.sh", "other.sh", 1) })
	if got := e.digestOf(t, "../legacy.json", template.LoadOptions{}); got == base {
		t.Error("a written remote_file did not change the digest")
	}
}
