package prune

import (
	"strings"
	"testing"
)

// The command-line parsers never panic and accept only what they can use.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"36h", "30d", "2w", "0d", "-1h", "d", "99999999999d", "1.5d", "1h30m", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseAge(s); err == nil && d <= 0 {
			t.Errorf("ParseAge(%q) = %v without error", s, d)
		}
	})
}

func FuzzParseGroupBy(f *testing.F) {
	for _, s := range []string{"name", "build", "all", "tag:Identifier", "tag:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGroupBy(s)
		if err == nil && g.Kind == GroupTag && g.TagKey == "" {
			t.Errorf("ParseGroupBy(%q): a tag group without a key", s)
		}
	})
}

// Stem never grows a name but by the wildcards it puts in, and a stem is
// stable.
func FuzzStem(f *testing.F) {
	for _, s := range []string{"hello_ami 1795653721", "app-2026-12-02T07-15-03Z", "web-20261202", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st := Stem(s)
		if len(strings.ReplaceAll(st, "*", "")) > len(s) {
			t.Errorf("Stem(%q) = %q", s, st)
		}
		if Stem(st) != st {
			t.Errorf("Stem is not stable on %q: %q then %q", s, st, Stem(st))
		}
	})
}
