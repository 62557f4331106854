// Package manifest is Packer's `manifest` post-processor: it appends each
// build's artifact to a JSON file in Packer's exact format, so that CI
// scripts written for Packer (jq '.builds[-1].artifact_id') keep working.
package manifest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/postprocessor"
)

// Config is every option Packer documents for the manifest post-processor.
type Config struct {
	// Output defaults to packer-manifest.json in the working directory.
	Output     string            `hcl:"output,optional"`
	StripPath  bool              `hcl:"strip_path,optional"`
	StripTime  bool              `hcl:"strip_time,optional"`
	CustomData map[string]string `hcl:"custom_data,optional"`
}

// DefaultOutput is Packer's default manifest file.
const DefaultOutput = "packer-manifest.json"

// File is the manifest file. Builds already in it are kept as they are,
// including fields amibake does not know.
type File struct {
	Builds      []json.RawMessage `json:"builds"`
	LastRunUUID string            `json:"last_run_uuid"`
}

// Entry is one build in the manifest; the field order and names are
// Packer's. Reused is amibake's and only appears when true.
type Entry struct {
	BuildName     string            `json:"name"`
	BuilderType   string            `json:"builder_type"`
	BuildTime     int64             `json:"build_time,omitempty"`
	Files         []ArtifactFile    `json:"files"`
	ArtifactID    string            `json:"artifact_id"`
	PackerRunUUID string            `json:"packer_run_uuid"`
	CustomData    map[string]string `json:"custom_data"`
	Reused        bool              `json:"reused,omitempty"`
}

// ArtifactFile is a local file of the artifact.
type ArtifactFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// PostProcessor writes the manifest.
type PostProcessor struct {
	cfg Config
	// RunUUID identifies this amibake run (PACKER_RUN_UUID); entries of
	// one run accumulate.
	RunUUID string
	// Force (the -force flag) starts the file afresh when the last run
	// recorded in it is another one.
	Force bool
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

// New decodes a manifest post-processor block. The run UUID is taken from
// build.PackerRunUUID when build has it, else from $PACKER_RUN_UUID; the
// caller may set RunUUID and Force afterwards.
func New(b *template.Block, build map[string]cty.Value) (*PostProcessor, hcl.Diagnostics) {
	var cfg Config
	diags := b.Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	if cfg.Output == "" {
		cfg.Output = DefaultOutput
	}
	// The manifest is an artifact CI keeps and uploads: sensitive values
	// in custom_data are written masked, as in every other output.
	secrets := &ui.Secrets{}
	secrets.Add(b.Sensitive...)
	for k, v := range cfg.CustomData {
		cfg.CustomData[k] = secrets.Mask(v)
	}
	p := &PostProcessor{cfg: cfg, RunUUID: os.Getenv("PACKER_RUN_UUID"), Now: time.Now}
	if v, ok := build["build"]; ok && v.IsKnown() && !v.IsNull() && v.Type().IsObjectType() && v.Type().HasAttribute("PackerRunUUID") {
		if id := v.GetAttr("PackerRunUUID"); id.IsKnown() && !id.IsNull() && id.Type() == cty.String {
			p.RunUUID = id.AsString()
		}
	}
	return p, diags
}

// Config returns the decoded configuration with defaults applied.
func (p *PostProcessor) Config() Config { return p.cfg }

// Entry returns the manifest entry for a.
func (p *PostProcessor) Entry(a *artifact.Artifact) Entry {
	e := Entry{
		BuildName:     a.BuildName,
		BuilderType:   a.BuilderType,
		ArtifactID:    a.ID(),
		PackerRunUUID: p.RunUUID,
		CustomData:    p.cfg.CustomData,
		Reused:        a.Reused,
	}
	if !p.cfg.StripTime {
		e.BuildTime = p.Now().Unix()
	}
	for _, name := range a.Files {
		f := ArtifactFile{Name: name}
		if fi, err := os.Stat(name); err == nil {
			f.Size = fi.Size()
		}
		if p.cfg.StripPath {
			f.Name = filepath.Base(name)
		}
		e.Files = append(e.Files, f)
	}
	return e
}

// PostProcess appends the artifact to the manifest and returns it
// unchanged; the input is always kept.
func (p *PostProcessor) PostProcess(ctx context.Context, u ui.UI, in *artifact.Artifact) (*artifact.Artifact, bool, error) {
	entry, err := json.Marshal(p.Entry(in))
	if err != nil {
		return in, true, fmt.Errorf("encode manifest entry: %w", err)
	}
	path := p.cfg.Output
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return in, true, fmt.Errorf("create manifest directory %s: %w", dir, err)
		}
	}
	unlock, err := lock(ctx, path+".lock")
	if err != nil {
		return in, true, fmt.Errorf("lock manifest %s: %w", path, err)
	}
	defer unlock()

	var mf File
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return in, true, fmt.Errorf("Unable to open %s for reading: %w", path, err)
	case len(data) > 0:
		if err := json.Unmarshal(data, &mf); err != nil {
			return in, true, fmt.Errorf("Unable to parse content from %s: %w", path, err)
		}
	}
	if p.Force && mf.LastRunUUID != p.RunUUID {
		mf = File{}
	}
	mf.Builds = append(mf.Builds, entry)
	mf.LastRunUUID = p.RunUUID
	out, err := json.MarshalIndent(&mf, "", "  ")
	if err != nil {
		return in, true, fmt.Errorf("Unable to marshal JSON %w", err)
	}
	if err := writeAtomic(path, out); err != nil {
		return in, true, fmt.Errorf("Unable to write %s: %w", path, err)
	}
	slog.Debug("manifest written", "path", path, "builds", len(mf.Builds), "artifact", in.ID())
	return in, true, nil
}

// writeAtomic replaces path with data so that a reader (or a crash) never
// sees half a manifest. An existing file keeps its permissions.
func writeAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

var _ postprocessor.PostProcessor = (*PostProcessor)(nil)
