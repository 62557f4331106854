// Package digest computes a build's input digest: a SHA-256 over everything
// that determines the image (resolved builder settings, the source AMI id,
// every provisioner's settings in order, the content of every file they
// upload or run). Two builds with the same digest produce the same image,
// so an AMI tagged with it can be reused instead of baked again.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Version is mixed into every digest; bump it whenever what goes in, or
// how, changes, so old tags stop matching.
const Version = "amibake-digest-v1"

// Hasher accumulates named parts. Each part is framed with its name and
// length so that no two different sequences of parts hash alike.
type Hasher struct {
	h     io.Writer
	sum   func() []byte
	parts []Part
}

// Part is one input, kept so that `plan` can show what went in.
type Part struct {
	Name string `json:"name"`
	// Digest is the SHA-256 of this part alone.
	Digest string `json:"digest"`
	// Size is the content size for files and directories.
	Size int64 `json:"size,omitempty"`
}

// New returns a Hasher seeded with Version.
func New() *Hasher {
	h := sha256.New()
	d := &Hasher{h: h, sum: func() []byte { return h.Sum(nil) }}
	d.addBytes("version", []byte(Version))
	d.parts = nil
	return d
}

func (d *Hasher) addBytes(name string, b []byte) string {
	fmt.Fprintf(d.h, "%d:%s\n%d\n", len(name), name, len(b))
	_, _ = d.h.Write(b)
	one := sha256.Sum256(b)
	s := hex.EncodeToString(one[:])
	d.parts = append(d.parts, Part{Name: name, Digest: s, Size: int64(len(b))})
	return s
}

// AddValue adds v in canonical JSON (encoding/json sorts map keys; struct
// fields keep declaration order, which is stable for one version).
func (d *Hasher) AddValue(name string, v any) error {
	b, err := Canonical(v)
	if err != nil {
		return fmt.Errorf("digest %s: %w", name, err)
	}
	d.addBytes(name, b)
	return nil
}

// AddSecret adds a sensitive value: only its hash enters, so neither the
// digest parts nor plan output can reveal it.
func (d *Hasher) AddSecret(name, value string) {
	sum := sha256.Sum256([]byte(value))
	d.addBytes(name, sum[:])
}

// AddFile adds a local file's content.
func (d *Hasher) AddFile(name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("digest %s: read %s: %w", name, path, err)
	}
	d.addBytes(name, b)
	return nil
}

// AddPath adds a file, or a directory walked in lexical order with every
// entry's relative path, mode bits and content, so renames, permission
// changes and edits all change the digest. A symbolic link enters with its
// target and with the content it resolves to (scp uploads what links point
// to; sftp recreates the link), a link to a directory with that directory's
// walk; a link back into a directory being walked enters by target only.
func (d *Hasher) AddPath(name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("digest %s: %w", name, err)
	}
	if !fi.IsDir() {
		return d.AddFile(name, path)
	}
	inner := sha256.New()
	w := &walker{h: inner, active: map[string]bool{}}
	if err := w.dir(path, ""); err != nil {
		return fmt.Errorf("digest %s: walk %s: %w", name, path, err)
	}
	d.addBytes(name, inner.Sum(nil))
	d.parts[len(d.parts)-1].Size = w.size
	return nil
}

type walker struct {
	h    io.Writer
	size int64
	// active are the real paths of the directories being walked, so that
	// a link cycle ends.
	active map[string]bool
}

func (w *walker) dir(path, prefix string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if w.active[real] {
		fmt.Fprintf(w.h, "%s\x00cycle\x00", prefix)
		return nil
	}
	w.active[real] = true
	defer delete(w.active, real)
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(path, e.Name())
		rel := e.Name()
		if prefix != "" {
			rel = prefix + "/" + rel
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(w.h, "%s\x00%o\x00", rel, info.Mode())
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(w.h, "%s\x00", target)
			if info, err = os.Stat(p); err != nil {
				// A dangling link uploads nothing but itself.
				w.h.Write([]byte{0})
				continue
			}
		}
		switch {
		case info.IsDir():
			w.h.Write([]byte("dir\x00"))
			if err := w.dir(p, rel); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := w.file(p); err != nil {
				return err
			}
		}
		w.h.Write([]byte{0})
	}
	return nil
}

func (w *walker) file(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// Length first, so that content cannot be confused with the framing.
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(w.h, "%d\x00", fi.Size())
	n, err := io.Copy(w.h, io.LimitReader(f, fi.Size()))
	w.size += n
	return err
}

// Sum returns the hex digest of everything added.
func (d *Hasher) Sum() string { return hex.EncodeToString(d.sum()) }

// Parts lists what was added, in order.
func (d *Hasher) Parts() []Part { return append([]Part(nil), d.parts...) }

// Canonical encodes v as JSON with map keys sorted and no HTML escaping.
func Canonical(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

// Volatile returns, sorted and without repeats, the paths of marked that
// name a value in v: the options a load found read from the clock or from
// randomness (timestamp() in ami_name: "ami_name", "tags.Built",
// "inline[0]"), less those that are not among the settings (left unset,
// or dropped as not changing the image). Those change every run and must
// stay out of the digest (Strip).
func Volatile(v any, marked []string) ([]string, error) {
	m, err := generic(v)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range marked {
		if !seen[p] && present(m, p) {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// present reports whether path (as Strip reads it) names a non-null value
// in v.
func present(v any, path string) bool {
	head, idx, rest, more := cutPath(path)
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	child, ok := m[head]
	if !ok || child == nil {
		return false
	}
	if idx >= 0 {
		arr, ok := child.([]any)
		if !ok || idx >= len(arr) || arr[idx] == nil {
			return false
		}
		child = arr[idx]
	}
	if !more {
		return true
	}
	return present(child, rest)
}

// Strip returns v (as generic JSON) with the given paths removed, so that
// volatile values and fields that cannot change the image stay out.
func Strip(v any, paths []string) (any, error) {
	m, err := generic(v)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		m = remove(m, p)
	}
	return m, nil
}

// generic returns v as encoding/json decodes it: maps, slices and
// primitives.
func generic(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// cutPath splits "a[2].b.c" into the key "a", the index 2 (-1 for none)
// and the rest "b.c" (more: there is a rest).
func cutPath(path string) (head string, idx int, rest string, more bool) {
	head, rest, more = strings.Cut(path, ".")
	idx = -1
	if i := strings.IndexByte(head, '['); i >= 0 {
		if _, err := fmt.Sscanf(head[i:], "[%d]", &idx); err != nil {
			idx = -1
		}
		head = head[:i]
	}
	return head, idx, rest, more
}

func remove(v any, path string) any {
	head, idx, rest, more := cutPath(path)
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if idx < 0 && !more {
		delete(m, head)
		return m
	}
	child := m[head]
	if idx >= 0 {
		arr, ok := child.([]any)
		if !ok || idx >= len(arr) {
			return m
		}
		if !more {
			arr[idx] = nil
			return m
		}
		arr[idx] = remove(arr[idx], rest)
		return m
	}
	m[head] = remove(child, rest)
	return m
}
