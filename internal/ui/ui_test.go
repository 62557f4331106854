package ui

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s:\n--- got ---\n%s--- want ---\n%s", path, got, want)
	}
}

func script(u UI, root *Root) {
	u.Say("Prevalidating AMI Name: hello_ami 1529395142")
	u.Message("Found Image ID: ami-06128816a1c781a57")
	u.Say("Creating temporary keypair: amibake_0123")
	u.Message("two\nlines, with a comma")
	u.Error("Error launching source instance: secret-key-value leaked?")
	u.Machine("artifact", "0", "id", "ap-northeast-1:ami-1")
	root.Say("Build 'amazon-ebs' finished.")
}

func TestHumanOutput(t *testing.T) {
	ios, _, out, errOut := Test()
	s := &Secrets{}
	s.Add("secret-key-value")
	root := New(ios, Options{Secrets: s})
	script(root.ForBuild("amazon-ebs"), root)
	golden(t, "human", "stdout:\n"+out.String()+"stderr:\n"+errOut.String())
}

func TestColorAndTimestamps(t *testing.T) {
	ios, _, out, _ := Test()
	ios.SetColorEnabled(true)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	root := New(ios, Options{Timestamps: true, Now: func() time.Time { return now }})
	root.ForBuild("first").Say("one")
	root.ForBuild("second").Message("two")
	golden(t, "color", out.String())
}

func TestMachineReadable(t *testing.T) {
	ios, _, out, errOut := Test()
	s := &Secrets{}
	s.Add("secret-key-value")
	root := New(ios, Options{MachineReadable: true, Secrets: s, Now: func() time.Time { return time.Unix(1529395142, 0) }})
	script(root.ForBuild("amazon-ebs"), root)
	if errOut.Len() != 0 {
		t.Errorf("machine-readable mode wrote to stderr: %q", errOut)
	}
	golden(t, "machine", out.String())
}

func TestSecretsMasking(t *testing.T) {
	s := &Secrets{}
	s.Add("", "x", "abc", "abcdef", "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\n-----END KEY-----")
	tests := map[string]string{
		"abcdef":                 Redacted,
		"xx abc":                 "xx " + Redacted,
		"line AAAABBBBCCCCDDDD!": "line " + Redacted + "!",
		"plain x":                "plain x",
	}
	for in, want := range tests {
		if got := s.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
	var nilSecrets *Secrets
	if nilSecrets.Mask("a") != "a" {
		t.Error("nil Secrets must pass text through")
	}
}

func TestAskWithoutTerminal(t *testing.T) {
	ios, _, _, _ := Test()
	root := New(ios, Options{})
	if _, err := root.ForBuild("b").Ask(context.Background(), "continue? "); !errors.Is(err, ErrNoPrompt) {
		t.Fatalf("Ask without a terminal = %v, want ErrNoPrompt", err)
	}
}

// TestCanPrompt: a prompt needs both terminals, and CI comes from the
// environment the streams were given (the command's), never the process's.
func TestCanPrompt(t *testing.T) {
	t.Setenv("CI", "true") // the process's: must not count
	for _, tc := range []struct {
		name          string
		stdin, stdout bool
		env           map[string]string
		want          bool
	}{
		{"terminal", true, true, nil, true},
		{"terminal, CI=false", true, true, map[string]string{"CI": "false"}, true},
		{"terminal, CI=0", true, true, map[string]string{"CI": "0"}, true},
		{"terminal in CI", true, true, map[string]string{"CI": "true"}, false},
		{"terminal in CI=1", true, true, map[string]string{"CI": "1"}, false},
		{"stdin not a terminal", false, true, nil, false},
		{"stdout not a terminal", true, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ios, _, _, _ := Test()
			ios.SetStdinTTY(tc.stdin)
			ios.SetStdoutTTY(tc.stdout)
			ios.SetGetenv(func(k string) string { return tc.env[k] })
			if got := ios.CanPrompt(); got != tc.want {
				t.Errorf("CanPrompt() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestColorLegend: Packer's legend line is in the build's colour, with
// no prefix, and the empty line after it is not coloured.
func TestColorLegend(t *testing.T) {
	ios, _, out, _ := Test()
	ios.SetColorEnabled(true)
	root := New(ios, Options{})
	first, second := root.ForBuild("first"), root.ForBuild("second")
	root.InColorOf(first, "first: output will be in this color.")
	root.InColorOf(second, "second: output will be in this color.")
	root.Message("")
	want := "\033[1;32mfirst: output will be in this color.\033[0m\n\033[1;36msecond: output will be in this color.\033[0m\n\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}
