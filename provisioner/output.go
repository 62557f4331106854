package provisioner

import (
	"bytes"
	"strings"
	"sync"
)

// LineWriter calls Emit once per line written to it, without the line
// ending, so that a command's output reaches the UI line by line as it
// arrives (Packer shows stdout as ui.Message and stderr as ui.Error). Call
// Flush when the command is done to emit a last line with no newline.
type LineWriter struct {
	Emit func(line string)

	mu  sync.Mutex
	buf []byte
}

// maxLine bounds the buffer for output that never ends a line (a progress
// bar, binary noise): it is emitted in pieces rather than held forever.
const maxLine = 64 << 10

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large buffer go
	}
	return len(p), nil
}

// Flush emits what is left of an unterminated last line.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
	}
	w.buf = nil
}

func (w *LineWriter) emit(b []byte) {
	w.Emit(strings.TrimRight(string(b), "\r"))
}
