// Package provisionertest has test doubles for provisioner and
// post-processor tests: an in-memory Communicator (Comm), one that runs
// commands on the local host with /bin/sh (Local), and a recording UI.
package provisionertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/amibake/amibake/internal/communicator"
)

// ErrTransport is what Comm returns for an injected failure.
var ErrTransport = errors.New("provisionertest: connection refused")

// File is a file on the fake machine.
type File struct {
	Data []byte
	Mode fs.FileMode
}

// Comm is an in-memory Communicator. Its zero value is ready to use: files
// live in Files, every command is recorded in Commands and answered by
// Handler (or, when Handler is nil, by a tiny interpreter that knows
// "rm -f PATH" and succeeds at everything else).
type Comm struct {
	mu    sync.Mutex
	Files map[string]File

	// Commands lists every command run, in order.
	Commands []string
	// Handler answers a command; it may write to cmd.Stdout/Stderr.
	Handler func(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error)

	// FailUploads and FailRuns make the next N calls fail with
	// ErrTransport, as while sshd restarts.
	FailUploads, FailRuns int
	// DisconnectOn makes a command containing this string report a
	// disconnect (a reboot); after it, every call fails until Reconnect.
	DisconnectOn string
	disconnected bool
	// Reconnects counts Reconnect calls.
	Reconnects int
	// Uploads and Downloads count successful transfers.
	Uploads, Downloads int
}

// Snapshot returns a copy of the fake machine's files.
func (c *Comm) Snapshot() map[string]File {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]File, len(c.Files))
	for k, v := range c.Files {
		out[k] = v
	}
	return out
}

// Ran returns the recorded commands.
func (c *Comm) Ran() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.Commands...)
}

// Put stores a file on the fake machine.
func (c *Comm) Put(p string, data string, mode fs.FileMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Files == nil {
		c.Files = map[string]File{}
	}
	c.Files[p] = File{Data: []byte(data), Mode: mode}
}

func (c *Comm) Run(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
	if err := ctx.Err(); err != nil {
		return communicator.Result{}, err
	}
	c.mu.Lock()
	if c.disconnected {
		c.mu.Unlock()
		return communicator.Result{}, fmt.Errorf("run %q: %w", cmd.Command, ErrTransport)
	}
	if c.FailRuns > 0 {
		c.FailRuns--
		c.mu.Unlock()
		return communicator.Result{}, fmt.Errorf("run %q: %w", cmd.Command, ErrTransport)
	}
	c.Commands = append(c.Commands, cmd.Command)
	if c.DisconnectOn != "" && strings.Contains(cmd.Command, c.DisconnectOn) {
		c.disconnected = true
		c.mu.Unlock()
		return communicator.Result{Disconnected: true}, nil
	}
	h := c.Handler
	c.mu.Unlock()
	if h != nil {
		return h(ctx, cmd)
	}
	return c.Interpret(cmd)
}

// Interpret is what Run does without a Handler: "rm -f PATH" deletes the
// file, anything else succeeds silently. Handlers may fall back to it.
func (c *Comm) Interpret(cmd *communicator.Cmd) (communicator.Result, error) {
	if p, ok := strings.CutPrefix(cmd.Command, "rm -f "); ok {
		c.mu.Lock()
		delete(c.Files, strings.Trim(p, "'"))
		c.mu.Unlock()
	}
	return communicator.Result{}, nil
}

func (c *Comm) Upload(ctx context.Context, dst string, r io.Reader, fi os.FileInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.disconnected || c.FailUploads > 0 {
		if !c.disconnected {
			c.FailUploads--
		}
		c.mu.Unlock()
		return fmt.Errorf("upload %s: %w", dst, ErrTransport)
	}
	c.mu.Unlock()
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	mode := fs.FileMode(0o644)
	if fi != nil {
		mode = fi.Mode().Perm()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Files == nil {
		c.Files = map[string]File{}
	}
	c.Files[dst] = File{Data: data, Mode: mode}
	c.Uploads++
	return nil
}

// UploadDir follows Packer's rules: "src/" puts src's contents into dst,
// "src" puts src itself into dst.
func (c *Comm) UploadDir(ctx context.Context, dst, src string, exclude []string) error {
	base := dst
	if !strings.HasSuffix(src, "/") {
		base = path.Join(dst, filepath.Base(src))
	}
	root := filepath.Clean(src)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		for _, ex := range exclude {
			if ok, _ := path.Match(ex, filepath.ToSlash(rel)); ok {
				return nil
			}
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return c.Upload(ctx, path.Join(base, filepath.ToSlash(rel)), f, fi)
	})
}

func (c *Comm) Download(ctx context.Context, src string, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	f, ok := c.Files[src]
	disc := c.disconnected
	c.mu.Unlock()
	if disc {
		return fmt.Errorf("download %s: %w", src, ErrTransport)
	}
	if !ok {
		return fmt.Errorf("download %s: %w", src, fs.ErrNotExist)
	}
	if _, err := w.Write(f.Data); err != nil {
		return err
	}
	c.mu.Lock()
	c.Downloads++
	c.mu.Unlock()
	return nil
}

// DownloadDir copies every fake file under src into the local dst, with
// the trailing-slash rules of UploadDir.
func (c *Comm) DownloadDir(ctx context.Context, src, dst string, exclude []string) error {
	base := dst
	if !strings.HasSuffix(src, "/") {
		base = filepath.Join(dst, path.Base(src))
	}
	prefix := strings.TrimSuffix(src, "/") + "/"
	c.mu.Lock()
	var names []string
	for p := range c.Files {
		if strings.HasPrefix(p, prefix) {
			names = append(names, p)
		}
	}
	c.mu.Unlock()
	sort.Strings(names)
	if len(names) == 0 {
		return fmt.Errorf("download %s: %w", src, fs.ErrNotExist)
	}
	for _, p := range names {
		rel := strings.TrimPrefix(p, prefix)
		out := filepath.Join(base, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := c.Download(ctx, p, &buf); err != nil {
			return err
		}
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (c *Comm) Reconnect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Reconnects++
	c.disconnected = false
	return nil
}

var _ communicator.Communicator = (*Comm)(nil)
