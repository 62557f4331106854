package template

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

const (
	ansiReset     = "\x1b[0m"
	ansiBold      = "\x1b[1m"
	ansiRed       = "\x1b[31m"
	ansiYellow    = "\x1b[33m"
	ansiUnderline = "\x1b[4m"
)

// WriteDiagnostics prints diagnostics the way Terraform and Packer do:
//
//	Error: Unsupported argument
//
//	  on template.pkr.hcl line 12, column 3:
//	  12:   instanse_type = "t2.micro"
//	        ^^^^^^^^^^^^^
//
//	An argument named "instanse_type" is not expected here. Did you mean "instance_type"?
//
// files supplies the source lines (Template.Files); a diagnostic whose
// file is unknown is printed without a snippet. With color, the severity
// is colored and the subject underlined instead of marked with carets.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		writeDiagnostic(bw, files, d, color)
	}
	return bw.Flush()
}

func writeDiagnostic(w *bufio.Writer, files map[string]*hcl.File, d *hcl.Diagnostic, color bool) {
	sev, col := "Error", ansiRed
	if d.Severity == hcl.DiagWarning {
		sev, col = "Warning", ansiYellow
	}
	if color {
		fmt.Fprintf(w, "%s%s%s: %s%s\n", ansiBold, col, sev, d.Summary, ansiReset)
	} else {
		fmt.Fprintf(w, "%s: %s\n", sev, d.Summary)
	}
	if d.Subject != nil {
		s := *d.Subject
		fmt.Fprintf(w, "\n  on %s line %d, column %d:\n", s.Filename, s.Start.Line, s.Start.Column)
		if f := files[s.Filename]; f != nil {
			writeSnippet(w, f.Bytes, s, color)
		}
	}
	if d.Detail != "" {
		fmt.Fprintf(w, "\n%s\n", clipText(d.Detail, maxDetail))
	}
	fmt.Fprintln(w)
}

// writeSnippet prints the subject's first line and marks the subject.
func writeSnippet(w *bufio.Writer, src []byte, rng hcl.Range, color bool) {
	line, lineStart, ok := sourceLine(src, rng.Start.Line)
	if !ok {
		return
	}
	// Byte offsets of the subject within this line.
	from := rng.Start.Byte - lineStart
	to := rng.End.Byte - lineStart
	if from < 0 || from > len(line) {
		from = min(max(rng.Start.Column-1, 0), len(line))
	}
	if to <= from || to > len(line) {
		to = len(line)
		if rng.End.Line == rng.Start.Line && rng.End.Byte > rng.Start.Byte {
			to = min(from+(rng.End.Byte-rng.Start.Byte), len(line))
		}
	}
	line, from, to = clipLine(line, from, to)
	prefix := fmt.Sprintf("  %d: ", rng.Start.Line)
	if color {
		fmt.Fprintf(w, "%s%s%s%s%s%s\n", prefix, line[:from], ansiUnderline, line[from:to], ansiReset, line[to:])
		return
	}
	fmt.Fprintf(w, "%s%s\n", prefix, line)
	// Keep tabs so that the carets line up under the same characters.
	var pad strings.Builder
	pad.WriteString(strings.Repeat(" ", len(prefix)))
	for _, r := range line[:from] {
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	n := max(utf8.RuneCountInString(line[from:to]), 1)
	fmt.Fprintf(w, "%s%s\n", pad.String(), strings.Repeat("^", n))
}

// sourceLine returns line number n (1-based) without its newline and the
// byte offset at which it starts.
func sourceLine(src []byte, n int) (string, int, bool) {
	if n < 1 {
		return "", 0, false
	}
	start := 0
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src[start:], '\n')
		if j < 0 {
			return "", 0, false
		}
		start += j + 1
	}
	end := bytes.IndexByte(src[start:], '\n')
	if end < 0 {
		end = len(src) - start
	}
	line := strings.TrimSuffix(string(src[start:start+end]), "\r")
	return line, start, true
}

// DiagnosticsFormatVersion versions the JSON document of validate --json.
const DiagnosticsFormatVersion = "1.0"

// DiagnosticsDocument is the machine-readable result of a validation.
type DiagnosticsDocument struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Diagnostics   []JSONDiagnostic `json:"diagnostics"`
}

// JSONDiagnostic is one diagnostic in a DiagnosticsDocument.
type JSONDiagnostic struct {
	Severity string       `json:"severity"` // "error" or "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail,omitempty"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// JSONRange is a source range; line and column are 1-based, byte 0-based.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is a position in a source file.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONSnippet is the source line of the diagnostic's subject.
type JSONSnippet struct {
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
}

// NewDiagnosticsDocument builds the JSON form of diags.
func NewDiagnosticsDocument(files map[string]*hcl.File, diags hcl.Diagnostics) *DiagnosticsDocument {
	doc := &DiagnosticsDocument{FormatVersion: DiagnosticsFormatVersion, Diagnostics: []JSONDiagnostic{}}
	for _, d := range diags {
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: clipText(d.Detail, maxDetail)}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
			doc.WarningCount++
		} else {
			doc.ErrorCount++
		}
		if s := d.Subject; s != nil {
			jd.Range = &JSONRange{
				Filename: s.Filename,
				Start:    JSONPos{Line: s.Start.Line, Column: s.Start.Column, Byte: s.Start.Byte},
				End:      JSONPos{Line: s.End.Line, Column: s.End.Column, Byte: s.End.Byte},
			}
			if f := files[s.Filename]; f != nil {
				if line, _, ok := sourceLine(f.Bytes, s.Start.Line); ok {
					jd.Snippet = &JSONSnippet{Code: clipText(line, maxSnippetLine), StartLine: s.Start.Line}
				}
			}
		}
		doc.Diagnostics = append(doc.Diagnostics, jd)
	}
	doc.Valid = doc.ErrorCount == 0
	return doc
}

// WriteDiagnosticsJSON writes diags as an indented DiagnosticsDocument.
func WriteDiagnosticsJSON(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewDiagnosticsDocument(files, diags))
}

// Output limits: a diagnostic about a 10 MB value must not be 30 MB.
const (
	maxDetail      = 2000 // bytes of a diagnostic's detail
	maxSnippetLine = 160  // bytes of the source line shown
)

// clipText shortens s to about n bytes, on a character boundary, saying
// how much was left out.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d more bytes)", s[:cut], len(s)-cut)
}

// clipLine keeps a window of a long source line around the subject
// [from, to), marking the cuts with "...", and returns the new offsets.
func clipLine(line string, from, to int) (string, int, int) {
	if len(line) <= maxSnippetLine {
		return line, from, to
	}
	start := max(from-40, 0)
	end := min(max(to, from+1), start+maxSnippetLine)
	end = min(end, len(line))
	for start > 0 && !utf8.RuneStart(line[start]) {
		start--
	}
	for end < len(line) && !utf8.RuneStart(line[end]) {
		end++
	}
	out, shift := line[start:end], start
	if start > 0 {
		out, shift = "..."+out, start-3
	}
	if end < len(line) {
		out += "..."
	}
	return out, min(from-shift, len(out)), min(max(to-shift, from-shift), len(out))
}
