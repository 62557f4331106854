package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDist runs `make dist`: amibake cross-built for the six platforms
// (CGO_ENABLED=0; a platform that stops building fails here, in make
// test), archived with SHA256SUMS, stamped with the version and commit,
// and reproducible. None of them links the simulator.
func TestDist(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	platforms := []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		cmd := exec.Command("go", "list", "-deps", "./cmd/amibake")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps for %s: %v\n%s", p, err, out)
		}
		if strings.Contains(string(out), "internal/ec2sim") {
			t.Errorf("amibake for %s links the simulator", p)
		}
	}

	const version, commit, epoch = "v9.8.7-test", "0123456789abcdef0123456789abcdef01234567", "1796000000"
	dist := func(dir string, platforms ...string) string {
		t.Helper()
		args := []string{"-s", "dist", "DIST=" + dir, "VERSION=" + version, "COMMIT=" + commit, "SOURCE_DATE_EPOCH=" + epoch}
		if len(platforms) > 0 {
			args = append(args, "PLATFORMS="+strings.Join(platforms, " "))
		}
		cmd := exec.Command("make", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make dist: %v\n%s", err, out)
		}
		sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		return string(sums)
	}
	dir := t.TempDir()
	sums := dist(dir)

	lines := strings.Split(strings.TrimSpace(sums), "\n")
	if len(lines) != len(platforms) {
		t.Fatalf("SHA256SUMS has %d lines, want %d:\n%s", len(lines), len(platforms), sums)
	}
	check := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		name := "amibake_" + version + "_" + goos + "_" + goarch
		exe := "amibake"
		var files map[string]archived
		if goos == "windows" {
			name += ".zip"
			exe += ".exe"
			files = readZip(t, filepath.Join(dir, name))
		} else {
			name += ".tar.gz"
			files = readTarGz(t, filepath.Join(dir, name))
		}
		if !strings.Contains(sums, "  "+name+"\n") && !strings.HasSuffix(sums, "  "+name) {
			t.Errorf("SHA256SUMS lacks %s", name)
		}
		bin, ok := files[exe]
		if !ok || files["README.md"].data == nil || len(files) != 2 {
			t.Errorf("%s holds %v, want %s and README.md", name, keys(files), exe)
			continue
		}
		if bin.mode&0o111 == 0 && goos != "windows" {
			t.Errorf("%s: %s is not executable (%v)", name, exe, bin.mode)
		}
		if bin.mtime != 1796000000 {
			t.Errorf("%s: %s dated %d, want SOURCE_DATE_EPOCH", name, exe, bin.mtime)
		}
		if !bytes.Contains(bin.data, []byte(version)) || !bytes.Contains(bin.data, []byte(commit)) {
			t.Errorf("%s: version or commit not stamped", name)
		}
		if bytes.Contains(bin.data, []byte(root)) {
			t.Errorf("%s: the build directory %s is in the binary (-trimpath)", name, root)
		}
		if goos == runtime.GOOS && goarch == runtime.GOARCH {
			path := filepath.Join(t.TempDir(), exe)
			if err := os.WriteFile(path, bin.data, 0o755); err != nil {
				t.Fatal(err)
			}
			var outs []string
			for _, arg := range []string{"version", "--version"} {
				out, err := exec.Command(path, arg).CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", exe, arg, err, out)
				}
				outs = append(outs, string(out))
			}
			want := "amibake " + version + " (" + commit + ", " + runtime.Version() + " " + p + ")\n"
			if outs[0] != want || outs[1] != want {
				t.Errorf("version: %q, --version: %q, want both %q", outs[0], outs[1], want)
			}
		}
	}

	// Reproducible: a second build of a tar.gz and a zip platform from
	// the same commit gives the same bytes.
	again := dist(t.TempDir(), "linux/amd64", "windows/amd64")
	for _, l := range strings.Split(strings.TrimSpace(again), "\n") {
		if !strings.Contains(sums, l) {
			t.Errorf("not reproducible: %q is not in the first build's SHA256SUMS:\n%s", l, sums)
		}
	}
}

type archived struct {
	data  []byte
	mode  os.FileMode
	mtime int64
}

func keys(m map[string]archived) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func readTarGz(t *testing.T, path string) map[string]archived {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]archived{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d, want 0:0", path, h.Name, h.Uid, h.Gid)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = archived{data: data, mode: h.FileInfo().Mode(), mtime: h.ModTime.Unix()}
	}
}

func readZip(t *testing.T, path string) map[string]archived {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer zr.Close()
	out := map[string]archived{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// zip -X stores DOS times only (local time, 2 s steps): dist
		// runs zip with TZ=UTC, and the test's epoch is even.
		out[f.Name] = archived{data: data, mode: f.Mode(), mtime: f.Modified.Unix()}
	}
	return out
}
