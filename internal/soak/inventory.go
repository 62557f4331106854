package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/awsclient"
)

// tracker watches the simulator's inventory (GET /_sim/inventory): what
// the account holds, whoever made it and however it is tagged.
type tracker struct {
	url    string
	client *http.Client

	mu        sync.Mutex
	base      map[string]bool      // held before the first build
	firstSeen map[string]time.Time // when each id first appeared
}

// held is one resource in the inventory.
type held struct {
	region, kind, id string
	first            time.Time
}

func newTracker(simURL string) *tracker {
	return &tracker{url: simURL, client: &http.Client{Timeout: 10 * time.Second}, base: map[string]bool{}, firstSeen: map[string]time.Time{}}
}

// fetch returns every resource the inventory lists.
func (t *tracker) fetch(ctx context.Context) ([]held, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/_sim/inventory", nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /_sim/inventory: %s", resp.Status)
	}
	var inv struct {
		Regions map[string]map[string][]string `json:"regions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil {
		return nil, fmt.Errorf("decode /_sim/inventory: %w", err)
	}
	var out []held
	for region, kinds := range inv.Regions {
		for kind, ids := range kinds {
			for _, id := range ids {
				out = append(out, held{region: region, kind: kind, id: id})
			}
		}
	}
	return out, nil
}

func (t *tracker) baseline(ctx context.Context) error {
	hs, err := t.fetch(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hs {
		t.base[h.region+"/"+h.id] = true
	}
	return nil
}

// poll records when each id first appears, until ctx ends.
func (t *tracker) poll(ctx context.Context, every time.Duration) {
	for {
		if hs, err := t.fetch(ctx); err == nil {
			now := time.Now()
			t.mu.Lock()
			for _, h := range hs {
				k := h.region + "/" + h.id
				if _, ok := t.firstSeen[k]; !ok {
					t.firstSeen[k] = now
				}
			}
			t.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// leftovers waits up to d for the account to hold nothing but what it held
// before and the artifacts of successful builds (their AMIs and those
// AMIs' snapshots, as the simulator's DescribeImages lists them), and
// returns what else stays.
func (t *tracker) leftovers(ctx context.Context, amis []string, d time.Duration) []held {
	keep := map[string]bool{}
	for _, id := range amis {
		keep[id] = true
	}
	deadline := time.Now().Add(d)
	for {
		hs, err := t.fetch(ctx)
		if err != nil {
			return []held{{kind: "inventory", id: err.Error()}}
		}
		// The artifacts' snapshots, from the simulator's EC2 API.
		snaps := t.snapshotsOf(ctx, hs, keep)
		var out []held
		t.mu.Lock()
		for _, h := range hs {
			k := h.region + "/" + h.id
			if t.base[k] || keep[h.id] || snaps[h.id] {
				continue
			}
			h.first = t.firstSeen[k]
			out = append(out, h)
		}
		t.mu.Unlock()
		if len(out) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			sort.Slice(out, func(i, j int) bool { return out[i].kind+out[i].id < out[j].kind+out[j].id })
			return out
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (t *tracker) snapshotsOf(ctx context.Context, hs []held, amis map[string]bool) map[string]bool {
	byRegion := map[string][]string{}
	for _, h := range hs {
		if h.kind == "images" && amis[h.id] {
			byRegion[h.region] = append(byRegion[h.region], h.id)
		}
	}
	out := map[string]bool{}
	for region, ids := range byRegion {
		c := ec2.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(t.url), HTTPClient: awsclient.HTTPClient(nil),
			Credentials: credentials.NewStaticCredentialsProvider("AKIASOAKCHECKER00001", "checker", "")},
			func(o *ec2.Options) {
				// The checker must not give up under the injected faults.
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.MaxAttempts, so.MaxBackoff, so.RateLimiter = 30, time.Second, ratelimit.None
				})
			})
		res, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: ids})
		if err != nil {
			continue // their snapshots then count as leftovers, and the message says so
		}
		for _, im := range res.Images {
			for _, b := range im.BlockDeviceMappings {
				if b.Ebs != nil && b.Ebs.SnapshotId != nil {
					out[*b.Ebs.SnapshotId] = true
				}
			}
		}
	}
	return out
}
