package amazonebs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// BuilderID is Packer's artifact builder id for amazon-ebs.
const BuilderID = "mitchellh.amazonebs"

// Builder runs one amazon-ebs build.
type Builder struct {
	Config *Config
	// Name is the build's full name (log prefix, tags, -debug key file).
	Name string
	// PackerName is Packer's packer_build_name (the source's name in
	// HCL2): the artifact's build name (manifest "name") and the -debug
	// key file; Name when empty.
	PackerName string
	RunID      string
	RunUUID    string
	UI         ui.UI
	Secrets    *ui.Secrets
	Ledger     ledger.Recorder
	// Shared is the run's shared AWS state (one rate limiter); nil makes one.
	Shared *awsclient.Shared
	// Session, when set, is the build's AWS session already opened with
	// OpenSession (by whoever decided to bake), so the credentials are not
	// checked twice; nil opens one.
	Session *awsclient.Session
	// SourceImage, when set, is the source AMI already resolved in the
	// build region for this Config; the source step then uses it instead
	// of describing it again. nil resolves it.
	SourceImage *types.Image
	Force       bool
	Debug       bool
	// OnError and Hooks decorate the step runner (-on-error, -debug).
	OnError pipeline.OnError
	Hooks   pipeline.Hooks
	// CleanupContext is the parent of the cleanups' context.
	CleanupContext context.Context
	Getenv         func(string) string
	Log            *slog.Logger
	Now            func() time.Time
	// Provision runs the provisioners once SSH is up.
	Provision ProvisionFunc
	// ErrorCleanup runs when a step fails, before the cleanups, with the
	// communicator if one is connected (error-cleanup-provisioner).
	ErrorCleanup func(ctx context.Context, comm communicator.Communicator, info *provisioner.Build)
}

// Run runs the build and returns its artifact.
func (b *Builder) Run(ctx context.Context) (*artifact.Artifact, error) {
	c := b.Config
	if un := c.Unimplemented(); len(un) > 0 {
		return nil, fmt.Errorf("options not implemented by amibake: %v", un)
	}
	sess := b.Session
	if sess == nil {
		var err error
		if sess, err = OpenSession(ctx, b.Shared, c); err != nil {
			return nil, err
		}
	}
	if b.Secrets != nil {
		b.Secrets.Add(c.SecretKey, c.Token, c.SSHPassword, c.SSHBastionPassword)
	}
	st := &State{
		Config: c, Region: sess.Region(), EC2: func(r string) EC2API { return sess.EC2(r) }, UI: b.UI, Secrets: b.Secrets,
		Ledger: b.Ledger, RunID: b.RunID, RunUUID: b.RunUUID, BuildName: b.Name, PackerName: b.PackerName, Force: b.Force, Debug: b.Debug,
		Waits: WaitsFrom(c, b.Getenv), Getenv: b.Getenv, Now: b.Now, Log: b.Log, Provision: b.Provision,
		ResolvedSource: b.SourceImage,
	}
	if st.Ledger == nil {
		st.Ledger = ledger.Nop{}
	}
	return b.run(ctx, st)
}

func (b *Builder) run(ctx context.Context, st *State) (*artifact.Artifact, error) {
	return b.runSteps(ctx, st, Steps(st.Config))
}

func (b *Builder) runSteps(ctx context.Context, st *State, steps []pipeline.Step[*State]) (*artifact.Artifact, error) {
	hooks := b.Hooks
	prev := hooks.OnStepError
	hooks.OnStepError = func(ctx context.Context, name string, err error) {
		// Packer's order: the error, then the cleanup messages.
		b.UI.Error(err.Error())
		if prev != nil {
			prev(ctx, name, err)
		}
		if b.ErrorCleanup != nil {
			var comm communicator.Communicator
			if st.Comm != nil {
				comm = st.Comm
			}
			b.ErrorCleanup(ctx, comm, st.ProvisionerBuild())
		}
	}
	prevAbort := hooks.OnAbort
	hooks.OnAbort = func(failed string, skipped []string) {
		// Packer's lines, with amibake's step names.
		b.UI.Error(fmt.Sprintf("Step %q failed, aborting...", failed))
		for _, name := range skipped {
			b.UI.Error(fmt.Sprintf("aborted: skipping cleanup of step %q", name))
		}
		if prevAbort != nil {
			prevAbort(failed, skipped)
		}
	}
	r := &pipeline.Runner[*State]{
		Steps: steps, OnError: b.OnError, Hooks: hooks,
		CleanupContext: b.CleanupContext, Log: b.Log,
	}
	if err := r.Run(ctx, st); err != nil {
		if st.Succeeded && len(st.AMIs) > 0 && !errors.Is(err, pipeline.ErrAborted) {
			// Every step ran but a cleanup failed: the build fails, and
			// what a failed build made does not survive it.
			cctx := b.CleanupContext
			if cctx == nil {
				cctx = context.WithoutCancel(ctx)
			}
			if derr := deregisterAll(cctx, st); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return nil, err
	}
	name := b.PackerName
	if name == "" {
		name = b.Name
	}
	return st.Artifact(name), nil
}

// Steps is the amazon-ebs pipeline.
func Steps(c *Config) []pipeline.Step[*State] {
	// A name with build-time fields ({{ .SourceAMIName }}) can only be
	// checked once the source AMI is known.
	dynamicName := strings.Contains(c.AMIName, "{{")
	return []pipeline.Step[*State]{
		pipeline.If[*State](!dynamicName, stepPrevalidate{}),
		stepSourceAMI{},
		pipeline.If[*State](dynamicName, stepPrevalidate{}),
		stepNetwork{},
		&stepKeyPair{},
		&stepSecurityGroup{},
		stepCleanupVolumes{},
		&stepLaunch{},
		&stepConnect{},
		stepProvision{},
		stepClearAuthorizedKeys{},
		stepStop{},
		stepDeregister{},
		&stepCreateImage{},
		stepCopy{},
		stepShare{},
		stepTagImage{},
		stepSkipNotices{},
		stepFinish{},
	}
}

// Artifact is the build's result.
func (s *State) Artifact(name string) *artifact.Artifact {
	a := &artifact.Artifact{
		BuildName: name, BuilderType: "amazon-ebs",
		AMIs: maps.Clone(s.AMIs), Snapshots: maps.Clone(s.Snapshots),
		Data: map[string]string{
			"SourceAMI": s.BuildTime.SourceAMI, "SourceAMIName": s.BuildTime.SourceAMIName,
			"BuildRegion": s.Region,
		},
	}
	if a.AMIs == nil {
		a.AMIs = map[string]string{}
	}
	return a
}

// OpenSession opens the AWS session c's access options describe (the
// credentials checked with sts GetCallerIdentity unless
// skip_credential_validation). Builder.Run opens it the same way; a caller
// that needs AWS before the build (the input digest) opens it once and
// hands it over in Builder.Session.
func OpenSession(ctx context.Context, shared *awsclient.Shared, c *Config) (*awsclient.Session, error) {
	return c.AccessConfig.Open(ctx, shared, "")
}
