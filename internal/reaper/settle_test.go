package reaper

import (
	"context"
	"maps"
	"slices"
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

// lagSim starts a simulator on which every new resource of the kinds in
// lags is invisible to every call for the lag's window ("Eventual
// consistency in the Amazon EC2 API": a resource just created may answer
// NotFound, or be left out of listings, for a while), whatever
// EC2SIM_CONSISTENCY says.
func lagSim(t *testing.T, lat ec2sim.Latency, lags ...string) *ec2sim.Server {
	t.Helper()
	c := ec2sim.Consistency{Name: "test-lag"}
	for _, s := range lags {
		l, err := ec2sim.ParseLag(s)
		if err != nil {
			t.Fatal(err)
		}
		c.Lags = append(c.Lags, l)
	}
	return startSim(t, ec2sim.Options{Latency: lat, Consistency: c})
}

// countingEC2 counts the Describe calls a cleanup makes, by action.
type countingEC2 struct {
	EC2API
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingEC2) count(action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[action]++
}

func (c *countingEC2) describes() (total int, by map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.calls {
		total += n
	}
	return total, maps.Clone(c.calls)
}

func (c *countingEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c.count("DescribeInstances")
	return c.EC2API.DescribeInstances(ctx, in, o...)
}

func (c *countingEC2) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, o ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	c.count("DescribeVolumes")
	return c.EC2API.DescribeVolumes(ctx, in, o...)
}

func (c *countingEC2) DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, o ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	c.count("DescribeSecurityGroups")
	return c.EC2API.DescribeSecurityGroups(ctx, in, o...)
}

func (c *countingEC2) DescribeKeyPairs(ctx context.Context, in *ec2.DescribeKeyPairsInput, o ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error) {
	c.count("DescribeKeyPairs")
	return c.EC2API.DescribeKeyPairs(ctx, in, o...)
}

func (c *countingEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, o ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	c.count("DescribeImages")
	return c.EC2API.DescribeImages(ctx, in, o...)
}

func (c *countingEC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, o ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	c.count("DescribeSnapshots")
	return c.EC2API.DescribeSnapshots(ctx, in, o...)
}

// DescribeLaunchTemplates is called once per discover pass when the
// ledger names no launch template: it counts the passes.
func (c *countingEC2) DescribeLaunchTemplates(ctx context.Context, in *ec2.DescribeLaunchTemplatesInput, o ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error) {
	c.count("DescribeLaunchTemplates")
	return c.EC2API.DescribeLaunchTemplates(ctx, in, o...)
}

// A cleanup right after a killed run: what the run made shows up in
// listings a couple of seconds later. The cleanup looks again soon and
// often enough to remove it within seconds, not after Settle, and with a
// handful of discover passes; an intent that created nothing is still
// given the whole of Settle, and a clock that stands still does not keep
// it looking forever.
func TestSettleWaitPolls(t *testing.T) {
	never := func(f fixture, rec ledger.Recorder, tags map[string]string) string {
		rec.Intend(ledger.KindSecurityGroup, region, "amibake_never")
		return ""
	}
	for _, tt := range []struct {
		name string
		lag  string // ParseLag form; "" for none
		// make journals what a killed run would have, creates its
		// resource and returns its id ("" when it creates nothing).
		make   func(f fixture, rec ledger.Recorder, tags map[string]string) string
		settle time.Duration
		frozen bool    // Options.Now stands still at the cleanup's start
		want   Outcome // the resource's (or the intent's) outcome
		// fast: the cleanup ends well under Settle; wholeSettle: it gives
		// the intent all of Settle before writing it off.
		fast, wholeSettle bool
		// passes: at most this many discover passes (exactly, when frozen).
		passes int
	}{
		{
			name: "instance whose RunInstances answer was lost", lag: "instance:all%1@1500ms-2s", settle: 30 * time.Second,
			make: func(f fixture, rec ledger.Recorder, tags map[string]string) string {
				rec.Intend(ledger.KindInstance, region, "tok-lag")
				out, err := f.c.RunInstances(f.ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.sourceAMI()), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
					InstanceType: types.InstanceTypeT3Micro, ClientToken: aws.String("tok-lag"),
					TagSpecifications: append(tagSpec(types.ResourceTypeInstance, tags), tagSpec(types.ResourceTypeVolume, tags)...)})
				if err != nil {
					f.t.Fatalf("RunInstances: %v", err)
				}
				return aws.ToString(out.Instances[0].InstanceId)
			},
			// Looks at 0, 0.5, 1.5 and 3.5 s.
			want: Removed, fast: true, passes: 5,
		},
		{
			name: "key pair journaled by id", lag: "key-pair:all%1@1500ms-2s", settle: 30 * time.Second,
			make: func(f fixture, rec ledger.Recorder, tags map[string]string) string {
				e, _ := rec.Intend(ledger.KindKeyPair, region, "amibake_lag")
				out, err := f.c.CreateKeyPair(f.ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("amibake_lag"), TagSpecifications: tagSpec(types.ResourceTypeKeyPair, tags)})
				if err != nil {
					f.t.Fatalf("CreateKeyPair: %v", err)
				}
				rec.Created(e, aws.ToString(out.KeyPairId))
				return aws.ToString(out.KeyPairId)
			},
			want: Removed, fast: true, passes: 5,
		},
		{
			// Looks at 0, 0.5, 1, 1.5 and 2 s (the delay is capped at Settle/4).
			name: "security group whose create call created nothing", settle: 2 * time.Second, make: never,
			want: AlreadyGone, wholeSettle: true, passes: 6,
		},
		{
			// The schedule's passes, and one more: it does not look forever.
			name: "clock that stands still", settle: 2 * time.Second, make: never, frozen: true,
			want: AlreadyGone, passes: 6,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each row has its own simulator, and mostly waits
			var lags []string
			if tt.lag != "" {
				lags = append(lags, tt.lag)
			}
			srv := lagSim(t, ec2sim.ZeroLatency(), lags...)
			ctx := testCtx(t)
			f := fixture{t, ctx, simClient(srv.URL(), region)}
			dir := t.TempDir()
			run := "run-lag"
			j, err := ledger.Open(dir, run)
			if err != nil {
				t.Fatal(err)
			}
			j.Start("lag.pkr.hcl")
			intended := time.Now()
			id := tt.make(f, j.ForBuild("amazon-ebs.test"), tagsFor(run, time.Now()))
			j.Close() // killed: no end record

			c := &countingEC2{EC2API: simClient(srv.URL(), region)}
			var progress []string
			// The product's Poll (1 s, so 0.5 s for the first look again).
			opts := Options{Clients: func(ledger.Location, string) (EC2API, error) { return c, nil }, Settle: tt.settle,
				Progress: func(m string) { progress = append(progress, m) }}
			if tt.frozen {
				now := time.Now()
				opts.Now = func() time.Time { return now }
			}
			start := time.Now()
			rep, err := New(opts).Run(ctx, dir, run)
			elapsed := time.Since(start)
			if err != nil || rep.Err() != nil {
				t.Fatalf("cleanup: %v %v\n%s", err, rep.Err(), rep)
			}
			total, by := c.describes()
			passes := by["DescribeLaunchTemplates"]
			t.Logf("cleanup took %s, %d discover passes, %d Describe calls %v\n%s", elapsed.Round(time.Millisecond), passes, total, by, rep)

			if id != "" {
				if it := itemOf(rep, id); it == nil || it.Outcome != tt.want {
					t.Errorf("%s: %+v, want %s", id, it, tt.want)
				}
				inv := inventory(srv, region)
				if slices.Contains(inv.KeyPairs, "amibake_lag") || len(inv.Instances)+len(inv.Volumes) != 0 {
					t.Errorf("left after cleanup: %+v", inv)
				}
			} else if n := countKind(rep, ledger.KindSecurityGroup, tt.want); n != 1 {
				t.Errorf("%d security groups %s, want the intent's\n%s", n, tt.want, rep)
			}
			if tt.fast && elapsed >= tt.settle/2 {
				t.Errorf("cleanup took %s, want well under Settle (%s): it waited Settle out instead of looking again", elapsed, tt.settle)
			}
			if tt.wholeSettle && time.Since(intended) < tt.settle {
				t.Errorf("an intent %s old was written off before Settle (%s)", time.Since(intended), tt.settle)
			}
			if passes < 2 || passes > tt.passes || tt.frozen && passes != tt.passes {
				t.Errorf("%d discover passes, want 2 to %d (exactly %[2]d with a clock that stands still)", passes, tt.passes)
			}
			// A pass here makes 8 Describe calls (7 kinds, one by two
			// filters); removing an instance adds a few.
			if total > 9*tt.passes {
				t.Errorf("%d Describe calls, want at most %d: %v", total, 9*tt.passes, by)
			}
			if !slices.ContainsFunc(progress, func(m string) bool { return strings.Contains(m, "to show up") }) {
				t.Errorf("the cleanup did not say what it waited for: %q", progress)
			}
			r, _ := ledger.Read(dir, run)
			if left := r.Left(); len(left) != 0 || !r.Swept {
				t.Errorf("ledger: swept %v, left %+v", r.Swept, left)
			}
		})
	}
}

// A killed run's image, found at once, whose snapshot EC2 does not know
// yet (InvalidSnapshot.NotFound to CreateTags and left out of listings,
// as a resource created moments ago may be): the cleanup retries the
// CreateTags that ties the snapshot to the run until EC2 knows it, so a
// cleanup cut short after DeregisterImage leaves it findable, and one
// that is not removes it with the image.
func TestSnapshotTaggedOnceEC2KnowsIt(t *testing.T) {
	for _, tt := range []struct {
		name string
		cut  bool // DeleteSnapshot fails: the cleanup is cut short there
	}{
		{"cut short after DeregisterImage", true},
		{"whole cleanup", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := lagSim(t, ec2sim.ZeroLatency(), "snapshot:all%1@1500ms-2s")
			ctx := testCtx(t)
			f := fixture{t, ctx, simClient(srv.URL(), region)}
			inst := f.instance("", nil)
			dir := t.TempDir()
			const run = "run-snap-lag"
			j, err := ledger.Open(dir, run)
			if err != nil {
				t.Fatal(err)
			}
			j.Start("t")
			rec := j.ForBuild("amazon-ebs.img")
			e, _ := rec.Intend(ledger.KindImage, region, run)
			out, err := f.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(run),
				TagSpecifications: tagSpec(types.ResourceTypeImage, tagsFor(run, time.Now()))})
			if err != nil {
				t.Fatal(err)
			}
			rec.Created(e, aws.ToString(out.ImageId))
			j.Close() // killed before its snapshots were tagged
			snaps := inventory(srv, region).Snapshots
			if len(snaps) != 1 {
				t.Fatalf("snapshots: %v", snaps)
			}

			const settle = 30 * time.Second
			opts := Options{Clients: simClients(srv.URL()), Settle: settle}
			if tt.cut {
				opts.Clients = func(ledger.Location, string) (EC2API, error) {
					return &noDeleteSnapshotEC2{EC2API: simClient(srv.URL(), region)}, nil
				}
			}
			start := time.Now()
			rep, err := New(opts).Run(ctx, dir, run)
			elapsed := time.Since(start)
			t.Logf("cleanup took %s:\n%s", elapsed.Round(time.Millisecond), rep)
			if elapsed >= settle/2 {
				t.Errorf("cleanup took %s, want well under Settle (%s)", elapsed, settle)
			}
			inv := inventory(srv, region)
			if len(inv.Images) != 0 {
				t.Errorf("images left: %v", inv.Images)
			}
			if !tt.cut {
				if err != nil || rep.Err() != nil || len(inv.Snapshots) != 0 {
					t.Errorf("cleanup: %v %v; snapshots left: %v", err, rep.Err(), inv.Snapshots)
				}
				return
			}
			sn, err := f.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: snaps}, simtest.RetryNotFound)
			if err != nil || len(sn.Snapshots) != 1 {
				t.Fatalf("describe %v: %v", snaps, err)
			}
			if got := tagMap(sn.Snapshots[0].Tags, func(t types.Tag) (*string, *string) { return t.Key, t.Value })[ledger.TagRunID]; got != run {
				t.Errorf("snapshot %s tagged for run %q, want %q: a cleanup by tags would not find it", snaps[0], got, run)
			}
		})
	}
}
