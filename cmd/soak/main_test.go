package main

import (
	"regexp"
	"testing"
	"time"
)

// The summary is the soak's contract with CI: keep its shape.
func TestSummaryLine(t *testing.T) {
	got := summary{n: 30, ok: 25, failed: 5, hung: 0, leaked: 0, medianCalls: 41, p95: 23456 * time.Millisecond}.line()
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
