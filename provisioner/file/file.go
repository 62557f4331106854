// Package file is Packer's `file` provisioner: it uploads local files and
// directories to the machine, or downloads them from it.
package file

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// Config is every option Packer documents for the file provisioner.
type Config struct {
	// Exactly one of Content, Source and Sources (Source and Sources may
	// be combined, as Packer allows).
	Content string   `hcl:"content,optional"`
	Source  string   `hcl:"source,optional"`
	Sources []string `hcl:"sources,optional"`
	// Destination is required. A trailing slash makes it a directory.
	Destination string `hcl:"destination,optional"`
	// Direction is "upload" (the default) or "download".
	Direction string `hcl:"direction,optional"`
	// Generated defers the check that sources exist to the upload, for
	// files an earlier provisioner creates.
	Generated bool `hcl:"generated,optional"`
}

// ContentName is the file name `content` gets in a destination directory.
const ContentName = "pkr-file-content"

// Provisioner transfers files.
type Provisioner struct {
	cfg        Config
	sources    []string
	hasContent bool
}

// New decodes and validates a file provisioner block.
func New(b *template.Block, build map[string]cty.Value) (*Provisioner, hcl.Diagnostics) {
	var cfg Config
	diags := provisioner.ListOrString(b, "sources").Decode(&cfg, build)
	if diags.HasErrors() {
		return nil, diags
	}
	p := &Provisioner{cfg: cfg}
	c := &p.cfg
	if c.Direction == "" {
		c.Direction = "upload"
	}
	if c.Direction != "upload" && c.Direction != "download" {
		diags = append(diags, provisioner.Errorf(b, "direction",
			`Set direction to "upload" (local to machine, the default) or "download" (machine to local).`,
			"Direction must be one of: download, upload (got %q)", c.Direction))
	}
	p.sources = append([]string(nil), c.Sources...)
	if c.Source != "" {
		p.sources = append(p.sources, c.Source)
	}
	hasContent := provisioner.Has(b, "content")
	p.hasContent = hasContent
	switch {
	case hasContent && len(p.sources) > 0:
		attr := "source"
		if c.Source == "" {
			attr = "sources"
		}
		diags = append(diags, provisioner.Errorf(b, attr,
			"Use content for literal text, or source/sources for local paths, not both.",
			"source(s) conflicts with content"))
	case hasContent && c.Direction == "download":
		diags = append(diags, provisioner.Errorf(b, "content",
			"content is written to the machine; to download, set source to the remote path.",
			"content cannot be downloaded"))
	case !hasContent && len(p.sources) == 0:
		diags = append(diags, provisioner.Errorf(b, "",
			"Set source (a path), sources (a list of paths) or content (literal text).",
			"Source must be specified"))
	}
	if c.Destination == "" {
		diags = append(diags, provisioner.Errorf(b, "destination",
			`Set destination to a path on the machine (upload) or local path (download); end it with "/" for a directory.`,
			"Destination must be specified"))
	}
	if len(p.sources) > 1 && c.Direction == "upload" && !strings.HasSuffix(c.Destination, "/") {
		diags = append(diags, provisioner.Errorf(b, "destination",
			`With several sources the destination is a directory: end it with "/", such as "/tmp/".`,
			"Destination %q must end with a slash when uploading several sources", c.Destination))
	}
	if c.Direction == "upload" && !c.Generated {
		attr := "sources"
		if c.Source != "" {
			attr = "source"
		}
		for _, src := range p.sources {
			if _, err := os.Stat(src); err != nil {
				diags = append(diags, provisioner.Errorf(b, attr,
					"Paths are relative to the directory amibake runs in. Set generated = true for a file an earlier step creates.",
					"Bad source '%s': %s", src, err))
			}
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// Config returns the decoded configuration with defaults applied.
func (p *Provisioner) Config() Config { return p.cfg }

// Provision uploads or downloads every source.
func (p *Provisioner) Provision(ctx context.Context, u ui.UI, comm communicator.Communicator, b *provisioner.Build) error {
	if p.cfg.Direction == "download" {
		return p.download(ctx, u, comm)
	}
	if p.hasContent {
		return p.uploadContent(ctx, u, comm)
	}
	return p.upload(ctx, u, comm)
}

func (p *Provisioner) uploadContent(ctx context.Context, u ui.UI, comm communicator.Communicator) error {
	dst := p.cfg.Destination
	if strings.HasSuffix(dst, "/") {
		dst += ContentName
	}
	u.Say(fmt.Sprintf("Uploading content => %s", dst))
	if err := comm.Upload(ctx, dst, strings.NewReader(p.cfg.Content), nil); err != nil {
		u.Error(fmt.Sprintf("Upload failed: %s", err))
		return fmt.Errorf("upload content to %s: %w", dst, err)
	}
	return nil
}

func (p *Provisioner) upload(ctx context.Context, u ui.UI, comm communicator.Communicator) error {
	dst := p.cfg.Destination
	for _, src := range p.sources {
		u.Say(fmt.Sprintf("Uploading %s => %s", src, dst))
		info, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("upload %s: %w", src, err)
		}
		if info.IsDir() {
			// Trailing-slash rules (rsync's): "src/" copies src's contents
			// into dst, "src" creates dst/src.
			if err := comm.UploadDir(ctx, dst, src, nil); err != nil {
				u.Error(fmt.Sprintf("Upload failed: %s", err))
				return fmt.Errorf("upload directory %s to %s: %w", src, dst, err)
			}
			continue
		}
		fileDst := dst
		if strings.HasSuffix(dst, "/") {
			fileDst = dst + filepath.Base(src)
		}
		if err := uploadFile(ctx, comm, src, fileDst); err != nil {
			u.Error(fmt.Sprintf("Upload failed: %s", err))
			if !strings.HasSuffix(dst, "/") {
				u.Error(fmt.Sprintf("If %s is a directory on the machine, end the destination with a slash: %q.", dst, dst+"/"))
			}
			return fmt.Errorf("upload %s to %s: %w", src, fileDst, err)
		}
	}
	return nil
}

func uploadFile(ctx context.Context, comm communicator.Communicator, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return comm.Upload(ctx, dst, f, fi)
}

func (p *Provisioner) download(ctx context.Context, u ui.UI, comm communicator.Communicator) error {
	for _, src := range p.sources {
		dst := p.cfg.Destination
		given := dst
		// The local parent must exist; a destination ending in "/" is a
		// directory that receives the source by its base name.
		dir := dst
		if !strings.HasSuffix(dst, "/") {
			dir = filepath.Dir(dst)
		} else if !strings.HasSuffix(src, "/") && !strings.HasSuffix(src, "*") {
			dst = filepath.Join(dst, path.Base(src))
		}
		u.Say(fmt.Sprintf("Downloading %s => %s", src, dst))
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create local directory %s: %w", dir, err)
			}
		}
		if strings.HasSuffix(src, "/") || strings.ContainsAny(src, "*?[") {
			if err := comm.DownloadDir(ctx, src, dst, nil); err != nil {
				u.Error(fmt.Sprintf("Download failed: %s", err))
				return fmt.Errorf("download directory %s to %s: %w", src, dst, err)
			}
			continue
		}
		if err := downloadFile(ctx, comm, src, dst); err != nil {
			// Packer needs "src/" for a directory; a directory named
			// without the slash is downloaded whole (src itself created
			// inside the destination) rather than failing.
			if derr := comm.DownloadDir(ctx, src, given, nil); derr == nil {
				slog.Debug("file download: source is a directory", "src", src, "file_err", err)
				continue
			}
			u.Error(fmt.Sprintf("Download failed: %s", err))
			return fmt.Errorf("download %s to %s: %w", src, dst, err)
		}
	}
	return nil
}

// downloadFile writes to a temporary file and renames it, so that a failed
// download never leaves a truncated file where a good one was.
func downloadFile(ctx context.Context, comm communicator.Communicator, src, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := comm.Download(ctx, src, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

var _ provisioner.Provisioner = (*Provisioner)(nil)
