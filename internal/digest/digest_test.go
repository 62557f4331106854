package digest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sumOf(t *testing.T, build func(h *Hasher) error) string {
	t.Helper()
	h := New()
	if err := build(h); err != nil {
		t.Fatal(err)
	}
	return h.Sum()
}

func TestDigestChangesWithEveryInput(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "setup.sh")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := func(h *Hasher) error {
		if err := h.AddValue("builder", map[string]any{"instance_type": "t3.micro", "tags": map[string]string{"b": "2", "a": "1"}}); err != nil {
			return err
		}
		if err := h.AddValue("source_ami", "ami-1"); err != nil {
			return err
		}
		return h.AddPath("script", script)
	}
	want := sumOf(t, base)
	if again := sumOf(t, base); again != want {
		t.Fatalf("digest not stable: %s vs %s", want, again)
	}
	// Map key order must not matter.
	reordered := sumOf(t, func(h *Hasher) error {
		if err := h.AddValue("builder", map[string]any{"tags": map[string]string{"a": "1", "b": "2"}, "instance_type": "t3.micro"}); err != nil {
			return err
		}
		if err := h.AddValue("source_ami", "ami-1"); err != nil {
			return err
		}
		return h.AddPath("script", script)
	})
	if reordered != want {
		t.Fatalf("map order changed the digest")
	}
	cases := map[string]func(h *Hasher) error{
		"option": func(h *Hasher) error {
			h.AddValue("builder", map[string]any{"instance_type": "t3.small", "tags": map[string]string{"b": "2", "a": "1"}})
			h.AddValue("source_ami", "ami-1")
			return h.AddPath("script", script)
		},
		"source ami": func(h *Hasher) error {
			h.AddValue("builder", map[string]any{"instance_type": "t3.micro", "tags": map[string]string{"b": "2", "a": "1"}})
			h.AddValue("source_ami", "ami-2")
			return h.AddPath("script", script)
		},
		"parts framed": func(h *Hasher) error {
			h.AddValue("builder", map[string]any{"instance_type": "t3.micro", "tags": map[string]string{"b": "2", "a": "1"}})
			h.AddValue("source_ami", "ami-")
			h.AddValue("1", nil)
			return h.AddPath("script", script)
		},
	}
	for name, build := range cases {
		if got := sumOf(t, build); got == want {
			t.Errorf("%s: digest did not change", name)
		}
	}
	if err := os.WriteFile(script, []byte("echo hI\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := sumOf(t, base); got == want {
		t.Errorf("one byte of the script changed and the digest did not")
	}
}

func TestAddPathDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("a/one", "1", 0o644)
	write("b/two", "22", 0o644)
	digestDir := func() (string, Part) {
		h := New()
		if err := h.AddPath("files", dir); err != nil {
			t.Fatal(err)
		}
		return h.Sum(), h.Parts()[0]
	}
	first, part := digestDir()
	if part.Size != 3 {
		t.Errorf("size = %d, want 3", part.Size)
	}
	steps := []struct {
		name   string
		change func()
	}{
		{"mode", func() { os.Chmod(filepath.Join(dir, "a/one"), 0o755) }},
		{"rename", func() { os.Rename(filepath.Join(dir, "b/two"), filepath.Join(dir, "b/three")) }},
		{"new file", func() { write("c", "", 0o644) }},
	}
	prev := first
	for _, s := range steps {
		s.change()
		got, _ := digestDir()
		if got == prev {
			t.Errorf("%s: directory digest did not change", s.name)
		}
		prev = got
	}
}

func TestSecretNeverStored(t *testing.T) {
	h := New()
	h.AddSecret("var.password", "hunter2-very-secret")
	for _, p := range h.Parts() {
		if strings.Contains(p.Name+p.Digest, "hunter2") {
			t.Fatalf("secret leaked into parts: %+v", p)
		}
	}
	other := New()
	other.AddSecret("var.password", "another")
	if h.Sum() == other.Sum() {
		t.Fatal("a changed secret must change the digest")
	}
}

func TestVolatileAndStrip(t *testing.T) {
	type cfg struct {
		AMIName string            `json:"ami_name"`
		Type    string            `json:"instance_type"`
		Tags    map[string]string `json:"tags"`
		BDM     []map[string]any  `json:"bdm"`
		Desc    string            `json:"description,omitempty"`
	}
	a := cfg{"app 1700000000", "t3.micro", map[string]string{"Built": "1700000000", "Team": "x"}, []map[string]any{{"size": 8}}, ""}
	b := cfg{"app 1731536000", "t3.micro", map[string]string{"Built": "1731536000", "Team": "x"}, []map[string]any{{"size": 8}}, ""}
	for _, tc := range []struct {
		name   string
		marked []string
		want   []string
	}{
		{"options and map keys", []string{"tags.Built", "ami_name", "ami_name"}, []string{"ami_name", "tags.Built"}},
		{"list element", []string{"bdm[0].size"}, []string{"bdm[0].size"}},
		// Marked but not among the settings: left unset, dropped, or out
		// of range.
		{"absent", []string{"description", "region", "tags.Other", "bdm[3].size", "bdm[0].type", "ami_name.x"}, nil},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Volatile(a, tc.marked)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Volatile = %v, want %v", got, tc.want)
			}
		})
	}
	got, _ := Volatile(a, []string{"ami_name", "tags.Built"})
	sa, _ := Strip(a, got)
	sb, _ := Strip(b, got)
	ca, _ := Canonical(sa)
	cb, _ := Canonical(sb)
	if string(ca) != string(cb) {
		t.Fatalf("stripped values differ:\n%s\n%s", ca, cb)
	}
	if strings.Contains(string(ca), "ami_name") || !strings.Contains(string(ca), "Team") {
		t.Fatalf("strip removed the wrong things: %s", ca)
	}
}

func TestAddPathFollowsLinks(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "upload")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{dir, filepath.Join(outside, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(outside, "conf")
	if err := os.WriteFile(target, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(outside, "sub", "x")
	if err := os.WriteFile(nested, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"conf": target, "subdir": filepath.Join(outside, "sub"), "loop": dir, "dangling": filepath.Join(root, "nope")} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	sum := func() string {
		h := New()
		if err := h.AddPath("files", dir); err != nil {
			t.Fatal(err)
		}
		return h.Sum()
	}
	first := sum()
	if sum() != first {
		t.Fatal("not stable")
	}
	if err := os.WriteFile(target, []byte("a=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := sum()
	if second == first {
		t.Error("the content behind a file link changed and the digest did not")
	}
	if err := os.WriteFile(nested, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if sum() == second {
		t.Error("the content behind a directory link changed and the digest did not")
	}
}
