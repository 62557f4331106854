package main

import (
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ui"
)

// packerFlags are the single-dash flags Packer 1.16 documents for each
// command (https://developer.hashicorp.com/packer/docs/commands), with a
// value where the flag takes one. Each must parse; the template path that
// follows does not exist, so the commands stop right after parsing.
var packerFlags = map[string][]string{
	"build": {"-color=false", "-debug", "-except=a,b", "-only=a", "-force", "-machine-readable",
		"-on-error=abort", "-parallel-builds=2", "-timestamp-ui", "-var=a=b", "-var-file=x.pkrvars.hcl",
		"-warn-on-undeclared-var", "-ignore-prerelease-plugins", "-use-sequential-evaluation"},
	"validate": {"-syntax-only", "-evaluate-datasources", "-no-warn-undeclared-var", "-except=a", "-only=a",
		"-var=a=b", "-var-file=x.pkrvars.hcl", "-machine-readable", "-use-sequential-evaluation"},
	"inspect": {"-var=a=b", "-var-file=x.pkrvars.hcl", "-machine-readable"},
	"fmt":     {"-check", "-diff", "-write=false", "-recursive"},
	"version": {"-machine-readable"},
	// amibake's own commands take the same style.
	"plan":         {"-color=false", "-var=a=b", "-var-file=x.pkrvars.hcl", "-only=a", "-except=a", "-json"},
	"hcl2-upgrade": {"-output-file=out.pkr.hcl", "-with-annotations"},
}

func TestPackerSingleDashFlags(t *testing.T) {
	for cmd, flags := range packerFlags {
		for _, fl := range flags {
			for _, form := range []string{fl, "-" + fl} {
				t.Run(cmd+" "+form, func(t *testing.T) {
					_, _, errOut := runTemplateCmd(t, nil, cmd, form, "testdata/no-such-template.json")
					if strings.Contains(errOut, "unknown flag") || strings.Contains(errOut, "unknown shorthand") || strings.Contains(errOut, "bad flag syntax") {
						t.Errorf("%s %s: %s", cmd, form, errOut)
					}
				})
			}
		}
	}
	// Flags that cobra parses itself (cleanup) and the root command.
	for _, args := range [][]string{
		{"cleanup", "-run-id", "r", "-dry-run"},
		{"cleanup", "-all", "-dry-run=true"},
	} {
		if _, _, errOut := runTemplateCmd(t, map[string]string{"XDG_STATE_HOME": t.TempDir()}, args...); strings.Contains(errOut, "unknown") {
			t.Errorf("%v: %s", args, errOut)
		}
	}
	for _, v := range []string{"-version", "--version", "-v"} {
		code, out, errOut := runTemplateCmd(t, nil, v)
		// The same line as `amibake version` (issue: one version text).
		if code != 0 || strings.TrimSpace(out) != versionLine() {
			t.Errorf("%s: exit %d\n%s%s", v, code, out, errOut)
		}
	}
}

func TestNormalizeCommandLine(t *testing.T) {
	ios, _, _, _ := ui.Test()
	root := newRootCmd(newFactory(ios))
	for _, tc := range []struct{ in, want string }{
		{"-version", "--version"},
		{"-machine-readable build t.json", "build --machine-readable t.json"},
		{"cleanup -run-id x -dry-run", "cleanup --run-id x --dry-run"},
		{"cleanup -- -run-id", "cleanup -- -run-id"},
		{"build -var a=b -x t.json", "build --var a=b -x t.json"},
	} {
		if got := strings.Join(normalizeCommandLine(root, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
