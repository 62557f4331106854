package provisionertest

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/template"
)

// HCL returns a block of plugin type typ whose body is the HCL2 source src
// (the inside of a provisioner block), with vars in its evaluation context.
func HCL(t testing.TB, typ, src string, vars map[string]cty.Value) *template.Block {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.pkr.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse HCL: %s", diags.Error())
	}
	return &template.Block{
		Type:     typ,
		Body:     f.Body,
		Ctx:      &hcl.EvalContext{Variables: vars},
		DefRange: hcl.Range{Filename: "test.pkr.hcl", Start: hcl.InitialPos, End: hcl.InitialPos},
	}
}

// JSON returns a block whose body is the JSON object src, as a legacy JSON
// template's provisioner (without "type") arrives: no variables.
func JSON(t testing.TB, typ, src string) *template.Block {
	t.Helper()
	f, diags := hcljson.Parse([]byte(src), "test.json")
	if diags.HasErrors() {
		t.Fatalf("parse JSON: %s", diags.Error())
	}
	return &template.Block{
		Type:     typ,
		Body:     f.Body,
		Ctx:      &hcl.EvalContext{},
		DefRange: hcl.Range{Filename: "test.json", Start: hcl.InitialPos, End: hcl.InitialPos},
	}
}
