// Package ui is the only way amibake talks to a person or a CI log: library
// code never prints, it is handed a UI. Tests capture output with Test().
package ui

import (
	"bytes"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are the process's standard streams plus what we know about them.
// Shaped after the GitHub CLI's iostreams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	color     bool
	// getenv is where CanPrompt looks up CI: the command's environment
	// (its factory's Getenv), so that a test's environment is the one used.
	getenv func(string) string
}

// System returns the streams of this process. Colour is on when stdout is a
// terminal and NO_COLOR is unset (https://no-color.org).
func System() *IOStreams {
	outTTY := isTerminal(os.Stdout)
	_, noColor := os.LookupEnv("NO_COLOR")
	return &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		stdinTTY:  isTerminal(os.Stdin),
		stdoutTTY: outTTY,
		color:     outTTY && !noColor && os.Getenv("TERM") != "dumb",
		getenv:    os.Getenv,
	}
}

// Test returns streams backed by buffers, not a terminal, without colour.
func Test() (ios *IOStreams, in *bytes.Buffer, out *bytes.Buffer, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

func (s *IOStreams) IsStdinTTY() bool  { return s.stdinTTY }
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }
func (s *IOStreams) ColorEnabled() bool {
	return s.color
}

// SetColorEnabled lets -color=false (or a test) override the detection.
func (s *IOStreams) SetColorEnabled(on bool) { s.color = on }

// SetStdinTTY and SetStdoutTTY are for tests that exercise prompts.
func (s *IOStreams) SetStdinTTY(on bool)  { s.stdinTTY = on }
func (s *IOStreams) SetStdoutTTY(on bool) { s.stdoutTTY = on }

// SetGetenv sets the environment CanPrompt reads CI from (nil: none).
func (s *IOStreams) SetGetenv(getenv func(string) string) { s.getenv = getenv }

// CanPrompt reports whether asking a question makes sense: never in CI.
func (s *IOStreams) CanPrompt() bool {
	return s.stdinTTY && s.stdoutTTY && !isCI(s.getenv)
}

func isCI(getenv func(string) string) bool {
	if getenv == nil {
		return false
	}
	v := strings.ToLower(getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}
