package prune

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ledger"
)

// RunOptions configure Run.
type RunOptions struct {
	Options
	// DryRun only plans.
	DryRun bool
	// Confirm is asked before anything is changed; false stops the run.
	// Nil asks nothing.
	Confirm func(*Plan) (bool, error)
	// JournalDir holds prune journals (Dir); required unless DryRun.
	JournalDir string
	// Progress is told of each action; nil says nothing.
	Progress func(string)
}

// ErrNotConfirmed is returned when Confirm said no.
var ErrNotConfirmed = errors.New("prune not confirmed: nothing was changed")

// Result is what Run did.
type Result struct {
	Plan *Plan
	// Resumed is what earlier, interrupted prunes had left and this run
	// finished (nil when there was none).
	Resumed *Plan
}

// Failed lists what should have gone and did not, in this run and in the
// resumed ones.
func (r *Result) Failed() []string {
	var out []string
	if r.Resumed != nil {
		out = append(out, r.Resumed.Failed()...)
	}
	if r.Plan != nil {
		out = append(out, r.Plan.Failed()...)
	}
	return out
}

// Run plans a prune and, unless DryRun or not confirmed, carries it out
// through a new journal in JournalDir. A real run first finishes what
// interrupted prunes left in JournalDir.
func Run(ctx context.Context, clients Clients, o RunOptions) (*Result, error) {
	if o.Rules.Now.IsZero() {
		o.Rules.Now = time.Now()
	}
	res := &Result{}
	if !o.DryRun {
		resumed, err := Resume(ctx, clients, o.JournalDir, o.Rules.Now, o.Progress)
		res.Resumed = resumed
		if err != nil {
			return res, err
		}
	}
	p, err := MakePlan(ctx, clients, o.Options)
	res.Plan = p
	if err != nil || o.DryRun {
		return res, err
	}
	if p.Count(ActionDelete)+p.Count(ActionDeprecate) == 0 {
		return res, nil
	}
	if o.Confirm != nil {
		ok, err := o.Confirm(p)
		if err != nil {
			return res, err
		}
		if !ok {
			return res, ErrNotConfirmed
		}
	}
	j, err := ledger.Open(o.JournalDir, ledger.NewRunID())
	if err != nil {
		return res, fmt.Errorf("open the prune journal: %w", err)
	}
	defer j.Close()
	if err := j.Start("prune " + o.Selection.String()); err != nil {
		return res, err
	}
	if err := Record(p, j); err != nil {
		_ = j.End(ledger.StatusFailed)
		return res, err
	}
	Execute(ctx, clients, p, j, o.Rules.Now, o.Progress)
	status := ledger.StatusSucceeded
	switch {
	case ctx.Err() != nil:
		status = ledger.StatusInterrupted
	case len(p.Failed()) > 0:
		status = ledger.StatusFailed
	}
	if err := j.End(status); err != nil {
		return res, err
	}
	return res, ctx.Err()
}

// Resume finishes the prunes in dir that did not end well (killed,
// interrupted, or with deletions that failed): the AMIs they had decided to
// delete and that still exist are deregistered unless something now uses
// them, and the snapshots they had journaled are deleted unless an AMI
// still uses them (EC2 refuses with InvalidSnapshot.InUse). A prune still
// running (its journal locked) is left alone.
func Resume(ctx context.Context, clients Clients, dir string, now time.Time, progress func(string)) (*Plan, error) {
	runs, err := ledger.List(dir)
	if err != nil && len(runs) == 0 {
		return nil, fmt.Errorf("read the prune journals in %s: %w", dir, err)
	}
	var all *Plan
	for _, run := range runs {
		if run.Running || run.Status == ledger.StatusSucceeded {
			continue
		}
		left := run.Left()
		if len(left) == 0 {
			continue
		}
		j, err := ledger.Open(dir, run.ID)
		var le *ledger.LockedError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			return all, err
		}
		p, err := resumePlan(ctx, clients, run.ID, left, j)
		if err == nil {
			if progress != nil && (p.Count(ActionDelete) > 0 || p.SnapshotCount(ActionDelete) > 0) {
				progress(fmt.Sprintf("Finishing the interrupted prune %s: %d AMI(s), %d snapshot(s)", run.ID, p.Count(ActionDelete), p.SnapshotCount(ActionDelete)))
			}
			Execute(ctx, clients, p, j, now, progress)
			status := ledger.StatusSucceeded
			if len(p.Failed()) > 0 {
				status = ledger.StatusFailed
			}
			if ctx.Err() != nil {
				status = ledger.StatusInterrupted
			}
			err = j.End(status)
			if all == nil {
				all = &Plan{}
			}
			all.Images = append(all.Images, p.Images...)
			all.Snapshots = append(all.Snapshots, p.Snapshots...)
		}
		_ = j.Close()
		if err != nil {
			return all, fmt.Errorf("finish the interrupted prune %s: %w", run.ID, err)
		}
	}
	return all, nil
}

// resumePlan rebuilds the deletions an interrupted prune had journaled and
// not done, checking again that each AMI is unused.
func resumePlan(ctx context.Context, clients Clients, runID string, left []ledger.Resource, j Journal) (*Plan, error) {
	p := &Plan{}
	byRegion := map[string][]Image{}
	why := "decided by the interrupted prune " + runID
	for _, r := range left {
		if r.ID == "" {
			continue
		}
		switch r.Kind {
		case ledger.KindImage:
			client, err := clients(r.Region)
			if err != nil {
				return nil, err
			}
			out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{r.ID}})
			// A deregistered AMI may still be described for a short while
			// (DescribeImages, EC2 API reference).
			if isCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable") || (err == nil && (len(out.Images) == 0 || out.Images[0].State == types.ImageStateDeregistered)) {
				if err := j.Deleted(ledger.KindImage, r.Region, r.ID); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("look up %s in %s: %w", r.ID, r.Region, err)
			}
			im := imageOf(r.Region, out.Images[0])
			byRegion[r.Region] = append(byRegion[r.Region], im)
			p.Images = append(p.Images, Decision{Region: r.Region, ImageID: r.ID, Name: im.Name, Created: im.Created,
				Action: ActionDelete, Reason: why, Snapshots: im.Snapshots, img: im})
		case ledger.KindSnapshot:
			p.Snapshots = append(p.Snapshots, SnapshotDecision{Region: r.Region, SnapshotID: r.ID, Action: ActionDelete, Reason: why})
		}
	}
	u := Usage{InUse: map[string]string{}, Shared: map[string]string{}}
	for _, region := range sortedKeys(byRegion) {
		client, err := clients(region)
		if err != nil {
			return nil, err
		}
		if err := usage(ctx, client, region, byRegion[region], u); err != nil {
			return nil, err
		}
	}
	ApplyUsage(p.Images, u, false)
	for _, d := range p.Images {
		if d.Action == ActionKeep {
			if err := j.Kept(ledger.KindImage, d.Region, d.ImageID); err != nil {
				return nil, err
			}
		}
	}
	// Snapshots of an AMI that stays now stay too; DeleteSnapshot would
	// refuse them anyway.
	kept := map[string]string{}
	for _, d := range p.Images {
		if d.Action == ActionKeep {
			for _, sn := range d.Snapshots {
				kept[d.Region+"/"+sn] = d.ImageID
			}
		}
	}
	for i := range p.Snapshots {
		s := &p.Snapshots[i]
		if id := kept[s.Region+"/"+s.SnapshotID]; id != "" {
			s.Action, s.Reason = ActionKeep, "its AMI "+id+" stays"
			if err := j.Kept(ledger.KindSnapshot, s.Region, s.SnapshotID); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}
