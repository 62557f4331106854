package bake

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// normalizeMachine replaces what changes from run to run in
// machine-readable output and manifests.
func normalizeMachine(s string) string {
	for _, r := range []struct{ re, repl string }{
		{`(?m)^[0-9]{9,},`, "T,"},
		{`ami-[0-9a-f]{8,17}`, "ami-X"},
		{`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`, "UUID"},
		{`"build_time": [0-9]+`, `"build_time": 0`},
		{`(?m)after [0-9][0-9a-z ]*?(\.|:|\\n|$)`, "after D$1"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.repl)
	}
	return s
}

// summary returns the normalised lines from the first "Build '" line on:
// what Packer prints after the builds (their own step lines differ by
// design: amibake's steps are not Packer's).
func summary(text string) []string {
	lines := strings.Split(strings.TrimRight(normalizeMachine(text), "\n"), "\n")
	var out []string
	for i, l := range lines {
		if len(out) == 0 && !strings.Contains(l, ",ui,say,Build '") && !strings.Contains(l, ",ui,error,Build '") {
			continue
		}
		// Another build's step lines, interleaved by timing.
		if strings.Contains(l, ",ui,say,==> ") && !strings.Contains(l, ",ui,say,==> Builds") {
			continue
		}
		out = append(out, lines[i])
	}
	return out
}

// TestPackerReferenceOutputs bakes the templates of the Packer reference
// recording with -machine-readable and compares, field by field, the
// closing summary (build results, Wait completed, artifacts, error-count
// and error lines), the shape of every ui line (empty target) and the
// manifest with what Packer 1.16 printed and wrote.
func TestPackerReferenceOutputs(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	for _, tc := range []struct {
		template, ref string
		ok            bool
	}{
		{"tutorial.json", "tutorial", true},
		{"tutorial.pkr.hcl", "tutorial-hcl2", true},
		{"two-builds.json", "two-builds-all", true},
		{"fail.json", "fail-on-error-cleanup", false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			// As the reference was recorded (a reset before every build):
			// the templates' AMI names carry {{timestamp}}, and two builds in
			// the same second would otherwise clash on the name.
			e.srv.Reset()
			dir := chdir(t)
			src, err := os.ReadFile(filepath.Join(testdata, "packer", tc.template))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.template)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(src), "@ENDPOINT@", e.srv.URL())), 0o644); err != nil {
				t.Fatal(err)
			}
			tmpl, diags := template.Load(path, template.LoadOptions{Env: e.getenv})
			if diags.HasErrors() {
				t.Fatalf("load: %s", diags)
			}
			ios, _, out, errOut := ui.Test()
			root := ui.New(ios, ui.Options{MachineReadable: true})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, _, err := Run(ctx, tmpl, root, Options{RunID: "run-ref", RunUUID: "4f1c5d7e-0000-4000-8000-000000000001", Getenv: e.getenv, OnError: pipeline.OnErrorCleanup})
			if err != nil || res.OK() != tc.ok {
				t.Fatalf("build: %v ok=%v\n%s\n%s", err, res != nil && res.OK(), out, errOut)
			}
			ref, err := os.ReadFile(filepath.Join(testdata, "packer", tc.ref+".machine-readable.stdout"))
			if err != nil {
				t.Fatal(err)
			}
			got, want := summary(out.String()), summary(string(ref))
			// Packer lists builds in Go map order: compare two builds' lines
			// as sets, one build's in order.
			if len(tmpl.Builds) > 1 {
				slices.Sort(got)
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("summary differs from Packer's\n--- amibake ---\n%s\n--- packer ---\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
				f := strings.SplitN(l, ",", 4)
				if len(f) < 4 || (f[2] == "ui" && f[1] != "") || (f[2] == "ui" && f[3] == "message") {
					t.Errorf("not Packer 1.16's shape: %q", l)
				}
			}
			if !tc.ok {
				if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
					t.Error("a failed build wrote a manifest")
				}
				return
			}
			gotM, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			wantM, err := os.ReadFile(filepath.Join(testdata, "packer", tc.ref+".manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := canonManifest(t, gotM), canonManifest(t, wantM); g != w {
				t.Errorf("manifest differs from Packer's\n--- amibake ---\n%s\n--- packer ---\n%s", g, w)
			}
		})
	}
}

// canonManifest normalises a manifest and sorts its builds by name
// (Packer writes them in completion order).
func canonManifest(t *testing.T, b []byte) string {
	t.Helper()
	var m struct {
		Builds      []map[string]any `json:"builds"`
		LastRunUUID string           `json:"last_run_uuid"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	slices.SortFunc(m.Builds, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
	out, _ := json.MarshalIndent(m, "", "  ")
	return normalizeMachine(string(out))
}
