package provisionertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/amibake/amibake/internal/communicator"
)

// Local is a Communicator for the machine the tests run on: commands run
// under /bin/sh -c and files are copied locally. It lets provisioner tests
// exercise real shell quoting and exit codes without SSH.
type Local struct{}

func (Local) Run(ctx context.Context, cmd *communicator.Cmd) (communicator.Result, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd.Command)
	c.Stdin, c.Stdout, c.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return communicator.Result{ExitStatus: ee.ExitCode()}, nil
	}
	if err != nil {
		return communicator.Result{}, fmt.Errorf("run %q: %w", cmd.Command, err)
	}
	return communicator.Result{}, nil
}

func (Local) Upload(ctx context.Context, dst string, r io.Reader, fi os.FileInfo) error {
	mode := fs.FileMode(0o644)
	if fi != nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (l Local) UploadDir(ctx context.Context, dst, src string, exclude []string) error {
	if !strings.HasSuffix(src, "/") {
		dst = filepath.Join(dst, filepath.Base(src))
	}
	return copyTree(src, dst)
}

func (Local) Download(ctx context.Context, src string, w io.Writer) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (Local) DownloadDir(ctx context.Context, src, dst string, exclude []string) error {
	if !strings.HasSuffix(src, "/") {
		dst = filepath.Join(dst, filepath.Base(src))
	}
	return copyTree(src, dst)
}

func (Local) Reconnect(ctx context.Context) error { return ctx.Err() }

func copyTree(src, dst string) error {
	root := filepath.Clean(src)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
}

var _ communicator.Communicator = Local{}
