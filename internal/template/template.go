// Package template loads Packer templates, legacy JSON and HCL2, into one
// model. Plugins (the amazon-ebs builder, provisioners, post-processors)
// decode their own settings from a Block with gohcl-style struct tags, so a
// new option is declared once, in the plugin's Config struct, and is
// checked the same way in both formats.
//
// Load reads a template; WriteDiagnostics / WriteDiagnosticsJSON print
// what went wrong; WriteInspect and FormatHCL back `inspect` and `fmt`.
// HCL2 data sources stay unknown unless LoadOptions.EvaluateDataSources is
// set with a LoadOptions.DataSource evaluator (the builder's), and values
// only a running build knows (build.*) are supplied through Block.Decode's
// extra variables; until then Decode stands placeholders in for them.
package template

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Format is the syntax a template was written in.
type Format int

const (
	FormatHCL2 Format = iota
	FormatJSON        // legacy Packer JSON with {{ }} template functions
)

func (f Format) String() string {
	if f == FormatJSON {
		return "json"
	}
	return "hcl2"
}

// Template is a loaded, variable-resolved template.
type Template struct {
	// Path is the file or directory given by the user.
	Path   string
	Format Format
	// Files are the sources that were read, for printing diagnostics.
	Files map[string]*hcl.File

	Description string
	Variables   []*Variable
	Builds      []*Build

	// RequiredVersion is packer { required_version } or min_packer_version.
	RequiredVersion string
	// DataSources are the HCL2 data blocks, in evaluation order. Value is
	// unknown unless LoadOptions.EvaluateDataSources was set.
	DataSources []*DataSource
	// Locals are the evaluated HCL2 locals, for inspect.
	Locals []*Local
	// Sensitive holds every value that must be masked in output: the
	// values of sensitive variables and locals, as strings.
	Sensitive []string
	// Warnings are non-fatal diagnostics from loading (also returned by
	// Load), kept so that callers that only keep the Template see them.
	Warnings hcl.Diagnostics
}

// DataSource is an HCL2 `data "type" "name"` block.
type DataSource struct {
	Block
	// Value is the data source's result object, cty.DynamicVal when it was
	// not evaluated.
	Value cty.Value
}

// Local is an HCL2 local value.
type Local struct {
	Name      string
	Value     cty.Value
	Sensitive bool
	DeclRange hcl.Range
}

// Variable is an input variable (HCL2 `variable`, JSON `variables`).
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Default     cty.Value // cty.NilVal when required
	Value       cty.Value // the resolved value
	Sensitive   bool
	DeclRange   hcl.Range

	validations []*validation
	broken      bool // its declaration had errors: do not also report it unset
}

// Build is one builder source inside one build: what `amibake build` runs
// and what -only/-except match. Its Name is Packer's: the JSON builder's
// `name` (or type), or "<build name>.<source type>.<source name>" in HCL2
// ("amazon-ebs.<source name>" when the build has no name).
type Build struct {
	// Name is what -only/-except and only/except match: the builder's
	// name (JSON) or build.type.source (HCL2).
	Name string
	// Label is Packer's name in the output (UI prefix, Build '...'
	// lines, machine-readable targets) when it differs from Name: JSON
	// builders with a name show as TYPE.NAME.
	Label string
	// PackerName is Packer's packer_build_name: the manifest's "name",
	// PACKER_BUILD_NAME and the -debug key file (ec2_NAME.pem). It is the
	// source's name in HCL2 and the builder's name in JSON.
	PackerName string
	// BuildName and Description come from the HCL2 build block.
	BuildName   string
	Description string
	// Reuse is `reuse = true` in the HCL2 build block: reuse an AMI baked
	// from the same inputs instead of baking. JSON templates have no build
	// block; `amibake build --reuse` does the same there.
	Reuse bool
	// Source is the builder's configuration (type "amazon-ebs" or another).
	Source *Block

	Provisioners            []*Provisioner
	ErrorCleanupProvisioner *Provisioner
	// PostProcessors is a list of chains; each chain runs in order and its
	// input is the previous post-processor's artifact.
	PostProcessors [][]*PostProcessor

	// block numbers HCL2 build blocks from 1, so that inspect can group
	// the builds of one block; 0 for JSON.
	block int
}

// Block is one plugin's configuration as written.
type Block struct {
	// Type is the plugin type: "amazon-ebs", "shell", "manifest", ...
	Type string
	// Name is the source name (HCL2) or the optional `name` (JSON).
	Name string
	// Body holds the plugin's own attributes and blocks; the keys the
	// template layer handles (type, name, only, except, ...) are removed.
	Body hcl.Body
	// Ctx evaluates Body. For legacy JSON it carries no variables (the {{ }}
	// engine is already applied by Body); it is never nil.
	Ctx *hcl.EvalContext
	// DefRange points at the block's header, for diagnostics.
	DefRange hcl.Range
	// Sensitive lists values in this block that come from sensitive
	// variables, so that callers can mask them.
	Sensitive []string
	// Unknowns is set when Body may evaluate to unknown values because
	// data sources were not evaluated (validate). Decode then substitutes
	// placeholders (zero values, "unknown" strings) so that settings can
	// still be type-checked offline.
	Unknowns bool
	// buildRefs marks a provisioner-like block whose ctx has build.* as
	// unknown until Decode's extra supplies "build".
	buildRefs bool
	// vol, set by Tracked, collects the options Decode reads from
	// volatile values.
	vol *Volatile
}

// Provisioner is a provisioner block with the fields Packer handles itself.
type Provisioner struct {
	Block
	Only, Except []string
	// Override holds per-build replacement bodies keyed by build name.
	Override    map[string]hcl.Body
	PauseBefore time.Duration
	MaxRetries  int
	Timeout     time.Duration
}

// PostProcessor is a post-processor block with Packer's own fields.
type PostProcessor struct {
	Block
	Only, Except      []string
	KeepInputArtifact *bool
}

// Display is the build's name in the output, as Packer prints it.
func (b *Build) Display() string {
	if b.Label != "" {
		return b.Label
	}
	return b.Name
}

// PackerBuildName is Packer's packer_build_name (see PackerName).
func (b *Build) PackerBuildName() string {
	if b.PackerName != "" {
		return b.PackerName
	}
	return b.Name
}

// IsHCL2 reports whether the build comes from an HCL2 build block.
func (b *Build) IsHCL2() bool { return b.block != 0 }
