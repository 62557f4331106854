package main

import (
	"context"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ui"
)

func TestCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		// Scripts for the shells the issue names.
		{[]string{"completion", "bash"}, []string{"__start_amibake"}},
		{[]string{"completion", "zsh"}, []string{"#compdef amibake"}},
		{[]string{"completion", "fish"}, []string{"complete -c amibake"}},
		// Template arguments complete to .json and .hcl files
		// (":8" is cobra's ShellCompDirectiveFilterFileExt).
		{[]string{"__complete", "validate", ""}, []string{"json\nhcl\n:8"}},
		{[]string{"__complete", "build", ""}, []string{"json\nhcl\n:8"}},
		// Subcommands complete too.
		{[]string{"__complete", "va"}, []string{"validate"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, out, errOut := ui.Test()
			f := newFactory(ios)
			root := newRootCmd(f)
			root.SetArgs(tt.args)
			if err := root.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%.400s", w, out.String())
				}
			}
		})
	}
}
