package ui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// UI is what builders, provisioners and post-processors are handed to tell
// the user what happens. The wording follows Packer's so that logs read the
// same: Say is a step ("==> name: ..."), Message a detail ("    name: ..."),
// Error a failure. Machine emits a structured event that only the
// machine-readable view prints.
type UI interface {
	Say(msg string)
	Message(msg string)
	Error(msg string)
	Machine(kind string, data ...string)
	// Ask asks a question and returns the answer; it fails when no one can
	// answer (CI, no terminal).
	Ask(ctx context.Context, question string) (string, error)
}

// ErrNoPrompt is returned by Ask when nobody can answer.
var ErrNoPrompt = errors.New("cannot ask a question: standard input is not an interactive terminal")

// Options configure a Root.
type Options struct {
	MachineReadable bool
	Timestamps      bool             // -timestamp-ui
	Now             func() time.Time // for tests; time.Now when nil
	Secrets         *Secrets
}

// Root owns the streams and serialises writes from parallel builds. Its own
// Say/Message/Error are unprefixed (the run's summary lines); ForBuild gives
// a build its prefixed, coloured UI.
type Root struct {
	io   *IOStreams
	opts Options
	mu   sync.Mutex
	ask  sync.Mutex
	in   *bufio.Reader

	nextColor int
}

// New returns a Root writing to ios.
func New(ios *IOStreams, opts Options) *Root {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Secrets == nil {
		opts.Secrets = &Secrets{}
	}
	return &Root{io: ios, opts: opts, in: bufio.NewReader(ios.In)}
}

// Secrets returns the set of values this UI masks.
func (r *Root) Secrets() *Secrets { return r.opts.Secrets }

// IO returns the underlying streams.
func (r *Root) IO() *IOStreams { return r.io }

// MachineReadable reports whether output is Packer's machine-readable format.
func (r *Root) MachineReadable() bool { return r.opts.MachineReadable }

// Colours in the order Packer hands them to parallel builds.
var buildColors = []string{"\033[1;32m", "\033[1;36m", "\033[1;35m", "\033[1;33m", "\033[1;34m"}

const (
	colorReset = "\033[0m"
	colorRed   = "\033[1;31m"
	colorBold  = "\033[1m"
)

// ForBuild returns the UI of one build; each call picks the next colour.
func (r *Root) ForBuild(name string) UI {
	r.mu.Lock()
	c := buildColors[r.nextColor%len(buildColors)]
	r.nextColor++
	r.mu.Unlock()
	return &buildUI{root: r, name: name, color: c}
}

func (r *Root) Say(msg string)     { r.emit("", "say", msg, r.io.Out, colorBold, "") }
func (r *Root) Message(msg string) { r.emit("", "message", msg, r.io.Out, "", "") }
func (r *Root) Error(msg string)   { r.emit("", "error", msg, r.io.ErrOut, colorRed, "") }
func (r *Root) Machine(kind string, data ...string) {
	r.machine("", kind, data...)
}
func (r *Root) Ask(ctx context.Context, q string) (string, error) { return r.doAsk(ctx, q) }

// InColorOf prints msg unprefixed in the colour of a build's UI (from
// ForBuild): Packer's "NAME: output will be in this color." legend.
func (r *Root) InColorOf(u UI, msg string) {
	color := ""
	if b, ok := u.(*buildUI); ok {
		color = b.color
	}
	r.emit("", "say", msg, r.io.Out, color, "")
}

// emit writes one human line (or its machine-readable form) with the secrets
// masked. prefix is prepended to every line of msg.
func (r *Root) emit(target, kind, msg string, w io.Writer, color, prefix string) {
	msg = r.opts.Secrets.Mask(msg)
	if r.opts.MachineReadable {
		// Packer 1.16 leaves the target of ui lines empty (the build's
		// name is in the text) and never emits ui,message.
		if kind == "message" {
			kind = "say"
		}
		r.machine("", "ui", kind, prefixLines(prefix, msg))
		return
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if r.opts.Timestamps {
			b.WriteString(r.opts.Now().UTC().Format(time.RFC3339))
			b.WriteString(": ")
		}
		text := prefix + line
		if color != "" && text != "" && r.io.ColorEnabled() {
			text = color + text + colorReset
		}
		b.WriteString(text)
		b.WriteByte('\n')
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(w, b.String())
}

// machine writes Packer's machine-readable line:
// timestamp,target,type,data... with commas and newlines escaped.
func (r *Root) machine(target, kind string, data ...string) {
	if !r.opts.MachineReadable {
		return
	}
	fields := []string{fmt.Sprint(r.opts.Now().Unix()), target, kind}
	for _, d := range data {
		d = r.opts.Secrets.Mask(d)
		d = strings.ReplaceAll(d, ",", "%!(PACKER_COMMA)")
		d = strings.ReplaceAll(d, "\r", "\\r")
		d = strings.ReplaceAll(d, "\n", "\\n")
		fields = append(fields, d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(r.io.Out, strings.Join(fields, ",")+"\n")
}

func (r *Root) doAsk(ctx context.Context, q string) (string, error) {
	if !r.io.CanPrompt() {
		return "", ErrNoPrompt
	}
	r.ask.Lock()
	defer r.ask.Unlock()
	r.mu.Lock()
	_, _ = io.WriteString(r.io.Out, r.opts.Secrets.Mask(q))
	r.mu.Unlock()
	type answer struct {
		s   string
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		s, err := r.in.ReadString('\n')
		ch <- answer{strings.TrimRight(s, "\r\n"), err}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case a := <-ch:
		if a.err != nil && a.s == "" {
			return "", fmt.Errorf("read answer: %w", a.err)
		}
		return a.s, nil
	}
}

func prefixLines(prefix, msg string) string {
	if prefix == "" {
		return msg
	}
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

type buildUI struct {
	root  *Root
	name  string
	color string
}

func (b *buildUI) Say(msg string) {
	b.root.emit(b.name, "say", msg, b.root.io.Out, b.color, "==> "+b.name+": ")
}

// Message is a detail line. Packer 1.16 turns the deprecated ui.Message
// into Say: the same "==> name: " prefix and colour, and "say" in
// machine-readable output.
func (b *buildUI) Message(msg string) { b.Say(msg) }
func (b *buildUI) Error(msg string) {
	b.root.emit(b.name, "error", msg, b.root.io.ErrOut, colorRed, "==> "+b.name+": ")
}
func (b *buildUI) Machine(kind string, data ...string) { b.root.machine(b.name, kind, data...) }
func (b *buildUI) Ask(ctx context.Context, q string) (string, error) {
	return b.root.doAsk(ctx, "==> "+b.name+": "+q)
}
