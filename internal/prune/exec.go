package prune

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ledger"
)

// Results of a real run.
const (
	ResultDeleted    = "deleted"
	ResultDeprecated = "deprecated"
	ResultGone       = "already gone"
	ResultFailed     = "failed"
)

// Dir is where prune journals live: next to the build runs' journals
// ($XDG_STATE_HOME/amibake/prune), apart from them so that `amibake
// cleanup` never takes a prune for a build.
func Dir(getenv func(string) string) string {
	return filepath.Join(filepath.Dir(ledger.DefaultDir(getenv)), "prune")
}

// Journal is the part of a ledger.Journal a prune writes.
type Journal interface {
	ledger.Recorder
	Kept(kind ledger.Kind, region, id string) error
}

// Record writes every deletion of the plan to the journal before any is
// made: an intent and the id, per AMI and per snapshot. A prune killed
// after deregistering an AMI still knows its snapshots.
func Record(p *Plan, j Journal) error {
	rec := func(kind ledger.Kind, region, id string) error {
		e, err := j.Intend(kind, region, "prune "+id)
		if err != nil {
			return err
		}
		return j.Created(e, id)
	}
	for _, d := range p.Images {
		if d.Action == ActionDelete {
			if err := rec(ledger.KindImage, d.Region, d.ImageID); err != nil {
				return fmt.Errorf("journal the deletion of %s: %w", d.ImageID, err)
			}
		}
	}
	for _, s := range p.Snapshots {
		if s.Action == ActionDelete {
			if err := rec(ledger.KindSnapshot, s.Region, s.SnapshotID); err != nil {
				return fmt.Errorf("journal the deletion of %s: %w", s.SnapshotID, err)
			}
		}
	}
	return nil
}

// Execute carries the plan out: deprecations, then per AMI DeregisterImage,
// then DeleteSnapshot for the snapshots whose every AMI went. Each
// deletion is recorded in the journal once EC2 confirms it. An AMI that
// cannot be deleted is reported and the rest goes on; Failed counts them.
// progress, when set, is told of each action as it completes.
func Execute(ctx context.Context, clients Clients, p *Plan, j Journal, now time.Time, progress func(string)) {
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	failedAMI := map[string]bool{}
	for i := range p.Images {
		d := &p.Images[i]
		if d.Action == ActionKeep {
			continue
		}
		if ctx.Err() != nil {
			d.Result = ResultFailed + ": " + ctx.Err().Error()
			failedAMI[d.Region+"/"+d.ImageID] = true
			continue
		}
		client, err := clients(d.Region)
		if err != nil {
			d.Result = ResultFailed + ": " + err.Error()
			failedAMI[d.Region+"/"+d.ImageID] = true
			continue
		}
		switch d.Action {
		case ActionDeprecate:
			// EC2 refuses a DeprecateAt in the past and rounds to the
			// minute: the next whole minute but one.
			at := now.UTC().Truncate(time.Minute).Add(2 * time.Minute)
			_, err = client.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(d.ImageID), DeprecateAt: aws.Time(at)})
			if err != nil {
				d.Result = ResultFailed + ": " + err.Error()
				say("Could not deprecate %s in %s: %v", d.ImageID, d.Region, err)
				continue
			}
			d.Result = ResultDeprecated
			say("Deprecated %s in %s (DeprecationTime %s)", d.ImageID, d.Region, at.Format(time.RFC3339))
		case ActionDelete:
			_, err = client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(d.ImageID)})
			switch {
			case err == nil:
				d.Result = ResultDeleted
				say("Deregistered %s in %s (%s)", d.ImageID, d.Region, d.Name)
			case isCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
				d.Result = ResultGone
			default:
				d.Result = ResultFailed + ": " + err.Error()
				failedAMI[d.Region+"/"+d.ImageID] = true
				say("Could not deregister %s in %s: %v", d.ImageID, d.Region, err)
				continue
			}
			if jerr := j.Deleted(ledger.KindImage, d.Region, d.ImageID); jerr != nil {
				say("Could not journal the deletion of %s: %v", d.ImageID, jerr)
			}
		}
	}
	for i := range p.Snapshots {
		s := &p.Snapshots[i]
		if s.Action != ActionDelete {
			continue
		}
		if failedAMI[s.Region+"/"+s.ImageID] {
			s.Result = "kept: its AMI " + s.ImageID + " was not deregistered"
			continue
		}
		if ctx.Err() != nil {
			s.Result = ResultFailed + ": " + ctx.Err().Error()
			continue
		}
		client, err := clients(s.Region)
		if err != nil {
			s.Result = ResultFailed + ": " + err.Error()
			continue
		}
		user, err := deleteSnapshot(ctx, client, s.SnapshotID)
		switch {
		case err == nil:
			s.Result = ResultDeleted
			say("Deleted snapshot %s in %s", s.SnapshotID, s.Region)
		case isCode(err, "InvalidSnapshot.NotFound"):
			s.Result = ResultGone
		case user != "":
			// Another AMI was registered from it since the plan: it
			// stays, as it must.
			s.Result = "kept: " + apiMessage(err)
			_ = j.Kept(ledger.KindSnapshot, s.Region, s.SnapshotID)
			say("Kept snapshot %s in %s: %s", s.SnapshotID, s.Region, apiMessage(err))
			continue
		default:
			s.Result = ResultFailed + ": " + err.Error()
			say("Could not delete snapshot %s in %s: %v", s.SnapshotID, s.Region, err)
			continue
		}
		if jerr := j.Deleted(ledger.KindSnapshot, s.Region, s.SnapshotID); jerr != nil {
			say("Could not journal the deletion of %s: %v", s.SnapshotID, jerr)
		}
	}
}

// Failed lists what should have gone (or been deprecated) and did not.
func (p *Plan) Failed() []string {
	var out []string
	for _, d := range p.Images {
		if strings.HasPrefix(d.Result, ResultFailed) {
			out = append(out, fmt.Sprintf("%s in %s: %s", d.ImageID, d.Region, d.Result))
		}
	}
	for _, s := range p.Snapshots {
		if strings.HasPrefix(s.Result, ResultFailed) {
			out = append(out, fmt.Sprintf("%s in %s: %s", s.SnapshotID, s.Region, s.Result))
		}
	}
	return out
}

// InUseWait bounds how long DeleteSnapshot is retried while EC2 still
// says the snapshot is in use by an AMI that is already deregistered
// (EC2's API is eventually consistent); InUsePoll is the delay between
// tries.
var InUseWait, InUsePoll = 60 * time.Second, 3 * time.Second

var amiInMessageRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`ami-[0-9a-f]+`) })

// deleteSnapshot deletes a snapshot. When EC2 answers
// InvalidSnapshot.InUse, it looks at the AMI the message names: one that
// still exists keeps the snapshot (user is returned with the error); one
// that is gone, or deregistered, means EC2 has not caught up with the
// deregistration, and the call is tried again for up to InUseWait.
func deleteSnapshot(ctx context.Context, client EC2, id string) (user string, err error) {
	deadline := time.Now().Add(InUseWait)
	for {
		_, err = client.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		if err == nil || !isCode(err, "InvalidSnapshot.InUse") {
			return "", err
		}
		ami := amiInMessageRe().FindString(apiMessage(err))
		if ami != "" {
			out, derr := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
			if derr == nil && len(out.Images) > 0 && out.Images[0].State != types.ImageStateDeregistered {
				return ami, err
			}
			if derr != nil && !isCode(derr, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") {
				return "", err
			}
		}
		if !time.Now().Add(InUsePoll).Before(deadline) {
			return "", fmt.Errorf("%w (EC2 still says so %s after the AMI went; the next prune tries again)", err, InUseWait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(InUsePoll):
		}
	}
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return err.Error()
}
