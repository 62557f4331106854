package file_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/communicator/ssh/sshtest"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/file"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

// listing returns the regular files under dir, relative, with contents.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			data, _ := os.ReadFile(p)
			got[filepath.ToSlash(rel)] = string(data)
		}
		return nil
	})
	return got
}

// Upload and download with Packer's trailing-slash rules through a real
// OpenSSH server on loopback (the "machine" is this host).
func TestOverSSH(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	comm, err := ssh.Connect(context.Background(), ssh.Config{
		Host: srv.Host, Port: srv.Port, User: srv.User, PrivateKey: srv.ClientKeyPEM, Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, srv.Log())
	}
	defer comm.Close()

	local := t.TempDir()
	for name, data := range map[string]string{"app/a.txt": "a", "app/sub/b.txt": "b", "one.txt": "one"} {
		os.MkdirAll(filepath.Join(local, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(local, name), []byte(data), 0o644)
	}
	tests := []struct {
		name string
		hcl  string // L: local dir, R: remote dir
		want map[string]string
		in   string // "R" or "L": where to look
	}{
		{name: "upload dir", hcl: `source = "L/app"` + "\n" + `destination = "R"`, in: "R",
			want: map[string]string{"app/a.txt": "a", "app/sub/b.txt": "b"}},
		{name: "upload dir contents", hcl: `source = "L/app/"` + "\n" + `destination = "R"`, in: "R",
			want: map[string]string{"a.txt": "a", "sub/b.txt": "b"}},
		{name: "upload file into dir", hcl: `source = "L/one.txt"` + "\n" + `destination = "R/"`, in: "R",
			want: map[string]string{"one.txt": "one"}},
		{name: "upload content", hcl: `content = "hi"` + "\n" + `destination = "R/motd"`, in: "R",
			want: map[string]string{"motd": "hi"}},
		{name: "download dir contents", hcl: `source = "L/app/"` + "\n" + `destination = "R"` + "\n" + `direction = "download"`, in: "R",
			want: map[string]string{"a.txt": "a", "sub/b.txt": "b"}},
		{name: "download dir without slash", hcl: `source = "L/app"` + "\n" + `destination = "R/"` + "\n" + `direction = "download"`, in: "R",
			want: map[string]string{"app/a.txt": "a", "app/sub/b.txt": "b"}},
		{name: "download file into dir", hcl: `source = "L/one.txt"` + "\n" + `destination = "R/"` + "\n" + `direction = "download"`, in: "R",
			want: map[string]string{"one.txt": "one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := t.TempDir()
			src := strings.NewReplacer(`"L/`, `"`+local+"/", `"R/`, `"`+remote+"/", `"R"`, `"`+remote+`"`).Replace(tt.hcl)
			p, diags := file.New(provisionertest.HCL(t, "file", src, nil), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			u := &provisionertest.UI{}
			if err := provisioner.Run(context.Background(), u, comm, &provisioner.Build{Name: "b"}, p, provisioner.Common{}); err != nil {
				t.Fatalf("%v\n%s", err, u.Text())
			}
			if got := listing(t, remote); !maps.Equal(got, tt.want) {
				t.Errorf("got %v want %v\n%s", got, tt.want, u.Text())
			}
		})
	}
}
