package file

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

var build = &provisioner.Build{Name: "amazon-ebs", Type: "amazon-ebs"}

// tree makes a local directory: dir/app/{a.txt, sub/b.txt} and dir/one.txt.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"app/a.txt":     "a",
		"app/sub/b.txt": "b",
		"one.txt":       "one",
		"two.txt":       "two",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestNewValidation(t *testing.T) {
	dir := tree(t)
	one := filepath.Join(dir, "one.txt")
	tests := []struct {
		name    string
		hcl     string
		json    string
		wantErr string
		line    int
	}{
		{name: "source", hcl: fmt.Sprintf("source = %q\ndestination = \"/tmp/x\"", one),
			json: fmt.Sprintf(`{"source": %q, "destination": "/tmp/x"}`, one)},
		{name: "content", hcl: "content = \"hello\"\ndestination = \"/tmp/x\""},
		{name: "empty content", hcl: "content = \"\"\ndestination = \"/tmp/x\""},
		{name: "download needs no local source", hcl: "source = \"/etc/remote\"\ndestination = \"out/\"\ndirection = \"download\""},
		{name: "generated", hcl: "source = \"later.txt\"\ndestination = \"/tmp/\"\ngenerated = true"},
		{name: "sources as a JSON string", json: fmt.Sprintf(`{"sources": %q, "destination": "/tmp/"}`, one)},
		{name: "no source", hcl: `destination = "/tmp/x"`, json: `{"destination": "/tmp/x"}`,
			wantErr: "Source must be specified", line: 1},
		{name: "no destination", hcl: fmt.Sprintf("source = %q", one), wantErr: "Destination must be specified", line: 1},
		{name: "bad direction", hcl: fmt.Sprintf("source = %q\ndestination = \"/tmp/x\"\ndirection = \"sideways\"", one),
			wantErr: `Direction must be one of: download, upload (got "sideways")`, line: 3},
		{name: "content and source", hcl: fmt.Sprintf("content = \"x\"\nsource = %q\ndestination = \"/tmp/x\"", one),
			wantErr: "source(s) conflicts with content", line: 2},
		{name: "download content", hcl: "content = \"x\"\ndestination = \"/tmp/x\"\ndirection = \"download\"",
			wantErr: "content cannot be downloaded", line: 1},
		{name: "missing source", hcl: "source = \"/nonexistent/f\"\ndestination = \"/tmp/x\"",
			json: `{"source": "/nonexistent/f", "destination": "/tmp/x"}`, wantErr: "Bad source '/nonexistent/f'", line: 1},
		{name: "several sources need a directory", hcl: fmt.Sprintf("sources = [%q, %q]\ndestination = \"/tmp\"", one, one),
			wantErr: `Destination "/tmp" must end with a slash`, line: 2},
		{name: "unknown option", json: `{"src": "x", "destination": "/tmp/x"}`, wantErr: `"src"`},
	}
	for _, tt := range tests {
		for _, format := range []string{"hcl", "json"} {
			src := map[string]string{"hcl": tt.hcl, "json": tt.json}[format]
			if src == "" {
				continue
			}
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				var b *template.Block
				if format == "hcl" {
					b = provisionertest.HCL(t, "file", src, nil)
				} else {
					b = provisionertest.JSON(t, "file", src)
				}
				_, diags := New(b, nil)
				if tt.wantErr == "" {
					if diags.HasErrors() {
						t.Fatal(diags.Error())
					}
					return
				}
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("want %q, got %v", tt.wantErr, diags)
				}
				if tt.line > 0 && format == "hcl" && diags[0].Subject.Start.Line != tt.line {
					t.Errorf("line %d, want %d: %s", diags[0].Subject.Start.Line, tt.line, diags.Error())
				}
			})
		}
	}
}

func TestUpload(t *testing.T) {
	dir := tree(t)
	tests := []struct {
		name  string
		hcl   string
		files map[string]string // remote path -> content
		log   []string
	}{
		{
			name:  "file to file",
			hcl:   `source = "DIR/one.txt"` + "\n" + `destination = "/tmp/renamed.txt"`,
			files: map[string]string{"/tmp/renamed.txt": "one"},
			log:   []string{"say: Uploading DIR/one.txt => /tmp/renamed.txt"},
		},
		{
			name:  "file into directory",
			hcl:   `source = "DIR/one.txt"` + "\n" + `destination = "/tmp/"`,
			files: map[string]string{"/tmp/one.txt": "one"},
		},
		{
			name:  "sources into directory",
			hcl:   `sources = ["DIR/one.txt", "DIR/two.txt"]` + "\n" + `destination = "/tmp/"`,
			files: map[string]string{"/tmp/one.txt": "one", "/tmp/two.txt": "two"},
			log:   []string{"say: Uploading DIR/one.txt => /tmp/", "say: Uploading DIR/two.txt => /tmp/"},
		},
		{
			name:  "directory without slash is created inside",
			hcl:   `source = "DIR/app"` + "\n" + `destination = "/tmp"`,
			files: map[string]string{"/tmp/app/a.txt": "a", "/tmp/app/sub/b.txt": "b"},
		},
		{
			name:  "directory with slash copies its contents",
			hcl:   `source = "DIR/app/"` + "\n" + `destination = "/tmp"`,
			files: map[string]string{"/tmp/a.txt": "a", "/tmp/sub/b.txt": "b"},
		},
		{
			name:  "content to file",
			hcl:   `content = "hello\n"` + "\n" + `destination = "/etc/motd"`,
			files: map[string]string{"/etc/motd": "hello\n"},
			log:   []string{"say: Uploading content => /etc/motd"},
		},
		{
			name:  "content into directory",
			hcl:   `content = "x"` + "\n" + `destination = "/tmp/"`,
			files: map[string]string{"/tmp/pkr-file-content": "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := New(provisionertest.HCL(t, "file", strings.ReplaceAll(tt.hcl, "DIR", dir), nil), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			comm := &provisionertest.Comm{}
			u := &provisionertest.UI{}
			if err := p.Provision(context.Background(), u, comm, build); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, f := range comm.Snapshot() {
				got[k] = string(f.Data)
			}
			if !maps.Equal(got, tt.files) {
				t.Errorf("remote files\n got %v\nwant %v", got, tt.files)
			}
			for _, l := range tt.log {
				if !u.Has(strings.ReplaceAll(l, "DIR", dir)) {
					t.Errorf("missing %q in\n%s", l, u.Text())
				}
			}
		})
	}
}

func TestUploadKeepsMode(t *testing.T) {
	dir := tree(t)
	os.Chmod(filepath.Join(dir, "one.txt"), 0o751)
	p, _ := New(provisionertest.HCL(t, "file", fmt.Sprintf("source = %q\ndestination = \"/x\"", filepath.Join(dir, "one.txt")), nil), nil)
	comm := &provisionertest.Comm{}
	if err := p.Provision(context.Background(), &provisionertest.UI{}, comm, build); err != nil {
		t.Fatal(err)
	}
	if m := comm.Snapshot()["/x"].Mode; m != 0o751 {
		t.Errorf("mode %v", m)
	}
}

func TestUploadFailure(t *testing.T) {
	dir := tree(t)
	p, _ := New(provisionertest.HCL(t, "file", fmt.Sprintf("source = %q\ndestination = \"/tmp\"", filepath.Join(dir, "one.txt")), nil), nil)
	comm := &provisionertest.Comm{FailUploads: 1}
	u := &provisionertest.UI{}
	err := p.Provision(context.Background(), u, comm, build)
	if !errors.Is(err, provisionertest.ErrTransport) {
		t.Fatalf("got %v", err)
	}
	if !slices.ContainsFunc(u.Lines, func(l string) bool { return strings.HasPrefix(l, "error: Upload failed: ") }) ||
		!u.Has(`error: If /tmp is a directory on the machine, end the destination with a slash: "/tmp/".`) {
		t.Errorf("log:\n%s", u.Text())
	}
}

func TestGeneratedSourceMissingAtRun(t *testing.T) {
	p, diags := New(provisionertest.HCL(t, "file", "source = \"/nonexistent/gen\"\ndestination = \"/tmp/\"\ngenerated = true", nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	err := p.Provision(context.Background(), &provisionertest.UI{}, &provisionertest.Comm{}, build)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestDownload(t *testing.T) {
	remote := map[string]string{
		"/var/log/app.log":    "log",
		"/etc/app/conf":       "conf",
		"/etc/app/sub/nested": "nested",
	}
	tests := []struct {
		name  string
		hcl   string // LOCAL is replaced by a local temp dir
		files map[string]string
		log   string
	}{
		{name: "file to file", hcl: `source = "/var/log/app.log"` + "\n" + `destination = "LOCAL/out/got.log"`,
			files: map[string]string{"out/got.log": "log"}, log: "say: Downloading /var/log/app.log => LOCAL/out/got.log"},
		{name: "file into directory", hcl: `source = "/var/log/app.log"` + "\n" + `destination = "LOCAL/out/"`,
			files: map[string]string{"out/app.log": "log"}, log: "say: Downloading /var/log/app.log => LOCAL/out/app.log"},
		{name: "directory contents", hcl: `source = "/etc/app/"` + "\n" + `destination = "LOCAL/cfg"`,
			files: map[string]string{"cfg/conf": "conf", "cfg/sub/nested": "nested"}},
		{name: "directory into directory", hcl: `source = "/etc/app/"` + "\n" + `destination = "LOCAL/cfg/"`,
			files: map[string]string{"cfg/conf": "conf", "cfg/sub/nested": "nested"}},
		{name: "directory without slash", hcl: `source = "/etc/app"` + "\n" + `destination = "LOCAL/dl/"`,
			files: map[string]string{"dl/app/conf": "conf", "dl/app/sub/nested": "nested"}},
		{name: "several sources", hcl: `sources = ["/var/log/app.log", "/etc/app/conf"]` + "\n" + `destination = "LOCAL/"`,
			files: map[string]string{"app.log": "log", "conf": "conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := t.TempDir()
			src := strings.ReplaceAll(tt.hcl, "LOCAL", local) + "\ndirection = \"download\""
			p, diags := New(provisionertest.HCL(t, "file", src, nil), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			comm := &provisionertest.Comm{}
			for k, v := range remote {
				comm.Put(k, v, 0o644)
			}
			u := &provisionertest.UI{}
			if err := p.Provision(context.Background(), u, comm, build); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(local, p)
					data, _ := os.ReadFile(p)
					got[filepath.ToSlash(rel)] = string(data)
				}
				return nil
			})
			if !maps.Equal(got, tt.files) {
				t.Errorf("local files\n got %v\nwant %v", got, tt.files)
			}
			if tt.log != "" && !u.Has(strings.ReplaceAll(tt.log, "LOCAL", local)) {
				t.Errorf("missing %q in\n%s", tt.log, u.Text())
			}
		})
	}
}

func TestDownloadFailureKeepsOldFile(t *testing.T) {
	local := t.TempDir()
	dst := filepath.Join(local, "keep.txt")
	os.WriteFile(dst, []byte("old"), 0o644)
	p, _ := New(provisionertest.HCL(t, "file", fmt.Sprintf("source = \"/missing\"\ndestination = %q\ndirection = \"download\"", dst), nil), nil)
	u := &provisionertest.UI{}
	if err := p.Provision(context.Background(), u, &provisionertest.Comm{}, build); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
	if data, _ := os.ReadFile(dst); string(data) != "old" {
		t.Errorf("old file clobbered: %q", data)
	}
	if ents, _ := os.ReadDir(local); len(ents) != 1 {
		t.Errorf("partial file left: %v", ents)
	}
}
