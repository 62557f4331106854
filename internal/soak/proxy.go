package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"time"
)

// countingProxy forwards to the simulator and counts API calls per
// access key. It can also kill a build the moment one of its calls has
// been answered, before the answer reaches it (killAfter).
type countingProxy struct {
	url   string
	lis   net.Listener
	srv   *http.Server
	mu    sync.Mutex
	n     map[string]int
	hooks map[string]hook // by access key
}

type hook struct {
	action string
	fn     func()
}

var errKilled = errors.New("the build was killed before it heard the answer")

type callKey struct{}

type call struct{ key, action string }

var credRe = regexp.MustCompile(`Credential=([^/,\s]+)/`)

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the counting proxy: %w", err)
	}
	p := &countingProxy{url: "http://" + lis.Addr().String(), lis: lis, n: map[string]int{}, hooks: map[string]hook{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if !errors.Is(err, errKilled) {
			log.Printf("soak proxy: %s: %v", r.URL.Path, err)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		c, _ := resp.Request.Context().Value(callKey{}).(call)
		if resp.StatusCode != http.StatusOK || c.key == "" {
			return nil
		}
		p.mu.Lock()
		h, ok := p.hooks[c.key]
		if ok && h.action == c.action {
			delete(p.hooks, c.key)
		}
		p.mu.Unlock()
		if !ok || h.action != c.action {
			return nil
		}
		h.fn()
		return errKilled
	}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c call
		if m := credRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			c.key = m[1]
			p.mu.Lock()
			p.n[c.key]++
			_, hooked := p.hooks[c.key]
			p.mu.Unlock()
			if hooked {
				// The action is in the form body (EC2's query protocol).
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				if q, err := url.ParseQuery(string(body)); err == nil {
					c.action = q.Get("Action")
				}
			}
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	})}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

func (p *countingProxy) calls(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[key]
}

// killAfter calls kill, once, when a call of action signed with key has
// been answered successfully, before the answer is passed on.
func (p *countingProxy) killAfter(key, action string, kill func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks[key] = hook{action: action, fn: kill}
}

func (p *countingProxy) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.hooks, key)
}

func (p *countingProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		_ = p.srv.Close()
	}
}
