package bake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/internal/template"
	"github.com/amibake/amibake/internal/ui"
)

// requestLog is a reverse proxy in front of the simulator that keeps every
// request's form and region, as the reference recording's proxy did. It
// keeps the requests that succeeded: on an eventually consistent profile a
// call refused with NotFound and retried is sent twice but took effect
// once, and the reference was recorded on a consistent one.
type requestLog struct {
	mu   sync.Mutex
	reqs []map[string]string
}

var credScope = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([a-z0-9-]+)/`)

func (l *requestLog) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f, err := url.ParseQuery(string(body)); err == nil && f.Get("Action") != "" {
			m := map[string]string{}
			for k := range f {
				m[k] = f.Get(k)
			}
			if s := credScope.FindStringSubmatch(r.Header.Get("Authorization")); s != nil {
				m["_region"] = s[1]
			}
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			proxy.ServeHTTP(sw, r)
			if sw.status < 300 {
				l.mu.Lock()
				l.reqs = append(l.reqs, m)
				l.mu.Unlock()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status the proxy answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// placements lists where each user tag went, one line per call and
// resource type: "RunInstances instance CostCenter=42", "CreateTags
// ap-northeast-1 ami+snapshots Base=… Built=T Name=…". amibake's own tags
// (amibake:*) are left out, and so are calls that carry only those.
func placements(reqs []map[string]string) []string {
	var out []string
	tagsOf := func(m map[string]string, prefix string) string {
		var kv []string
		for i := 1; ; i++ {
			k, ok := m[prefix+"Tag."+itoa(i)+".Key"]
			if !ok {
				break
			}
			if strings.HasPrefix(k, "amibake:") {
				continue
			}
			v := m[prefix+"Tag."+itoa(i)+".Value"]
			if k == "Built" {
				v = "T" // {{timestamp}}
			}
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		return strings.Join(kv, " ")
	}
	for _, m := range reqs {
		action := m["Action"]
		if action == "ImportKeyPair" {
			action = "CreateKeyPair" // amibake imports its key; same tags
		}
		for i := 1; ; i++ {
			p := "TagSpecification." + itoa(i) + "."
			rt, ok := m[p+"ResourceType"]
			if !ok {
				break
			}
			if t := tagsOf(m, p); t != "" {
				out = append(out, action+" "+rt+" "+t)
			}
		}
		if action == "CreateTags" {
			what := "snapshots"
			if strings.HasPrefix(m["ResourceId.1"], "ami-") {
				what = "ami+snapshots"
			}
			if t := tagsOf(m, ""); t != "" {
				out = append(out, "CreateTags "+m["_region"]+" "+what+" "+t)
			}
		}
	}
	sort.Strings(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestPackerReferenceTagRequests bakes the reference's tags template
// (run_tags, tags, snapshot_tags, run_volume_tags, ami_regions) and
// compares, call by call, where every tag was sent with what Packer 1.16
// sent (tags-no-ami-users/requests.machine-readable.jsonl).
func TestPackerReferenceTagRequests(t *testing.T) {
	e := newEnv(t, ec2sim.ZeroLatency())
	log := &requestLog{}
	proxy := httptest.NewServer(log.handler(e.srv.URL()))
	defer proxy.Close()
	t.Setenv("AWS_ENDPOINT_URL", proxy.URL)
	dir := chdir(t)
	src, err := os.ReadFile(filepath.Join(testdata, "packer", "tags-no-ami-users.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tags.json")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(src), "@ENDPOINT@", proxy.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, diags := template.Load(path, template.LoadOptions{Env: e.getenv})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags)
	}
	ios, _, out, errOut := ui.Test()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, _, err := Run(ctx, tmpl, ui.New(ios, ui.Options{}), Options{RunID: "run-ref", Getenv: e.getenv, OnError: pipeline.OnErrorCleanup})
	if err != nil || !res.OK() {
		t.Fatalf("build: %v\n%s\n%s", err, out, errOut)
	}

	f, err := os.Open(filepath.Join(testdata, "packer", "tags-no-ami-users.requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ref []map[string]string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		raw := map[string]any{}
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		ref = append(ref, m)
	}
	log.mu.Lock()
	got := placements(log.reqs)
	log.mu.Unlock()
	want := placements(ref)
	if !slices.Equal(got, want) {
		t.Errorf("tag placement differs from Packer's\n--- amibake ---\n%s\n--- packer ---\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
