package ui

import (
	"sort"
	"strings"
	"sync"
)

// Redacted replaces a secret wherever it would be shown.
const Redacted = "<sensitive>"

// Secrets is the set of values that must never reach output or logs:
// sensitive variables, AWS secret keys, session tokens, private keys.
// Every UI and the slog handler pass their text through Mask.
type Secrets struct {
	mu     sync.RWMutex
	values []string
}

// Add registers values to hide. Empty and one-character values are ignored:
// masking them would garble every line.
func (s *Secrets) Add(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if len(v) < 2 {
			continue
		}
		s.values = append(s.values, v)
		// Multi-line secrets (private keys) are also masked line by line, so
		// that a line-oriented writer cannot leak a fragment.
		if strings.Contains(v, "\n") {
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 8 {
					s.values = append(s.values, line)
				}
			}
		}
	}
	// Longest first, so a secret that contains another is hidden whole.
	sort.SliceStable(s.values, func(i, j int) bool { return len(s.values[i]) > len(s.values[j]) })
}

// Mask returns text with every registered secret replaced by Redacted.
func (s *Secrets) Mask(text string) string {
	if s == nil {
		return text
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.values {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Redacted)
		}
	}
	return text
}
