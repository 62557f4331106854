package bake

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testdata is absolute: tests chdir to temporary directories.
var testdata, _ = filepath.Abs("testdata")

var tutorialPath, _ = filepath.Abs("../../examples/tutorial/hello_ami.json")

// normalize replaces what changes from run to run: ids, names with
// UUIDs, timestamps, fingerprints and durations.
func normalize(s string) string {
	for _, r := range []struct{ re, repl string }{
		{`ami-[0-9a-f]{8,17}`, "ami-XXXX"},
		{`i-[0-9a-f]{8,17}`, "i-XXXX"},
		{`snap-[0-9a-f]{8,17}`, "snap-XXXX"},
		{`amibake_[0-9a-f-]{36}`, "amibake_UUID"},
		{`hello_ami [0-9]{10,}`, "hello_ami TIMESTAMP"},
		{`SHA256:[A-Za-z0-9+/]{43}`, "SHA256:FINGERPRINT"},
		{`after [0-9][0-9a-z ]*?([.:])`, "after DURATION$1"},
		{`(?m)after [0-9][0-9a-z ]*$`, "after DURATION"},
		{`packer-shell[0-9]+`, "packer-shellN"},
		{`connect: [0-9.]+`, "connect: IP"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.repl)
	}
	return s
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdata, name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestGoldenTutorialLog(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	tmpl := abs(t, "../../examples/tutorial/hello_ami.json")
	chdir(t)
	r := e.build(t, tmpl, template.LoadOptions{}, Options{})
	if r.runErr != nil || !r.res.OK() {
		t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
	}
	golden(t, "tutorial.stdout", normalize(r.out.String()))
	golden(t, "tutorial.stderr", normalize(r.err.String()))
}

func TestGoldenFailingLog(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	tmpl := abs(t, "testdata/failing.pkr.hcl")
	chdir(t)
	r := e.build(t, tmpl, template.LoadOptions{}, Options{})
	if r.runErr != nil || r.res.OK() {
		t.Fatalf("want a failed build: %v", r.runErr)
	}
	golden(t, "failing.stdout", normalize(r.out.String()))
	golden(t, "failing.stderr", normalize(r.err.String()))
}
