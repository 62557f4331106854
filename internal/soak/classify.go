package soak

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var (
	errLineRe = regexp.MustCompile(`(?m)^(?:Error: |.*Build '[^']+' errored after [^:]+: |.*[Ee]rror: )(.{10,})$`)
	interRe   = regexp.MustCompile(`(?i)interrupt|cancel`)
)

// classify decides whether a build succeeded, or failed saying clearly why.
func classify(ps *os.ProcessState, output string, r *result, killed bool) (outcome, string) {
	code := -1
	if ps != nil {
		code = ps.ExitCode()
	}
	return classifyCode(code, output, r, killed)
}

func classifyCode(code int, output string, r *result, killed bool) (outcome, string) {
	switch {
	case killed:
		return failed, "killed (SIGKILL), then removed by amibake cleanup --all"
	case code == 0:
		return succeeded, ""
	case r.fate == fateSIGINT && r.signalled && (code == 130 || code == 143):
		if interRe.MatchString(output) {
			return failed, "interrupted (exit " + fmt.Sprint(code) + ")"
		}
		return unclear, "exit " + fmt.Sprint(code) + " after SIGINT without saying so"
	}
	if m := errLineRe.FindAllStringSubmatch(output, -1); len(m) > 0 {
		return failed, strings.TrimSpace(m[len(m)-1][0])
	}
	return unclear, "exit " + fmt.Sprint(code) + " without an error message: " + lastLines(output, 2)
}

var idRe = regexp.MustCompile(`\b(i|sg|key|vol|snap|ami|r|eni|subnet|vpc|lt)-[0-9a-f]{8,17}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b\d{8}T\d{6}Z-[0-9a-f]{6}\b|\d+(\.\d+)?(ms|s|m)\b|\d+ (milliseconds?|seconds?|minutes?)`)

// normalise makes messages that differ only in ids and durations count as one.
func normalise(msg string) string {
	msg = idRe.ReplaceAllStringFunc(msg, func(m string) string {
		if i := strings.IndexByte(m, '-'); i > 0 && i < 7 && !strings.Contains(m, "T") {
			return m[:i] + "-…"
		}
		return "…"
	})
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
