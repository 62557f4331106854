package amazonebs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
)

// ProvisionFunc runs the build's provisioners on the instance; the
// orchestrator (internal/bake) supplies it.
type ProvisionFunc func(ctx context.Context, comm communicator.Communicator, info *provisioner.Build) error

// State is what the steps of one build share: their inputs, set before the
// run, and what each step produced for the next ones and for the cleanups.
type State struct {
	// Inputs.
	Config    *Config
	Region    string
	EC2       func(region string) EC2API // "" is the build region
	UI        ui.UI
	Secrets   *ui.Secrets
	Ledger    ledger.Recorder
	RunID     string // the amibake:run-id tag and journal
	RunUUID   string // PACKER_RUN_UUID, for provisioners; RunID when empty
	BuildName string
	// PackerName is Packer's packer_build_name (-debug key file name).
	PackerName string
	Force      bool // -force: deregister an existing AMI of the same name
	Debug      bool // -debug: write the private key to ec2_<build>.pem
	// DebugKeyFile is the absolute path of that key file, once written.
	DebugKeyFile string
	Waits        Waits
	Getenv       func(string) string
	Now          func() time.Time
	Log          *slog.Logger
	Provision    ProvisionFunc
	// ResolvedSource is the source AMI already resolved for Config in
	// Region (Builder.SourceImage); nil has the source step describe it.
	ResolvedSource *types.Image

	// Produced by the steps.
	SourceImage      *types.Image
	BuildTime        template.BuildTimeData
	AMIName          string
	VPCID            string
	SubnetID         string
	AZ               string
	MapPublicIP      *bool // the subnet's MapPublicIpOnLaunch, when known
	SecurityGroupIDs []string
	KeyName          string
	PrivateKey       []byte
	Instance         *types.Instance
	Host             string
	Comm             interface {
		communicator.Communicator
		Close() error
	}
	ExistingImages map[string][]string // region -> ids of AMIs named AMIName (force)
	ImageID        string              // in the build region
	AMIs           map[string]string   // region -> AMI id
	Snapshots      map[string][]string // region -> snapshot ids
	// Succeeded is set by the last step; cleanups undo products otherwise.
	Succeeded bool
	// TerminateErr is set when the source instance could not be
	// terminated: cleanups that wait for it to be gone fail at once.
	TerminateErr error

	births births
	// snapsJournaled are the snapshots of this build's AMIs already in
	// the journal (journalSnapshots), by region/id.
	snapsJournaled struct {
		sync.Mutex
		ids map[string]bool
	}
}

func (s *State) ec2(region string) EC2API { return s.EC2(region) }

func (s *State) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *State) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *State) getenv(k string) string {
	if s.Getenv == nil {
		return ""
	}
	return s.Getenv(k)
}

// recordIntend and friends never fail a step on a journal error silently:
// the journal is what makes a crashed run recoverable.
func (s *State) intend(kind ledger.Kind, region, token string) (string, error) {
	if s.Ledger == nil {
		return "", nil
	}
	return s.Ledger.Intend(kind, region, token)
}

func (s *State) created(entry, id string) error {
	if s.Ledger == nil {
		return nil
	}
	return s.Ledger.Created(entry, id)
}

// resolved records that the create call of entry created nothing, as EC2
// answered; a journal that cannot say so leaves the intent for a cleanup
// to settle.
func (s *State) resolved(entry string) {
	if s.Ledger == nil {
		return
	}
	if err := s.Ledger.Resolved(entry); err != nil {
		s.log().Warn("record in the run journal that a create call created nothing", "entry", entry, "err", err)
	}
}

func (s *State) deleted(kind ledger.Kind, region, id string) {
	if s.Ledger == nil {
		return
	}
	if err := s.Ledger.Deleted(kind, region, id); err != nil {
		s.log().Warn("record deletion in the run journal", "kind", kind, "id", id, "err", err)
	}
}

// journalSnapshots records the snapshots of one of this build's AMIs
// (CreateImage or CopyImage made them, so no create call of ours was
// journaled for them) as created and born, once each: a run killed before it
// deletes them leaves `cleanup` their ids, whatever became of the image.
func (s *State) journalSnapshots(region string, ids []string) error {
	s.snapsJournaled.Lock()
	defer s.snapsJournaled.Unlock()
	if s.snapsJournaled.ids == nil {
		s.snapsJournaled.ids = map[string]bool{}
	}
	for _, id := range ids {
		if s.snapsJournaled.ids[region+"/"+id] {
			continue
		}
		entry, err := s.intend(ledger.KindSnapshot, region, id)
		if err == nil {
			err = s.created(entry, id)
		}
		if err != nil {
			return fmt.Errorf("record snapshot %s in the run journal: %w", id, err)
		}
		s.snapsJournaled.ids[region+"/"+id] = true
		// This build's too: EC2 may not list a snapshot CreateImage made
		// moments ago, and a NotFound on its delete must be retried, not
		// taken for gone.
		s.born(id)
	}
	return nil
}

// ownImage reports whether this build made AMI id (force_deregister
// removes AMIs of earlier runs, whose snapshots are not this run's).
func (s *State) ownImage(id string) bool {
	s.births.mu.Lock()
	defer s.births.mu.Unlock()
	_, ok := s.births.at[id]
	return ok
}
