package prune

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reuse"
)

// Group kinds.
const (
	GroupName  = "name"  // the AMI name with its timestamp part left out
	GroupBuild = "build" // the amibake:build tag (the template build that made it)
	GroupTag   = "tag"   // the value of one tag (an identifier tag)
	GroupAll   = "all"   // every selected AMI is one group
)

// GroupBy says how AMIs are grouped before the keep rules count releases.
type GroupBy struct {
	Kind   string
	TagKey string // for GroupTag
}

// ParseGroupBy reads --group-by: name, build, all or tag:KEY.
func ParseGroupBy(s string) (GroupBy, error) {
	switch {
	case s == GroupName || s == "":
		return GroupBy{Kind: GroupName}, nil
	case s == GroupBuild:
		return GroupBy{Kind: GroupBuild}, nil
	case s == GroupAll:
		return GroupBy{Kind: GroupAll}, nil
	case strings.HasPrefix(s, "tag:") && len(s) > 4:
		return GroupBy{Kind: GroupTag, TagKey: s[4:]}, nil
	}
	return GroupBy{}, fmt.Errorf("--group-by %q: want name (the AMI name without its timestamp), build (the amibake:build tag), tag:KEY or all", s)
}

func (g GroupBy) String() string {
	if g.Kind == GroupTag {
		return "tag:" + g.TagKey
	}
	return g.Kind
}

// Key is the group an image belongs to.
func (g GroupBy) Key(im Image) string {
	switch g.Kind {
	case GroupBuild:
		if b := im.Tags[ledger.TagBuild]; b != "" {
			return "build " + b
		}
		return "no " + ledger.TagBuild + " tag: " + Stem(im.Name)
	case GroupTag:
		if v, ok := im.Tags[g.TagKey]; ok {
			return g.TagKey + "=" + v
		}
		return "no " + g.TagKey + " tag"
	case GroupAll:
		return "all"
	}
	return Stem(im.Name)
}

// timestampRe matches the parts of AMI names that change every build:
// Unix times ({{timestamp}}), and dates with optional times in the shapes
// formatdate, isotime and clean_resource_name leave (20261202, 2026-12-02,
// 20261202071503, 2026-12-02T07-15-03Z, 2026-12-02T07.15.03.123Z).
var timestampRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\d{10,}|\d{4}-\d{2}-\d{2}(?:[T_ .-]?\d{2}[:.-]?\d{2}(?:[:.-]?\d{2})?(?:\.\d+)?Z?)?|\d{8}(?:[T_.-]?\d{4,6})?Z?`)
})

// Stem is a name with its timestamp parts replaced by "*": the names of
// one template's builds share it, and it is an EC2 name filter matching
// them ("hello_ami 1795653721" → "hello_ami *").
func Stem(name string) string {
	return timestampRe().ReplaceAllString(name, "*")
}

// releases groups images into releases: copies of one bake share its name
// (ami_regions copies and the copies --reuse makes to regions that lack
// the AMI), and a copy carrying the same input digest as its source is the
// same release even under another name. It returns, per image index, the
// index of its release's representative.
func releases(images []Image) []int {
	parent := make([]int, len(images))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		if ra > rb {
			ra, rb = rb, ra
		}
		parent[rb] = ra
	}
	byName := map[string]int{}
	byRegionID := map[string]int{}
	for i, im := range images {
		if j, ok := byName[im.Name]; ok {
			union(i, j)
		} else {
			byName[im.Name] = i
		}
		byRegionID[im.Region+"/"+im.ID] = i
	}
	for i, im := range images {
		if im.SourceRegion == "" || im.SourceImageID == "" {
			continue
		}
		j, ok := byRegionID[im.SourceRegion+"/"+im.SourceImageID]
		if !ok {
			continue
		}
		if d := im.Tags[reuse.TagKey]; d != "" && d == images[j].Tags[reuse.TagKey] {
			// The source leads the release (its name names the group).
			if ri, rj := find(i), find(j); ri != rj {
				parent[ri] = rj
			}
		}
	}
	out := make([]int, len(images))
	for i := range images {
		out[i] = find(i)
	}
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
