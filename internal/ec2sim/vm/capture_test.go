package vm

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// A live capture of a layer the guest keeps changing succeeds every time
// (EC2's NoReboot images are crash-consistent; they do not fail for what
// the guest does) and never copies what a swapped-in symlink points at.
// The churn removes directories between their open and their read, and
// swaps directories, files and symlinks for one another.
func TestCaptureLayerLiveChurn(t *testing.T) {
	base := t.TempDir()
	host := filepath.Join(base, "host")
	up := filepath.Join(base, "upper")
	for _, d := range []string{host, up} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	churn := func(name string) {
		defer wg.Done()
		d := filepath.Join(up, name)
		for ctx.Err() == nil {
			_ = os.RemoveAll(d)
			_ = os.MkdirAll(filepath.Join(d, "a", "b", "c"), 0o755)
			_ = os.WriteFile(filepath.Join(d, "a", "f"), []byte("x"), 0o644)
			_ = os.Symlink("../../../../../../../.."+host, filepath.Join(d, "a", "b", "up"))
			_ = os.RemoveAll(d)
			_ = os.Symlink(host, d)
			_ = os.Remove(d)
			_ = os.WriteFile(d, []byte("file now"), 0o644)
			_ = os.Remove(d)
			_ = os.Mkdir(d, 0o755)
		}
	}
	for _, n := range []string{"d", "e"} {
		wg.Add(1)
		go churn(n)
	}
	defer func() { cancel(); wg.Wait() }()
	for i := 0; i < 300; i++ {
		dst := filepath.Join(base, fmt.Sprintf("layer-%d", i))
		if err := captureLayer(up, dst); err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		for _, p := range hostSecrets(t, dst) {
			t.Errorf("capture %d copied a host file: %s", i, p)
		}
		if err := os.RemoveAll(dst); err != nil {
			t.Fatal(err)
		}
	}
}

// hostSecrets lists the regular files under dir that hold the host's
// secret: what a capture that followed a symlink out would have copied.
func hostSecrets(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("host secret")) {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
