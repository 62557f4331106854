package reaper

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestReportGolden(t *testing.T) {
	items := []Item{
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindInstance, ID: "i-0123456789abcdef0", Outcome: Removed},
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindSecurityGroup, ID: "sg-0123456789abcdef0", Name: "amibake_5f70", Outcome: Failed,
			Err: errors.New("delete security group sg-0123456789abcdef0: still in use"), Detail: "still in use after 10m0s: DependencyViolation"},
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindKeyPair, ID: "key-0123456789abcdef0", Name: "amibake_5f70", Outcome: AlreadyGone},
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindImage, ID: "ami-0123456789abcdef0", Name: "web 1795651666", Outcome: Skipped, Detail: "pending image: add --include-images to remove it"},
		{Run: "20261125T234500Z-ab12cd", Kind: ledger.KindLocalFile, Name: "/home/ci/.local/state/amibake/keys/ab12cd.pem", Outcome: Removed},
		{Run: "20261120T101010Z-000001", Region: "eu-west-1", Kind: ledger.KindKeyPair, ID: "key-0fedcba987654321f", Name: "users-key", Outcome: Skipped, Detail: "no amibake:run-id tag: not amibake's, left alone"},
	}
	rep := &Report{Items: items, Skipped: []RunNote{{"20261126T000000Z-beef00", "still running (process 4242)"}}}
	golden(t, "report", rep.String())

	dry := &Report{DryRun: true, Items: []Item{
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindInstance, ID: "i-0123456789abcdef0", Outcome: WouldRemove},
		{Run: "20261125T234500Z-ab12cd", Region: "us-east-1", Kind: ledger.KindVolume, ID: "vol-0123456789abcdef0", Outcome: WouldRemove},
	}}
	golden(t, "report_dry_run", dry.String())
	if rep.Err() == nil || dry.Err() != nil {
		t.Errorf("Err: %v / %v", rep.Err(), dry.Err())
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestReportNotVerified(t *testing.T) {
	rep := &Report{Items: []Item{{Run: "r1", Region: "us-east-1", Kind: ledger.KindInstance, ID: "i-1", Outcome: NotVerified,
		Detail: "recorded in account 111111111111, credentials reach 222222222222; check: aws ec2 describe-instances --instance-ids i-1 --region us-east-1"}},
		Notes: []RunNote{{"r1", "kept what it recorded in account 111111111111: run, with credentials for account 111111111111: amibake cleanup --run-id r1"}}}
	out := rep.String()
	for _, want := range []string{"not verified: recorded in account 111111111111", "run r1: kept what it recorded", "0 removed, 0 already gone, 0 kept, 0 skipped, 0 failed, 1 not verified.\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "instance i-1 in us-east-1 not verified") {
		t.Errorf("Err = %v", err)
	}
}
