package soak

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/internal/reaper"
)

// The summary is the soak's contract with CI: keep its shape.
func TestSummaryLine(t *testing.T) {
	got := Summary{N: 30, OK: 25, Failed: 5, Hung: 0, Leaked: 0, MedianCalls: 41, P95: 23456 * time.Millisecond}.Line()
	want := "soak: 30 builds, 25 succeeded, 5 failed with a clear error, 0 hung, 0 resources leaked, 41 API calls per build (median), P95 wall 23.5 s"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	re := regexp.MustCompile(`^soak: \d+ builds, \d+ succeeded, \d+ failed with a clear error, \d+ hung, \d+ resources leaked, \d+ API calls per build \(median\), P95 wall \d+\.\d s$`)
	if !re.MatchString(got) {
		t.Error("summary does not match its documented shape")
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name   string
		out    string
		r      result
		killed bool
		code   int
		want   outcome
	}{
		{"success", "==> Builds finished.", result{}, false, 0, succeeded},
		{"clear error", "Build 'amazon-ebs' errored after 3 seconds: launch instance: InsufficientInstanceCapacity: try another instance_type\n", result{}, false, 1, failed},
		{"cli error", "Error: open the run journal: permission denied\n", result{}, false, 1, failed},
		{"silent failure", "==> amazon-ebs: Launching...\n", result{}, false, 1, unclear},
		{"interrupted", "Interrupt received: cancelling the builds\n", result{fate: fateSIGINT, signalled: true}, false, 130, failed},
		{"interrupted silently", "", result{fate: fateSIGINT, signalled: true}, false, 130, unclear},
		{"killed", "", result{fate: fateSIGKILL, signalled: true}, true, -1, failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := classifyCode(tt.code, tt.out, &tt.r, tt.killed)
			if got != tt.want {
				t.Errorf("classify = %s (%s), want %s", got, msg, tt.want)
			}
		})
	}
}

func TestNormalise(t *testing.T) {
	a := normalise("Build 'x' errored after 3 seconds: delete sg-0123456789abcdef0 in run 20261125T234500Z-ab12cd")
	b := normalise("Build 'x' errored after 12 seconds: delete sg-fedcba9876543210f in run 20261126T000000Z-000000")
	if a != b {
		t.Errorf("messages differing only in ids and durations stay apart:\n%s\n%s", a, b)
	}
}

func TestTouchedRuns(t *testing.T) {
	out := `RUN                      REGION          KIND            ID                     OUTCOME
20261202T000000Z-aaaaaa  ap-northeast-1  instance        i-0123456789abcdef0    removed
20261202T000000Z-bbbbbb  ap-northeast-1  security-group  sg-0123456789abcdef0   skipped: its run 20261202T000000Z-bbbbbb is alive (lease until 2026-12-02T00:00:09Z)
20261202T000000Z-cccccc  ap-northeast-1  key-pair        key-0123456789abcdef0  already gone
1 removed, 1 already gone, 0 kept, 1 skipped, 0 failed.
`
	got := touchedRuns(out)
	if len(got) != 2 || got[0].run != "20261202T000000Z-aaaaaa" || got[0].outcome != "removed" || got[1].outcome != "already" {
		t.Errorf("touchedRuns = %+v", got)
	}
}

func TestArtifactLines(t *testing.T) {
	out := "==> Builds finished. The artifacts of successful builds are:\n--> amazon-ebs: AMIs were created:\nap-northeast-1: ami-0123456789abcdef0\nus-west-2: ami-0fedcba987654321f\n"
	var got []string
	for _, m := range artifactRe.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, ",") != "ami-0123456789abcdef0,ami-0fedcba987654321f" {
		t.Errorf("artifacts = %v", got)
	}
}

// A cleanup from the wrong endpoint may remove a dead run's local files
// (this machine's), never write off a cloud resource: the rows are read
// from the reaper's own report.
func TestCloudWriteOffs(t *testing.T) {
	local := reaper.Item{Run: "r1", Kind: ledger.KindLocalFile, Name: "/tmp/amibake-r1-packer-shell1", Outcome: reaper.Removed}
	gone := reaper.Item{Run: "r1", Region: "ap-northeast-1", Kind: ledger.KindKeyPair, ID: "key-1", Name: "amibake_x", Outcome: reaper.AlreadyGone}
	removed := reaper.Item{Run: "r1", Region: "ap-northeast-1", Kind: ledger.KindSecurityGroup, ID: "sg-1", Outcome: reaper.Removed}
	kept := reaper.Item{Run: "r1", Region: "ap-northeast-1", Kind: ledger.KindInstance, ID: "i-1", Outcome: reaper.NotVerified, Detail: "recorded in account 1, credentials reach 2"}
	for _, tc := range []struct {
		name  string
		items []reaper.Item
		want  int
	}{
		{"nothing", nil, 0},
		{"a local file removed", []reaper.Item{local, kept}, 0},
		{"a cloud resource called gone", []reaper.Item{local, gone, kept}, 1},
		{"a cloud resource removed", []reaper.Item{removed}, 1},
		{"both", []reaper.Item{gone, removed, local}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := (&reaper.Report{Items: tc.items}).String()
			if got := cloudWriteOffs(rep); len(got) != tc.want {
				t.Errorf("got %d rows %q, want %d, from\n%s", len(got), got, tc.want, rep)
			}
		})
	}
}
