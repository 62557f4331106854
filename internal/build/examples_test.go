package build

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
)

// chdir runs the rest of the test in a fresh directory (manifests and
// debug keys are written to the working directory).
func chdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })
	return dir
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	wd, _ := os.Getwd()
	return wd + "/" + rel
}

func TestExamples(t *testing.T) {
	for _, path := range []string{
		"../../examples/tutorial/hello_ami.pkr.hcl",
	} {
		t.Run(strings.TrimPrefix(path, "../../examples/"), func(t *testing.T) {
			p := abs(t, path)
			e := newEnv(t, ec2sim.ZeroLatency())
			chdir(t)
			r := e.build(t, p, template.LoadOptions{}, Options{})
			if r.runErr != nil || !r.res.OK() {
				t.Fatalf("build failed: %v\n%s\n%s", r.runErr, r.out, r.err)
			}
			if _, err := os.Stat("manifest.json"); err == nil {
				var m struct {
					Builds []struct {
						Name       string `json:"name"`
						ArtifactID string `json:"artifact_id"`
					} `json:"builds"`
				}
				b, _ := os.ReadFile("manifest.json")
				if err := json.Unmarshal(b, &m); err != nil || len(m.Builds) == 0 {
					t.Errorf("manifest: %v\n%s", err, b)
				}
			}
			t.Logf("%s", r.out)
		})
	}
}
