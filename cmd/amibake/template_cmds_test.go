package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFmtCommand(t *testing.T) {
	dir := t.TempDir()
	messy := "source \"amazon-ebs\" \"x\" {\nregion=\"a\"\n}\n"
	tidy := "source \"amazon-ebs\" \"x\" {\n  region = \"a\"\n}\n"
	path := filepath.Join(dir, "t.pkr.hcl")
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(sub, "n.pkrvars.hcl")
	write := func() {
		if err := os.WriteFile(path, []byte(messy), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(nested, []byte("a   = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write()

	// -check: exit 3, lists the file, writes nothing.
	code, out, _ := runTemplateCmd(t, nil, "fmt", "-check", dir)
	if code != 3 || strings.TrimSpace(out) != path || read(path) != messy {
		t.Errorf("-check: exit %d, out %q", code, out)
	}
	// -write=false -diff prints a diff and writes nothing.
	code, out, _ = runTemplateCmd(t, nil, "fmt", "-write=false", "-diff", path)
	if code != 0 || !strings.Contains(out, "-region=\"a\"\n+  region = \"a\"\n") || read(path) != messy {
		t.Errorf("-diff: exit %d, out %q", code, out)
	}
	// Default: rewrites the directory's files, not subdirectories.
	code, _, _ = runTemplateCmd(t, nil, "fmt", dir)
	if code != 0 || read(path) != tidy || read(nested) != "a   = 1\n" {
		t.Errorf("fmt: exit %d, %q, %q", code, read(path), read(nested))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", st.Mode().Perm())
	}
	code, _, _ = runTemplateCmd(t, nil, "fmt", "-recursive", dir)
	if code != 0 || read(nested) != "a = 1\n" {
		t.Errorf("-recursive: exit %d, %q", code, read(nested))
	}
	if code, out, _ := runTemplateCmd(t, nil, "fmt", "-check", "-recursive", dir); code != 0 || out != "" {
		t.Errorf("formatted -check: exit %d, %q", code, out)
	}
	// A syntax error is reported, not formatted away.
	bad := filepath.Join(dir, "bad.pkr.hcl")
	if err := os.WriteFile(bad, []byte("a = {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runTemplateCmd(t, nil, "fmt", bad)
	if code != 1 || !strings.Contains(errOut, "bad.pkr.hcl line 2") {
		t.Errorf("syntax error: exit %d, %q", code, errOut)
	}
}

func TestInspectCommand(t *testing.T) {
	code, out, errOut := runTemplateCmd(t, nil, "inspect", "-var", "secret=hunter22", "-var", "region=eu-west-1", "testdata/validate/needs_var.pkr.hcl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "hunter22") {
		t.Errorf("sensitive value shown:\n%s", out)
	}
	goldenFile(t, "testdata/inspect/needs_var.golden", []byte(out))
	if code, _, errOut := runTemplateCmd(t, nil, "inspect", "testdata/validate/needs_var.pkr.hcl"); code != 1 || !strings.Contains(errOut, "Unset variable") {
		t.Errorf("unset variable: exit %d, %q", code, errOut)
	}
}

// TestInspectMachineReadable compares the typed lines of
// `inspect -machine-readable` with what Packer 1.16 printed for the same
// template (the reference recording's tags/inspect.machine-readable.txt).
func TestInspectMachineReadable(t *testing.T) {
	code, out, errOut := runTemplateCmd(t, nil, "inspect", "-machine-readable", "testdata/inspect/packer-tags.json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	ref, err := os.ReadFile("testdata/inspect/packer-tags.inspect.machine-readable.txt")
	if err != nil {
		t.Fatal(err)
	}
	typed := func(s string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			f := strings.SplitN(l, ",", 3)
			if len(f) == 3 && !strings.HasPrefix(f[2], "ui,") {
				lines = append(lines, f[1]+","+f[2])
			}
		}
		return lines
	}
	got, want := typed(out), typed(string(ref))
	if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("typed lines differ from Packer's\n--- amibake ---\n%s\n--- packer ---\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
