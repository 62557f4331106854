package plan

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/template"
)

// hclTemplate is an amazon-ebs build with extra source settings, locals
// and a shell provisioner's body.
func hclTemplate(locals, source, shell string) string {
	return fmt.Sprintf(`locals {
%s
}

source "amazon-ebs" "app" {
  region        = "us-east-1"
  source_ami    = "ami-0123456789abcdef0"
  instance_type = "t3.micro"
  ssh_username  = "ubuntu"
%s
}

build {
  sources = ["source.amazon-ebs.app"]
  provisioner "shell" {
%s
  }
}
`, locals, source, shell)
}

// jsonTemplate is a legacy JSON template with extra builder settings and
// a shell provisioner's inline commands.
func jsonTemplate(vars, builder, inline string) string {
	return fmt.Sprintf(`{
  "variables": {%s},
  "builders": [{
    "type": "amazon-ebs",
    "region": "us-east-1",
    "source_ami": "ami-0123456789abcdef0",
    "instance_type": "t3.micro",
    "ssh_username": "ubuntu",
    %s
  }],
  "provisioners": [{"type": "shell", "inline": [%s]}]
}
`, vars, builder, inline)
}

// TestVolatileMarks: the options found volatile in one load (values read
// from the clock or randomness are marked, and the marks follow them
// through locals, string templates and functions) are the ones a second
// load with another clock finds changed (twinVolatile, how amibake found
// them before).
func TestVolatileMarks(t *testing.T) {
	const shellHi = `inline = ["echo hi"]`
	cases := []struct {
		name, file, src string
		want            []string
		// coarser marks the cases where marks find more than a second
		// load, which finds twin: a function turned a volatile string
		// into a list (the whole list is volatile, where a second load
		// finds the elements that changed), and HCL marks a
		// conditional's result with both branches' marks.
		coarser bool
		twin    []string
	}{
		{name: "timestamp through a local and a string template", file: "t.pkr.hcl",
			src:  hclTemplate(`  ts = regex_replace(timestamp(), "[- TZ:]", "")`, `  ami_name = "app ${local.ts}"`, shellHi),
			want: []string{"ami_name"}},
		{name: "uuidv4 through lower and format", file: "t.pkr.hcl",
			src:  hclTemplate(``, "  ami_name = \"app\"\n  ami_description = format(\"built %s\", lower(uuidv4()))", shellHi),
			want: []string{"ami_description"}},
		{name: "join in one tag of a map", file: "t.pkr.hcl",
			src:  hclTemplate(``, "  ami_name = \"app\"\n  tags = { Built = join(\"-\", [\"x\", timestamp()]), Team = \"core\" }", shellHi),
			want: []string{"tags.Built"}},
		{name: "merge keeps the constant tags", file: "t.pkr.hcl",
			src:  hclTemplate(`  common = { Team = "core", Built = "never" }`, "  ami_name = \"app\"\n  tags = merge(local.common, { Built = timestamp() })", shellHi),
			want: []string{"tags.Built"}},
		{name: "formatdate of the year", file: "t.pkr.hcl",
			src:  hclTemplate(``, `  ami_name = "app-${formatdate("YYYY", timestamp())}"`, shellHi),
			want: []string{"ami_name"}},
		{name: "legacy_isotime", file: "t.pkr.hcl",
			src:  hclTemplate(``, `  ami_name = "app-${legacy_isotime("20060102")}"`, shellHi),
			want: []string{"ami_name"}},
		{name: "bcrypt salts at random", file: "t.pkr.hcl",
			src:  hclTemplate(``, "  ami_name = \"app\"\n  tags = { Hash = bcrypt(\"x\") }", shellHi),
			want: []string{"tags.Hash"}},
		{name: "uuidv5 is deterministic", file: "t.pkr.hcl",
			src: hclTemplate(``, `  ami_name = "app-${uuidv5("dns", "example.com")}"`, shellHi)},
		{name: "the branch not taken", file: "t.pkr.hcl",
			src:  hclTemplate(``, `  ami_name = true ? "app" : timestamp()`, shellHi),
			want: []string{"ami_name"}, coarser: true},
		{name: "inside a nested block", file: "t.pkr.hcl",
			src:  hclTemplate(``, "  ami_name = \"app\"\n  source_ami_filter {\n    filters = { name = \"x-${timestamp()}\", state = \"available\" }\n    owners = [\"self\"]\n  }", shellHi),
			want: []string{"source_ami_filter.filters.name"}},
		{name: "a provisioner's list element", file: "t.pkr.hcl",
			src:  hclTemplate(`  ts = timestamp()`, `  ami_name = "app"`, `inline = ["echo ${local.ts}", "echo hi"]`),
			want: []string{"provisioner[0].inline[0]"}},
		{name: "a provisioner override", file: "t.pkr.hcl",
			src:  hclTemplate(``, `  ami_name = "app"`, "inline = [\"echo hi\"]\n    override = { \"amazon-ebs.app\" = { inline = [\"echo ${uuidv4()}\", \"echo hi\"] } }"),
			want: []string{"provisioner[0].inline[0]"}},
		{name: "split of a volatile string", file: "t.pkr.hcl",
			src:     hclTemplate(``, `  ami_name = "app"`, "inline = [\"echo hi\"]\n    environment_vars = split(\",\", \"A=${timestamp()},B=1\")"),
			want:    []string{"provisioner[0].environment_vars[0]", "provisioner[0].environment_vars[1]"},
			coarser: true, twin: []string{"provisioner[0].environment_vars[0]"}},

		{name: "json timestamp", file: "t.json",
			src:  jsonTemplate(``, `"ami_name": "app {{timestamp}}"`, `"echo hi"`),
			want: []string{"ami_name"}},
		{name: "json isotime with a layout, cleaned", file: "t.json",
			src:  jsonTemplate(``, `"ami_name": "app {{isotime \"2006-01-02\" | clean_resource_name}}"`, `"echo hi"`),
			want: []string{"ami_name"}},
		{name: "json uuid in a tag, lowered", file: "t.json",
			src:  jsonTemplate(``, `"ami_name": "app", "tags": {"Run": "{{uuid | lower}}", "Team": "core"}`, `"echo hi"`),
			want: []string{"tags.Run"}},
		{name: "json split of a uuid", file: "t.json",
			src:  jsonTemplate(``, `"ami_name": "app-{{split uuid \"-\" 0}}"`, `"echo hi"`),
			want: []string{"ami_name"}},
		{name: "json through a user variable", file: "t.json",
			src:  jsonTemplate(`"stamp": "{{isotime}}", "team": "core"`, `"ami_name": "app {{user `+"`team`"+`}}", "ami_description": "{{user `+"`stamp`"+`}}"`, `"echo {{user `+"`stamp`"+`}}", "echo hi"`),
			want: []string{"ami_description", "provisioner[0].inline[0]"}},
		{name: "json left for the build", file: "t.json",
			src:  jsonTemplate(``, `"ami_name": "app {{timestamp}} {{.SourceAMIName}}", "ami_description": "{{build_name}} {{.SourceAMIName}}"`, `"echo hi"`),
			want: []string{"ami_name"}},
	}
	now := time.Date(2026, 11, 25, 23, 44, 41, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			lo := template.LoadOptions{Now: now}
			tmpl, diags := template.Load(path, lo)
			if diags.HasErrors() {
				t.Fatalf("load: %s", diags)
			}
			d, err := DigestBuild(Input{Build: tmpl.Builds[0], SourceAMI: "ami-0123456789abcdef0", Sensitive: tmpl.Sensitive})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Volatile, tc.want) {
				t.Errorf("volatile = %q, want %q", d.Volatile, tc.want)
			}
			twin := twinVolatile(t, path, lo)
			wantTwin := tc.want
			if tc.coarser {
				wantTwin = tc.twin
			}
			if !slices.Equal(twin, wantTwin) {
				t.Errorf("a second load finds %q volatile, want %q", twin, wantTwin)
			}
		})
	}
}

// twinVolatile is how amibake found volatile options before marks: load
// the template again with the clock more than a year later (uuidv4() and
// {{uuid}} differ on their own) and compare the settings.
func twinVolatile(t *testing.T, path string, lo template.LoadOptions) []string {
	t.Helper()
	a, diags := template.Load(path, lo)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lo.Now = lo.Now.Add(366*24*time.Hour + time.Hour + time.Minute + time.Second)
	b, diags := template.Load(path, lo)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	builderSettings := func(tb *template.Template) any {
		cfg, diags := decodeConfig(tb.Builds[0])
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		s := dropKeys(settings(cfg), Excluded)
		stripDigestTag(s.(map[string]any))
		return s
	}
	var out []string
	diffJSON(t, "", builderSettings(a), builderSettings(b), &out)
	pa, pb := applying(a.Builds[0]), applying(b.Builds[0])
	for i := range pa {
		_, sa, err := provisionerSettings(pa[i], a.Builds[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		_, sb, err := provisionerSettings(pb[i], b.Builds[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		diffJSON(t, fmt.Sprintf("provisioner[%d]", i), sa, sb, &out)
	}
	sort.Strings(out)
	return out
}

func diffJSON(t *testing.T, path string, a, b any, out *[]string) {
	t.Helper()
	var ga, gb any
	for _, p := range []struct {
		in  any
		out *any
	}{{a, &ga}, {b, &gb}} {
		raw, err := json.Marshal(p.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, p.out); err != nil {
			t.Fatal(err)
		}
	}
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		switch av := a.(type) {
		case map[string]any:
			bv, _ := b.(map[string]any)
			keys := map[string]bool{}
			for k := range av {
				keys[k] = true
			}
			for k := range bv {
				keys[k] = true
			}
			for k := range keys {
				walk(strings.TrimPrefix(path+"."+k, "."), av[k], bv[k])
			}
		case []any:
			bv, ok := b.([]any)
			if !ok || len(av) != len(bv) {
				*out = append(*out, path)
				return
			}
			for i := range av {
				walk(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])
			}
		default:
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				*out = append(*out, path)
			}
		}
	}
	walk(path, ga, gb)
}
