package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The hooks of .pre-commit-hooks.yaml, run by the real pre-commit (Debian's
// package) with try-repo against a scratch repository laid out as Packer
// users lay theirs out. The hook builds amibake from this checkout with Go:
// offline in make test (GOPROXY=off, the module cache warm from make deps).

const (
	pcVariables = `variable "region" {
  type    = string
  default = "ap-northeast-1"
}

variable "instance_type" {
  type    = string
  default = "t2.micro"
}
`
	pcSources = `source "amazon-ebs" "ubuntu" {
  region        = var.region
  source_ami    = "ami-06128816a1c781a57"
  instance_type = var.instance_type
  ssh_username  = "root"
  ami_name      = "web {{timestamp}}"
}
`
	pcBuild = `build {
  sources = ["source.amazon-ebs.ubuntu"]

  provisioner "shell" {
    inline = ["echo hello"]
  }
}
`
	pcVarFile = `instance_type = "t3.small"
`
	pcJSON = `{
  "builders": [
    {
      "type": "amazon-ebs",
      "region": "ap-northeast-1",
      "source_ami": "ami-06128816a1c781a57",
      "instance_type": "t2.micro",
      "ssh_username": "root",
      "ami_name": "hello_ami {{timestamp}}"
    }
  ]
}
`
	// Not a template: the validate hook must leave it alone.
	pcPackageJSON = `{"name": "site", "version": "1.0.0"}
`
)

// scratchRepo writes files (path: content) into a new git repository with
// everything staged, as a commit about to be made.
func scratchRepo(t *testing.T, env []string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func validLayout() map[string]string {
	return map[string]string{
		"packer/variables.pkr.hcl":     pcVariables,
		"packer/sources.pkr.hcl":       pcSources,
		"packer/build.pkr.hcl":         pcBuild,
		"packer/prod.pkrvars.hcl":      pcVarFile,
		"legacy/hello_ami.json":        pcJSON,
		"site/package.json":            pcPackageJSON,
		"packer/README.md":             "not a template\n",
		"other dir/with space.pkr.hcl": pcVariables + pcSources + strings.ReplaceAll(pcBuild, `"echo hello"`, `"echo spaces"`),
	}
}

func with(m map[string]string, name, content string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	out[name] = content
	return out
}

func TestPreCommitHooks(t *testing.T) {
	preCommit, err := exec.LookPath("pre-commit")
	if err != nil {
		t.Fatal("pre-commit is not installed: `make setup` installs Debian's package pre-commit (apt-get install pre-commit)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gitEnv := append(os.Environ(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	// try-repo takes a git repository (with uncommitted changes, it
	// commits them in a shadow copy). A source tree that is not one, such
	// as an unpacked archive, is committed into a scratch repository.
	if err := exec.Command("git", "-C", root, "rev-parse", "--show-toplevel").Run(); err != nil {
		repo := t.TempDir()
		cp := exec.Command("sh", "-c", `tar -C "$0" --exclude=./bin --exclude=./dist -cf - . | tar -C "$1" -xf - && cd "$1" && git init -q && git add -A && git commit -qm tree`, root, repo)
		cp.Env = gitEnv
		if out, err := cp.CombinedOutput(); err != nil {
			t.Fatalf("make a git repository of %s: %v\n%s", root, err, out)
		}
		root = repo
	}
	home := t.TempDir()
	env := append(gitEnv,
		"PRE_COMMIT_HOME="+filepath.Join(home, "pre-commit"),
		"PRE_COMMIT_COLOR=never",
		"XDG_STATE_HOME="+filepath.Join(home, "state"),
	)
	// tryRepo runs one hook over every file of repo and returns whether it
	// passed, with the output.
	tryRepo := func(t *testing.T, repo, hook string) (bool, string) {
		t.Helper()
		cmd := exec.Command(preCommit, "try-repo", root, hook, "--all-files", "--verbose")
		cmd.Dir, cmd.Env = repo, env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("pre-commit try-repo %s: %s", hook, time.Since(start).Round(time.Millisecond))
		if err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("pre-commit: %v\n%s", err, out)
			}
		}
		return err == nil, string(out)
	}

	// Broken variants, each in its own directory next to valid ones: one
	// run shows that every one is reported, at its file and line, and
	// that the valid directories are not.
	broken := with(validLayout(), "undeclared/variables.pkr.hcl", pcVariables)
	broken["undeclared/sources.pkr.hcl"] = pcSources
	broken["undeclared/build.pkr.hcl"] = strings.Replace(pcBuild, "amazon-ebs.ubuntu", "amazon-ebs.debian", 1)
	broken["typo/hello_ami.json"] = strings.Replace(pcJSON, `"instance_type"`, `"instanse_type"`, 1)
	broken["syntax/hello_ami.json"] = strings.Replace(pcJSON, `"t2.micro",`, `"t2.micro"`, 1)
	broken["badvars/variables.pkr.hcl"] = pcVariables
	broken["badvars/sources.pkr.hcl"] = pcSources
	broken["badvars/build.pkr.hcl"] = pcBuild
	broken["badvars/dev.pkrvars.hcl"] = "instance_type = \n"

	tests := []struct {
		name  string
		hook  string
		files map[string]string
		pass  bool
		want  []string // in the output
		not   []string // not in the output
	}{
		{name: "multi-file HCL2 directories, var file and JSON template", hook: "amibake-validate", files: validLayout(), pass: true,
			want: []string{"amibake validate", "Passed", "The configuration is valid."},
			not:  []string{"There is no source", "Error", "package.json", "README.md"}},
		{name: "broken variants", hook: "amibake-validate", files: broken,
			want: []string{"Failed",
				"undeclared/build.pkr.hcl line 2", "amazon-ebs.debian",
				"typo/hello_ami.json line 7", `"instanse_type"`, `Did you mean "instance_type"?`,
				"syntax/hello_ami.json line 8", "Missing comma",
				"badvars/dev.pkrvars.hcl line 1"},
			not: []string{"packer/", "legacy/", "other dir/", "package.json"}},
		{name: "formatted HCL2", hook: "amibake-fmt", files: validLayout(), pass: true,
			want: []string{"amibake fmt", "Passed"}},
		{name: "unformatted HCL2", hook: "amibake-fmt",
			files: with(validLayout(), "packer/variables.pkr.hcl", strings.Replace(pcVariables, `type    = string`, `type = string`, 1)),
			want:  []string{"Failed", "packer/variables.pkr.hcl", "-  type = string", "+  type    = string"},
			not:   []string{"sources.pkr.hcl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := scratchRepo(t, env, tt.files)
			pass, out := tryRepo(t, repo, tt.hook)
			// try-repo clones this repository afresh: the hook builds
			// amibake, and only amibake, before its first run.
			if !strings.Contains(out, "amibake-hook: building amibake (go build ./cmd/amibake") {
				t.Errorf("the hook did not build amibake from the clone:\n%s", out)
			}
			if pass != tt.pass {
				t.Errorf("passed = %v, want %v\n%s", pass, tt.pass, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}

}
