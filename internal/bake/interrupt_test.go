package bake

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// TestInterruptDuringEachStep cancels the build (as SIGINT does) just as
// each step starts, and checks that the build fails and leaves nothing
// behind, not even an AMI.
func TestInterruptDuringEachStep(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	path := abs(t, "../../examples/tutorial/hello_ami.json")
	chdir(t)
	tmpl, diags := template.Load(path, template.LoadOptions{Env: e.getenv})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, _ := amazonebs.NewConfig(tmpl.Builds[0].Source)
	var names []string
	for _, s := range amazonebs.Steps(cfg) {
		if !strings.HasPrefix(s.Name(), "skip ") {
			names = append(names, s.Name())
		}
	}
	for _, step := range names {
		t.Run(step, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var once sync.Once
			ios, _, out, errOut := ui.Test()
			res, _, err := Run(ctx, tmpl, ui.New(ios, ui.Options{}), Options{
				RunID: "run-int", Getenv: e.getenv,
				BeforeStep: func(_ context.Context, _, name string) error {
					if name == step {
						once.Do(cancel)
					}
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() {
				t.Fatalf("the build survived an interrupt during %q:\n%s", step, out)
			}
			if !strings.Contains(res.Builds[0].Err.Error(), "context canceled") {
				t.Errorf("error = %v", res.Builds[0].Err)
			}
			inv := e.srv.Inventory()
			if !inv.Empty() {
				t.Errorf("left after an interrupt during %q: %+v\n%s%s", step, inv.Leftovers(), out, errOut)
			}
			if imgs := inv.Regions["ap-northeast-1"].Images; len(imgs) > 0 {
				t.Errorf("AMIs left after an interrupt during %q: %v\n%s", step, imgs, out)
			}
		})
	}
}
