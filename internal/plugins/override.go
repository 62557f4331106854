package plugins

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// overrideFor returns the override body for the build: by its full name,
// else by a dotted suffix ("amazon-ebs.ubuntu" for "app.amazon-ebs.ubuntu"),
// the names Packer's override keys use.
func overrideFor(over map[string]hcl.Body, buildName string) hcl.Body {
	if len(over) == 0 {
		return nil
	}
	for name := buildName; ; {
		if b, ok := over[name]; ok {
			return b
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return nil
		}
		name = name[i+1:]
	}
}

// overrideBody is base with the attributes and blocks set in over replacing
// base's: Packer's per-build `override`.
type overrideBody struct {
	base, over hcl.Body
}

func (o overrideBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, rest, diags := o.PartialContent(s)
	// Report arguments that neither body's schema accepts.
	if rb, ok := rest.(overrideBody); ok {
		_, d := rb.base.Content(&hcl.BodySchema{})
		diags = append(diags, d...)
		_, d = rb.over.Content(&hcl.BodySchema{})
		diags = append(diags, d...)
	}
	return c, diags
}

func (o overrideBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	bc, brest, diags := o.base.PartialContent(s)
	oc, orest, d := o.over.PartialContent(s)
	diags = append(diags, d...)
	if bc == nil || oc == nil {
		return bc, o, diags
	}
	out := *bc
	out.Attributes = hcl.Attributes{}
	for k, a := range bc.Attributes {
		out.Attributes[k] = a
	}
	for k, a := range oc.Attributes {
		out.Attributes[k] = a
	}
	overridden := map[string]bool{}
	for _, blk := range oc.Blocks {
		overridden[blk.Type] = true
	}
	out.Blocks = nil
	for _, blk := range bc.Blocks {
		if !overridden[blk.Type] {
			out.Blocks = append(out.Blocks, blk)
		}
	}
	out.Blocks = append(out.Blocks, oc.Blocks...)
	return &out, overrideBody{base: brest, over: orest}, diags
}

func (o overrideBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	ba, diags := o.base.JustAttributes()
	oa, d := o.over.JustAttributes()
	diags = append(diags, d...)
	out := hcl.Attributes{}
	for k, a := range ba {
		out[k] = a
	}
	for k, a := range oa {
		out[k] = a
	}
	return out, diags
}

func (o overrideBody) MissingItemRange() hcl.Range { return o.base.MissingItemRange() }
