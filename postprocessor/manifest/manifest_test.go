package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func newPP(t *testing.T, hcl, runUUID string, now int64) *PostProcessor {
	t.Helper()
	p, diags := New(provisionertest.HCL(t, "manifest", hcl, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	p.RunUUID = runUUID
	p.Now = func() time.Time { return time.Unix(now, 0) }
	return p
}

func ebs(name string, amis map[string]string) *artifact.Artifact {
	return &artifact.Artifact{BuildName: name, BuilderType: "amazon-ebs", AMIs: amis}
}

// The file must be byte for byte what Packer writes: two-space indent, its
// field order, null files and custom_data, no trailing newline.
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "packer-manifest.json")
	local := filepath.Join(dir, "image.ovf")
	os.WriteFile(local, []byte("12345"), 0o644)

	run1 := "a1b2c3d4-0000-4000-8000-000000000001"
	p := newPP(t, fmt.Sprintf("output = %q", out), run1, 1529395142)
	steps := []struct {
		p *PostProcessor
		a *artifact.Artifact
	}{
		{p, ebs("amazon-ebs", map[string]string{"ap-northeast-1": "ami-02749c4f55b57389c"})},
		{newPP(t, fmt.Sprintf("output = %q\ncustom_data = { team = \"infra\", commit = \"abc<&>\" }\nstrip_path = true", out), run1, 1529395200),
			&artifact.Artifact{BuildName: "app.amazon-ebs.ubuntu", BuilderType: "amazon-ebs",
				AMIs:  map[string]string{"us-east-1": "ami-0b", "eu-west-1": "ami-0a"},
				Files: []string{local}}},
		{newPP(t, fmt.Sprintf("output = %q\nstrip_time = true", out), "a1b2c3d4-0000-4000-8000-000000000002", 0),
			&artifact.Artifact{BuildName: "amazon-ebs", BuilderType: "amazon-ebs", Reused: true,
				AMIs: map[string]string{"ap-northeast-1": "ami-02749c4f55b57389c"}}},
	}
	for _, s := range steps {
		got, keep, err := s.p.PostProcess(context.Background(), &provisionertest.UI{}, s.a)
		if err != nil || got != s.a || !keep {
			t.Fatalf("PostProcess = %v, %v, %v", got, keep, err)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "manifest.golden")
	if *update {
		if err := os.WriteFile(golden, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("manifest differs from %s:\n%s", golden, data)
	}
	if _, err := os.Stat(out + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("stray files: %v", ents)
	}
}

func TestForceTruncatesOnlyOnANewRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.json")
	write := func(run string, force bool) {
		p := newPP(t, fmt.Sprintf("output = %q", out), run, 1)
		p.Force = force
		if _, _, err := p.PostProcess(context.Background(), nil, ebs("b", map[string]string{"r": "ami-1"})); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (int, string) {
		var mf File
		data, _ := os.ReadFile(out)
		if err := json.Unmarshal(data, &mf); err != nil {
			t.Fatal(err)
		}
		return len(mf.Builds), mf.LastRunUUID
	}
	write("run-1", false)
	write("run-1", false)
	write("run-2", false)
	if n, last := count(); n != 3 || last != "run-2" {
		t.Fatalf("append: %d builds, last %q", n, last)
	}
	write("run-3", true)
	if n, last := count(); n != 1 || last != "run-3" {
		t.Fatalf("force on a new run: %d builds, last %q", n, last)
	}
	write("run-3", true) // a second build of the same forced run
	if n, _ := count(); n != 2 {
		t.Fatalf("force within a run: %d builds", n)
	}
}

func TestKeepsUnknownFields(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(out, []byte(`{"builds":[{"name":"old","x_extra":{"k":[1,2]}}],"last_run_uuid":"old-run"}`), 0o600)
	p := newPP(t, fmt.Sprintf("output = %q", out), "new-run", 1)
	if _, _, err := p.PostProcess(context.Background(), nil, ebs("b", map[string]string{"r": "ami-1"})); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), `"x_extra": {`) || !strings.Contains(string(data), `"last_run_uuid": "new-run"`) {
		t.Errorf("got\n%s", data)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", fi.Mode().Perm())
	}
}

func TestCreatesOutputDirectory(t *testing.T) {
	out := filepath.Join(t.TempDir(), "artifacts", "ci", "m.json")
	p := newPP(t, fmt.Sprintf("output = %q", out), "r", 1)
	if _, _, err := p.PostProcess(context.Background(), nil, ebs("b", map[string]string{"r": "ami-1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptManifest(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(out, []byte(`{"builds": [`), 0o644)
	p := newPP(t, fmt.Sprintf("output = %q", out), "r", 1)
	_, keep, err := p.PostProcess(context.Background(), nil, ebs("b", map[string]string{"r": "ami-1"}))
	if err == nil || !strings.Contains(err.Error(), "Unable to parse content from "+out) || !keep {
		t.Fatalf("got %v", err)
	}
	if data, _ := os.ReadFile(out); string(data) != `{"builds": [` {
		t.Errorf("corrupt file overwritten")
	}
}

// Parallel builds of one run write the same file; none may be lost.
func TestParallelWriters(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.json")
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPP(t, fmt.Sprintf("output = %q", out), "run", 1)
			_, _, err := p.PostProcess(context.Background(), nil, ebs(fmt.Sprintf("b%d", i), map[string]string{"r": "ami-1"}))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var mf File
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, b := range mf.Builds {
		var e Entry
		json.Unmarshal(b, &e)
		names[e.BuildName] = true
	}
	if len(names) != n {
		t.Errorf("%d distinct builds recorded, want %d", len(names), n)
	}
}

func TestLockHonoursContext(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.json")
	unlock, err := lock(context.Background(), out+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	p := newPP(t, fmt.Sprintf("output = %q", out), "r", 1)
	if _, _, err := p.PostProcess(ctx, nil, ebs("b", nil)); err == nil || !strings.Contains(err.Error(), "lock manifest") {
		t.Fatalf("got %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("PACKER_RUN_UUID", "from-env")
	p, diags := New(provisionertest.JSON(t, "manifest", `{"custom_data": {"n": 3, "b": true}}`), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	c := p.Config()
	if c.Output != "packer-manifest.json" || c.CustomData["n"] != "3" || c.CustomData["b"] != "true" || p.RunUUID != "from-env" {
		t.Errorf("got %+v run %q", c, p.RunUUID)
	}
	build := map[string]cty.Value{"build": cty.ObjectVal(map[string]cty.Value{"PackerRunUUID": cty.StringVal("from-build")})}
	p, _ = New(provisionertest.HCL(t, "manifest", `custom_data = { id = build.PackerRunUUID }`, nil), build)
	if p.RunUUID != "from-build" || p.Config().CustomData["id"] != "from-build" {
		t.Errorf("run %q data %v", p.RunUUID, p.Config().CustomData)
	}
	_, diags = New(provisionertest.HCL(t, "manifest", "\nstrip_paths = true", nil), nil)
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 2 || !strings.Contains(diags.Error(), "strip_paths") {
		t.Errorf("got %v", diags)
	}
}

// The example manifest of Packer's documentation, reproduced exactly.
func TestPackerDocumentationExample(t *testing.T) {
	t.Chdir(t.TempDir())
	f, err := os.Create("packer_example")
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(102219776) // sparse: the size is what the manifest records
	f.Close()
	run := "6d5d3185-fa95-44e1-8775-9e64fe2e2d8f"
	p := newPP(t, `custom_data = { my_custom_data = "example" }`, run, 1507245986)
	a := &artifact.Artifact{BuildName: "docker", BuilderType: "docker", Files: []string{"packer_example"}}
	// The docker builder's artifact id is not "region:ami"; Entry is what
	// the post-processor writes, with the id set as that builder would.
	e := p.Entry(a)
	e.ArtifactID = "Container"
	raw, _ := json.Marshal(e)
	mf := File{Builds: []json.RawMessage{raw}, LastRunUUID: run}
	got, _ := json.MarshalIndent(&mf, "", "  ")
	want := `{
  "builds": [
    {
      "name": "docker",
      "builder_type": "docker",
      "build_time": 1507245986,
      "files": [
        {
          "name": "packer_example",
          "size": 102219776
        }
      ],
      "artifact_id": "Container",
      "packer_run_uuid": "6d5d3185-fa95-44e1-8775-9e64fe2e2d8f",
      "custom_data": {
        "my_custom_data": "example"
      }
    }
  ],
  "last_run_uuid": "6d5d3185-fa95-44e1-8775-9e64fe2e2d8f"
}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// And through PostProcess, the real path, for an AMI.
	if _, _, err := p.PostProcess(context.Background(), nil, a); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(DefaultOutput)
	if !strings.HasPrefix(string(data), "{\n  \"builds\": [\n    {\n      \"name\": \"docker\",") || strings.HasSuffix(string(data), "\n") {
		t.Errorf("written file:\n%s", data)
	}
}

// BenchmarkPostProcess measures one write of the manifest: lock, read,
// parse, write, fsync, rename (-force on a new run keeps it one build).
func BenchmarkPostProcess(b *testing.B) {
	out := filepath.Join(b.TempDir(), "m.json")
	p, _ := New(provisionertest.HCL(b, "manifest", fmt.Sprintf("output = %q", out), nil), nil)
	p.Force = true
	a := ebs("amazon-ebs", map[string]string{"ap-northeast-1": "ami-02749c4f55b57389c"})
	for i := 0; b.Loop(); i++ {
		p.RunUUID = fmt.Sprint("bench-", i)
		if _, _, err := p.PostProcess(context.Background(), nil, a); err != nil {
			b.Fatal(err)
		}
	}
}
