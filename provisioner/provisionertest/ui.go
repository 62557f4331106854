package provisionertest

import (
	"context"
	"strings"
	"sync"

	"github.com/amibake/amibake/internal/ui"
)

// UI records what a plugin tells the user, one entry per call, in order.
type UI struct {
	mu    sync.Mutex
	Lines []string // "say: ...", "message: ...", "error: ..."
	// Answer answers Ask; nil means nobody can answer (ui.ErrNoPrompt).
	Answer func(ctx context.Context, q string) (string, error)
	Asked  []string
}

func (u *UI) add(kind, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Lines = append(u.Lines, kind+": "+msg)
}

func (u *UI) Say(msg string)                      { u.add("say", msg) }
func (u *UI) Message(msg string)                  { u.add("message", msg) }
func (u *UI) Error(msg string)                    { u.add("error", msg) }
func (u *UI) Machine(kind string, data ...string) {}

func (u *UI) Ask(ctx context.Context, q string) (string, error) {
	u.mu.Lock()
	u.Asked = append(u.Asked, q)
	a := u.Answer
	u.mu.Unlock()
	if a == nil {
		return "", ui.ErrNoPrompt
	}
	return a(ctx, q)
}

// Text returns the recorded lines joined by newlines.
func (u *UI) Text() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.Lines, "\n")
}

// Has reports whether a recorded line equals line.
func (u *UI) Has(line string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, l := range u.Lines {
		if l == line {
			return true
		}
	}
	return false
}

var _ ui.UI = (*UI)(nil)
