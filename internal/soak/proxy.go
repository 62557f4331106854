package soak

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"time"
)

// countingProxy forwards to the simulator and counts API calls per
// access key.
type countingProxy struct {
	url string
	lis net.Listener
	srv *http.Server
	mu  sync.Mutex
	n   map[string]int
}

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
	p := &countingProxy{url: "http://" + lis.Addr().String(), lis: lis, n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := credRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			p.mu.Lock()
			p.n[m[1]]++
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(lis) }()
	return p, nil
}

func (p *countingProxy) calls(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[key]
}

func (p *countingProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		_ = p.srv.Close()
	}
}
