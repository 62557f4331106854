package prune

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Options are what a prune selects, keeps and does.
type Options struct {
	Selection Selection
	GroupBy   GroupBy
	Rules     Rules
	// Regions are searched first; the regions copies came from are added.
	Regions []string
	// Protect returns why an image must stay whatever the rules say, or "".
	Protect func(Image) string
	// IncludeShared deletes AMIs shared with other accounts too.
	IncludeShared bool
	// OnlyRegions searches Regions and no other (the regions copies came
	// from are not added).
	OnlyRegions bool
}

// ErrNothingSelected is returned by MakePlan when no AMI matches.
var ErrNothingSelected = errors.New("no AMI matches")

// MakePlan finds the selected AMIs and decides what happens to each, with
// read-only calls: DescribeImages, DescribeInstances,
// DescribeLaunchTemplateVersions and DescribeImageAttribute.
func MakePlan(ctx context.Context, clients Clients, o Options) (*Plan, error) {
	if o.Selection.Empty() {
		return nil, errors.New("a prune needs a selection: tags, a name pattern or a template")
	}
	if o.Rules.Keep < 0 && o.Rules.Within <= 0 {
		return nil, errors.New("a prune needs a keep rule: how many releases to keep, or for how long")
	}
	images, searched, err := Find(ctx, clients, o.Selection, o.Regions, !o.OnlyRegions)
	if err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return &Plan{Regions: searched}, fmt.Errorf("%w (%s) among the AMIs this account owns in %s", ErrNothingSelected, o.Selection, strings.Join(searched, ", "))
	}
	ds := Decide(images, o.GroupBy, o.Rules, o.Protect)
	u := Usage{InUse: map[string]string{}, Shared: map[string]string{}}
	users := map[string][]string{}
	byRegion := map[string][]Image{}
	for _, d := range ds {
		if d.Action != ActionKeep {
			byRegion[d.Region] = append(byRegion[d.Region], d.img)
		}
	}
	for _, region := range sortedKeys(byRegion) {
		client, err := clients(region)
		if err != nil {
			return nil, err
		}
		if err := usage(ctx, client, region, byRegion[region], u); err != nil {
			return nil, err
		}
	}
	ApplyUsage(ds, u, o.IncludeShared)
	snapsByRegion := map[string][]string{}
	for _, d := range ds {
		if d.Action == ActionDelete {
			snapsByRegion[d.Region] = append(snapsByRegion[d.Region], d.Snapshots...)
		}
	}
	for _, region := range sortedKeys(snapsByRegion) {
		client, err := clients(region)
		if err != nil {
			return nil, err
		}
		if err := snapshotUsers(ctx, client, region, snapsByRegion[region], users); err != nil {
			return nil, err
		}
	}
	sort.Strings(searched)
	return &Plan{Images: ds, Snapshots: PlanSnapshots(ds, users), Regions: searched}, nil
}
