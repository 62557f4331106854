package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ui"
)

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/amibake/runs"},
		{"relative xdg ignored", map[string]string{"XDG_STATE_HOME": "s", "HOME": "/h"}, "/h/.local/state/amibake/runs"},
		{"home", map[string]string{"HOME": "/h"}, "/h/.local/state/amibake/runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultDir(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("DefaultDir = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLeaseFromEnv(t *testing.T) {
	for _, tt := range []struct {
		v       string
		want    time.Duration
		wantErr bool
	}{
		{"", DefaultLease, false},
		{"3s", 3 * time.Second, false},
		{"1h", time.Hour, false},
		{"500ms", 0, true},
		{"soon", 0, true},
	} {
		got, err := LeaseFromEnv(func(k string) string {
			if k == LeaseEnv {
				return tt.v
			}
			return ""
		})
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s=%q: %v, %v; want %v (error %v)", LeaseEnv, tt.v, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestValidRunID(t *testing.T) {
	for id, want := range map[string]bool{
		NewRunID(): true, "abc-DEF_1": true, "": false, "../x": false, "a/b": false, "a.b": false, strings.Repeat("a", 129): false,
	} {
		if got := ValidRunID(id); got != want {
			t.Errorf("ValidRunID(%q) = %v, want %v", id, got, want)
		}
	}
	if _, err := Open(t.TempDir(), "../escape"); err == nil {
		t.Error("Open accepted a run id with a path in it")
	}
}

func TestJournalLifecycle(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Start("hello.pkr.hcl"); err != nil {
		t.Fatal(err)
	}
	a := j.ForBuild("amazon-ebs.a")
	b := j.ForBuild("amazon-ebs.b")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	e1, err := a.Intend(KindKeyPair, "us-east-1", "amibake_key_1")
	must(err)
	must(a.Created(e1, "key-0001"))
	e2, err := a.Intend(KindInstance, "us-east-1", "tok-2")
	must(err)
	must(a.Created(e2, "i-0002"))
	e3, err := b.Intend(KindSecurityGroup, "eu-west-1", "amibake_sg_3")
	must(err)
	must(b.Created(e3, "sg-0003"))
	_, err = b.Intend(KindInstance, "eu-west-1", "tok-4") // in flight
	must(err)
	e5, err := a.Intend(KindImage, "us-east-1", "my-ami")
	must(err)
	must(a.Created(e5, "ami-0005"))
	must(a.Deleted(KindInstance, "us-east-1", "i-0002"))
	must(a.Deleted(KindKeyPair, "us-east-1", "key-0001"))
	if err := a.Created("e99", "i-x"); err == nil {
		t.Error("Created of an unknown entry succeeded")
	}

	r, err := Read(dir, "run-1")
	must(err)
	if !r.Running || r.PID != os.Getpid() || r.Template != "hello.pkr.hcl" || r.Started.IsZero() {
		t.Errorf("run = %+v", r)
	}
	got := summary(r.Left())
	want := "eu-west-1/security-group/sg-0003/amazon-ebs.b eu-west-1/instance/(tok-4)/amazon-ebs.b us-east-1/image/ami-0005/amazon-ebs.a"
	if got != want {
		t.Errorf("left = %s\nwant   %s", got, want)
	}
	if rs := strings.Join(r.Regions(), ","); rs != "eu-west-1,us-east-1" {
		t.Errorf("regions = %s", rs)
	}

	must(j.End(StatusSucceeded))
	must(j.Close())
	r, err = Read(dir, "run-1")
	must(err)
	if r.Running || r.Status != StatusSucceeded {
		t.Errorf("after close: running=%v status=%q", r.Running, r.Status)
	}
	// A succeeded run's AMI is its artifact, not a leftover.
	if got := summary(r.Left()); got != "eu-west-1/security-group/sg-0003/amazon-ebs.b eu-west-1/instance/(tok-4)/amazon-ebs.b" {
		t.Errorf("left after success = %s", got)
	}

	// A cleanup reopens the run, resolves the in-flight intent and deletes.
	j2, err := Open(dir, "run-1")
	must(err)
	must(j2.Reaping())
	must(j2.Resolved(r.Left()[1].Entry))
	must(j2.Deleted(KindSecurityGroup, "eu-west-1", "sg-0003"))
	must(j2.Close())
	r, err = Read(dir, "run-1")
	must(err)
	if len(r.Left()) != 0 || r.LastPID != os.Getpid() {
		t.Errorf("after cleanup: left=%s lastpid=%d", summary(r.Left()), r.LastPID)
	}
}

func summary(rs []Resource) string {
	var s []string
	for _, r := range rs {
		id := r.ID
		if id == "" {
			id = "(" + r.Token + ")"
		}
		s = append(s, r.Region+"/"+string(r.Kind)+"/"+id+"/"+r.Build)
	}
	return strings.Join(s, " ")
}

func TestLockedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, "run-l")
	if err != nil {
		t.Fatal(err)
	}
	j.Start("t")
	_, err = Open(dir, "run-l")
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("second Open: %v, want LockedError naming pid %d", err, os.Getpid())
	}
	j.Close()
	j3, err := Open(dir, "run-l")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j3.Close()
}

// The helper process: records an intent, then dies (SIGKILL-like: no
// Close, no End) or sleeps holding the lock, as LEDGER_HELPER says.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LEDGER_HELPER"); mode != "" {
		j, err := Open(os.Getenv("LEDGER_DIR"), "run-child")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		j.Start("child.json")
		e, _ := j.ForBuild("amazon-ebs.c").Intend(KindInstance, "us-east-1", "tok-child")
		if mode == "created" {
			j.ForBuild("amazon-ebs.c").Created(e, "i-child")
		}
		fmt.Println("ready")
		if mode == "hold" {
			time.Sleep(time.Minute)
		}
		os.Exit(9) // die without closing or ending the run
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, dir, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEDGER_HELPER="+mode, "LEDGER_DIR="+dir)
	return cmd
}

func TestCrashBetweenIntentAndCreated(t *testing.T) {
	dir := t.TempDir()
	out, _ := helper(t, dir, "intent").Output()
	if !strings.Contains(string(out), "ready") {
		t.Fatalf("helper: %q", out)
	}
	r, err := Read(dir, "run-child")
	if err != nil {
		t.Fatal(err)
	}
	left := r.Left()
	if r.Running || r.Status != "" || len(left) != 1 || left[0].ID != "" || left[0].Token != "tok-child" || left[0].Build != "amazon-ebs.c" {
		t.Fatalf("run = %+v left = %+v", r, left)
	}
	runs, err := List(dir)
	if err != nil || len(runs) != 1 || runs[0].ID != "run-child" {
		t.Fatalf("List = %v, %v", runs, err)
	}
}

func TestStaleLockAfterKill(t *testing.T) {
	dir := t.TempDir()
	cmd := helper(t, dir, "hold")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}
	r, err := Read(dir, "run-child")
	if err != nil || !r.Running {
		t.Fatalf("while child lives: running=%v err=%v", r != nil && r.Running, err)
	}
	var le *LockedError
	if _, err := Open(dir, "run-child"); !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("Open while child lives: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	r, _ = Read(dir, "run-child")
	if r.Running {
		t.Fatal("run still seen running after its process was killed")
	}
	j, err := Open(dir, "run-child")
	if err != nil {
		t.Fatalf("Open after kill: %v", err)
	}
	defer j.Close()
	// Entries continue after the dead process's.
	e, err := j.Intend(KindVolume, "us-east-1", "v")
	if err != nil || e != "e2" {
		t.Errorf("next entry = %q, %v", e, err)
	}
}

func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, "run-t")
	j.Start("t")
	e, _ := j.Intend(KindInstance, "r", "tok")
	j.Created(e, "i-1")
	j.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "run-t.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t":"deleted","kind":"instance","reg`)
	f.Close()
	r, err := Read(dir, "run-t")
	if err != nil || len(r.Left()) != 1 {
		t.Fatalf("read torn: %v left=%v", err, r)
	}
	// Reopening repairs the line; later records still count.
	j, err = Open(dir, "run-t")
	if err != nil {
		t.Fatal(err)
	}
	j.Deleted(KindInstance, "r", "i-1")
	j.Close()
	r, err = Read(dir, "run-t")
	if err != nil || len(r.Left()) != 0 {
		t.Fatalf("after repair: %v left=%v", err, r.Left())
	}
	// A corrupt line that is not a torn record is an error with file:line.
	os.WriteFile(filepath.Join(dir, "run-bad.jsonl"), []byte("{\"t\":\"start\"}\nnot json\n{\"t\":\"end\"}\n"), 0o600)
	if _, err := Read(dir, "run-bad"); err == nil || !strings.Contains(err.Error(), "run-bad.jsonl:2:") {
		t.Errorf("corrupt journal: %v", err)
	}
	runs, err := List(dir)
	if len(runs) != 1 || err == nil {
		t.Errorf("List with a bad journal = %d runs, %v", len(runs), err)
	}
}

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "runs")
	j, err := Open(dir, "run-p")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, j.Path(): 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v (%v)", path, st.Mode().Perm(), want, err)
		}
	}
}

func TestConcurrentBuilds(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, "run-c")
	defer j.Close()
	var wg sync.WaitGroup
	for b := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := j.ForBuild(fmt.Sprintf("b%d", b))
			for i := range 20 {
				e, err := rec.Intend(KindInstance, "r", fmt.Sprintf("t%d-%d", b, i))
				if err != nil {
					t.Error(err)
					return
				}
				rec.Created(e, fmt.Sprintf("i-%d-%d", b, i))
			}
		}()
	}
	wg.Wait()
	r, err := Read(dir, "run-c")
	if err != nil || len(r.Left()) != 160 {
		t.Fatalf("left = %d, %v", len(r.Left()), err)
	}
	seen := map[string]bool{}
	for _, res := range r.Resources {
		if seen[res.Entry] || res.ID == "" {
			t.Fatalf("entry %s duplicated or without id", res.Entry)
		}
		seen[res.Entry] = true
	}
}

// Nothing secret reaches the journal: not the credentials in the
// environment, and not a secret value that ends up in a token or name.
func TestNoSecretsInJournal(t *testing.T) {
	const (
		accessKey = "AKIAIOSFODNN7EXAMPLE"
		secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		session   = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
		sensitive = "hunter2-db-password"
		privKey   = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
	)
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_SESSION_TOKEN", session)
	secrets := &ui.Secrets{}
	secrets.Add(secretKey, session, sensitive, privKey)

	dir := t.TempDir()
	j, _ := Open(dir, "run-s")
	j.SetSecrets(secrets)
	j.Start("template-" + sensitive + ".pkr.hcl")
	rec := j.ForBuild("amazon-ebs." + sensitive)
	e, _ := rec.Intend(KindKeyPair, "us-east-1", "key-"+sensitive)
	rec.Created(e, "key-123")
	e, _ = rec.Intend(KindLocalFile, "", "/tmp/amibake-key")
	rec.Created(e, "/tmp/amibake-key")
	j.End(StatusFailed)
	j.Close()
	data, _ := os.ReadFile(j.Path())
	for _, s := range []string{secretKey, session, sensitive, "BEGIN OPENSSH", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("journal contains secret %q:\n%s", s, data)
		}
	}
	if !bytes.Contains(data, []byte(ui.Redacted)) || !bytes.Contains(data, []byte("key-123")) {
		t.Errorf("journal lost its non-secret content:\n%s", data)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("{\"t\":\"start\",\"pid\":1}\n{\"t\":\"intent\",\"entry\":\"e1\",\"kind\":\"instance\"}\n{\"t\":\"created\",\"entry\":\"e1\",\"id\":\"i-1\"}\n"))
	f.Add([]byte("{\"t\":\"intent\",\"entry\":\"e1\"\n{\"t\":\"end\"}"))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "r.jsonl"), data, 0o600)
		r, err := Read(dir, "r")
		if err == nil {
			_ = r.Left()
			_ = r.Regions()
		}
	})
}
