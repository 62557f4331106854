package amazonebs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ledger"
)

// hookEC2 lets a test look at the journal at the moment a call is made.
type hookEC2 struct {
	EC2API
	before func(action string, id string)
	// after may rewrite the answers of DescribeImages by id.
	after func(out *ec2.DescribeImagesOutput)
}

func (h *hookEC2) CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, o ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error) {
	h.before("CreateLaunchTemplate", aws.ToString(in.LaunchTemplateName))
	return h.EC2API.CreateLaunchTemplate(ctx, in, o...)
}

func (h *hookEC2) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, o ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	h.before("CreateFleet", aws.ToString(in.LaunchTemplateConfigs[0].LaunchTemplateSpecification.LaunchTemplateId))
	return h.EC2API.CreateFleet(ctx, in, o...)
}

func (h *hookEC2) DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, o ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	h.before("DeregisterImage", aws.ToString(in.ImageId))
	return h.EC2API.DeregisterImage(ctx, in, o...)
}

func (h *hookEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, o ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	h.before("DescribeImages", strings.Join(in.ImageIds, ","))
	out, err := h.EC2API.DescribeImages(ctx, in, o...)
	if err == nil && h.after != nil && len(in.ImageIds) > 0 {
		h.after(out)
	}
	return out, err
}

// failIntent is a journal whose writes for one kind fail (a full disk).
type failIntent struct {
	ledger.Recorder
	kind ledger.Kind
}

func (f failIntent) Intend(kind ledger.Kind, region, token string) (string, error) {
	if kind == f.kind {
		return "", errors.New("disk full")
	}
	return f.Recorder.Intend(kind, region, token)
}

// journaled opens a real journal for st and returns a reader of it.
func journaled(t *testing.T, st *State) func() *ledger.Run {
	t.Helper()
	dir := t.TempDir()
	j, err := ledger.Open(dir, st.RunID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	if err := j.Start("test.pkr.hcl"); err != nil {
		t.Fatal(err)
	}
	st.Ledger = j.ForBuild(st.BuildName)
	return func() *ledger.Run {
		t.Helper()
		run, err := ledger.Read(dir, st.RunID)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
}

func resourcesOf(run *ledger.Run, kind ledger.Kind) []ledger.Resource {
	var out []ledger.Resource
	for _, r := range run.Resources {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// TestSpotLaunchTemplateJournaled: the spot fleet's launch template is in
// the journal by name before CreateLaunchTemplate, with its id before
// CreateFleet, and recorded deleted once DeleteLaunchTemplate succeeded; a
// journal that cannot record it fails the build before it is created.
func TestSpotLaunchTemplateJournaled(t *testing.T) {
	srv := apiSim(t)
	src := strings.Replace(noComm, `instance_type = "t3.micro"`, "", 1) + `spot_price = "auto"
spot_instance_types = ["t3.micro"]
`
	for _, tt := range []struct {
		name    string
		failLT  bool
		wantErr string
	}{
		{name: "journaled"},
		{name: "journal-fails", failLT: true, wantErr: "record the launch template of the spot fleet in the run journal: disk full"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, u := testState(t, srv, mustConfig(t, src+`ami_name = "spot-`+tt.name+`"`))
			read := journaled(t, st)
			if tt.failLT {
				st.Ledger = failIntent{Recorder: st.Ledger, kind: ledger.KindLaunchTemplate}
			}
			var mu sync.Mutex
			var seen []string
			base := st.EC2
			st.EC2 = func(r string) EC2API {
				return &hookEC2{EC2API: base(r), before: func(action, id string) {
					mu.Lock()
					defer mu.Unlock()
					lts := resourcesOf(read(), ledger.KindLaunchTemplate)
					switch action {
					case "CreateLaunchTemplate":
						if len(lts) != 1 || lts[0].Token != id || lts[0].ID != "" {
							t.Errorf("at CreateLaunchTemplate %s the journal holds %+v", id, lts)
						}
					case "CreateFleet":
						if len(lts) != 1 || lts[0].ID != id || lts[0].Deleted {
							t.Errorf("at CreateFleet with %s the journal holds %+v", id, lts)
						}
						if len(seen) > 0 && seen[len(seen)-1] == action {
							// Retried: the template was not visible to the
							// fleet yet (eventual consistency).
							return
						}
						// Leased from birth, before any keeper refresh.
						out, err := simClient(srv, st.Region).DescribeLaunchTemplates(ctx(t), &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}}, simtest.RetryNotFound)
						if err != nil || len(out.LaunchTemplates) != 1 {
							t.Errorf("describe %s: %v", id, err)
							return
						}
						until, err := ledger.ParseCreatedAt(tagMap(out.LaunchTemplates[0].Tags)[ledger.TagLeaseUntil])
						if err != nil || !until.After(time.Now()) {
							t.Errorf("launch template %s lease-until %v (%v), want a time ahead", id, until, err)
						}
					default:
						return
					}
					seen = append(seen, action)
				}}
			}
			err := runSteps(t, st)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q\n%s", err, tt.wantErr, u)
				}
				if len(seen) != 0 {
					t.Errorf("called %v after the journal failed", seen)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, u)
			}
			if strings.Join(seen, " ") != "CreateLaunchTemplate CreateFleet" {
				t.Errorf("calls seen: %v", seen)
			}
			lts := resourcesOf(read(), ledger.KindLaunchTemplate)
			if len(lts) != 1 || !strings.HasPrefix(lts[0].ID, "lt-") || !lts[0].Deleted {
				t.Errorf("after the build the journal holds %+v, want one deleted lt-", lts)
			}
			if left := srv.Inventory().Regions["eu-west-1"].LaunchTemplates; len(left) != 0 {
				t.Errorf("launch templates left: %v", left)
			}
		})
	}
}

// TestSnapshotsJournaledBeforeDeregister: CreateImage's snapshots are in
// the journal as soon as the waiter sees them on the pending image, so
// before DeregisterImage, and recorded deleted after DeleteSnapshot. (The
// builder used to journal only the AMI: a DeleteSnapshot that failed, or
// a SIGKILL between DeregisterImage and DeleteSnapshot, left a snapshot
// only its description tied to the run.)
func TestSnapshotsJournaledBeforeDeregister(t *testing.T) {
	srv := apiSim(t)
	// The copy to a region the simulator does not serve fails after the
	// AMI exists: the cleanup deregisters it.
	st, u := testState(t, srv, mustConfig(t, noComm+`ami_name = "journaled-snaps"
ami_regions = ["xx-nowhere-1"]`))
	read := journaled(t, st)
	var mu sync.Mutex
	describes := map[string]int{}
	var pendingSnaps []string
	checked := map[string]bool{}
	base := st.EC2
	st.EC2 = func(r string) EC2API {
		return &hookEC2{EC2API: base(r),
			before: func(action, id string) {
				mu.Lock()
				defer mu.Unlock()
				if action != "DeregisterImage" && !(action == "DescribeImages" && describes[id] == 1) {
					return
				}
				// The waiter's second look, and DeregisterImage: the
				// journal must hold the snapshots the first look showed.
				left := map[string]bool{}
				for _, r := range resourcesOf(read(), ledger.KindSnapshot) {
					if !r.Deleted {
						left[r.ID] = true
					}
				}
				for _, sn := range pendingSnaps {
					if !left[sn] {
						t.Errorf("at %s %s snapshot %s is not in the journal (journal: %v)", action, id, sn, left)
					}
				}
				checked[action] = true
			},
			after: func(out *ec2.DescribeImagesOutput) {
				mu.Lock()
				defer mu.Unlock()
				for i, im := range out.Images {
					id := aws.ToString(im.ImageId)
					describes[id]++
					if describes[id] == 1 && im.State == types.ImageStateAvailable {
						// Seen pending first, as on EC2.
						out.Images[i].State = types.ImageStatePending
						pendingSnaps = imageSnapshots(&im)
					}
				}
			},
		}
	}
	if err := runSteps(t, st); err == nil {
		t.Fatalf("the copy to xx-nowhere-1 succeeded?\n%s", u)
	}
	if len(pendingSnaps) == 0 || !checked["DescribeImages"] || !checked["DeregisterImage"] {
		t.Fatalf("snapshots %v, checked %v\n%s", pendingSnaps, checked, u)
	}
	snaps := resourcesOf(read(), ledger.KindSnapshot)
	if len(snaps) != len(pendingSnaps) {
		t.Errorf("journal holds snapshots %+v, want %v once each", snaps, pendingSnaps)
	}
	for _, r := range snaps {
		if !r.Deleted || r.Region != "eu-west-1" {
			t.Errorf("snapshot %+v not recorded deleted in eu-west-1", r)
		}
	}
	if inv := srv.Inventory().Regions["eu-west-1"]; len(inv.Images)+len(inv.Snapshots) != 0 {
		t.Errorf("left: %+v", inv)
	}
}

// TestLaunchRefusedJournaled: a RunInstances EC2 refuses for capacity
// (HTTP 500, retried by the SDK with the same ClientToken, refused each
// time) launched nothing, and the journal says so: a later cleanup has no
// intent to wait for.
func TestLaunchRefusedJournaled(t *testing.T) {
	srv := apiSim(t)
	if err := srv.SetFaults(ec2sim.FaultSettings{Rules: []ec2sim.FaultRule{{Action: "RunInstances", Fault: ec2sim.FaultInsufficientCap, Probability: 1}}}); err != nil {
		t.Fatal(err)
	}
	st, u := testState(t, srv, mustConfig(t, noComm+`ami_name = "refused"`))
	read := journaled(t, st)
	err := runSteps(t, st)
	if err == nil || !strings.Contains(err.Error(), "EC2 has no capacity for this instance type") {
		t.Fatalf("err = %v\n%s", err, u)
	}
	if n := srv.Calls()["RunInstances"]; n < 2 {
		t.Errorf("RunInstances called %d times, want the SDK's retries of a 500", n)
	}
	insts := resourcesOf(read(), ledger.KindInstance)
	if len(insts) != 1 || !insts[0].Resolved || insts[0].ID != "" {
		t.Errorf("the journal holds %+v, want one instance intent resolved as created nothing", insts)
	}
}
