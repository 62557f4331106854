package main

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/amibake/amibake/internal/ui"
)

// Flag parsing is tested apart from behaviour: each command is built with
// a run function that captures its options, under a root with only that
// command, and run through execute as main runs it (Packer's single-dash
// flags are rewritten there and in the command's own parsing).

// parseCase is one command line and the options it must parse into.
type parseCase[O any] struct {
	name string
	args []string
	want O
}

func checkParse[O any](t *testing.T, newCmd func(*factory, func(context.Context, *O) error) *cobra.Command, cases []parseCase[O]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ios, _, _, errOut := ui.Test()
			f := newFactory(ios)
			f.Getenv = func(string) string { return "" }
			var got *O
			root := rootWith(f, newCmd(f, func(_ context.Context, o *O) error {
				got = o
				return nil
			}))
			if err := execute(context.Background(), root, tc.args); err != nil {
				t.Fatalf("%v: %v\n%s", tc.args, err, errOut)
			}
			if got == nil {
				t.Fatalf("%v: the run function was not called", tc.args)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("%v parsed into\n%+v\nwant\n%+v", tc.args, *got, tc.want)
			}
		})
	}
}

// changed returns base changed by set: the defaults plus what a case sets.
func changed[O any](base O, set func(*O)) O {
	set(&base)
	return base
}

func TestBuildOptions(t *testing.T) {
	def := buildOptions{onError: "cleanup", color: true, path: "t.json"}
	checkParse(t, newBuildCmd, []parseCase[buildOptions]{
		{"template only", []string{"build", "t.json"}, def},
		{"every flag, Packer's single dash", []string{"build",
			"-var", "a=b", "-var=c=d", "-var-file=x.pkrvars.hcl", "-only=a,b", "-except", "c",
			"-parallel-builds=2", "-on-error=abort", "-force", "-debug", "-timestamp-ui", "-color=false",
			"-machine-readable", "-reuse", "-rebuild", "-warn-on-undeclared-var",
			"-ignore-prerelease-plugins", "-use-sequential-evaluation", "t.json"},
			changed(def, func(o *buildOptions) {
				o.tf = templateFlags{vars: []string{"a=b", "c=d"}, varFiles: []string{"x.pkrvars.hcl"}, only: []string{"a", "b"}, except: []string{"c"}}
				o.parallel, o.onError, o.force, o.debug, o.timestampUI, o.color = 2, "abort", true, true, true, false
				o.machineReadable, o.reuse, o.rebuild, o.warnUndeclared = true, true, true, true
				o.ignorePrerelease, o.sequential = true, true
			})},
		{"double dash", []string{"build", "--var", "a=b", "--on-error", "ask", "--parallel-builds", "1", "t.json"},
			changed(def, func(o *buildOptions) { o.tf.vars, o.onError, o.parallel = []string{"a=b"}, "ask", 1 })},
		{"flags after the template", []string{"build", "t.json", "-force"},
			changed(def, func(o *buildOptions) { o.force = true })},
		{"-machine-readable before the command, as Packer takes it", []string{"-machine-readable", "build", "t.json"},
			changed(def, func(o *buildOptions) { o.machineReadable = true })},
		{"nothing rewritten after --", []string{"build", "-force", "--", "-var"},
			changed(def, func(o *buildOptions) { o.force, o.path = true, "-var" })},
	})
}

func TestValidateOptions(t *testing.T) {
	checkParse(t, newValidateCmd, []parseCase[validateOptions]{
		{"one template", []string{"validate", "t.json"}, validateOptions{paths: []string{"t.json"}}},
		{"several templates, as pre-commit passes them", []string{"validate", "a.pkr.hcl", "b.json"},
			validateOptions{paths: []string{"a.pkr.hcl", "b.json"}}},
		{"every flag, Packer's single dash", []string{"validate", "-syntax-only", "-json", "-evaluate-datasources",
			"-no-color", "-no-warn-undeclared-var", "-machine-readable", "-use-sequential-evaluation",
			"-var", "a=b", "-var-file", "x.pkrvars.hcl", "-only=a", "-except=b", "t.json"},
			validateOptions{
				tf:         templateFlags{vars: []string{"a=b"}, varFiles: []string{"x.pkrvars.hcl"}, only: []string{"a"}, except: []string{"b"}},
				syntaxOnly: true, asJSON: true, evalData: true, noColor: true, noWarnUndef: true, machine: true, sequential: true,
				paths: []string{"t.json"},
			}},
		{"double dash", []string{"validate", "--syntax-only", "--var=a=b", "t.json"},
			validateOptions{tf: templateFlags{vars: []string{"a=b"}}, syntaxOnly: true, paths: []string{"t.json"}}},
	})
}

func TestPlanOptions(t *testing.T) {
	def := planOptions{color: true, path: "t.json"}
	checkParse(t, newPlanCmd, []parseCase[planOptions]{
		{"template only", []string{"plan", "t.json"}, def},
		{"every flag, single dash", []string{"plan", "-json", "-color=false", "-reuse", "-rebuild",
			"-var=a=b", "-var-file=x.pkrvars.hcl", "-only=a", "-except=b", "t.json"},
			changed(def, func(o *planOptions) {
				o.tf = templateFlags{vars: []string{"a=b"}, varFiles: []string{"x.pkrvars.hcl"}, only: []string{"a"}, except: []string{"b"}}
				o.asJSON, o.color, o.reuse, o.rebuild = true, false, true, true
			})},
		{"double dash", []string{"plan", "--json", "--reuse", "t.json"},
			changed(def, func(o *planOptions) { o.asJSON, o.reuse = true, true })},
	})
}

func TestInspectOptions(t *testing.T) {
	checkParse(t, newInspectCmd, []parseCase[inspectOptions]{
		{"template only", []string{"inspect", "t.json"}, inspectOptions{path: "t.json"}},
		{"single dash", []string{"inspect", "-machine-readable", "-var", "a=b", "-var-file=x.pkrvars.hcl", "t.json"},
			inspectOptions{tf: templateFlags{vars: []string{"a=b"}, varFiles: []string{"x.pkrvars.hcl"}}, machine: true, path: "t.json"}},
		{"double dash", []string{"inspect", "--machine-readable", "t.json"}, inspectOptions{machine: true, path: "t.json"}},
	})
}

func TestFmtOptions(t *testing.T) {
	def := fmtOptions{write: true, paths: []string{}} // pflag leaves an empty list
	checkParse(t, newFmtCmd, []parseCase[fmtOptions]{
		// No path formats the current directory: the run decides that.
		{"no path", []string{"fmt"}, def},
		{"every flag, single dash", []string{"fmt", "-check", "-diff", "-write=false", "-recursive", "a", "b"},
			fmtOptions{check: true, diff: true, recursive: true, paths: []string{"a", "b"}}},
		{"double dash", []string{"fmt", "--diff", "dir"}, changed(def, func(o *fmtOptions) { o.diff, o.paths = true, []string{"dir"} })},
		{"standard input", []string{"fmt", "-"}, changed(def, func(o *fmtOptions) { o.paths = []string{"-"} })},
	})
}

func TestHCL2UpgradeOptions(t *testing.T) {
	checkParse(t, newHCL2UpgradeCmd, []parseCase[hcl2UpgradeOptions]{
		{"template only", []string{"hcl2-upgrade", "t.json"}, hcl2UpgradeOptions{path: "t.json"}},
		{"Packer's name and single dash", []string{"hcl2_upgrade", "-output-file=out.pkr.hcl", "-with-annotations", "t.json"},
			hcl2UpgradeOptions{output: "out.pkr.hcl", annotate: true, path: "t.json"}},
		{"standard output", []string{"hcl2-upgrade", "--output-file", "-", "t.json"}, hcl2UpgradeOptions{output: "-", path: "t.json"}},
	})
}

func TestVersionOptions(t *testing.T) {
	checkParse(t, newVersionCmd, []parseCase[versionOptions]{
		{"plain", []string{"version"}, versionOptions{}},
		{"single dash", []string{"version", "-machine-readable"}, versionOptions{machine: true}},
		{"global flag first, as Packer takes it", []string{"-machine-readable", "version"}, versionOptions{machine: true}},
	})
}

func TestCleanupOptions(t *testing.T) {
	def := cleanupOptions{olderThan: 2 * time.Hour, pruneAfter: 7 * 24 * time.Hour}
	checkParse(t, newCleanupCmd, []parseCase[cleanupOptions]{
		{"run id, single dash", []string{"cleanup", "-run-id", "r1", "-dry-run"},
			changed(def, func(o *cleanupOptions) { o.runID, o.dryRun = "r1", true })},
		{"all", []string{"cleanup", "--all", "--prune-after", "0s", "--ledger-dir", "/l", "--keep-failed-images"},
			changed(def, func(o *cleanupOptions) {
				o.all, o.pruneAfter, o.pruneAfterSet, o.ledgerDir, o.keepFailedImages = true, 0, true, "/l", true
			})},
		{"tagged", []string{"cleanup", "--tagged", "--older-than", "3h", "--region", "us-east-1,eu-west-1", "--region", "ap-northeast-1"},
			changed(def, func(o *cleanupOptions) {
				o.tagged, o.olderThan, o.olderThanSet = true, 3*time.Hour, true
				o.regions = []string{"us-east-1", "eu-west-1", "ap-northeast-1"}
			})},
		// A default given explicitly counts as given: it goes with --tagged only.
		{"default older-than given", []string{"cleanup", "--run-id", "r1", "--older-than=2h"},
			changed(def, func(o *cleanupOptions) { o.runID, o.olderThanSet = "r1", true })},
		{"access overrides", []string{"cleanup", "-run-id=r1", "-profile", "ci", "-endpoint-url", "http://127.0.0.1:1"},
			changed(def, func(o *cleanupOptions) { o.runID, o.profile, o.endpointURL = "r1", "ci", "http://127.0.0.1:1" })},
		{"deprecated --include-images still parses", []string{"cleanup", "--all", "--include-images"},
			changed(def, func(o *cleanupOptions) { o.all, o.includeImages = true, true })},
	})
}

func TestPruneOptions(t *testing.T) {
	def := pruneOptions{groupBy: "name", keep: -1, args: []string{}} // pflag leaves an empty list
	checkParse(t, newPruneCmd, []parseCase[pruneOptions]{
		{"selection and keep rule", []string{"prune", "--tag", "App=web", "--tag", "Env=prod", "--keep", "3"},
			changed(def, func(o *pruneOptions) { o.tags, o.keep = []string{"App=web", "Env=prod"}, 3 })},
		{"every flag, single dash", []string{"prune", "-name", "web-*", "-group-by", "tag:App", "-keep=0", "-keep-within", "14d",
			"-region", "us-east-1,eu-west-1", "-include-shared", "-dry-run", "-json", "-yes", "-deprecate"},
			changed(def, func(o *pruneOptions) {
				o.name, o.groupBy, o.keep, o.keepWithin = "web-*", "tag:App", 0, "14d"
				o.regions = []string{"us-east-1", "eu-west-1"}
				o.includeShared, o.dryRun, o.asJSON, o.yes, o.deprecate = true, true, true, true, true
			})},
		{"a template with its variables", []string{"prune", "-var", "a=b", "-only=app.*", "--all-regions", "--keep", "5", "t.json"},
			changed(def, func(o *pruneOptions) {
				o.tf = templateFlags{vars: []string{"a=b"}, only: []string{"app.*"}}
				o.allRegions, o.keep, o.args = true, 5, []string{"t.json"}
			})},
	})
}
