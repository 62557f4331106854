package ui

import (
	"io"
)

// MaskingWriter masks secrets in everything written through it; the debug
// log and streamed command output go through one.
type MaskingWriter struct {
	W       io.Writer
	Secrets *Secrets
}

func (m *MaskingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(m.W, m.Secrets.Mask(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
