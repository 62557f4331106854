package template

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// TestVolatileFunctions: what reads the clock or randomness is marked, and
// the mark follows the value through string templates and functions.
func TestVolatileFunctions(t *testing.T) {
	fs := Functions(".", fixedNow)
	ctx := &hcl.EvalContext{Functions: fs, Variables: map[string]cty.Value{
		"local": cty.ObjectVal(map[string]cty.Value{
			"ts":    markVolatile(cty.StringVal("2026-11-25T23:44:41Z")),
			"fixed": cty.StringVal("x"),
		}),
	}}
	for _, tc := range []struct {
		expr     string
		volatile bool
	}{
		{`timestamp()`, true},
		{`uuidv4()`, true},
		{`bcrypt("x")`, true},
		{`legacy_isotime("2006")`, true},
		{`uuidv5("dns", "example.com")`, false},
		{`"app-${timestamp()}"`, true},
		{`"app-${local.ts}"`, true},
		{`"app-${local.fixed}"`, false},
		{`format("%s-%s", "a", lower(uuidv4()))`, true},
		{`join("-", ["a", upper(local.ts)])`, true},
		{`regex_replace(local.ts, "[- TZ:]", "")`, true},
		{`formatdate("YYYY", timestamp())`, true},
		{`merge({a = "x"}, {b = timestamp()}).a`, false},
		{`merge({a = "x"}, {b = timestamp()}).b`, true},
		{`[local.fixed, local.ts][0]`, false},
		{`sha256("x")`, false},
	} {
		expr, diags := hclsyntax.ParseExpression([]byte(tc.expr), "test", hcl.Pos{Line: 1, Column: 1})
		if diags.HasErrors() {
			t.Fatalf("%s: %s", tc.expr, diags)
		}
		v, diags := expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", tc.expr, diags)
		}
		if got := IsVolatile(v); got != tc.volatile {
			t.Errorf("%s: volatile %v, want %v", tc.expr, got, tc.volatile)
		}
	}
}

// TestTrackedDecode: a tracked copy's decode lists the options read from
// volatile values, in option names; the block itself records nothing.
func TestTrackedDecode(t *testing.T) {
	src := `
ami_name = "app ${timestamp()}"
count    = 2
tags     = { Built = timestamp(), Team = "core" }
names    = split("-", "a-${uuidv4()}")
disk {
  size = 8
  kms  = "alias/${uuidv4()}"
}
disk {
  size = 9
}
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	type disk struct {
		Size int    `hcl:"size,optional"`
		KMS  string `hcl:"kms,optional"`
	}
	type cfg struct {
		AMIName string            `hcl:"ami_name,optional"`
		Count   int               `hcl:"count,optional"`
		Tags    map[string]string `hcl:"tags,optional"`
		Names   []string          `hcl:"names,optional"`
		Disks   []disk            `hcl:"disk,block"`
	}
	b := Block{Type: "test", Body: f.Body, Ctx: &hcl.EvalContext{Functions: Functions(".", fixedNow)}}
	vol := &Volatile{}
	tracked := b.Tracked(vol)
	var c cfg
	if diags := tracked.Decode(&c, nil); diags.HasErrors() {
		t.Fatal(diags)
	}
	want := []string{"ami_name", "disk[0].kms", "names[0]", "names[1]", "names[2]", "names[3]", "names[4]", "names[5]", "tags.Built"}
	got := vol.Paths()
	if len(got) != len(want) {
		t.Fatalf("paths = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("paths = %q, want %q", got, want)
		}
	}
	if c.Tags["Team"] != "core" || c.Disks[1].Size != 9 {
		t.Errorf("decoded %+v", c)
	}
	if b.vol != nil {
		t.Error("Tracked changed the block")
	}
}
