package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/template"
)

const benchTemplate = `variable "secret" {
  type      = string
  default   = "x"
  sensitive = true
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "x" {
  region        = "us-east-1"
  source_ami    = "ami-12345678"
  instance_type = "t2.micro"
  ssh_username  = "ubuntu"
  ami_name      = "demo-${local.stamp}"
}

build {
  sources = ["source.amazon-ebs.x"]

  provisioner "shell" {
    inline = ["echo hi"]
  }
}
`

// BenchmarkPaths200 validates 200 HCL2 templates in process (structure
// only), the library part of `amibake validate` with 200 paths.
func BenchmarkPaths200(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	for i := range 200 {
		p := filepath.Join(dir, fmt.Sprintf("t%03d.pkr.hcl", i))
		if err := os.WriteFile(p, []byte(benchTemplate), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	opts := Options{Load: template.LoadOptions{Now: time.Unix(0, 0), Cwd: dir}}
	for b.Loop() {
		if r := Paths(context.Background(), paths, opts); !r.Valid() {
			b.Fatal(r.Diags)
		}
	}
}
