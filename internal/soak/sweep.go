package soak

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// sweeps2 is a second CI runner: its own state directory (an empty
// ledger) and its own credentials, running `cleanup --tagged
// --older-than 0s` every SweepEvery while builds run. Every build is
// older than that; only its lease protects it. A row it removed of a run
// whose process was alive for the whole sweep is a violation.
func (s *soak) sweeps2(ctx context.Context) {
	dir := filepath.Join(s.work, "runner-b")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.violation("second runner: %v", err)
		return
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_STATE_HOME=" + dir, "TMPDIR=" + dir,
		"AWS_ENDPOINT_URL=" + s.proxy.url, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(s.work, "empty"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.work, "empty"),
		"AWS_ACCESS_KEY_ID=AKIASOAKRUNNERB00001", "AWS_SECRET_ACCESS_KEY=runner-b-secret", "NO_COLOR=1",
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.c.SweepEvery):
		}
		before := s.liveRuns()
		cctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
		c := exec.CommandContext(cctx, s.bin, "cleanup", "--tagged", "--older-than", "0s", "--region", s.c.SweepRegion)
		c.Env, c.Dir = env, dir
		out, _ := c.CombinedOutput()
		cancel()
		if ctx.Err() != nil {
			return
		}
		after := s.liveRuns()
		s.violMu.Lock()
		s.sweeps++
		s.leaseHits += strings.Count(string(out), "is alive (lease until")
		s.violMu.Unlock()
		if s.c.Verbose {
			s.printf("---- second runner's sweep\n%s----\n", out)
		}
		for _, row := range touchedRuns(string(out)) {
			if before[row.run] && after[row.run] {
				s.violation("a second runner's `cleanup --tagged` %s %s %s of live run %s", row.outcome, row.kind, row.id, row.run)
			}
		}
	}
}

// liveRuns returns the run ids of the builds whose process runs now: the
// journal names in their state directories.
func (s *soak) liveRuns() map[string]bool {
	s.liveMu.Lock()
	dirs := make([]string, 0, len(s.live))
	for _, d := range s.live {
		dirs = append(dirs, d)
	}
	s.liveMu.Unlock()
	out := map[string]bool{}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "amibake", "runs", "*.jsonl"))
		for _, f := range files {
			out[strings.TrimSuffix(filepath.Base(f), ".jsonl")] = true
		}
	}
	return out
}

type touched struct{ run, kind, id, outcome string }

// touchedRuns parses cleanup's table: the rows it removed or wrote off.
func touchedRuns(out string) []touched {
	var rows []touched
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] == "RUN" {
			continue
		}
		rest := strings.Join(f[4:], " ")
		if strings.HasPrefix(rest, "removed") || strings.HasPrefix(rest, "already gone") {
			rows = append(rows, touched{run: f[0], kind: f[2], id: f[3], outcome: strings.Fields(rest)[0]})
		}
	}
	return rows
}
