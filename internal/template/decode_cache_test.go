package template

import (
	"reflect"
	"sort"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// cacheTarget uses every gohcl tag kind the cached decoder reimplements.
type cacheTarget struct {
	Name      string            `hcl:"name"`
	Size      *int              `hcl:"size,optional"`
	Tags      map[string]string `hcl:"tags,optional"`
	Raw       hcl.Expression    `hcl:"raw,optional"`
	Missing   hcl.Expression    `hcl:"missing,optional"`
	Attr      *hcl.Attribute    `hcl:"attr,optional"`
	NameRange hcl.Range         `hcl:"name,attr_range"`
	NameName  hcl.Range         `hcl:"name,attr_name_range"`
	NameValue hcl.Range         `hcl:"name,attr_value_range"`
	Filter    *cacheFilter      `hcl:"filter,block"`
	Rules     []cacheRule       `hcl:"rule,block"`
	Ptrs      []*cacheRule      `hcl:"ptr_rule,block"`
	Once      cacheFilter       `hcl:"once,block"`
	Env       *cacheEnv         `hcl:"env,block"`
	Rest      hcl.Body          `hcl:",remain"`
}

type cacheFilter struct {
	Owners []string  `hcl:"owners,optional"`
	Def    hcl.Range `hcl:",def_range"`
	Type   hcl.Range `hcl:",type_range"`
}

type cacheRule struct {
	Label      string    `hcl:"label,label"`
	LabelRange hcl.Range `hcl:"label,label_range"`
	Port       int       `hcl:"port"`
}

type cacheEnv struct {
	Vars map[string]string `hcl:",remain"`
}

func TestDecodeCacheMatchesGohcl(t *testing.T) {
	tests := []struct{ name, src string }{
		{"full", `
name = "x-${var.suffix}"
size = 8
tags = { a = "b" }
raw  = var.suffix
attr = 1
extra = "left over"
filter {
  owners = ["self"]
}
rule "a" { port = 22 }
rule "b" { port = 80 }
ptr_rule "c" { port = 1 }
once {}
env {
  A = "1"
}
`},
		{"wrong type", "name = \"x\"\nsize = \"big\"\nonce {}\n"},
		{"missing required", "once {}\n"},
		{"missing block", "name = \"x\"\n"},
		{"duplicate block", "name = \"x\"\nonce {}\nfilter {}\nfilter {}\n"},
		{"bad label", "name = \"x\"\nonce {}\nrule { port = 1 }\n"},
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"suffix": cty.StringVal("y")}),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := hclsyntax.ParseConfig([]byte(tt.src), "t.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var want, got cacheTarget
			wantDiags := gohcl.DecodeBody(f.Body, ctx, &want)
			gotDiags := decodeBody(f.Body, ctx, &got)
			if wantDiags.Error() != gotDiags.Error() {
				t.Errorf("diagnostics:\n got %v\nwant %v", gotDiags, wantDiags)
			}
			// Expressions and bodies are compared by what they evaluate to
			// and where they are, not by identity.
			for _, p := range [][2]*cacheTarget{{&want, &got}} {
				w, g := p[0], p[1]
				if !sameExpr(ctx, w.Raw, g.Raw) || !sameExpr(ctx, w.Missing, g.Missing) {
					t.Errorf("expressions differ: got %#v %#v", g.Raw, g.Missing)
				}
				w.Raw, g.Raw, w.Missing, g.Missing = nil, nil, nil, nil
				if (w.Rest == nil) != (g.Rest == nil) {
					t.Errorf("remain body: got %v, want %v", g.Rest, w.Rest)
				}
				w.Rest, g.Rest = nil, nil
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("decoded:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func sameExpr(ctx *hcl.EvalContext, a, b hcl.Expression) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	av, _ := a.Value(ctx)
	bv, _ := b.Value(ctx)
	return av.RawEquals(bv) && a.Range() == b.Range()
}

func BenchmarkDecodeCache(b *testing.B) {
	src := []byte("name = \"x\"\nsize = 8\nonce {}\nrule \"a\" { port = 22 }\n")
	f, _ := hclsyntax.ParseConfig(src, "t.hcl", hcl.InitialPos)
	b.Run("gohcl", func(b *testing.B) {
		for b.Loop() {
			var v cacheTarget
			gohcl.DecodeBody(f.Body, nil, &v)
		}
	})
	b.Run("cached", func(b *testing.B) {
		decodeBody(f.Body, nil, &cacheTarget{}) // fill the cache: that is once a process
		for b.Loop() {
			var v cacheTarget
			decodeBody(f.Body, nil, &v)
		}
	})
}

// An untagged embedded struct's options belong to the outer block: the
// decoder treats them as if declared there (flatTarget is the same block
// written out, decoded by gohcl).
type embeddedTarget struct {
	Name string `hcl:"name"`
	embeddedAccess
	Port int `hcl:"port,optional"`
}

type embeddedAccess struct {
	Region  string       `hcl:"region,optional"`
	Profile *string      `hcl:"profile,optional"`
	Role    *cacheFilter `hcl:"role,block"`
}

type flatTarget struct {
	Name    string       `hcl:"name"`
	Region  string       `hcl:"region,optional"`
	Profile *string      `hcl:"profile,optional"`
	Role    *cacheFilter `hcl:"role,block"`
	Port    int          `hcl:"port,optional"`
}

func TestDecodeEmbeddedAsFlat(t *testing.T) {
	tests := []struct{ name, src string }{
		{"full", "name = \"x\"\nregion = \"eu-west-1\"\nprofile = \"p\"\nport = 22\nrole {\n  owners = [\"self\"]\n}\n"},
		{"unknown option: the suggestion knows the embedded names", "name = \"x\"\nregoin = \"eu-west-1\"\n"},
		{"wrong types, outer and embedded", "name = \"x\"\nregion = {}\nport = \"many\"\n"},
		{"duplicate embedded block", "name = \"x\"\nrole {}\nrole {}\n"},
		{"missing required outer option", "region = \"eu-west-1\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := hclsyntax.ParseConfig([]byte(tt.src), "t.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var want flatTarget
			var got embeddedTarget
			// gohcl reports attributes in map order: compare as sets.
			wantDiags := diagSet(gohcl.DecodeBody(f.Body, nil, &want))
			gotDiags := diagSet(decodeBody(f.Body, nil, &got))
			if !reflect.DeepEqual(gotDiags, wantDiags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", gotDiags, wantDiags)
			}
			flat := flatTarget{Name: got.Name, Region: got.Region, Profile: got.Profile, Role: got.Role, Port: got.Port}
			if !reflect.DeepEqual(flat, want) {
				t.Errorf("decoded:\n got %+v\nwant %+v", flat, want)
			}
		})
	}
}

func diagSet(diags hcl.Diagnostics) []string {
	out := make([]string, len(diags))
	for i, d := range diags {
		out[i] = d.Error()
	}
	sort.Strings(out)
	return out
}
