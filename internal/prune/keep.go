package prune

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Rules are the keep rules. A release is kept when any rule keeps it.
type Rules struct {
	// Keep is how many of the newest releases of each group stay; negative
	// when --keep was not given.
	Keep int
	// Within keeps the releases younger than this; 0 when not given.
	Within time.Duration
	// Now is the time Within counts back from.
	Now time.Time
	// Deprecate sets a deprecation time instead of deleting.
	Deprecate bool
}

// Decide applies the keep rules to images: per group, releases (copies of
// one bake in every region, see releases) are ranked newest first by their
// newest member's creation time; a release is kept when its rank is within
// Keep, when it is younger than Within, or when protect gives a reason for
// one of its members (the AMI a build just made, the one a template's
// current inputs would reuse). Every other AMI is to be deleted (or
// deprecated). It is a pure function: in-use checks come later.
func Decide(images []Image, by GroupBy, r Rules, protect func(Image) string) []Decision {
	rel := releases(images)
	type release struct {
		rep     int
		members []int
		newest  time.Time
		protect string
	}
	groups := map[string]map[int]*release{}
	for i, im := range images {
		// A release is in the group of its first image: a copy named
		// otherwise still counts with what it copies.
		g := by.Key(images[rel[i]])
		if groups[g] == nil {
			groups[g] = map[int]*release{}
		}
		rl := groups[g][rel[i]]
		if rl == nil {
			rl = &release{rep: rel[i]}
			groups[g][rel[i]] = rl
		}
		rl.members = append(rl.members, i)
		if im.Created.After(rl.newest) {
			rl.newest = im.Created
		}
		if protect != nil && rl.protect == "" {
			rl.protect = protect(im)
		}
	}
	var out []Decision
	for _, g := range sortedKeys(groups) {
		var rs []*release
		for _, rl := range groups[g] {
			rs = append(rs, rl)
		}
		sort.Slice(rs, func(i, j int) bool {
			if !rs[i].newest.Equal(rs[j].newest) {
				return rs[i].newest.After(rs[j].newest)
			}
			return images[rs[i].rep].Name > images[rs[j].rep].Name
		})
		for rank, rl := range rs {
			action, reason := keepReason(rank, len(rs), rl.newest, rl.protect, r)
			sort.Slice(rl.members, func(a, b int) bool {
				return images[rl.members[a]].Region < images[rl.members[b]].Region
			})
			for _, i := range rl.members {
				im := images[i]
				a, why := action, reason
				if a != ActionKeep && r.Deprecate {
					a = ActionDeprecate
					if !im.Deprecation.IsZero() {
						a, why = ActionKeep, "already deprecated (at "+im.Deprecation.UTC().Format(time.RFC3339)+")"
					}
				}
				out = append(out, Decision{
					Region: im.Region, ImageID: im.ID, Name: im.Name, Created: im.Created,
					Group: g, Release: images[rl.rep].Name, Action: a, Reason: why,
					Snapshots: slices.Clone(im.Snapshots), img: im,
				})
			}
		}
	}
	return out
}

func keepReason(rank, total int, newest time.Time, protect string, r Rules) (string, string) {
	pos := fmt.Sprintf("release %d of %d", rank+1, total)
	switch {
	case protect != "":
		return ActionKeep, protect
	case r.Keep > 0 && rank < r.Keep:
		return ActionKeep, fmt.Sprintf("%s: among the %d newest", pos, r.Keep)
	case r.Within > 0 && r.Now.Sub(newest) < r.Within:
		return ActionKeep, fmt.Sprintf("%s: younger than %s", pos, human(r.Within))
	}
	var why []string
	if r.Keep >= 0 {
		why = append(why, fmt.Sprintf("not among the %d newest", r.Keep))
	}
	if r.Within > 0 {
		why = append(why, "older than "+human(r.Within))
	}
	return ActionDelete, pos + ": " + strings.Join(why, ", ")
}

// human prints a duration without trailing zero units: 72h, 90m, 1h30m.
func human(d time.Duration) string {
	s := d.String()
	for _, z := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, "m"+z) || strings.HasSuffix(s, "h"+z) {
			s = strings.TrimSuffix(s, z)
		}
	}
	return s
}

// Usage is what keeps an AMI that the rules would delete.
type Usage struct {
	// InUse maps "region/ami-id" to what uses it: an instance or a launch
	// template's default or latest version.
	InUse map[string]string
	// Shared maps "region/ami-id" to the accounts (or "public") it is
	// shared with.
	Shared map[string]string
}

// ApplyUsage keeps what is in use, and what is shared unless
// includeShared. Pure.
func ApplyUsage(ds []Decision, u Usage, includeShared bool) {
	for i := range ds {
		d := &ds[i]
		if d.Action == ActionKeep {
			continue
		}
		k := d.Region + "/" + d.ImageID
		if why := u.InUse[k]; why != "" {
			d.Action, d.Reason = ActionKeep, "in use by "+why
			continue
		}
		if why := u.Shared[k]; why != "" && !includeShared {
			d.Action, d.Reason = ActionKeep, "shared with "+why+" (--include-shared to delete it anyway)"
		}
	}
}

// PlanSnapshots decides the snapshots of the AMIs that go: a snapshot is
// deleted only when every AMI that uses it goes too. users maps
// "region/snap-id" to the AMIs (in that region) whose block devices name
// it. Pure.
func PlanSnapshots(ds []Decision, users map[string][]string) []SnapshotDecision {
	going := map[string]bool{}
	for _, d := range ds {
		if d.Action == ActionDelete {
			going[d.Region+"/"+d.ImageID] = true
		}
	}
	seen := map[string]bool{}
	var out []SnapshotDecision
	for _, d := range ds {
		if d.Action != ActionDelete {
			continue
		}
		for _, sn := range d.Snapshots {
			k := d.Region + "/" + sn
			if seen[k] {
				continue
			}
			seen[k] = true
			var others []string
			for _, u := range users[k] {
				if !going[d.Region+"/"+u] {
					others = append(others, u)
				}
			}
			sd := SnapshotDecision{Region: d.Region, SnapshotID: sn, ImageID: d.ImageID, Action: ActionDelete, Reason: "its AMI " + d.ImageID + " goes"}
			if len(others) > 0 {
				sort.Strings(others)
				sd.Action, sd.Reason = ActionKeep, "also used by "+strings.Join(others, ", ")
			}
			out = append(out, sd)
		}
	}
	return out
}

// ParseAge reads --keep-within: a Go duration (36h, 90m) or whole days
// and weeks (30d, 2w), which Go's durations lack and retention rules use.
func ParseAge(s string) (time.Duration, error) {
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); (unit == "d" || unit == "w") && n != "" {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days > 0 && days < 100000 {
			if unit == "w" {
				days *= 7
			}
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--keep-within %q: want a positive duration such as 36h, 30d or 2w", s)
	}
	return d, nil
}
