package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// upgradeCases are the JSON templates with golden HCL2 outputs.
var upgradeCases = []struct {
	name, path string
	annotate   bool
}{
	{"hello_ami", "../../examples/tutorial/hello_ami.json", false},
	{"hello_ami_provisioned", "../../examples/tutorial/hello_ami_provisioned.json", true},
	{"ubuntu-noble", "../../examples/ubuntu-noble/ubuntu-noble.json", false},
	{"web-server", "../../examples/web-server/web-server.json", false},
	{"multi-builder", "../../examples/multi-builder/multi-builder.json", true},
	{"functions", "testdata/upgrade/functions.json", false},
}

func TestUpgradeGolden(t *testing.T) {
	for _, tc := range upgradeCases {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			out, diags := UpgradeJSON(filepath.Base(tc.path), src, UpgradeOptions{WithAnnotations: tc.annotate})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var warnings strings.Builder
			for _, d := range diags {
				warnings.WriteString("# warning: " + d.Subject.String() + ": " + d.Summary + ": " + d.Detail + "\n")
			}
			checkGolden(t, "testdata/upgrade/"+tc.name+".pkr.hcl.golden", append([]byte(warnings.String()), out...))
		})
	}
}

// TestUpgradeWarnings checks that what cannot be translated is reported.
func TestUpgradeWarnings(t *testing.T) {
	src, err := os.ReadFile("testdata/upgrade/functions.json")
	if err != nil {
		t.Fatal(err)
	}
	out, diags := UpgradeJSON("functions.json", src, UpgradeOptions{})
	want := []string{"Approximate replace", "Untranslated template action"}
	var all strings.Builder
	for _, d := range diags {
		all.WriteString(d.Summary + ": " + d.Detail + "\n")
	}
	for _, w := range want {
		if !strings.Contains(all.String(), w) {
			t.Errorf("no %q warning in %v", w, diags)
		}
	}
	if diags.HasErrors() || !strings.Contains(string(out), "# TODO:") {
		t.Errorf("errors %v, or no TODO comment in output", diags)
	}
}

func TestUpgradeErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "only.json")
	os.WriteFile(bad, []byte(`{"builders":[{"type":"amazon-ebs","name":"web"}],"provisioners":[{"type":"shell","only":["wbe"]}]}`), 0o644)
	for _, f := range []string{"testdata/json/syntax_error.json", "testdata/json/structure.json", bad} {
		src, _ := os.ReadFile(f)
		out, diags := UpgradeJSON(f, src, UpgradeOptions{})
		if !diags.HasErrors() || out != nil {
			t.Errorf("%s: upgrade gave %d bytes and %v, want errors", f, len(out), diags)
		}
	}
}

func TestGoLayoutToFormatdate(t *testing.T) {
	tests := []struct {
		layout, spec string
		ok           bool
	}{
		{"2006-01-02", "YYYY-MM-DD", true},
		{"20060102-1504", "YYYYMMDD-hhmm", true},
		{"2006-01-02T15:04:05Z07:00", "YYYY-MM-DD'T'hh:mm:ssZ", true},
		{"Jan 2, 2006 at 3:04pm (MST)", "MMM D, YYYY' at 'H:mmaa (ZZZ)", true},
		{"Monday January 06 -0700", "EEEE MMMM YY ZZZZ", true},
		{"15.04.05.000", "", false},
		{"_2 Jan", "", false},
	}
	for _, tt := range tests {
		spec, ok := goLayoutToFormatdate(tt.layout)
		if ok != tt.ok || (ok && spec != tt.spec) {
			t.Errorf("goLayoutToFormatdate(%q) = %q, %v; want %q, %v", tt.layout, spec, ok, tt.spec, tt.ok)
		}
	}
}

// TestUpgradeRoundTrip upgrades every JSON example, loads both templates
// and checks that each build decodes to the same settings. The only
// difference allowed is the timestamp's format: {{timestamp}} is Unix
// seconds, HCL2's local.timestamp the compact UTC time.
func TestUpgradeRoundTrip(t *testing.T) {
	for _, tc := range upgradeCases {
		if tc.name == "functions" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			// Both templates live in the same directory, so that
			// template_dir and path.root agree.
			jsonPath := filepath.Join(dir, "t.json")
			hclPath := filepath.Join(dir, "t.pkr.hcl")
			out, diags := UpgradeJSON(jsonPath, src, UpgradeOptions{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			os.WriteFile(jsonPath, src, 0o644)
			os.WriteFile(hclPath, out, 0o644)

			opts := testLoadOptions()
			opts.Cwd = dir
			jt, diags := Load(jsonPath, opts)
			if diags.HasErrors() {
				t.Fatalf("load JSON: %v", diags)
			}
			ht, diags := Load(hclPath, opts)
			if diags.HasErrors() {
				var b strings.Builder
				WriteDiagnostics(&b, ht.Files, diags, false)
				t.Fatalf("upgraded template does not load:\n%s\n%s", b.String(), out)
			}
			if len(jt.Builds) != len(ht.Builds) {
				t.Fatalf("%d JSON builds, %d HCL2 builds", len(jt.Builds), len(ht.Builds))
			}
			for i := range jt.Builds {
				jv := decodeBuild(t, jt.Builds[i], nil)
				hv := decodeBuild(t, ht.Builds[i], jt.Builds[i])
				norm := strings.NewReplacer("1795650281", "<TIMESTAMP>", "20261125234441", "<TIMESTAMP>")
				if js, hs := norm.Replace(string(must(json.MarshalIndent(jv, "", " ")))), norm.Replace(string(must(json.MarshalIndent(hv, "", " ")))); js != hs {
					t.Errorf("build %d decodes differently:\nJSON: %s\nHCL2: %s\n\n%s", i, js, hs, out)
				}
			}
		})
	}
}

// decodeBuild decodes a build's source, provisioners (with the override
// for that build) and post-processors into comparable values: the
// amazon-ebs blocks through gohcl, everything else as attribute values.
//
// HCL2 bodies cannot list their attributes once blocks are decoded out of
// them, so they are read by the names of ref's (the JSON build's).
func decodeBuild(t *testing.T, b, ref *Build) map[string]any {
	t.Helper()
	names := func(body hcl.Body) []string {
		if ref == nil {
			return nil
		}
		if _, ok := body.(overlayBody); ok {
			attrs, _ := body.JustAttributes()
			return sortedKeys(attrs)
		}
		var src struct {
			F    *testFilter  `hcl:"source_ami_filter,block"`
			D    []testDevice `hcl:"launch_block_device_mappings,block"`
			Rest hcl.Body     `hcl:",remain"`
		}
		blk := Block{Body: body}
		if d := blk.Decode(&src, nil); d.HasErrors() {
			t.Fatal(d)
		}
		attrs, _ := src.Rest.JustAttributes()
		return sortedKeys(attrs)
	}
	var src struct {
		SourceAMIFilter *testFilter  `hcl:"source_ami_filter,block"`
		Devices         []testDevice `hcl:"launch_block_device_mappings,block"`
		Rest            hcl.Body     `hcl:",remain"`
	}
	if d := b.Source.Decode(&src, nil); d.HasErrors() {
		t.Fatalf("decode source of %s: %v", b.Name, d)
	}
	var refSource hcl.Body
	if ref != nil {
		refSource = ref.Source.Body
	}
	out := map[string]any{"source": attrValues(t, src.Rest, b.Source.Ctx, names(refSource)), "filter": src.SourceAMIFilter, "devices": src.Devices}
	var provs []any
	for i, p := range b.Provisioners {
		var refNames []string
		if ref != nil && i < len(ref.Provisioners) {
			rb := ref.Provisioners[i].Body
			for name, o := range ref.Provisioners[i].Override {
				if name == ref.Name {
					rb = overlayBody{base: rb, over: o}
				}
			}
			refNames = names(rb)
		}
		body := p.Body
		for name, o := range p.Override {
			if name == b.Name || strings.HasSuffix(b.Name, "."+name) || strings.HasSuffix(name, "."+b.Source.Name) {
				body = overlayBody{base: body, over: o}
			}
		}
		provs = append(provs, map[string]any{"type": p.Type, "settings": attrValues(t, body, p.Ctx, refNames), "pause": p.PauseBefore, "retries": p.MaxRetries, "timeout": p.Timeout})
	}
	out["provisioners"] = provs
	var chains [][]any
	for i, chain := range b.PostProcessors {
		var c []any
		for j, pp := range chain {
			var refNames []string
			if ref != nil && i < len(ref.PostProcessors) && j < len(ref.PostProcessors[i]) {
				refNames = names(ref.PostProcessors[i][j].Body)
			}
			c = append(c, map[string]any{"type": pp.Type, "name": pp.Name, "settings": attrValues(t, pp.Body, pp.Ctx, refNames), "keep": pp.KeepInputArtifact})
		}
		chains = append(chains, c)
	}
	out["post-processors"] = chains
	return out
}

// attrValues evaluates the attributes of body to JSON text: all of them,
// or those named.
func attrValues(t *testing.T, body hcl.Body, ctx *hcl.EvalContext, names []string) map[string]string {
	t.Helper()
	var attrs hcl.Attributes
	var d hcl.Diagnostics
	if names != nil {
		var schema hcl.BodySchema
		for _, name := range names {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: name})
		}
		var c *hcl.BodyContent
		c, _, d = body.PartialContent(&schema)
		attrs = c.Attributes
	} else {
		attrs, d = body.JustAttributes()
	}
	if d.HasErrors() {
		t.Fatalf("attributes of %T: %v", body, d)
	}
	vals := map[string]string{}
	for k, a := range attrs {
		v, d := a.Expr.Value(ctx)
		if d.HasErrors() {
			t.Fatalf("attribute %s: %v", k, d)
		}
		// Both forms read the clock or randomness alike.
		volatile := ""
		if IsVolatile(v) {
			volatile = " (volatile)"
		}
		v, _ = v.UnmarkDeep()
		vals[k] = string(must(ctyjson.SimpleJSONValue{Value: v}.MarshalJSON())) + volatile
	}
	return vals
}

// overlayBody applies an override body over a base for the test, as the
// plugin registry does.
type overlayBody struct{ base, over hcl.Body }

func (o overlayBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	bc, _, d := o.base.PartialContent(s)
	oc, _, d2 := o.over.PartialContent(s)
	d = append(d, d2...)
	for k, a := range oc.Attributes {
		bc.Attributes[k] = a
	}
	return bc, d
}
func (o overlayBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c, d := o.Content(s)
	return c, hcl.EmptyBody(), d
}
func (o overlayBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	attrs, d := o.base.JustAttributes()
	over, d2 := o.over.JustAttributes()
	for k, a := range over {
		attrs[k] = a
	}
	return attrs, append(d, d2...)
}
func (o overlayBody) MissingItemRange() hcl.Range { return o.base.MissingItemRange() }

func BenchmarkUpgradeJSON(b *testing.B) {
	src, err := os.ReadFile("../../examples/multi-builder/multi-builder.json")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, diags := UpgradeJSON("multi-builder.json", src, UpgradeOptions{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
