package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pkg/sftp"
)

// Transfer tuning. OpenSSH's sftp-server accepts messages up to 256 KiB;
// larger writes and enough of them in flight keep the pipe full, which is
// what makes the upload as fast as OpenSSH's own client.
const (
	sftpMaxPacket   = 255 * 1024
	sftpConcurrency = 64
	// parallelFiles uploads a directory's small files side by side.
	parallelFiles = 4
)

// sftpClient returns the SFTP session of the current connection, opening
// it on first use; nil (and no error) means scp is to be used.
func (c *Comm) sftpClient() (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cfg.FileTransfer == TransferSCP || c.noSFTP {
		return nil, nil
	}
	if c.sftp != nil {
		return c.sftp, nil
	}
	if c.conn == nil {
		return nil, errors.New("ssh: not connected (a previous Reconnect failed)")
	}
	open := func(packet int) (*sftp.Client, error) {
		return sftp.NewClient(c.conn.client,
			sftp.MaxPacketUnchecked(packet),
			sftp.MaxConcurrentRequestsPerFile(sftpConcurrency),
			sftp.UseConcurrentWrites(true),
			sftp.UseConcurrentReads(true),
		)
	}
	sc, err := open(sftpMaxPacket)
	if err == nil {
		// Servers must accept 32 KiB; OpenSSH's (which announces its limits
		// extension) takes 255 KiB. Others get the safe size.
		if _, ok := sc.HasExtension("limits@openssh.com"); !ok {
			sc.Close()
			sc, err = open(32 * 1024)
		}
	}
	if err != nil {
		if strings.Contains(err.Error(), "subsystem request failed") {
			c.cfg.Log.Debug("ssh server has no sftp subsystem, falling back to scp", "addr", c.cfg.addr())
			c.noSFTP = true
			return nil, nil
		}
		return nil, fmt.Errorf("ssh: start sftp: %w", err)
	}
	c.sftp = sc
	return sc, nil
}

// Upload writes r to dst. A dst ending in "/" or naming an existing
// directory receives the file under fi's name. Missing parent directories
// are created; the mode is fi's (0644 without fi).
func (c *Comm) Upload(ctx context.Context, dst string, r io.Reader, fi os.FileInfo) error {
	sc, err := c.sftpClient()
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	if sc == nil {
		return c.scpUpload(ctx, dst, r, fi)
	}
	if fi != nil {
		if strings.HasSuffix(dst, "/") {
			dst += fi.Name()
		} else if st, err := sc.Stat(dst); err == nil && st.IsDir() {
			dst = path.Join(dst, fi.Name())
		}
	} else if strings.HasSuffix(dst, "/") {
		return fmt.Errorf("upload %s: destination is a directory and the source has no name", dst)
	}
	mode := os.FileMode(0o644)
	if fi != nil {
		mode = fi.Mode().Perm()
	}
	if err := sftpUploadFile(ctx, sc, dst, r, mode); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	return nil
}

func sftpUploadFile(ctx context.Context, sc *sftp.Client, dst string, r io.Reader, mode os.FileMode) error {
	if err := sftpMkdirAll(sc, path.Dir(dst)); err != nil {
		return err
	}
	f, err := sc.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	// Set the mode before any byte lands: a 0600 secret is never readable
	// by others, even halfway through.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.ReadFromWithConcurrency(ctxReader{ctx, r}, sftpConcurrency); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sftpMkdirAll(sc *sftp.Client, dir string) error {
	if dir == "" || dir == "." || dir == "/" {
		return nil
	}
	if st, err := sc.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	return sc.MkdirAll(dir)
}

// Download copies the remote file src into w.
func (c *Comm) Download(ctx context.Context, src string, w io.Writer) error {
	sc, err := c.sftpClient()
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	if sc == nil {
		return c.scpDownload(ctx, src, w)
	}
	if err := sftpDownloadFile(ctx, sc, src, w); err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	return nil
}

func sftpDownloadFile(ctx context.Context, sc *sftp.Client, src string, w io.Writer) error {
	f, err := sc.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteTo(ctxWriter{ctx, w})
	return err
}

// excluded reports whether rel (slash-separated, relative to the copied
// directory) matches one of the patterns, by full path or by base name.
func excluded(rel string, patterns []string) bool {
	for _, p := range patterns {
		p = strings.TrimSuffix(filepath.ToSlash(p), "/")
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		if ok, _ := path.Match(p, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

// UploadDir copies the local directory src to dst with Packer's rules:
// "src/" copies src's contents into dst, "src" creates dst/src. Modes are
// kept and symbolic links recreated. Entries matching exclude are skipped.
func (c *Comm) UploadDir(ctx context.Context, dst, src string, exclude []string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("upload directory %s: %w", src, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("upload directory %s: not a directory", src)
	}
	root := dst
	if !strings.HasSuffix(src, "/") && !strings.HasSuffix(src, string(filepath.Separator)) {
		root = path.Join(dst, filepath.Base(src))
	}
	sc, err := c.sftpClient()
	if err != nil {
		return fmt.Errorf("upload directory %s: %w", src, err)
	}
	if sc == nil {
		return c.scpUploadDir(ctx, dst, src, exclude)
	}
	// Only a directory we create in dst takes src's mode: "dir/" into /tmp
	// must not chmod /tmp.
	rootMode := st.Mode().Perm()
	if root == dst {
		rootMode = 0
	}
	if err := sftpUploadDir(ctx, sc, root, src, rootMode, exclude); err != nil {
		return fmt.Errorf("upload directory %s to %s: %w", src, root, err)
	}
	return nil
}

func sftpUploadDir(ctx context.Context, sc *sftp.Client, root, src string, rootMode os.FileMode, exclude []string) error {
	if err := sftpMkdirAll(sc, root); err != nil {
		return err
	}
	if rootMode != 0 {
		if err := sc.Chmod(root, rootMode); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelFiles)
	walkErr := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if excluded(rel, exclude) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		remote := path.Join(root, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := sc.Mkdir(remote); err != nil {
				if st, serr := sc.Stat(remote); serr != nil || !st.IsDir() {
					return fmt.Errorf("mkdir %s: %w", remote, err)
				}
			}
			return sc.Chmod(remote, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = sc.Remove(remote)
			if err := sc.Symlink(target, remote); err != nil {
				return fmt.Errorf("symlink %s: %w", remote, err)
			}
			return nil
		case info.Mode().IsRegular():
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				f, err := os.Open(p)
				if err == nil {
					err = sftpUploadFile(ctx, sc, remote, f, info.Mode().Perm())
					f.Close()
				}
				if err != nil {
					cancel(fmt.Errorf("%s: %w", rel, err))
				}
			}()
			return nil
		default:
			return nil // sockets, devices: nothing sensible to copy
		}
	})
	wg.Wait()
	if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.Canceled) {
		return cerr
	}
	if walkErr != nil {
		return walkErr
	}
	return context.Cause(ctx)
}

// DownloadDir copies the remote directory src into the local dst with the
// same trailing-slash rules as UploadDir.
func (c *Comm) DownloadDir(ctx context.Context, src, dst string, exclude []string) error {
	root := dst
	if !strings.HasSuffix(src, "/") {
		root = filepath.Join(dst, path.Base(src))
	}
	sc, err := c.sftpClient()
	if err != nil {
		return fmt.Errorf("download directory %s: %w", src, err)
	}
	if sc == nil {
		return c.scpDownloadDir(ctx, src, dst, exclude)
	}
	if err := sftpDownloadDir(ctx, sc, src, root, exclude); err != nil {
		return fmt.Errorf("download directory %s to %s: %w", src, root, err)
	}
	return nil
}

func sftpDownloadDir(ctx context.Context, sc *sftp.Client, src, root string, exclude []string) error {
	base := strings.TrimSuffix(src, "/")
	if base == "" {
		base = "/"
	}
	st, err := sc.Stat(base)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", src)
	}
	w := sc.Walk(base)
	for w.Step() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(w.Path(), base), "/")
		info := w.Stat()
		if rel != "" && excluded(rel, exclude) {
			if info.IsDir() {
				w.SkipDir()
			}
			continue
		}
		local := filepath.Join(root, filepath.FromSlash(rel))
		switch {
		case info.IsDir():
			if err := os.MkdirAll(local, 0o755); err != nil {
				return err
			}
			// "dir/" into an existing dst leaves dst's mode alone.
			if rel == "" && strings.HasSuffix(src, "/") {
				continue
			}
			if err := os.Chmod(local, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := sc.ReadLink(w.Path())
			if err != nil {
				return err
			}
			_ = os.Remove(local)
			if err := os.Symlink(target, local); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := downloadToFile(ctx, sc, w.Path(), local, info.Mode().Perm()); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
	}
	return nil
}

func downloadToFile(ctx context.Context, sc *sftp.Client, remote, local string, mode os.FileMode) error {
	f, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := sftpDownloadFile(ctx, sc, remote, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ctxReader stops a transfer when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
