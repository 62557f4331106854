package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
)

// The sshd runs on this machine, so "remote" paths are checked directly.

type transferMode struct {
	name   string
	opts   sshtest.Options
	method string
}

var transferModes = []transferMode{
	{name: "sftp"},
	{name: "scp", method: ssh.TransferSCP},
	{name: "no sftp subsystem falls back to scp", opts: sshtest.Options{NoSFTP: true}},
}

// listing describes a tree as "path mode" lines ("->target" for links).
func listing(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := rel + " " + info.Mode().String()
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line = rel + " -> " + target
		} else if info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makeTree builds the local source tree the directory tests copy.
func makeTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	files := []struct {
		path string
		mode os.FileMode
	}{
		{"a.txt", 0o644},
		{"skip.log", 0o644},
		{"sub/b.sh", 0o755},
		{"sub/deep/secret", 0o600},
	}
	for _, f := range files {
		p := filepath.Join(src, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.path), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "sub", "deep"), 0o700); err != nil {
		t.Fatal(err)
	}
	return src
}

func treeLines(prefix string, withLog bool) []string {
	p := func(s string) string {
		if prefix == "" {
			return s
		}
		if s == "." {
			return prefix
		}
		return prefix + "/" + s
	}
	lines := []string{
		p(".") + " drwxr-xr-x",
		p("a.txt") + " -rw-r--r-- a.txt",
		p("sub") + " drwxr-xr-x",
		p("sub/b.sh") + " -rwxr-xr-x sub/b.sh",
		p("sub/deep") + " drwx------",
		p("sub/deep/secret") + " -rw------- sub/deep/secret",
	}
	if withLog {
		lines = append(lines, p("skip.log")+" -rw-r--r-- skip.log")
	}
	slices.Sort(lines)
	return lines
}

func TestUploadDirTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, mode := range transferModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			src := makeTree(t)
			for _, tc := range []struct {
				name    string
				src     string
				exclude []string
				// want is the listing of dst.
				want []string
			}{
				{"contents with trailing slash", src + "/", nil, treeLines("", true)},
				{"directory itself without", src, nil, append([]string{". drwxr-xr-x"}, treeLines("src", true)...)},
				{"exclude", src + "/", []string{"*.log"}, treeLines("", false)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					// dst does not exist yet: it and its parents are created.
					dst := filepath.Join(t.TempDir(), "x", "dst")
					if err := c.UploadDir(context.Background(), dst, tc.src, tc.exclude); err != nil {
						t.Fatalf("UploadDir: %v", err)
					}
					got := listing(t, dst)
					slices.Sort(got)
					want := slices.Clone(tc.want)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("remote tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				})
			}
		})
	}
}

func TestDownloadDirTrailingSlash(t *testing.T) {
	t.Parallel()
	for _, mode := range transferModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			remote := makeTree(t)
			for _, tc := range []struct {
				name    string
				src     string
				exclude []string
				want    []string
			}{
				{"contents with trailing slash", remote + "/", nil, treeLines("", true)},
				{"directory itself without", remote, nil, append([]string{". drwxr-xr-x"}, treeLines("src", true)...)},
				{"exclude", remote + "/", []string{"skip.log"}, treeLines("", false)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dst := filepath.Join(t.TempDir(), "dst")
					if err := os.Mkdir(dst, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := c.DownloadDir(context.Background(), tc.src, dst, tc.exclude); err != nil {
						t.Fatalf("DownloadDir: %v", err)
					}
					got := listing(t, dst)
					slices.Sort(got)
					want := slices.Clone(tc.want)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("local tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				})
			}
		})
	}
}

func TestUploadDownloadFile(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 3<<20+17) // several SFTP packets, odd tail
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(local, payload, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(local, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(local)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range transferModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			root := t.TempDir()
			existing := filepath.Join(root, "existing")
			if err := os.Mkdir(existing, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name  string
				dst   string
				fi    os.FileInfo
				want  string
				perm  os.FileMode
				empty bool
			}{
				{"new parents created", root + "/a/b/file.bin", fi, root + "/a/b/file.bin", 0o640, false},
				{"trailing slash names the directory", root + "/c/", fi, root + "/c/payload.bin", 0o640, false},
				{"existing directory", existing, fi, existing + "/payload.bin", 0o640, false},
				{"no file info", root + "/plain", nil, root + "/plain", 0o644, false},
				{"empty file", root + "/empty", nil, root + "/empty", 0o644, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var r *bytes.Reader
					want := payload
					if tc.empty {
						want = nil
					}
					r = bytes.NewReader(want)
					if err := c.Upload(context.Background(), tc.dst, r, tc.fi); err != nil {
						t.Fatalf("Upload: %v", err)
					}
					got, err := os.ReadFile(tc.want)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("uploaded %d bytes differ from the %d sent", len(got), len(want))
					}
					st, _ := os.Stat(tc.want)
					if st.Mode().Perm() != tc.perm {
						t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.perm)
					}
					var back bytes.Buffer
					if err := c.Download(context.Background(), tc.want, &back); err != nil {
						t.Fatalf("Download: %v", err)
					}
					if !bytes.Equal(back.Bytes(), want) {
						t.Errorf("downloaded %d bytes differ", back.Len())
					}
				})
			}
			// Overwriting truncates.
			short := root + "/a/b/file.bin"
			if err := c.Upload(context.Background(), short, strings.NewReader("short"), nil); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(short); string(got) != "short" {
				t.Errorf("overwrite left %d bytes", len(got))
			}
			err := c.Download(context.Background(), root+"/missing", &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), root+"/missing") {
				t.Errorf("download of a missing file: %v", err)
			}
			// The transfers went the way the mode says.
			usedSFTP := strings.Contains(srv.Log(), "Starting session: subsystem 'sftp'")
			if usedSFTP != (mode.method == "" && !mode.opts.NoSFTP) {
				t.Errorf("sftp used = %v in mode %s; sshd log:\n%s", usedSFTP, mode.name, srv.Log())
			}
		})
	}
}

// A reader whose length is unknown (a pipe) still uploads in full.
func TestUploadUnsizedReader(t *testing.T) {
	t.Parallel()
	for _, mode := range transferModes[:2] {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			data := bytes.Repeat([]byte("0123456789"), 100000)
			dst := filepath.Join(t.TempDir(), "f")
			if err := c.Upload(context.Background(), dst, struct{ *bytes.Reader }{bytes.NewReader(data)}, nil); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Errorf("got %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

// slowReader yields a little data, then blocks until ctx ends.
type slowReader struct {
	ctx  context.Context
	sent bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "partial"), nil
	}
	<-r.ctx.Done()
	time.Sleep(10 * time.Millisecond)
	return copy(p, "more"), nil
}

func TestUploadContextCancel(t *testing.T) {
	t.Parallel()
	for _, mode := range transferModes[:2] {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := c.Upload(ctx, filepath.Join(t.TempDir(), "f"), &slowReader{ctx: ctx}, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want deadline exceeded", err)
			}
			// The connection is still usable.
			if out, _ := run(t, c, "echo ok"); out != "ok\n" {
				t.Errorf("after cancel: %q", out)
			}
		})
	}
}

// SFTP recreates symbolic links as links (scp, like OpenSSH's, copies
// what they point to).
func TestSFTPSymlinks(t *testing.T) {
	t.Parallel()
	srv := sshtest.Start(t, sshtest.Options{})
	c := connect(t, srv, nil)
	src := makeTree(t)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "up")
	if err := c.UploadDir(context.Background(), dst, src+"/", []string{"sub"}); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "down")
	if err := c.DownloadDir(context.Background(), dst+"/", back, nil); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{dst, back} {
		got := listing(t, root)
		want := []string{". drwxr-xr-x", "a.txt -rw-r--r-- a.txt", "link -> a.txt", "skip.log -rw-r--r-- skip.log"}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", root, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// Copying "dir/" into an existing directory leaves that directory's mode
// alone (think /tmp, 1777), in both directions.
func TestDirContentsKeepDestinationMode(t *testing.T) {
	for _, mode := range transferModes[:2] {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := sshtest.Start(t, mode.opts)
			c := connect(t, srv, func(c *ssh.Config) { c.FileTransfer = mode.method })
			src := makeTree(t)
			for _, dir := range []string{"up", "down"} {
				dst := filepath.Join(t.TempDir(), dir)
				if err := os.Mkdir(dst, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dst, 0o777|os.ModeSticky); err != nil {
					t.Fatal(err)
				}
				var err error
				if dir == "up" {
					err = c.UploadDir(context.Background(), dst, src+"/", nil)
				} else {
					err = c.DownloadDir(context.Background(), src+"/", dst, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				st, _ := os.Stat(dst)
				if st.Mode() != os.ModeDir|os.ModeSticky|0o777 {
					t.Errorf("%s: destination mode became %v", dir, st.Mode())
				}
				if _, err := os.Stat(filepath.Join(dst, "sub", "b.sh")); err != nil {
					t.Errorf("%s: contents not copied: %v", dir, err)
				}
			}
		})
	}
}
