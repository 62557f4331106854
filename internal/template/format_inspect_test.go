package template

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestFormatHCLGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/fmt/messy.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	out, diags := FormatHCL(src, "messy.pkr.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	golden(t, "testdata/fmt/messy.formatted.golden", out)
	golden(t, "testdata/fmt/messy.diff.golden", []byte(UnifiedDiff("messy.pkr.hcl", src, out)))
	// Formatting is idempotent and formatted input has no diff.
	again, _ := FormatHCL(out, "x.pkr.hcl")
	if !bytes.Equal(again, out) {
		t.Error("formatting is not idempotent")
	}
	if d := UnifiedDiff("x", out, again); d != "" {
		t.Errorf("diff of equal texts: %q", d)
	}
	if _, diags := FormatHCL([]byte("a = {"), "bad.pkr.hcl"); !diags.HasErrors() {
		t.Error("FormatHCL accepted a syntax error")
	}
}

func TestUnifiedDiffHunks(t *testing.T) {
	var a, b []string
	for i := 0; i < 30; i++ {
		a = append(a, fmt.Sprintf("line %d", i))
		b = append(b, fmt.Sprintf("line %d", i))
	}
	b[2], b[25] = "changed early", "changed late"
	d := UnifiedDiff("f", []byte(strings.Join(a, "\n")+"\n"), []byte(strings.Join(b, "\n")+"\n"))
	if n := strings.Count(d, "@@ -"); n != 2 {
		t.Errorf("%d hunks, want 2:\n%s", n, d)
	}
	if !strings.Contains(d, "@@ -1,6 +1,6 @@\n line 0\n line 1\n-line 2\n+changed early\n line 3\n") {
		t.Errorf("first hunk:\n%s", d)
	}
}

func TestInspectGolden(t *testing.T) {
	cases := []struct {
		name, path string
		vars       map[string]string
	}{
		{"features", "testdata/hcl2/features", map[string]string{"password": "s3cr3t-value"}},
		{"data", "testdata/hcl2/data", nil},
		{"multi", "testdata/hcl2/multi", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := mustLoad(t, tc.path, LoadOptions{Cwd: "/cwd", Vars: tc.vars})
			var buf bytes.Buffer
			if err := WriteInspect(&buf, tmpl); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), "s3cr3t-value") {
				t.Errorf("sensitive value in inspect output:\n%s", buf.String())
			}
			golden(t, "testdata/inspect/"+tc.name+".golden", buf.Bytes())
		})
	}
}
