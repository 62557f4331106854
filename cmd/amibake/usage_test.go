package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ui"
)

// TestUsageErrors: every kind of mistake on the command line comes back as
// a *usageError (exit 2), whatever cobra or the command said; other
// failures are not usage errors. Nothing here reaches AWS: the mistakes
// are found before.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string // in the error output
	}{
		{"unknown command", []string{"nosuch"}, 2, `unknown command "nosuch" for "amibake"`},
		{"unknown command with a suggestion", []string{"buidl"}, 2, "Did you mean this?\n\tbuild"},
		{"unknown root flag", []string{"--nosuch"}, 2, "unknown flag: --nosuch"},
		{"unknown flag, Packer-style command", []string{"build", "--nosuch", "t.json"}, 2, "unknown flag: --nosuch\nSee 'amibake build --help'."},
		{"unknown flag, cobra-parsed command", []string{"cleanup", "--nosuch"}, 2, "unknown flag: --nosuch\nSee 'amibake cleanup --help'."},
		{"bad flag value", []string{"cleanup", "--older-than", "soon"}, 2, `invalid argument "soon" for "--older-than"`},
		{"bad flag value, Packer-style command", []string{"build", "-parallel-builds=many", "t.json"}, 2, `invalid argument "many"`},
		{"argument to a command without any", []string{"version", "extra"}, 2, `unknown command "extra" for "amibake version"`},
		{"argument to cleanup", []string{"cleanup", "extra"}, 2, `unknown command "extra" for "amibake cleanup"`},
		{"argument to a completion script", []string{"completion", "bash", "extra"}, 2, `unknown command "extra"`},
		{"build without a template", []string{"build"}, 2, "build needs exactly one template path\nSee 'amibake build --help'."},
		{"build with two templates", []string{"build", "a.json", "b.json"}, 2, "build needs exactly one template path"},
		{"validate without a template", []string{"validate"}, 2, "validate needs at least one template path"},
		{"plan without a template", []string{"plan"}, 2, "plan needs exactly one template path"},
		{"inspect with two templates", []string{"inspect", "a.json", "b.json"}, 2, "inspect takes exactly one template path"},
		{"hcl2-upgrade without a template", []string{"hcl2_upgrade"}, 2, "hcl2-upgrade needs exactly one JSON template\nSee 'amibake hcl2-upgrade --help'."},
		{"prune with two templates", []string{"prune", "a.json", "b.json", "--keep", "1"}, 2, "prune takes at most one template\nSee 'amibake prune --help'."},
		// Mistakes in flag values that the commands check.
		{"bad -var", []string{"validate", "-var", "novalue", "t.json"}, 2, `invalid -var "novalue"`},
		{"bad -on-error", []string{"build", "-on-error=explode", "t.json"}, 2, "explode"},
		{"cleanup modes", []string{"cleanup", "--all", "--tagged"}, 2, "exactly one of --run-id ID, --all, --tagged"},
		{"prune without a keep rule", []string{"prune", "--tag", "a=b", "--dry-run"}, 2, "prune needs a keep rule"},
		// Not usage errors.
		{"missing template", []string{"validate", "testdata/no-such-template.json"}, 1, ""},
		{"help", []string{"build", "--help"}, 0, ""},
		{"help command", []string{"help", "nosuch"}, 0, ""},
		{"no command: help", nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ios, _, _, errOut := ui.Test()
			f := newFactory(ios)
			f.Getenv = func(string) string { return "" }
			err := execute(context.Background(), newRootCmd(f), tc.args)
			var ue *usageError
			if isUsage := errors.As(err, &ue); isUsage != (tc.code == 2) {
				t.Errorf("%v: error %v (%T): usage error %v, want %v", tc.args, err, err, isUsage, tc.code == 2)
			}
			if code := exitCode(errOut, f.Secrets, err); code != tc.code {
				t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, errOut)
			}
			if !strings.Contains(errOut.String(), tc.msg) {
				t.Errorf("%v: error output lacks %q:\n%s", tc.args, tc.msg, errOut)
			}
		})
	}
}

// TestRunExitCodes: main's run maps the errors to exit codes end to end.
func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"nosuch"}, 2},
		{[]string{"build"}, 2},
		{[]string{"version", "extra"}, 2},
		{[]string{"validate", "testdata/no-such-template.json"}, 1},
		{[]string{"version"}, 0},
	} {
		ios, _, _, errOut := ui.Test()
		if code := run(context.Background(), tc.args, ios); code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, errOut)
		}
	}
}
