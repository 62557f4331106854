package template

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// -update rewrites golden files. Registered in init, after every package
// variable, so that another test file of this package may declare it too.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkGolden compares got with testdata file path, or rewrites it.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updateGolden() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Test-only plugin settings, a subset of amazon-ebs and shell, so that the
// loader's bodies are exercised through gohcl as the real plugins do.
type testFilter struct {
	Filters    map[string]string `hcl:"filters,optional"`
	Owners     []string          `hcl:"owners"`
	MostRecent bool              `hcl:"most_recent,optional"`
}

type testDevice struct {
	DeviceName          string `hcl:"device_name"`
	VolumeSize          int    `hcl:"volume_size,optional"`
	VolumeType          string `hcl:"volume_type,optional"`
	DeleteOnTermination bool   `hcl:"delete_on_termination,optional"`
}

type testEBS struct {
	AccessKey       string            `hcl:"access_key,optional"`
	SecretKey       string            `hcl:"secret_key,optional"`
	Region          string            `hcl:"region"`
	SourceAMI       string            `hcl:"source_ami,optional"`
	SourceAMIFilter *testFilter       `hcl:"source_ami_filter,block"`
	InstanceType    string            `hcl:"instance_type,optional"`
	SSHUsername     string            `hcl:"ssh_username,optional"`
	SSHPort         int               `hcl:"ssh_port,optional"`
	AMIName         string            `hcl:"ami_name"`
	AMIDescription  string            `hcl:"ami_description,optional"`
	AMIRegions      []string          `hcl:"ami_regions,optional"`
	AMIUsers        []string          `hcl:"ami_users,optional"`
	Tags            map[string]string `hcl:"tags,optional"`
	RunTags         map[string]string `hcl:"run_tags,optional"`
	EncryptBoot     *bool             `hcl:"encrypt_boot,optional"`
	Devices         []testDevice      `hcl:"launch_block_device_mappings,block"`
}

type testShell struct {
	Inline          []string `hcl:"inline,optional"`
	Script          string   `hcl:"script,optional"`
	Scripts         []string `hcl:"scripts,optional"`
	EnvironmentVars []string `hcl:"environment_vars,optional"`
	ExecuteCommand  string   `hcl:"execute_command,optional"`
}

type testGeneric struct {
	Rest hcl.Body `hcl:",remain"`
}

// decodeAll decodes every block of tp with the test settings.
func decodeAll(tp *Template) ([]any, hcl.Diagnostics) {
	var out []any
	var diags hcl.Diagnostics
	for _, b := range tp.Builds {
		var ebs testEBS
		diags = append(diags, b.Source.Decode(&ebs, nil)...)
		out = append(out, map[string]any{"build": b.Name, "source": ebs})
		for _, p := range b.Provisioners {
			var sh testShell
			blk := p.Block
			if o, ok := p.Override[b.Name]; ok {
				blk.Body = hcl.MergeBodies([]hcl.Body{o})
			}
			if p.Type == "shell" {
				diags = append(diags, blk.Decode(&sh, nil)...)
				out = append(out, map[string]any{"provisioner": p.Type, "settings": sh})
			}
		}
	}
	return out, uniqueDiags(diags)
}

func testLoadOptions() LoadOptions {
	return LoadOptions{
		Now: time.Date(2026, 11, 25, 23, 44, 41, 0, time.UTC),
		Env: func(k string) string { return map[string]string{"HOME": "/home/ci", "USER": "ci"}[k] },
		Cwd: "/srv/project",
	}
}

// TestJSONDiagnostics loads each testdata/json/*.json, decodes its blocks
// and compares the rendered diagnostics with the .golden file next to it.
func TestJSONDiagnostics(t *testing.T) {
	files, _ := filepath.Glob("testdata/json/*.json")
	if len(files) < 8 {
		t.Fatalf("found %d test templates, want at least 8", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".vars.json") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			tp, diags := Load(f, testLoadOptions())
			if tp == nil {
				t.Fatal("Load returned no template")
			}
			if !diags.HasErrors() {
				_, d := decodeAll(tp)
				diags = append(diags, d...)
			}
			if !diags.HasErrors() {
				t.Fatalf("no errors for %s", f)
			}
			for _, d := range diags {
				if d.Subject == nil && !strings.Contains(d.Summary, "-var") {
					t.Errorf("diagnostic without position: %s: %s", d.Summary, d.Detail)
				}
			}
			// gohcl decodes attributes in map order: sort for stable output.
			sort.SliceStable(diags, func(i, j int) bool {
				a, b := diags[i].Subject, diags[j].Subject
				return a != nil && b != nil && a.Start.Byte < b.Start.Byte
			})
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, tp.Files, diags, false); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".json")+".golden", buf.Bytes())
		})
	}
}

// TestJSONLoadTutorial checks the model built from the classic tutorial.
func TestJSONLoadTutorial(t *testing.T) {
	tp, diags := Load("../../examples/tutorial/hello_ami_provisioned.json", testLoadOptions())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if tp.Format != FormatJSON || len(tp.Builds) != 1 || len(tp.Variables) != 2 {
		t.Fatalf("format %v, %d builds, %d variables", tp.Format, len(tp.Builds), len(tp.Variables))
	}
	b := tp.Builds[0]
	if b.Name != "amazon-ebs" || b.Source.Type != "amazon-ebs" || len(b.Provisioners) != 1 {
		t.Fatalf("build %q type %q with %d provisioners", b.Name, b.Source.Type, len(b.Provisioners))
	}
	var ebs testEBS
	if d := b.Source.Decode(&ebs, nil); d.HasErrors() {
		t.Fatal(d)
	}
	want := testEBS{AccessKey: "hoge", SecretKey: "fuga", Region: "ap-northeast-1", SourceAMI: "ami-06128816a1c781a57",
		InstanceType: "t2.micro", SSHUsername: "root", AMIName: "hello_ami 1795650281"}
	if got, _ := json.Marshal(ebs); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("decoded %s\nwant    %s", got, must(json.Marshal(want)))
	}
	var sh testShell
	if d := b.Provisioners[0].Decode(&sh, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if strings.Join(sh.Inline, "|") != "sleep 30|sudo apt-get update|sudo apt-get install -y redis-server" {
		t.Errorf("inline = %q", sh.Inline)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestJSONFeatures covers variables precedence, sensitive values, build
// names, only/except, override, provisioner fields, post-processor chains
// and nested blocks.
func TestJSONFeatures(t *testing.T) {
	dir := t.TempDir()
	src := `{
  "description": "features",
  "min_packer_version": "1.7.0",
  "variables": {
    "region": "us-east-1",
    "secret": "{{env ` + "`SECRET`" + `}}",
    "team": "infra",
    "name": "{{user ` + "`team`" + `}}-{{user ` + "`region`" + `}}",
    "port": 2222,
    "debug": true
  },
  "sensitive-variables": ["secret"],
  "builders": [
    {"type": "amazon-ebs", "name": "web", "region": "{{user ` + "`region`" + `}}", "source_ami_filter": {"filters": {"name": "ubuntu/*", "virtualization-type": "hvm"}, "owners": ["099720109477"], "most_recent": true},
     "instance_type": "t3.micro", "ssh_username": "ubuntu", "ssh_port": "{{user ` + "`port`" + `}}", "secret_key": "{{user ` + "`secret`" + `}}",
     "ami_name": "{{user ` + "`name`" + `}}-{{build_name}}-{{ .SourceAMIName | clean_resource_name }}",
     "tags": {"Base": "{{ .SourceAMI }}", "Team": "{{user ` + "`team`" + `}}"},
     "launch_block_device_mappings": [{"device_name": "/dev/sda1", "volume_size": 20, "volume_type": "gp3", "delete_on_termination": true}]},
    {"type": "amazon-ebs", "name": "db", "region": "us-east-1", "source_ami": "ami-1", "instance_type": "t3.small", "ssh_username": "ubuntu", "ami_name": "db {{timestamp}}", "encrypt_boot": true}
  ],
  "provisioners": [
    {"type": "shell", "inline": ["echo {{build_name}}"], "only": ["web"], "pause_before": "10s", "max_retries": 3, "timeout": "5m"},
    {"type": "shell", "inline": ["echo base"], "override": {"db": {"inline": ["echo db"]}}, "execute_command": "sudo {{.Vars}} {{.Path}}"},
    {"type": "shell", "script": "a.sh", "except": ["web"], "max_retries": "2"}
  ],
  "post-processors": [
    "manifest",
    [{"type": "manifest", "output": "m.json", "only": ["db"], "keep_input_artifact": true}, {"type": "shell-local", "inline": ["echo"]}]
  ]
}`
	path := filepath.Join(dir, "t.json")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	varFile := filepath.Join(dir, "v.json")
	if err := os.WriteFile(varFile, []byte(`{"team": "platform", "region": "eu-west-1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testLoadOptions()
	opts.Env = func(k string) string { return map[string]string{"SECRET": "hunter2"}[k] }
	opts.VarFiles = []string{varFile}
	opts.Vars = map[string]string{"region": "ap-northeast-1"}
	tp, diags := Load(path, opts)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if tp.Description != "features" || tp.RequiredVersion != "1.7.0" {
		t.Errorf("description %q, min version %q", tp.Description, tp.RequiredVersion)
	}
	vals := map[string]string{}
	for _, v := range tp.Variables {
		vals[v.Name] = v.Value.AsString()
		if v.Sensitive != (v.Name == "secret") {
			t.Errorf("variable %s sensitive = %v", v.Name, v.Sensitive)
		}
	}
	wantVals := map[string]string{"region": "ap-northeast-1", "secret": "hunter2", "team": "platform", "name": "platform-ap-northeast-1", "port": "2222", "debug": "1"}
	for k, want := range wantVals {
		if vals[k] != want {
			t.Errorf("variable %s = %q, want %q", k, vals[k], want)
		}
	}
	if len(tp.Sensitive) != 1 || tp.Sensitive[0] != "hunter2" {
		t.Errorf("Sensitive = %q", tp.Sensitive)
	}
	if len(tp.Builds) != 2 || tp.Builds[0].Name != "web" || tp.Builds[1].Name != "db" {
		t.Fatalf("builds = %v", tp.Builds)
	}
	web, db := tp.Builds[0], tp.Builds[1]
	if len(web.Source.Sensitive) != 1 {
		t.Errorf("web source Sensitive = %q", web.Source.Sensitive)
	}

	var ebs testEBS
	if d := web.Source.Decode(&ebs, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if ebs.Region != "ap-northeast-1" || ebs.SSHPort != 2222 || ebs.SecretKey != "hunter2" {
		t.Errorf("web: region %q port %d secret %q", ebs.Region, ebs.SSHPort, ebs.SecretKey)
	}
	if ebs.AMIName != "platform-ap-northeast-1-web-{{ .SourceAMIName | clean_resource_name }}" {
		t.Errorf("ami_name = %q", ebs.AMIName)
	}
	if ebs.Tags["Base"] != "{{ .SourceAMI }}" || ebs.Tags["Team"] != "platform" {
		t.Errorf("tags = %v", ebs.Tags)
	}
	f := ebs.SourceAMIFilter
	if f == nil || !f.MostRecent || f.Owners[0] != "099720109477" || f.Filters["name"] != "ubuntu/*" {
		t.Errorf("source_ami_filter = %+v", f)
	}
	if len(ebs.Devices) != 1 || ebs.Devices[0].VolumeSize != 20 || !ebs.Devices[0].DeleteOnTermination {
		t.Errorf("devices = %+v", ebs.Devices)
	}

	// Provisioners: "only web" and the override one for web; for db the
	// override one and the "except web" one.
	if len(web.Provisioners) != 2 || len(db.Provisioners) != 2 {
		t.Fatalf("web has %d provisioners, db %d", len(web.Provisioners), len(db.Provisioners))
	}
	p0 := web.Provisioners[0]
	if p0.PauseBefore != 10*time.Second || p0.MaxRetries != 3 || p0.Timeout != 5*time.Minute || p0.Only[0] != "web" {
		t.Errorf("provisioner fields: %+v", p0)
	}
	var sh testShell
	if d := p0.Decode(&sh, nil); d.HasErrors() || sh.Inline[0] != "echo web" {
		t.Errorf("web provisioner inline %q, %v", sh.Inline, d)
	}
	sh = testShell{}
	if d := web.Provisioners[1].Decode(&sh, nil); d.HasErrors() || sh.Inline[0] != "echo base" || sh.ExecuteCommand != "sudo {{.Vars}} {{.Path}}" {
		t.Errorf("web second provisioner %+v, %v", sh, d)
	}
	ov, ok := db.Provisioners[0].Override["db"]
	if !ok {
		t.Fatal("db provisioner has no override for db")
	}
	sh = testShell{}
	if d := gohclDecode(ov, &sh); d.HasErrors() || sh.Inline[0] != "echo db" {
		t.Errorf("override inline %q, %v", sh.Inline, d)
	}
	if db.Provisioners[1].MaxRetries != 2 || db.Provisioners[1].Except[0] != "web" {
		t.Errorf("db provisioner 2: %+v", db.Provisioners[1])
	}

	// Post-processors: web gets the lone manifest and a chain without the
	// db-only manifest; db gets both chains whole.
	if len(web.PostProcessors) != 2 || len(web.PostProcessors[1]) != 1 || web.PostProcessors[1][0].Type != "shell-local" {
		t.Errorf("web post-processors: %v", web.PostProcessors)
	}
	if len(db.PostProcessors) != 2 || len(db.PostProcessors[1]) != 2 {
		t.Fatalf("db post-processors: %v", db.PostProcessors)
	}
	m := db.PostProcessors[1][0]
	if m.KeepInputArtifact == nil || !*m.KeepInputArtifact || m.Only[0] != "db" {
		t.Errorf("manifest in chain: %+v", m)
	}
	if db.PostProcessors[0][0].Type != "manifest" {
		t.Errorf("bare string post-processor type %q", db.PostProcessors[0][0].Type)
	}
}

func gohclDecode(body hcl.Body, v any) hcl.Diagnostics {
	b := Block{Body: body}
	return b.Decode(v, nil)
}

// TestJSONUUIDStable checks that a body decodes to the same {{uuid}} each
// time, as Packer interpolates once.
func TestJSONUUIDStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.json")
	os.WriteFile(path, []byte(`{"builders":[{"type":"amazon-ebs","region":"us-east-1","ami_name":"x {{uuid}}"}]}`), 0o644)
	tp, diags := Load(path, testLoadOptions())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var a, b testEBS
	tp.Builds[0].Source.Decode(&a, nil)
	tp.Builds[0].Source.Decode(&b, nil)
	if a.AMIName != b.AMIName || len(a.AMIName) != 2+36 {
		t.Errorf("ami names %q and %q", a.AMIName, b.AMIName)
	}
}

func TestJSONSyntaxOnly(t *testing.T) {
	opts := testLoadOptions()
	opts.SyntaxOnly = true
	if _, diags := Load("testdata/rules/undefined_user_var.json", opts); diags.HasErrors() {
		t.Errorf("syntax-only reported %v", diags)
	}
	if _, diags := Load("testdata/json/syntax_error.json", opts); !diags.HasErrors() {
		t.Error("syntax-only missed a syntax error")
	}
}

func TestJSONVarErrors(t *testing.T) {
	opts := testLoadOptions()
	opts.Vars = map[string]string{"regin": "x"}
	_, diags := Load("testdata/rules/undefined_user_var.json", opts)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `Did you mean "region"?`) {
		t.Errorf("undeclared -var: %v", diags)
	}
	opts = testLoadOptions()
	opts.Vars = map[string]string{"aws_access_key": "AKIA"}
	_, diags = Load("testdata/json/required_var.json", opts)
	if strings.Contains(diags.Error(), "Unset required variable") {
		t.Errorf("required variable given with -var still reported: %v", diags)
	}
}

func BenchmarkLoadJSONTutorial(b *testing.B) {
	src, err := os.ReadFile("../../examples/tutorial/hello_ami_provisioned.json")
	if err != nil {
		b.Fatal(err)
	}
	opts := testLoadOptions()
	for b.Loop() {
		tp, diags := loadJSON("hello_ami_provisioned.json", src, opts)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		var ebs testEBS
		if d := tp.Builds[0].Source.Decode(&ebs, nil); d.HasErrors() {
			b.Fatal(d)
		}
	}
}

// TestJSONConcurrentDecode decodes one build's blocks from several
// goroutines, as parallel builds and their provisioners do (run with -race).
func TestJSONConcurrentDecode(t *testing.T) {
	tp, diags := Load("../../examples/multi-builder/multi-builder.json", testLoadOptions())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	done := make(chan string, 8)
	for range 8 {
		go func() {
			var ebs testEBS
			tp.Builds[0].Source.Decode(&ebs, nil)
			var sh testShell
			tp.Builds[0].Provisioners[0].Decode(&sh, nil)
			done <- ebs.AMIName
		}()
	}
	first := <-done
	for range 7 {
		if got := <-done; got != first {
			t.Errorf("ami_name %q, then %q", first, got)
		}
	}
	if first != "app-1.0.0-ubuntu-2026-11-25T23-44" {
		t.Errorf("ami_name = %q", first)
	}
}

func TestJSONVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	hclVars := filepath.Join(dir, "v.pkrvars.hcl")
	os.WriteFile(hclVars, []byte(`region = "x"`), 0o644)
	badJSON := filepath.Join(dir, "bad.json")
	os.WriteFile(badJSON, []byte(`{"region": ["a"], "nope": "x"}`), 0o644)
	tests := []struct{ file, want string }{
		{hclVars, "Wrong variable file format"},
		{badJSON, `Invalid value for variable "region"`},
		{filepath.Join(dir, "missing.json"), "Failed to read variable file"},
	}
	for _, tt := range tests {
		opts := testLoadOptions()
		opts.VarFiles = []string{tt.file}
		_, diags := Load("testdata/rules/undefined_user_var.json", opts)
		var all strings.Builder
		for _, d := range diags {
			all.WriteString(d.Summary + ": " + d.Detail + "\n")
		}
		if !strings.Contains(all.String(), tt.want) {
			t.Errorf("%s: diagnostics %q, want %q", tt.file, all.String(), tt.want)
		}
	}
	// Undeclared names in a var file are a warning, not an error.
	opts := testLoadOptions()
	opts.VarFiles = []string{badJSON}
	_, diags := Load("testdata/rules/undefined_user_var.json", opts)
	warned := false
	for _, d := range diags {
		warned = warned || (d.Severity == hcl.DiagWarning && strings.Contains(d.Detail, `"nope"`))
	}
	if !warned {
		t.Errorf("no warning for an undeclared var-file variable: %v", diags)
	}
}
