package ec2sim

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Server is a running simulator.
type Server struct {
	opt   Options
	lis   net.Listener
	http  *http.Server
	hosts Hosts
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	regions   map[string]*region
	rand      *rand.Rand
	calls     map[string][]time.Time
	callCount map[string]int
	succeeded map[string]int
	faults    *faultSet
	ipInUse   map[string]bool
	closed    bool

	// closeOnce runs the shutdown once; every Close waits for it and
	// returns its error (a signal watcher and the caller both close).
	closeOnce sync.Once
	closeErr  error

	events      []Event
	spans       []CallSpan
	consistency Consistency
	lagRand     *rand.Rand // eventual-consistency draws, apart from ids
}

// Start starts a simulator listening on opts.Addr (default 127.0.0.1:0).
// It stops when ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	if opts.SSHPort == 0 {
		opts.SSHPort = 22
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("ec2sim: listen address %q: %w", opts.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("ec2sim: listen address %q is not a loopback address", opts.Addr)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s := &Server{
		opt: opts, log: log,
		regions:   map[string]*region{},
		rand:      rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>1^0x9e3779b97f4a7c15)),
		calls:     map[string][]time.Time{},
		callCount: map[string]int{},
		succeeded: map[string]int{},
		ipInUse:   map[string]bool{},
	}
	s.faults, err = newFaultSet(opts.Faults, opts.Seed)
	if err != nil {
		return nil, err
	}
	if s.consistency, err = consistencyFromEnv(opts.Consistency); err != nil {
		return nil, err
	}
	s.lagRand = newLagRand(seed)
	s.hosts = opts.Hosts
	if s.hosts == nil {
		if opts.NoSSH {
			s.hosts = newNoHosts()
		} else {
			s.hosts, err = newVMHosts(opts, log)
			if err != nil {
				return nil, fmt.Errorf("ec2sim: instances need SSH hosts (set NoSSH for an API-only simulator): %w", err)
			}
		}
	}
	s.lis, err = net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = s.hosts.Close()
		return nil, fmt.Errorf("ec2sim: listen on %s: %w", opts.Addr, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(s.lis) }()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.ctx.Done():
		}
	}()
	log.Debug("ec2sim started", "url", s.URL())
	return s, nil
}

// URL is the endpoint to give clients (BaseEndpoint, AWS_ENDPOINT_URL).
func (s *Server) URL() string { return "http://" + s.lis.Addr().String() }

// AccountID is the account that owns what clients create.
func (s *Server) AccountID() string { return s.opt.AccountID }

// Close stops the listener, every instance and the host backend, leaving
// no process or file behind. Every call waits for that to finish and
// returns its result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := []error{s.http.Shutdown(ctx)}
	s.wg.Wait()
	s.mu.Lock()
	var machines []Machine
	for _, r := range s.regions {
		for _, in := range r.instances {
			if in.machine != nil {
				machines = append(machines, in.machine)
				in.machine = nil
			}
		}
	}
	s.mu.Unlock()
	for _, m := range machines {
		if err := m.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.hosts.Close())
	return errors.Join(errs...)
}

// region returns a region's state, creating it on first use. Callers hold mu.
func (s *Server) region(name string) *region {
	if r, ok := s.regions[name]; ok {
		return r
	}
	for i, n := range Regions {
		if n == name {
			r := s.newRegion(name, i)
			s.regions[name] = r
			return r
		}
	}
	return nil
}

var credentialRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)
})

// credential extracts access key, region and service from a SigV4
// Authorization header or presigned query; signatures are not checked.
func credential(r *http.Request, q *Query) (key, region, service string, ok bool) {
	if m := credentialRe().FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1], m[3], m[4], true
	}
	if c := q.Str("X-Amz-Credential"); c != "" {
		parts := strings.Split(c, "/")
		if len(parts) == 5 {
			return parts[0], parts[2], parts[3], true
		}
	}
	return "", "", "", false
}

// maxBody: EC2's request limit is far lower, but user data and imported
// keys are the big parameters and stay well under it.
const maxBody = 2 << 20

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	reqID := uuid.NewString()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeEC2Error(w, apiErr("InvalidParameterValue", "request body too large or unreadable"), reqID)
		return
	}
	q, err := ParseQuery(r.URL.RawQuery, body)
	if err != nil {
		ae, ok := err.(*APIError)
		if !ok {
			ae = apiErr("InvalidParameterValue", "%s", err)
		}
		writeEC2Error(w, ae, reqID)
		return
	}
	start := s.record(q.Action)
	defer s.recordSpan(q.Action, start)
	if d := s.opt.Latency.Request; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	_, regionName, service, ok := credential(r, q)
	if q.Action == "GetCallerIdentity" || service == "sts" {
		s.serveSTS(w, q, reqID, ok)
		return
	}
	if !ok {
		writeEC2Error(w, apiErr("AuthFailure", "AWS was not able to validate the provided access credentials"), reqID)
		return
	}
	if e := s.faults.request(q.Action); e != nil {
		s.log.Debug("ec2sim: injected fault", "action", q.Action, "code", e.Code)
		writeEC2Error(w, e, reqID)
		return
	}
	h, ok := actions[q.Action]
	if !ok {
		writeEC2Error(w, apiErr("InvalidAction", "The action %s is not valid for this web service.", q.Action), reqID)
		return
	}
	if err := checkParams(q); err != nil {
		writeEC2Error(w, err, reqID)
		return
	}
	if q.Bool("DryRun") {
		writeEC2Error(w, &APIError{Code: "DryRunOperation", Message: "Request would have succeeded, but DryRun flag is set.", Status: http.StatusPreconditionFailed}, reqID)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeEC2Error(w, apiErr("Unavailable", "The service is shutting down."), reqID)
		return
	}
	reg := s.region(regionName)
	s.mu.Unlock()
	if reg == nil {
		writeEC2Error(w, apiErr("AuthFailure", "The region '%s' is not enabled for this account", regionName), reqID)
		return
	}
	c := &call{s: s, r: reg, q: q, now: time.Now(), ctx: r.Context()}
	if err := h(c); err != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			s.log.Error("ec2sim: internal error", "action", q.Action, "err", err)
			ae = apiErr("InternalError", "An internal error has occurred")
		}
		writeEC2Error(w, ae, reqID)
		return
	}
	// Transitions that take no time run after the answer is composed (so
	// it shows the state AWS answers with) but before it is sent, so a
	// zero-latency client never sees the intermediate state again.
	// They are independent (one per instance or image): run them side by
	// side, as EC2 would, so launching 100 instances does not boot them
	// one after another.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, f := range c.then {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f()
		}()
	}
	wg.Wait()
	var out strings.Builder
	out.WriteString(xml.Header)
	out.WriteString("<" + q.Action + "Response xmlns=\"" + ec2Namespace + "\">")
	out.WriteString("<requestId>" + reqID + "</requestId>")
	out.WriteString(c.x.b.String())
	out.WriteString("</" + q.Action + "Response>")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	w.Header().Set("x-amzn-RequestId", reqID)
	_, _ = io.WriteString(w, out.String())
	s.mu.Lock()
	s.succeeded[q.Action]++
	s.mu.Unlock()
}

//go:generate go run gen_params.go

// commonParams are accepted by every action: the Query API's own
// (action, version, the signature of a presigned request).
var commonParams = map[string]bool{
	"Action": true, "Version": true, "AWSAccessKeyId": true, "Signature": true, "SignatureMethod": true,
	"SignatureVersion": true, "Timestamp": true, "Expires": true, "SecurityToken": true,
}

// checkParams refuses a parameter the action does not take, as EC2 does
// (UnknownParameter; "Common client error codes", EC2 API reference),
// rather than ignoring it: a client's typo must not pass here and fail
// on EC2. The parameter lists come from the SDK's serializers
// (params_gen.go).
func checkParams(q *Query) *APIError {
	known, ok := actionParams[q.Action]
	if !ok {
		return nil
	}
	for k := range q.Params {
		top, _, _ := strings.Cut(k, ".")
		if commonParams[top] || strings.HasPrefix(top, "X-Amz-") {
			continue
		}
		found := false
		for _, p := range known {
			if p == top {
				found = true
				break
			}
		}
		if !found {
			return apiErr("UnknownParameter", "The parameter %s is not recognized", top)
		}
	}
	return nil
}

// record counts a call and returns when it arrived.
func (s *Server) record(action string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	ts := s.calls[action]
	if len(ts) >= 10000 { // bound memory in long soaks; the count stays exact below
		ts = ts[1:]
	}
	s.calls[action] = append(ts, now)
	s.callCount[action]++
	return now
}

func (s *Server) serveSTS(w http.ResponseWriter, q *Query, reqID string, authed bool) {
	writeErr := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, code, msg, reqID)
	}
	if !authed {
		writeErr(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	if q.Action != "GetCallerIdentity" {
		writeErr(http.StatusBadRequest, "InvalidAction", "Could not find operation "+q.Action+" for version 2011-06-15")
		return
	}
	acct := s.opt.AccountID
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::%s:user/amibake</Arn><UserId>AIDASIMULATOR0000001</UserId><Account>%s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, acct, acct, reqID)
}
