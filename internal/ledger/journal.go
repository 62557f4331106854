package ledger

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amibake/amibake/internal/ui"
)

// The journal is JSON lines, one record per line, appended and fsynced on
// every record. Appending keeps each record O(1) (a rewritten JSON file
// costs the whole history on every create call) and a crash can only tear
// the last line, which Read ignores: everything before it was synced.

// Record types.
const (
	recStart   = "start"
	recIntent  = "intent"
	recCreated = "created"
	recDeleted = "deleted"
	recKept    = "kept"
	recEnd     = "end"
	recReap    = "reap"
	recSwept   = "swept"
)

// Status is how a run ended.
type Status string

const (
	StatusSucceeded   Status = "succeeded"
	StatusFailed      Status = "failed"
	StatusInterrupted Status = "interrupted"
)

type record struct {
	T        string    `json:"t"`
	Time     time.Time `json:"time"`
	Entry    string    `json:"entry,omitempty"`
	Kind     Kind      `json:"kind,omitempty"`
	Region   string    `json:"region,omitempty"`
	Build    string    `json:"build,omitempty"`
	Token    string    `json:"token,omitempty"`
	ID       string    `json:"id,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Host     string    `json:"host,omitempty"`
	Template string    `json:"template,omitempty"`
	Status   Status    `json:"status,omitempty"`
	TempDir  string    `json:"tmpdir,omitempty"`
	// Where the resource lives beyond its region (intent records).
	Location
}

// DefaultDir is where journals live: $XDG_STATE_HOME/amibake/runs, else
// ~/.local/state/amibake/runs.
func DefaultDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "amibake", "runs")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".local", "state", "amibake", "runs")
}

// NewRunID returns a fresh run id: UTC time (so ids sort by start) and 6
// random hex digits. It is also the value of the amibake:run-id tag.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ValidRunID reports whether id can name a journal file: no path
// separators or dots, so a run id from the command line cannot escape dir.
func ValidRunID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CreatedAt formats the amibake:created-at tag value.
func CreatedAt(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ParseCreatedAt parses an amibake:created-at tag value.
func ParseCreatedAt(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// Tags returns the tags every resource of build in run carries.
func Tags(runID, build string, now time.Time) map[string]string {
	return map[string]string{TagRunID: runID, TagBuild: build, TagCreatedAt: CreatedAt(now)}
}

// LockedError is returned by Open when another live process holds the run:
// the build itself, or a cleanup of it.
type LockedError struct {
	RunID string
	PID   int // the last process that took the run, 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("run %s is in use by process %d (a build still running, or a cleanup of it)", e.RunID, e.PID)
	}
	return fmt.Sprintf("run %s is in use by another process (a build still running, or a cleanup of it)", e.RunID)
}

// ErrNoRun is returned by Read for a run id without a journal.
var ErrNoRun = errors.New("no such run in the ledger")

// Journal is one run's ledger, open for appending and locked while open.
// It is safe for concurrent use by parallel builds.
type Journal struct {
	runID, path string
	secrets     *ui.Secrets
	now         func() time.Time

	mu   sync.Mutex
	f    *os.File
	next int
	open map[string]record // intents by entry, to complete Created records
}

// Open opens (creating if needed) the journal of runID in dir and locks
// it. It fails with *LockedError when a live process holds the run; the
// lock is the kernel's (flock), so it goes with a process that died.
func Open(dir, runID string) (*Journal, error) {
	if !ValidRunID(runID) {
		return nil, fmt.Errorf("open ledger: invalid run id %q", runID)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open ledger: create directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, runID+".jsonl")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if ok, err := tryLock(f); err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("open ledger: lock %s: %w", path, err)
		}
		le := &LockedError{RunID: runID}
		if r, rerr := readFile(path, runID); rerr == nil {
			le.PID = r.LastPID
		}
		return nil, le
	}
	j := &Journal{runID: runID, path: path, f: f, now: time.Now, open: map[string]record{}}
	// Continue numbering and complete intents of an earlier holder.
	recs, err := parse(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, r := range recs {
		if r.T == recIntent {
			j.open[r.Entry] = r
			if n, err := strconv.Atoi(strings.TrimPrefix(r.Entry, "e")); err == nil && n >= j.next {
				j.next = n + 1
			}
		}
	}
	if j.next == 0 {
		j.next = 1
	}
	// Repair a torn last line so our first record starts on its own line.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, st.Size()-1); err == nil && b[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("open ledger: %w", err)
			}
		}
	}
	return j, nil
}

// SetSecrets makes the journal mask these values in everything it
// writes: a last line of defence, since nothing it records should be one.
func (j *Journal) SetSecrets(s *ui.Secrets) { j.secrets = s }

// RunID is the run's id (the amibake:run-id tag value).
func (j *Journal) RunID() string { return j.runID }

// Path is the journal file.
func (j *Journal) Path() string { return j.path }

// Start records the run's start: this process, host and template, and
// the directory its local temporary files go to.
func (j *Journal) Start(template string) error {
	host, _ := os.Hostname()
	return j.write(record{T: recStart, PID: os.Getpid(), Host: host, Template: template, TempDir: os.TempDir()})
}

// TempPrefix is how the run's local temporary files are named (in the
// directory Start records): cleanup removes what a killed run left there.
func TempPrefix(runID string) string { return "amibake-" + runID + "-" }

// End records how the run ended.
func (j *Journal) End(status Status) error {
	return j.write(record{T: recEnd, Status: status})
}

// Reaping records that this process (a cleanup) has taken the run.
func (j *Journal) Reaping() error {
	return j.write(record{T: recReap, PID: os.Getpid()})
}

// Swept records that a cleanup searched every region of the run by its
// tags and removed everything it found, so `cleanup --all` need not search
// again until the run records something new.
func (j *Journal) Swept() error { return j.write(record{T: recSwept, PID: os.Getpid()}) }

// Kept records that a resource stays on purpose (an available AMI found
// by a cleanup), so that it is no longer listed as left.
func (j *Journal) Kept(kind Kind, region, id string) error {
	return j.write(record{T: recKept, Kind: kind, Region: region, ID: id})
}

// Resolved records that an intent without id created nothing: EC2
// answered its create call with an error, or a cleanup looked for it by
// its token, name and tags and found nothing.
func (j *Journal) Resolved(entry string) error { return j.created(entry, "") }

// Close releases the lock.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close() // closing drops the flock
	j.f = nil
	return err
}

// ForBuild returns a Recorder whose records name build.
func (j *Journal) ForBuild(build string) Recorder { return buildRecorder{j: j, build: build} }

// Intend, Created and Deleted make the Journal a Recorder for records
// that belong to no particular build.
func (j *Journal) Intend(kind Kind, region, token string) (string, error) {
	return j.intend("", kind, region, token)
}
func (j *Journal) Created(entry, id string) error { return j.created(entry, id) }
func (j *Journal) Deleted(kind Kind, region, id string) error {
	return j.write(record{T: recDeleted, Kind: kind, Region: region, ID: id})
}

// ForBuildAt returns a Recorder whose intents name build and record
// where its resources live (account, endpoint, profile, role).
func (j *Journal) ForBuildAt(build string, loc Location) Recorder {
	return buildRecorder{j: j, build: build, loc: loc}
}

type buildRecorder struct {
	j     *Journal
	build string
	loc   Location
}

func (b buildRecorder) Intend(kind Kind, region, token string) (string, error) {
	return b.j.intendAt(b.build, kind, region, token, b.loc)
}
func (b buildRecorder) Created(entry, id string) error { return b.j.created(entry, id) }
func (b buildRecorder) Resolved(entry string) error    { return b.j.Resolved(entry) }
func (b buildRecorder) Deleted(kind Kind, region, id string) error {
	return b.j.write(record{T: recDeleted, Kind: kind, Region: region, ID: id, Build: b.build})
}

func (j *Journal) intend(build string, kind Kind, region, token string) (string, error) {
	return j.intendAt(build, kind, region, token, Location{})
}

func (j *Journal) intendAt(build string, kind Kind, region, token string, loc Location) (string, error) {
	j.mu.Lock()
	entry := "e" + strconv.Itoa(j.next)
	j.next++
	j.mu.Unlock()
	r := record{T: recIntent, Entry: entry, Kind: kind, Region: region, Build: build, Token: token, Location: loc}
	if err := j.write(r); err != nil {
		return "", err
	}
	j.mu.Lock()
	j.open[entry] = r
	j.mu.Unlock()
	return entry, nil
}

func (j *Journal) created(entry, id string) error {
	j.mu.Lock()
	in, ok := j.open[entry]
	j.mu.Unlock()
	if !ok {
		return fmt.Errorf("ledger: record %s %s created: no intent %q in run %s", in.Kind, id, entry, j.runID)
	}
	return j.write(record{T: recCreated, Entry: entry, Kind: in.Kind, Region: in.Region, Build: in.Build, ID: id})
}

func (j *Journal) write(r record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("ledger: write %s record: journal of run %s is closed", r.T, j.runID)
	}
	r.Time = j.now().UTC()
	if j.secrets != nil {
		r.Token, r.ID, r.Template, r.Build = j.secrets.Mask(r.Token), j.secrets.Mask(r.ID), j.secrets.Mask(r.Template), j.secrets.Mask(r.Build)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<sensitive>" readable
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("ledger: encode %s record: %w", r.T, err)
	}
	b := buf.Bytes()
	// One write call with O_APPEND: the line lands whole at the end.
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("ledger: write %s record to %s: %w", r.T, j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("ledger: sync %s: %w", j.path, err)
	}
	return nil
}

// parse reads records. A line cut short (what a crash mid-write leaves,
// at the end or, after Open repaired it, in the middle) is a lost record
// and skipped; any other bad line is an error naming file:line.
func parse(r io.Reader, path string) ([]record, error) {
	var recs []record
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if s := strings.TrimSpace(string(b)); s != "" {
			var rec record
			if jerr := json.Unmarshal([]byte(s), &rec); jerr == nil {
				recs = append(recs, rec)
			} else if !(strings.HasPrefix(s, "{") && !strings.HasSuffix(s, "}")) {
				return nil, fmt.Errorf("%s:%d: bad ledger record: %v", path, line, jerr)
			}
		}
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
}
