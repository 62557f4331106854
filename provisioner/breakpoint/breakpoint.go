// Package breakpoint is Packer's `breakpoint` provisioner: it pauses the
// build until the user presses enter, to look at the machine mid-way.
package breakpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// Config is every option Packer documents for the breakpoint provisioner.
type Config struct {
	Note    string `hcl:"note,optional"`
	Disable bool   `hcl:"disable,optional"`
}

// Provisioner pauses the build.
type Provisioner struct{ cfg Config }

// New decodes a breakpoint provisioner block.
func New(b *template.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	var cfg Config
	if diags := b.Decode(&cfg, build); diags.HasErrors() {
		return nil, diags
	}
	return &Provisioner{cfg: cfg}, nil
}

// Config returns the decoded configuration.
func (p *Provisioner) Config() Config { return p.cfg }

// Provision waits for enter. Where nobody can answer (CI, no terminal) it
// says so and continues: Packer fails the build there, which makes a
// forgotten breakpoint break CI for no benefit.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	note := p.cfg.Note
	if p.cfg.Disable {
		if note != "" {
			u.Say(fmt.Sprintf("Breakpoint provisioner with note \"%s\" disabled; continuing...", note))
		} else {
			u.Say("Breakpoint provisioner disabled; continuing...")
		}
		return nil
	}
	if note != "" {
		u.Say(fmt.Sprintf("Pausing at breakpoint provisioner with note \"%s\".", note))
	} else {
		u.Say("Pausing at breakpoint provisioner.")
	}
	_, err := u.Ask(ctx, "Press enter to continue.")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ui.ErrNoPrompt):
		u.Say("Not an interactive terminal: continuing without pausing.")
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("Error asking for input: %w", err)
}

var _ provisioner.Provisioner = (*Provisioner)(nil)
