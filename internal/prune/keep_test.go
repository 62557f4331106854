package prune

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStem(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello_ami 1795653721", "hello_ami *"},
		{"app-20261202071503", "app-*"},
		{"app-2026-12-02T07-15-03Z", "app-*"},
		{"app 2026-12-02", "app *"},
		{"web-20261202", "web-*"},
		{"web-v12-20261202", "web-v12-*"},
		{"no timestamp", "no timestamp"},
		{"ubuntu-noble-24.04-amd64-server-20261105", "ubuntu-noble-24.04-amd64-server-*"},
	} {
		if got := Stem(tc.in); got != tc.want {
			t.Errorf("Stem(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GroupBy
		err  bool
	}{
		{"", GroupBy{Kind: GroupName}, false},
		{"name", GroupBy{Kind: GroupName}, false},
		{"build", GroupBy{Kind: GroupBuild}, false},
		{"all", GroupBy{Kind: GroupAll}, false},
		{"tag:Amazon_AMI_Management_Identifier", GroupBy{Kind: GroupTag, TagKey: "Amazon_AMI_Management_Identifier"}, false},
		{"tag:", GroupBy{}, true},
		{"colour", GroupBy{}, true},
	} {
		got, err := ParseGroupBy(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// img makes image n of a series, baked n hours after t0, in region.
func img(region, id, name string, n int, tags ...string) Image {
	im := Image{Region: region, ID: id, Name: name, Created: t0.Add(time.Duration(n) * time.Hour), Tags: map[string]string{}, Snapshots: []string{"snap-" + id[4:]}}
	for i := 0; i+1 < len(tags); i += 2 {
		im.Tags[tags[i]] = tags[i+1]
	}
	return im
}

func actions(ds []Decision) map[string]string {
	out := map[string]string{}
	for _, d := range ds {
		out[d.Region+"/"+d.ImageID] = d.Action
	}
	return out
}

func TestDecide(t *testing.T) {
	// Two regions: us-east-1 bakes, eu-west-1 gets copies with the same
	// name. r4 was reused later by a commit that copied it to eu-west-1.
	series := []Image{
		img("us-east-1", "ami-e1", "app 1000000001", 1),
		img("eu-west-1", "ami-w1", "app 1000000001", 1),
		img("us-east-1", "ami-e2", "app 1000000002", 2),
		img("eu-west-1", "ami-w2", "app 1000000002", 2),
		img("us-east-1", "ami-e3", "app 1000000003", 3),
		img("us-east-1", "ami-e4", "app 1000000004", 4, "amibake:input-digest", "d4"),
		img("us-east-1", "ami-e5", "app 1000000005", 5),
		img("eu-west-1", "ami-w5", "app 1000000005", 5),
	}
	// The reuse copy: another name would not matter, the digest and the
	// source id tie it to ami-e4; it was made at hour 6.
	cp := img("eu-west-1", "ami-a4", "app-copy", 6, "amibake:input-digest", "d4") // sorts first
	cp.SourceRegion, cp.SourceImageID = "us-east-1", "ami-e4"
	series = append([]Image{cp}, series...)
	other := img("us-east-1", "ami-o1", "other 1000000001", 1)

	for _, tc := range []struct {
		name    string
		images  []Image
		by      GroupBy
		rules   Rules
		protect func(Image) string
		keep    []string // region/id kept; the rest deleted
	}{
		{
			name: "keep 2 releases: the reused release counts from its copy", images: series, by: GroupBy{Kind: GroupName},
			rules: Rules{Keep: 2},
			keep:  []string{"us-east-1/ami-e4", "eu-west-1/ami-a4", "us-east-1/ami-e5", "eu-west-1/ami-w5"},
		},
		{
			name: "keep 0 deletes everything", images: series, by: GroupBy{Kind: GroupName}, rules: Rules{Keep: 0},
		},
		{
			name: "keep-within 2h30m", images: series, by: GroupBy{Kind: GroupName},
			rules: Rules{Keep: -1, Within: 150 * time.Minute, Now: t0.Add(6 * time.Hour)},
			keep:  []string{"us-east-1/ami-e4", "eu-west-1/ami-a4", "us-east-1/ami-e5", "eu-west-1/ami-w5"},
		},
		{
			name: "keep 1 or within 3h30m: either rule keeps", images: series, by: GroupBy{Kind: GroupName},
			rules: Rules{Keep: 1, Within: 210 * time.Minute, Now: t0.Add(6 * time.Hour)},
			keep:  []string{"us-east-1/ami-e3", "us-east-1/ami-e4", "eu-west-1/ami-a4", "us-east-1/ami-e5", "eu-west-1/ami-w5"},
		},
		{
			name: "protected release stays whole", images: series, by: GroupBy{Kind: GroupName}, rules: Rules{Keep: 1},
			protect: func(im Image) string {
				if im.ID == "ami-w1" {
					return "current"
				}
				return ""
			},
			keep: []string{"us-east-1/ami-e1", "eu-west-1/ami-w1", "us-east-1/ami-e4", "eu-west-1/ami-a4"},
		},
		{
			name: "groups count apart", images: append([]Image{other}, series...), by: GroupBy{Kind: GroupName}, rules: Rules{Keep: 1},
			keep: []string{"us-east-1/ami-o1", "us-east-1/ami-e4", "eu-west-1/ami-a4"},
		},
		{
			name: "group all counts them together", images: append([]Image{other}, series...), by: GroupBy{Kind: GroupAll}, rules: Rules{Keep: 1},
			keep: []string{"us-east-1/ami-e4", "eu-west-1/ami-a4"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Decide(tc.images, tc.by, tc.rules, tc.protect)
			want := map[string]string{}
			for _, im := range tc.images {
				want[im.Region+"/"+im.ID] = ActionDelete
			}
			for _, k := range tc.keep {
				want[k] = ActionKeep
			}
			if got := actions(ds); !reflect.DeepEqual(got, want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
			for _, d := range ds {
				if d.Reason == "" {
					t.Errorf("%s has no reason", d.ImageID)
				}
			}
		})
	}
}

func TestDecideReasonsAndDeprecate(t *testing.T) {
	images := []Image{img("us-east-1", "ami-a1", "app 1000000001", 1), img("us-east-1", "ami-a2", "app 1000000002", 2), img("us-east-1", "ami-a3", "app 1000000003", 3)}
	images[0].Deprecation = t0.Add(10 * time.Hour)
	ds := Decide(images, GroupBy{Kind: GroupName}, Rules{Keep: 1, Deprecate: true}, nil)
	got := map[string]string{}
	for _, d := range ds {
		got[d.ImageID] = d.Action + ": " + d.Reason
	}
	want := map[string]string{
		"ami-a3": "keep: release 1 of 3: among the 1 newest",
		"ami-a2": "deprecate: release 2 of 3: not among the 1 newest",
		"ami-a1": "keep: already deprecated (at 2026-12-01T10:00:00Z)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestApplyUsage(t *testing.T) {
	for _, tc := range []struct {
		name          string
		includeShared bool
		want          map[string]string
	}{
		{"shared kept", false, map[string]string{"ami-1": "keep: in use by instance i-1 (running)", "ami-2": "keep: shared with account 111122223333 (--include-shared to delete it anyway)", "ami-3": "delete: old"}},
		{"include shared", true, map[string]string{"ami-1": "keep: in use by instance i-1 (running)", "ami-2": "delete: old", "ami-3": "delete: old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := []Decision{
				{Region: "r", ImageID: "ami-1", Action: ActionDelete, Reason: "old"},
				{Region: "r", ImageID: "ami-2", Action: ActionDelete, Reason: "old"},
				{Region: "r", ImageID: "ami-3", Action: ActionDelete, Reason: "old"},
			}
			ApplyUsage(ds, Usage{InUse: map[string]string{"r/ami-1": "instance i-1 (running)"}, Shared: map[string]string{"r/ami-2": "account 111122223333"}}, tc.includeShared)
			got := map[string]string{}
			for _, d := range ds {
				got[d.ImageID] = d.Action + ": " + d.Reason
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPlanSnapshots(t *testing.T) {
	ds := []Decision{
		{Region: "r", ImageID: "ami-1", Action: ActionDelete, Snapshots: []string{"snap-1", "snap-shared"}},
		{Region: "r", ImageID: "ami-2", Action: ActionDelete, Snapshots: []string{"snap-2", "snap-shared"}},
		{Region: "r", ImageID: "ami-3", Action: ActionDelete, Snapshots: []string{"snap-3"}},
		{Region: "r", ImageID: "ami-4", Action: ActionKeep, Snapshots: []string{"snap-4"}},
	}
	users := map[string][]string{
		"r/snap-1": {"ami-1"}, "r/snap-2": {"ami-2"}, "r/snap-shared": {"ami-1", "ami-2"},
		"r/snap-3": {"ami-3", "ami-4"}, // ami-4 (kept) was registered from ami-3's snapshot
	}
	var got []string
	for _, s := range PlanSnapshots(ds, users) {
		got = append(got, fmt.Sprintf("%s %s %s", s.SnapshotID, s.Action, s.Reason))
	}
	want := []string{
		"snap-1 delete its AMI ami-1 goes",
		"snap-shared delete its AMI ami-1 goes",
		"snap-2 delete its AMI ami-2 goes",
		"snap-3 keep also used by ami-4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"36h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"0d", 0, true},
		{"-1h", 0, true},
		{"d", 0, true},
		{"3x", 0, true},
		{"1.5d", 0, true},
	} {
		got, err := ParseAge(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseAge(%q) = %v, %v", tc.in, got, err)
		}
	}
}
