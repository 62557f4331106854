package reaper

import (
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
