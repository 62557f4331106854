package reaper

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ledger"
)

// TagAPI is what the Keeper calls; *ec2.Client satisfies it.
type TagAPI interface {
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags(context.Context, *ec2.DeleteTagsInput, ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
}

// Keeper is a running build's proof of life. Every Interval it pushes
// amibake:lease-until to now+Lease on every resource the run's journal
// lists as created and not yet removed, with each build's own EC2 clients
// (registered as the builds open their sessions). A `cleanup --tagged` on
// any machine then leaves the run alone however old it is; once the
// process dies the lease runs out and the same sweep takes what is left.
type Keeper struct {
	Dir, RunID string
	// Lease is how far ahead each refresh pushes the lease; default
	// ledger.DefaultLease. Interval is the time between refreshes; default
	// a third of Lease, so that two refreshes can fail before it lapses.
	Lease, Interval time.Duration
	Now             func() time.Time
	Log             *slog.Logger

	mu      sync.Mutex
	clients map[string]func(region string) TagAPI // by build
	gone    map[string]bool                       // region/id: EC2 says it no longer exists
	keyIDs  map[string]string                     // region/key name -> key-... id
}

func (k *Keeper) defaults() {
	if k.Lease <= 0 {
		k.Lease = ledger.DefaultLease
	}
	if k.Interval <= 0 {
		k.Interval = k.Lease / 3
	}
	if k.Now == nil {
		k.Now = time.Now
	}
	if k.Log == nil {
		k.Log = slog.New(slog.DiscardHandler)
	}
}

// Register gives the Keeper the EC2 clients of build.
func (k *Keeper) Register(build string, clients func(region string) TagAPI) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.clients == nil {
		k.clients = map[string]func(string) TagAPI{}
	}
	k.clients[build] = clients
}

// Run refreshes the lease until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	k.defaults()
	t := time.NewTicker(k.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Refresh(ctx); err != nil {
				k.Log.Debug("lease refresh", "run", k.RunID, "err", err)
			}
		}
	}
}

// Refresh pushes the lease of every live resource of the run once.
func (k *Keeper) Refresh(ctx context.Context) error {
	k.defaults()
	run, err := ledger.Read(k.Dir, k.RunID)
	if err != nil {
		return err
	}
	until := ledger.CreatedAt(k.Now().Add(k.Lease))
	tags := []types.Tag{{Key: aws.String(ledger.TagLeaseUntil), Value: aws.String(until)}}
	type key struct{ build, region string }
	ids := map[key][]string{}
	seen := map[string]bool{}
	k.mu.Lock()
	if k.gone == nil {
		k.gone, k.keyIDs = map[string]bool{}, map[string]string{}
	}
	k.mu.Unlock()
	for _, res := range run.Resources {
		if res.ID == "" || res.Kind == ledger.KindLocalFile || res.Region == "" || run.Kept[res.ID] {
			continue
		}
		k2 := key{res.Build, res.Region}
		if seen[res.Region+"/"+res.ID] || k.isGone(res.Region, res.ID) {
			continue
		}
		seen[res.Region+"/"+res.ID] = true
		ids[k2] = append(ids[k2], res.ID)
	}
	var keys []key
	for k2 := range ids {
		keys = append(keys, k2)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].build+keys[i].region < keys[j].build+keys[j].region })
	var firstErr error
	for _, k2 := range keys {
		k.mu.Lock()
		clients := k.clients[k2.build]
		k.mu.Unlock()
		if clients == nil {
			continue
		}
		c := clients(k2.region)
		var resources []string
		for _, id := range ids[k2] {
			if rid := k.taggableID(ctx, c, k2.region, id); rid != "" {
				resources = append(resources, rid)
			}
		}
		if len(resources) == 0 {
			continue
		}
		if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: resources, Tags: tags}); err == nil {
			continue
		}
		// One id not visible yet (or gone) fails the whole call.
		for _, id := range resources {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: tags})
			switch {
			case err == nil:
			case isGone(err):
				// Not visible yet, or gone for good: Describe will tell
				// the cleanups; stop tagging what the build deleted.
				k.markGoneIfOld(run, k2.region, id)
			case firstErr == nil:
				firstErr = fmt.Errorf("push the lease of %s in %s: %w", id, k2.region, err)
			}
		}
	}
	return firstErr
}

func (k *Keeper) isGone(region, id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gone[region+"/"+id]
}

// markGoneIfOld stops refreshing id once the run recorded it deleted: a
// NotFound for a resource the build still uses is eventual consistency.
func (k *Keeper) markGoneIfOld(run *ledger.Run, region, id string) {
	for _, res := range run.Left() {
		if res.ID == id && res.Region == region {
			return // still the build's: not visible yet
		}
	}
	k.mu.Lock()
	k.gone[region+"/"+id] = true
	k.mu.Unlock()
}

// taggableID returns the id CreateTags takes for a journaled id: key pairs
// are journaled by name, and tagged by their key-... id.
func (k *Keeper) taggableID(ctx context.Context, c TagAPI, region, id string) string {
	if idPrefix.MatchString(id) {
		return id
	}
	k.mu.Lock()
	kid, ok := k.keyIDs[region+"/"+id]
	k.mu.Unlock()
	if ok {
		return kid
	}
	out, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{id}})
	if err != nil || len(out.KeyPairs) == 0 {
		return ""
	}
	kid = aws.ToString(out.KeyPairs[0].KeyPairId)
	k.mu.Lock()
	k.keyIDs[region+"/"+id] = kid
	k.mu.Unlock()
	return kid
}

// idPrefix matches EC2 resource ids (i-, sg-, vol-, ami-, snap-, key-...).
var idPrefix = regexp.MustCompile(`^[a-z]+-[0-9a-f]{8,17}$`)

// Release lifts the lease from a successful build's artifacts (its AMIs
// and snapshots), so that no `cleanup --tagged` ever takes them for a dead
// run's leftovers.
func (k *Keeper) Release(ctx context.Context, build, region string, ids []string) error {
	k.mu.Lock()
	clients := k.clients[build]
	k.mu.Unlock()
	if clients == nil || len(ids) == 0 {
		return nil
	}
	_, err := clients(region).DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids, Tags: []types.Tag{{Key: aws.String(ledger.TagLeaseUntil)}}})
	if err != nil {
		return fmt.Errorf("lift the %s tag from %v in %s: %w", ledger.TagLeaseUntil, ids, region, err)
	}
	return nil
}
