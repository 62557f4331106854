package template

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

func mustLoad(t *testing.T, path string, opts LoadOptions) *Template {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = fixedNow
	}
	tmpl, diags := Load(path, opts)
	if diags.HasErrors() {
		var buf bytes.Buffer
		_ = WriteDiagnostics(&buf, filesOf(tmpl), diags, false)
		t.Fatalf("Load(%s): %s", path, buf.String())
	}
	return tmpl
}

func variable(t *testing.T, tmpl *Template, name string) *Variable {
	t.Helper()
	for _, v := range tmpl.Variables {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no variable %q", name)
	return nil
}

func TestHCL2VariablePrecedence(t *testing.T) {
	dir := "testdata/hcl2/features"
	cases := []struct {
		name string
		opts LoadOptions
		want string
	}{
		{"auto var file beats default", LoadOptions{}, "auto-region"},
		{"auto var file beats env", LoadOptions{Env: mapEnv(map[string]string{"PKR_VAR_region": "env"})}, "auto-region"},
		{"var file beats auto", LoadOptions{VarFiles: []string{"testdata/hcl2/region1.pkrvars.hcl"}}, "file-1"},
		{"later var file wins", LoadOptions{VarFiles: []string{"testdata/hcl2/region1.pkrvars.hcl", "testdata/hcl2/region2.pkrvars.json"}}, "file-2"},
		{"-var beats var file", LoadOptions{VarFiles: []string{"testdata/hcl2/region1.pkrvars.hcl"}, Vars: map[string]string{"region": "cli"}}, "cli"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := mustLoad(t, dir, tc.opts)
			if got := variable(t, tmpl, "region").Value.AsString(); got != tc.want {
				t.Errorf("region = %q, want %q", got, tc.want)
			}
		})
	}
	// Env beats the default when no file sets the variable.
	env := mapEnv(map[string]string{"PKR_VAR_tags": `{ team = "web" }`, "PKR_VAR_count": "4", "AMIBAKE_VAR_count": "5", "AMIBAKE_TEST_HOME": "/home/x"})
	tmpl := mustLoad(t, dir, LoadOptions{Env: env})
	if got := variable(t, tmpl, "tags").Value.Index(cty.StringVal("team")).AsString(); got != "web" {
		t.Errorf("tags.team = %q, want web", got)
	}
	if got := variable(t, tmpl, "count").Value; !got.RawEquals(cty.NumberIntVal(5)) {
		t.Errorf("count = %#v, want 5 (AMIBAKE_VAR_ beats PKR_VAR_)", got)
	}
	if got := variable(t, tmpl, "from_env_default").Value.AsString(); got != "/home/x" {
		t.Errorf("env() in default = %q", got)
	}
	if got := variable(t, tmpl, "legacy_style").Value.AsString(); got != "old" {
		t.Errorf("variables block = %q", got)
	}
}

func TestHCL2Builds(t *testing.T) {
	tmpl := mustLoad(t, "testdata/hcl2/features", LoadOptions{Cwd: "/cwd"})
	var names []string
	for _, b := range tmpl.Builds {
		names = append(names, b.Name)
	}
	if want := []string{"app.amazon-ebs.ubuntu", "app.amazon-ebs.second"}; !slices.Equal(names, want) {
		t.Fatalf("builds = %v, want %v", names, want)
	}
	type srcCfg struct {
		Region       string   `hcl:"region"`
		InstanceType string   `hcl:"instance_type"`
		AMIName      string   `hcl:"ami_name"`
		Root         string   `hcl:"root"`
		SSHUsername  string   `hcl:"ssh_username,optional"`
		Rest         hcl.Body `hcl:",remain"`
	}
	var first, second srcCfg
	if d := tmpl.Builds[0].Source.Decode(&first, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if d := tmpl.Builds[1].Source.Decode(&second, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if first.AMIName != "auto-region-base-ubuntu-20260102" || second.AMIName != "auto-region-base-second-20260102" {
		t.Errorf("ami_name = %q, %q", first.AMIName, second.AMIName)
	}
	if first.SSHUsername != "" || second.SSHUsername != "ubuntu" {
		t.Errorf("in-build source settings: %q, %q", first.SSHUsername, second.SSHUsername)
	}
	if first.Root != "testdata/hcl2/features" {
		t.Errorf("path.root = %q", first.Root)
	}
	b0, b1 := tmpl.Builds[0], tmpl.Builds[1]
	if b0.BuildName != "app" || b0.Description != "application image" {
		t.Errorf("build name/description = %q/%q", b0.BuildName, b0.Description)
	}
	inline := func(p *Provisioner, extra map[string]cty.Value) []string {
		var cfg struct {
			Inline []string `hcl:"inline"`
		}
		if d := p.Decode(&cfg, extra); d.HasErrors() {
			t.Fatal(d)
		}
		return cfg.Inline
	}
	// only/except select provisioners per build.
	if len(b0.Provisioners) != 3 || len(b1.Provisioners) != 3 {
		t.Fatalf("provisioners: %d and %d, want 3 and 3", len(b0.Provisioners), len(b1.Provisioners))
	}
	if got := inline(b0.Provisioners[0], nil); !slices.Equal(got, []string{"echo ubuntu amazon-ebs"}) {
		t.Errorf("source.name in provisioner = %v", got)
	}
	if got := inline(b1.Provisioners[1], nil); !slices.Equal(got, []string{"only second"}) {
		t.Errorf("only = %v", got)
	}
	p := b0.Provisioners[1]
	if got := inline(p, nil); !slices.Equal(got, []string{"not second"}) {
		t.Errorf("except = %v", got)
	}
	if p.PauseBefore != 5*time.Second || p.MaxRetries != 3 || p.Timeout != 2*time.Minute {
		t.Errorf("pause/retries/timeout = %v/%d/%v", p.PauseBefore, p.MaxRetries, p.Timeout)
	}
	if _, ok := p.Override["amazon-ebs.ubuntu"]; !ok {
		t.Errorf("override keys: %v", p.Override)
	}
	// build.* is unknown until the build supplies it, then decodes.
	if got := inline(b0.Provisioners[2], nil); !slices.Equal(got, []string{UnknownPlaceholder}) {
		t.Errorf("build.Host without build = %v", got)
	}
	build := map[string]cty.Value{"build": cty.ObjectVal(map[string]cty.Value{"Host": cty.StringVal("10.0.0.5")})}
	if got := inline(b0.Provisioners[2], build); !slices.Equal(got, []string{"host 10.0.0.5"}) {
		t.Errorf("build.Host = %v", got)
	}
	if b0.ErrorCleanupProvisioner == nil || b0.ErrorCleanupProvisioner.Type != "shell-local" {
		t.Errorf("error-cleanup-provisioner = %+v", b0.ErrorCleanupProvisioner)
	}
	if len(b0.PostProcessors) != 2 || len(b0.PostProcessors[0]) != 1 || len(b0.PostProcessors[1]) != 2 {
		t.Fatalf("post-processor chains = %v", b0.PostProcessors)
	}
	if k := b0.PostProcessors[1][1].KeepInputArtifact; k == nil || !*k {
		t.Errorf("keep_input_artifact = %v", k)
	}
	// Sensitive values: the variable and the sensitive local.
	for _, want := range []string{"hunter2", "https://user:hunter2@example.com"} {
		if !slices.Contains(tmpl.Sensitive, want) || !slices.Contains(b0.Source.Sensitive, want) {
			t.Errorf("sensitive %q not collected: %v", want, tmpl.Sensitive)
		}
	}
}

func TestHCL2OnlyExcept(t *testing.T) {
	cases := []struct {
		only, except []string
		want         []string
	}{
		{nil, nil, []string{"amazon-ebs.one", "amazon-ebs.two", "docker.d"}},
		{[]string{"amazon-ebs.*"}, nil, []string{"amazon-ebs.one", "amazon-ebs.two"}},
		{nil, []string{"docker.d"}, []string{"amazon-ebs.one", "amazon-ebs.two"}},
		{[]string{"*.two"}, nil, []string{"amazon-ebs.two"}},
	}
	for _, tc := range cases {
		tmpl := mustLoad(t, "testdata/hcl2/multi", LoadOptions{Only: tc.only, Except: tc.except})
		var got []string
		for _, b := range tmpl.Builds {
			got = append(got, b.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("only=%v except=%v: %v, want %v", tc.only, tc.except, got, tc.want)
		}
	}
}

func TestHCL2DynamicBlocks(t *testing.T) {
	tmpl := mustLoad(t, "testdata/hcl2/dynamic", LoadOptions{})
	var cfg struct {
		Tags []struct {
			Key   string `hcl:"key"`
			Value string `hcl:"value"`
		} `hcl:"tag,block"`
	}
	if d := tmpl.Builds[0].Source.Decode(&cfg, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if len(cfg.Tags) != 2 || cfg.Tags[0].Key != "a" || cfg.Tags[1].Value != "2" {
		t.Errorf("tags = %+v", cfg.Tags)
	}
}

func TestHCL2DataSources(t *testing.T) {
	type cfg struct {
		SourceAMI string `hcl:"source_ami"`
		AMIName   string `hcl:"ami_name"`
		Volume    int    `hcl:"volume"`
	}
	// Unevaluated: unknown, decoded as placeholders for offline checks.
	tmpl := mustLoad(t, "testdata/hcl2/data", LoadOptions{})
	if len(tmpl.DataSources) != 1 || tmpl.DataSources[0].Type != "amazon-ami" || tmpl.DataSources[0].Value.IsKnown() {
		t.Fatalf("data sources = %+v", tmpl.DataSources)
	}
	var c cfg
	if d := tmpl.Builds[0].Source.Decode(&c, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if c.SourceAMI != UnknownPlaceholder || c.Volume != 8 {
		t.Errorf("unevaluated decode = %+v", c)
	}
	// Evaluated through the hook the builder provides.
	var seen *Block
	type key struct{}
	var seenCtx context.Context
	eval := func(ctx context.Context, b *Block) (cty.Value, hcl.Diagnostics) {
		seen, seenCtx = b, ctx
		var args struct {
			Owners []string `hcl:"owners"`
			Rest   hcl.Body `hcl:",remain"`
		}
		if d := b.Decode(&args, nil); d.HasErrors() {
			return cty.NilVal, d
		}
		return cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal("ami-" + args.Owners[0])}), nil
	}
	ctx := context.WithValue(context.Background(), key{}, "the load's")
	tmpl, diags := LoadContext(ctx, "testdata/hcl2/data", LoadOptions{EvaluateDataSources: true, DataSource: eval})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if seen == nil || seen.Name != "ubuntu" {
		t.Fatalf("evaluator saw %+v", seen)
	}
	if seenCtx == nil || seenCtx.Value(key{}) != "the load's" {
		t.Error("the data source was not evaluated with the load's context")
	}
	c = cfg{}
	if d := tmpl.Builds[0].Source.Decode(&c, nil); d.HasErrors() {
		t.Fatal(d)
	}
	if c.SourceAMI != "ami-099720109477" || c.AMIName != "from-ami-099720109477" {
		t.Errorf("evaluated decode = %+v", c)
	}
	// Without an evaluator, asking for evaluation is an error.
	if _, diags := Load("testdata/hcl2/data", LoadOptions{EvaluateDataSources: true}); !diags.HasErrors() {
		t.Error("EvaluateDataSources without DataSource: no error")
	}
}

func TestHCL2Functions(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`upper("a")`, "A"},
		{`format("%s-%d", "a", 1)`, "a-1"},
		{`join(",", ["a", "b"])`, "a,b"},
		{`regex_replace("a-b", "-", "_")`, "a_b"},
		{`timestamp()`, "2026-01-02T03:04:05Z"},
		{`formatdate("YYYY-MM-DD", timestamp())`, "2026-01-02"},
		{`timeadd(timestamp(), "1h")`, "2026-01-02T04:04:05Z"},
		{`legacy_isotime("2006")`, "2026"},
		{`sha256("a")`, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"},
		{`md5("a")`, "0cc175b9c0f1b6a831c399e269772661"},
		{`base64encode("hi")`, "aGk="},
		{`jsonencode({a = 1})`, `{"a":1}`},
		{`tostring(length(split(",", "a,b,c")))`, "3"},
		{`lookup({a = "x"}, "b", "def")`, "def"},
		{`coalesce("", "y")`, "y"},
		{`tostring(contains(["a"], "a"))`, "true"},
		{`trimspace(file("testdata/hcl2/hello.txt"))`, "hello"},
		{`templatefile("testdata/hcl2/greet.tpl", { name = "bob" })`, "hi bob\n"},
		{`uuidv5("dns", "example.com")`, "cfbff0d1-9375-5685-968c-48ce8b15ae17"},
		{`tostring(strcontains("abc", "b"))`, "true"},
		{`basename("/a/b.txt")`, "b.txt"},
	}
	fs := Functions(".", fixedNow)
	for _, tc := range cases {
		v := evalString(t, tc.expr, fs)
		if v != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, v, tc.want)
		}
	}
	if _, ok := fs["env"]; ok {
		t.Error("env() must be available in variable defaults only")
	}
	if v := evalString(t, "uuidv4()", fs); len(v) != 36 {
		t.Errorf("uuidv4() = %q", v)
	}
}

func TestHCL2SyntaxOnly(t *testing.T) {
	// Unset variables and unknown sources do not matter with SyntaxOnly.
	tmpl, diags := Load("testdata/diag/unknown_source.pkr.hcl", LoadOptions{SyntaxOnly: true})
	if diags.HasErrors() || tmpl == nil || len(tmpl.Files) != 1 {
		t.Fatalf("syntax-only: %v", diags)
	}
	if _, diags := Load("testdata/diag/syntax_error.pkr.hcl", LoadOptions{SyntaxOnly: true}); !diags.HasErrors() {
		t.Error("syntax-only accepted a syntax error")
	}
}

func TestLoadDispatch(t *testing.T) {
	cases := []struct {
		path    string
		summary string
	}{
		{"testdata/hcl2/hello.txt", "Unknown template format"},
		{"testdata/diag", ""}, // a directory of broken files: loads them
		{"testdata/empty", "No template files"},
	}
	for _, tc := range cases {
		_, diags := Load(tc.path, LoadOptions{})
		if tc.summary == "" {
			if !diags.HasErrors() {
				t.Errorf("%s: no error", tc.path)
			}
			continue
		}
		if len(diags) == 0 || diags[0].Summary != tc.summary {
			t.Errorf("%s: %v, want %q", tc.path, diags, tc.summary)
		}
	}
}

func evalString(t *testing.T, src string, fs map[string]function.Function) string {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	v, diags := expr.Value(&hcl.EvalContext{Functions: fs})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	if v.Type() != cty.String {
		t.Fatalf("%s: %s, want a string", src, v.Type().FriendlyName())
	}
	v, _ = v.UnmarkDeep() // uuidv4() and timestamp() are marked volatile
	return v.AsString()
}
