package main

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/amibake/amibake/internal/ui"
)

// TestValidateEvaluateDataSources evaluates the amazon-ami data source
// against the simulator only with --evaluate-datasources (Packer's
// -evaluate-datasources), and reports an AMI that does not exist at the
// data block.
func TestValidateEvaluateDataSources(t *testing.T) {
	path := repoPath(t, "cmd/amibake/testdata/validate/datasource.pkr.hcl")
	goldenPath := repoPath(t, "cmd/amibake/testdata/validate/datasource_missing.golden")
	srv := buildEnv(t, true)
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		describes bool
		stdout    string
		golden    bool
	}{
		{"not evaluated", nil, 0, false, "The configuration is valid.\n", false},
		{"evaluated", []string{"--evaluate-datasources"}, 0, true, "The configuration is valid.\n", false},
		{"single dash", []string{"-evaluate-datasources"}, 0, true, "The configuration is valid.\n", false},
		{"no such AMI", []string{"-evaluate-datasources", "-var", "image_name=no-such-image-*"}, 1, true, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			ios, _, out, errOut := ui.Test()
			f := newFactory(ios)
			f.Getenv = os.Getenv
			root := newRootCmd(f)
			root.SetArgs(append(append([]string{"validate", "-no-color"}, tc.args...), path))
			code := exitCode(errOut, f.Secrets, root.ExecuteContext(context.Background()))
			if code != tc.code || out.String() != tc.stdout {
				t.Fatalf("exit %d (want %d), stdout %q\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if got := srv.Calls()["DescribeImages"] > 0; got != tc.describes {
				t.Errorf("DescribeImages called: %v, want %v (calls %v)", got, tc.describes, srv.Calls())
			}
			if tc.golden {
				// The path is the machine's: keep the file's base name.
				got := regexp.MustCompile(`\S*/(datasource\.pkr\.hcl)`).ReplaceAllString(errOut.String(), "$1")
				goldenFile(t, goldenPath, []byte(got))
			}
		})
	}
}
