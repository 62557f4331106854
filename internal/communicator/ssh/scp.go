package ssh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// The scp fallback speaks the classic rcp protocol to the remote "scp -t"
// (sink) or "scp -f" (source), for servers without an sftp subsystem.

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// scpSession runs "scp <args>" with its stdin and stdout wired to fn.
func (c *Comm) scpSession(ctx context.Context, remoteCmd string, fn func(w io.Writer, r *bufio.Reader) error) error {
	conn, err := c.current()
	if err != nil {
		return err
	}
	sess, err := conn.client.NewSession()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	sess.Stderr = &limitedBuilder{b: &stderr, n: 4096}
	if err := sess.Start(remoteCmd); err != nil {
		return fmt.Errorf("start %s: %w", remoteCmd, err)
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	ferr := fn(stdin, bufio.NewReader(stdout))
	stdin.Close()
	werr := sess.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ferr != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return fmt.Errorf("%w (scp: %s)", ferr, s)
		}
		return ferr
	}
	if werr != nil {
		var ee *gossh.ExitError
		if errors.As(werr, &ee) {
			return fmt.Errorf("remote scp exited with status %d: %s", ee.ExitStatus(), strings.TrimSpace(stderr.String()))
		}
		return werr
	}
	return nil
}

type limitedBuilder struct {
	b *strings.Builder
	n int
}

func (l *limitedBuilder) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func scpAck(r *bufio.Reader) error {
	b, err := r.ReadByte()
	if err != nil {
		return fmt.Errorf("read scp reply: %w", err)
	}
	if b == 0 {
		return nil
	}
	msg, _ := r.ReadString('\n')
	return fmt.Errorf("scp: %s", strings.TrimSpace(msg))
}

func scpSendFile(w io.Writer, r *bufio.Reader, name string, mode os.FileMode, size int64, data io.Reader) error {
	if _, err := fmt.Fprintf(w, "C%04o %d %s\n", mode.Perm(), size, name); err != nil {
		return err
	}
	if err := scpAck(r); err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(data, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: short read (%d of %d bytes)", name, n, size)
	}
	if _, err := w.Write([]byte{0}); err != nil {
		return err
	}
	return scpAck(r)
}

// sized returns r's length, spooling it to a temporary file when unknown:
// the protocol announces the size before the data.
func sized(r io.Reader, fi os.FileInfo) (io.Reader, int64, func(), error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			return r, st.Size(), func() {}, nil
		}
	}
	if fi != nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		if _, ok := r.(interface{ Size() int64 }); ok {
			return r, fi.Size(), func() {}, nil
		}
	}
	tmp, err := os.CreateTemp("", "amibake-scp-*")
	if err != nil {
		return nil, 0, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	n, err := io.Copy(tmp, r)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, 0, nil, err
	}
	return tmp, n, cleanup, nil
}

func (c *Comm) scpUpload(ctx context.Context, dst string, r io.Reader, fi os.FileInfo) error {
	mode := os.FileMode(0o644)
	if fi != nil {
		mode = fi.Mode().Perm()
	}
	data, size, cleanup, err := sized(ctxReader{ctx, r}, fi)
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	defer cleanup()
	// "scp -t T" writes to T itself unless T is a directory, in which case
	// the record's name is used inside it, as cp would.
	mkdir, name := path.Dir(dst), path.Base(dst)
	if fi != nil {
		name = fi.Name()
	}
	if strings.HasSuffix(dst, "/") {
		if fi == nil {
			return fmt.Errorf("upload %s: destination is a directory and the source has no name", dst)
		}
		mkdir = dst
	}
	cmd := fmt.Sprintf("mkdir -p %s && exec scp -t %s", shellQuote(mkdir), shellQuote(dst))
	err = c.scpSession(ctx, cmd, func(w io.Writer, br *bufio.Reader) error {
		if err := scpAck(br); err != nil {
			return err
		}
		return scpSendFile(w, br, name, mode, size, data)
	})
	if err != nil {
		return fmt.Errorf("upload %s (scp): %w", dst, err)
	}
	return nil
}

func (c *Comm) scpUploadDir(ctx context.Context, dst, src string, exclude []string) error {
	contents := strings.HasSuffix(src, "/") || strings.HasSuffix(src, string(filepath.Separator))
	src = filepath.Clean(src)
	cmd := fmt.Sprintf("mkdir -p %s && exec scp -rt %s", shellQuote(dst), shellQuote(dst))
	err := c.scpSession(ctx, cmd, func(w io.Writer, br *bufio.Reader) error {
		if err := scpAck(br); err != nil {
			return err
		}
		if contents {
			return scpSendDirEntries(ctx, w, br, src, "", exclude)
		}
		return scpSendDir(ctx, w, br, src, "", exclude)
	})
	if err != nil {
		return fmt.Errorf("upload directory %s to %s (scp): %w", src, dst, err)
	}
	return nil
}

func scpSendDir(ctx context.Context, w io.Writer, br *bufio.Reader, dir, rel string, exclude []string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "D%04o 0 %s\n", st.Mode().Perm(), filepath.Base(dir)); err != nil {
		return err
	}
	if err := scpAck(br); err != nil {
		return err
	}
	if err := scpSendDirEntries(ctx, w, br, dir, rel, exclude); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "E\n"); err != nil {
		return err
	}
	return scpAck(br)
}

func scpSendDirEntries(ctx context.Context, w io.Writer, br *bufio.Reader, dir, rel string, exclude []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		erel := path.Join(rel, e.Name())
		if excluded(erel, exclude) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		// scp follows symbolic links; so does this.
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		switch {
		case st.IsDir():
			err = scpSendDir(ctx, w, br, p, erel, exclude)
		case st.Mode().IsRegular():
			var f *os.File
			if f, err = os.Open(p); err == nil {
				err = scpSendFile(w, br, e.Name(), st.Mode(), st.Size(), f)
				f.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", erel, err)
		}
	}
	return nil
}

// scpHeader is a C or D record.
type scpHeader struct {
	kind byte
	mode os.FileMode
	size int64
	name string
}

func parseSCPHeader(line string) (scpHeader, error) {
	var h scpHeader
	if len(line) < 2 {
		return h, fmt.Errorf("bad scp record %q", line)
	}
	h.kind = line[0]
	parts := strings.SplitN(strings.TrimSuffix(line[1:], "\n"), " ", 3)
	if len(parts) != 3 {
		return h, fmt.Errorf("bad scp record %q", line)
	}
	m, err := strconv.ParseUint(parts[0], 8, 32)
	if err != nil {
		return h, fmt.Errorf("bad mode in scp record %q", line)
	}
	if h.size, err = strconv.ParseInt(parts[1], 10, 64); err != nil || h.size < 0 {
		return h, fmt.Errorf("bad size in scp record %q", line)
	}
	h.mode, h.name = os.FileMode(m).Perm(), parts[2]
	if h.name == "" || h.name == "." || h.name == ".." || strings.ContainsAny(h.name, "/\x00") {
		return h, fmt.Errorf("unsafe name in scp record %q", line)
	}
	return h, nil
}

// scpReceive reads records until the source is done, calling the
// callbacks; it sends the acknowledgements.
type scpSink struct {
	file     func(h scpHeader, data io.Reader) error
	enterDir func(h scpHeader) error
	leaveDir func() error
}

func scpReceive(w io.Writer, br *bufio.Reader, s scpSink) error {
	if _, err := w.Write([]byte{0}); err != nil {
		return err
	}
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read scp record: %w", err)
		}
		switch line[0] {
		case 1, 2:
			return fmt.Errorf("scp: %s", strings.TrimSpace(line[1:]))
		case 'T':
			// Times, sent with -p only; ignored.
		case 'E':
			if s.leaveDir == nil {
				return errors.New("unexpected directory end")
			}
			if err := s.leaveDir(); err != nil {
				return err
			}
		case 'C', 'D':
			h, err := parseSCPHeader(line)
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte{0}); err != nil {
				return err
			}
			if h.kind == 'D' {
				if s.enterDir == nil {
					return fmt.Errorf("%s is a directory", h.name)
				}
				if err := s.enterDir(h); err != nil {
					return err
				}
				continue
			}
			lr := &io.LimitedReader{R: br, N: h.size}
			if err := s.file(h, lr); err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, lr); err != nil {
				return err
			}
			if err := scpAck(br); err != nil {
				return err
			}
		default:
			return fmt.Errorf("bad scp record %q", line)
		}
		if _, err := w.Write([]byte{0}); err != nil {
			return err
		}
	}
}

func (c *Comm) scpDownload(ctx context.Context, src string, out io.Writer) error {
	got := false
	err := c.scpSession(ctx, "scp -f "+shellQuote(src), func(w io.Writer, br *bufio.Reader) error {
		return scpReceive(w, br, scpSink{file: func(h scpHeader, data io.Reader) error {
			got = true
			_, err := io.Copy(ctxWriter{ctx, out}, data)
			return err
		}})
	})
	if err == nil && !got {
		err = errors.New("no file received")
	}
	if err != nil {
		return fmt.Errorf("download %s (scp): %w", src, err)
	}
	return nil
}

func (c *Comm) scpDownloadDir(ctx context.Context, src, dst string, exclude []string) error {
	contents := strings.HasSuffix(src, "/")
	// The stack of local directories; with "src/" the top record's own
	// directory maps onto dst itself.
	stack := []string{dst}
	rels := []string{""}
	depth := 0
	skipDepth := -1
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("download directory %s: %w", src, err)
	}
	err := c.scpSession(ctx, "scp -rf "+shellQuote(strings.TrimSuffix(src, "/")), func(w io.Writer, br *bufio.Reader) error {
		return scpReceive(w, br, scpSink{
			enterDir: func(h scpHeader) error {
				depth++
				parent, prel := stack[len(stack)-1], rels[len(rels)-1]
				local, rel := filepath.Join(parent, h.name), path.Join(prel, h.name)
				if depth == 1 {
					rel = ""
					if contents {
						local = parent
					}
				}
				stack, rels = append(stack, local), append(rels, rel)
				if skipDepth >= 0 || (rel != "" && excluded(rel, exclude)) {
					if skipDepth < 0 {
						skipDepth = depth
					}
					return nil
				}
				if err := os.MkdirAll(local, 0o755); err != nil {
					return err
				}
				if depth == 1 && contents {
					return nil // dst itself keeps its mode
				}
				return os.Chmod(local, h.mode)
			},
			leaveDir: func() error {
				if depth == skipDepth {
					skipDepth = -1
				}
				depth--
				stack, rels = stack[:len(stack)-1], rels[:len(rels)-1]
				return nil
			},
			file: func(h scpHeader, data io.Reader) error {
				rel := path.Join(rels[len(rels)-1], h.name)
				if skipDepth >= 0 || excluded(rel, exclude) {
					return nil
				}
				f, err := os.OpenFile(filepath.Join(stack[len(stack)-1], h.name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				if _, err := io.Copy(f, ctxReader{ctx, data}); err != nil {
					f.Close()
					return err
				}
				if err := f.Chmod(h.mode); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			},
		})
	})
	if err != nil {
		return fmt.Errorf("download directory %s (scp): %w", src, err)
	}
	return nil
}
