package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/bake"
	"github.com/amibake/amibake/internal/interrupt"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/reaper"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// buildOptions are the parsed flags and argument of `amibake build`.
type buildOptions struct {
	tf              templateFlags
	parallel        int
	onError         string
	force           bool
	debug           bool
	timestampUI     bool
	color           bool
	machineReadable bool
	reuse, rebuild  bool
	warnUndeclared  bool
	// Packer flags about what amibake does not have (plugins) or always
	// does (dependency-order evaluation): accepted, and said so in -help.
	ignorePrerelease, sequential bool
	path                         string // the template
}

// newBuildCmd is `amibake build`; runF, when set, runs instead of the build
// (tests of flag parsing).
func newBuildCmd(f *factory, runF func(context.Context, *buildOptions) error) *cobra.Command {
	if runF == nil {
		runF = func(ctx context.Context, o *buildOptions) error { return runBuild(ctx, f, o, o.path) }
	}
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [flags] TEMPLATE",
		Short: "Build the AMIs a template describes",
		Long: `Build the AMIs of a template (legacy JSON, an HCL2 file or a directory of HCL2
files): launch an instance from the source AMI, provision it over SSH, create the
AMI and remove everything temporary. Exit status 0 only when every build succeeded.

The AMI is tagged amibake:input-digest with a digest of everything that goes into
it (source AMI, builder options, provisioners, the files they upload). With
--reuse, or reuse = true in an HCL2 build block, a build whose digest matches an
existing AMI launches nothing: the AMI is reused (copied to the ami_regions that
lack it) and the post-processors run on it. JSON templates have no build block:
use --reuse there. --rebuild bakes regardless.

Packer's single-dash flags (-var, -only, -on-error=abort, ...) work.`,
		Args:               cobra.ArbitraryArgs,
		DisableFlagParsing: true,
	}
	o.tf.register(cmd)
	o.register(cmd.Flags())
	cmd.RunE = runPacker(wantArgs(1, 1, "build needs exactly one template path"), func(cmd *cobra.Command, args []string) error {
		o.path = args[0]
		return runF(cmd.Context(), o)
	})
	return cmd
}

// register adds the flags of build.
// JSON templates have no build block for reuse = true: --reuse is the way
// to turn reuse on there.
func (o *buildOptions) register(fs *pflag.FlagSet) {
	fs.IntVar(&o.parallel, "parallel-builds", 0, "number of builds to run at once (0: all)")
	fs.StringVar(&o.onError, "on-error", "cleanup", "what to do when a build fails: cleanup, abort, ask or run-cleanup-provisioner")
	fs.BoolVar(&o.force, "force", false, "deregister an existing AMI with the same name; start the manifest afresh")
	fs.BoolVar(&o.debug, "debug", false, "build one at a time, pausing before each step; the SSH key is written to ec2_<build>.pem (0600) until cleanup")
	fs.BoolVar(&o.timestampUI, "timestamp-ui", false, "prefix every line of output with a timestamp")
	fs.BoolVar(&o.color, "color", true, "colour the output (NO_COLOR also disables it)")
	fs.BoolVar(&o.machineReadable, "machine-readable", false, "print Packer's machine-readable output")
	fs.BoolVar(&o.reuse, "reuse", false, "reuse an AMI baked from the same inputs (tag amibake:input-digest) instead of baking (reuse = true in an HCL2 build block does the same for that build)")
	fs.BoolVar(&o.warnUndeclared, "warn-on-undeclared-var", false, "warn about variables set in var files but not declared in the template")
	fs.BoolVar(&o.ignorePrerelease, "ignore-prerelease-plugins", false, "accepted for Packer compatibility: amibake has no plugins to load")
	fs.BoolVar(&o.sequential, "use-sequential-evaluation", false, "accepted for Packer compatibility: amibake evaluates locals and data sources in dependency order, which gives the same values")
	fs.BoolVar(&o.rebuild, "rebuild", false, "bake even when an AMI with the same input digest exists (overrides --reuse and reuse = true)")
}

func runBuild(ctx context.Context, f *factory, o *buildOptions, path string) error {
	onError, err := pipeline.ParseOnError(o.onError)
	if err != nil {
		return &usageError{err}
	}
	if o.parallel < 0 {
		return &usageError{fmt.Errorf("invalid -parallel-builds %d: want 0 (no limit) or more", o.parallel)}
	}
	lo, err := o.tf.loadOptions(f)
	if err != nil {
		return err
	}
	if !o.color {
		f.IO.SetColorEnabled(false)
	}
	root := ui.New(f.IO, ui.Options{MachineReadable: o.machineReadable, Timestamps: o.timestampUI, Secrets: f.Secrets})

	// One load, with the data sources' real values, under the build's
	// context and AWS state.
	shared := f.awsShared()
	t, diags := bake.Load(ctx, path, lo, shared)
	if t != nil {
		f.Secrets.Add(t.Sensitive...)
	}
	errOut := &ui.MaskingWriter{W: f.IO.ErrOut, Secrets: f.Secrets}
	files := map[string]*hcl.File{}
	if t != nil {
		files = t.Files
	}
	if diags.HasErrors() {
		_ = template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled())
		return &exitError{code: 1}
	}
	// Packer's build shows the template's warnings; undeclared variables
	// only with -warn-on-undeclared-var.
	if !o.warnUndeclared {
		diags = dropUndeclaredWarnings(diags)
	}
	if len(diags) > 0 {
		_ = template.WriteDiagnostics(errOut, files, diags, f.IO.ColorEnabled())
	}

	runUUID := f.Getenv("PACKER_RUN_UUID")
	if runUUID == "" {
		runUUID = uuid.NewString()
	}
	lease, err := ledger.LeaseFromEnv(f.Getenv)
	if err != nil {
		return &usageError{err}
	}
	ledgerDir := ledger.DefaultDir(f.Getenv)
	warnDeadRuns(root, ledgerDir)
	journal, err := bake.StartJournal(ledgerDir, path, f.Secrets)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer journal.Close()
	runID := journal.RunID()
	f.Log.Debug("run", "id", runID, "packer_run_uuid", runUUID, "journal", journal.Path())

	// The lease is the run's proof of life on its resources, for a
	// `cleanup --tagged` on another machine; it runs until the cleanups
	// are done, not only until an interrupt.
	keeper := &reaper.Keeper{Dir: ledgerDir, RunID: runID, Lease: lease, Log: f.Log}
	keeperCtx, stopKeeper := context.WithCancel(context.WithoutCancel(ctx))
	keeperDone := make(chan struct{})
	go func() { defer close(keeperDone); keeper.Run(keeperCtx) }()
	stopLease := func() { stopKeeper(); <-keeperDone }
	defer stopLease()

	// main's interrupt.Context cancels ctx on a first SIGINT/SIGTERM (the
	// builds clean up) and the cleanup context on a second (they stop).
	cleanupCtx := interrupt.Cleanup(ctx)
	stopInterruptMsg := context.AfterFunc(ctx, func() {
		root.Error("Interrupt received: cancelling the builds and cleaning up (interrupt again to stop the cleanups)...")
	})
	defer stopInterruptMsg()
	stopCleanupMsg := context.AfterFunc(cleanupCtx, func() {
		root.Error("Second interrupt: stopping the cleanups.")
	})
	defer stopCleanupMsg()

	res, bdiags, err := bake.Run(ctx, t, root, bake.Options{
		Only: o.tf.only, Except: o.tf.except, ParallelBuilds: o.parallel, OnError: onError, Force: o.force, Debug: o.debug,
		RunID: runID, RunUUID: runUUID, Ledger: journal, Getenv: f.Getenv, Log: f.Log,
		CleanupContext: cleanupCtx,
		OnSession: func(build string, sess *awsclient.Session) {
			keeper.Register(build, func(region string) reaper.TagAPI { return sess.EC2(region) })
		},
		Reuse: o.reuse, Rebuild: o.rebuild, Shared: shared,
	})
	if len(bdiags) > 0 {
		_ = template.WriteDiagnostics(errOut, files, bdiags, f.IO.ColorEnabled())
	}
	stopLease()
	// The AMIs are the product: tell the journal they stay on purpose, and
	// lift the lease from them so that no --tagged sweep takes them.
	journal.Keep(res, func(build, region string, ids []string) {
		if lerr := keeper.Release(cleanupCtx, build, region, ids); lerr != nil {
			root.Error(fmt.Sprintf("Warning: %v; a `cleanup --tagged` may take AMI %s for a leftover after its lease: remove the tag with aws ec2 delete-tags --region %s --resources %s --tags Key=%s",
				lerr, ids[0], region, strings.Join(ids, " "), ledger.TagLeaseUntil))
		}
	})
	status, _ := journal.End(ctx, res, err)
	succeeded := status == ledger.StatusSucceeded
	if cleanupCtx.Err() != nil {
		// Read back what the stopped cleanups left, with the command that
		// removes it.
		if run, rerr := journal.Read(); rerr == nil {
			fmt.Fprint(errOut, interrupt.LeftReport(run))
		} else {
			fmt.Fprintf(errOut, "Cleanup was interrupted and the run journal cannot be read (%v). Remove what is left with:\n  %s\n", rerr, interrupt.CleanupCommand(runID))
		}
	}
	if (onError == pipeline.OnErrorAbort || onError == pipeline.OnErrorRunCleanupProvisioner) && err == nil && ctx.Err() == nil && !res.OK() {
		// What was left on purpose, and the command that removes it.
		if run, rerr := journal.Read(); rerr == nil {
			fmt.Fprint(errOut, interrupt.AbortReport(run, o.onError))
		} else {
			fmt.Fprintf(errOut, "Cleanup was skipped (-on-error=%s); run %s. Remove what is left with:\n  %s\n", o.onError, runID, interrupt.CleanupCommand(runID))
		}
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if succeeded {
		return nil
	}
	if ctx.Err() != nil {
		return &exitError{code: 130}
	}
	if !res.OK() {
		return &exitError{code: 1}
	}
	return nil
}

// warnDeadRuns says, in one line, when runs whose process is gone still
// hold resources, with the command that removes them.
func warnDeadRuns(root *ui.Root, dir string) {
	runs, _ := ledger.List(dir)
	n, res := 0, 0
	for _, r := range runs {
		if r.Dead() {
			n++
			res += len(r.Left())
		}
	}
	if n > 0 {
		root.Error(fmt.Sprintf("Warning: %d earlier run(s) whose process is gone left %d resource(s) behind; remove them with: amibake cleanup --all", n, res))
	}
}
