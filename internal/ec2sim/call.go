package ec2sim

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// call is one API request being handled: the handler runs with Server.mu
// held (taken by the handler through lock) and composes its answer in x.
type call struct {
	s    *Server
	r    *region
	q    *Query
	x    xw
	now  time.Time
	ctx  context.Context
	then []func()
}

type handler func(c *call) error

// actions maps each EC2 action to its handler; filled by init in the
// files that implement them.
var actions = map[string]handler{}

// spawn runs f in the background when async, or else before the response
// is sent: zero-latency transitions then complete within the call that
// started them, which keeps the zero-latency profile deterministic while
// the answer still shows the state AWS answers with ("pending").
func (c *call) spawn(async bool, f func()) {
	if !async {
		c.then = append(c.then, f)
		return
	}
	s := c.s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// sleep waits d; false when the server closed meanwhile.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// visible reports whether this call sees a resource yet: past the
// eventual-consistency window drawn for it when it was created, for this
// action's class of call (see consistency.go).
func (c *call) visible(id string) bool {
	h, ok := c.r.created[id]
	if !ok {
		return true
	}
	return !c.now.Before(h.until[classIndex(classOf(c.q.Action))])
}

// born records a new resource and draws how late the calls after this one
// see it.
func (c *call) born(id string) {
	if h, late := c.s.drawLag(id, c.now); late {
		c.r.created[id] = h
	}
}

// paginate cuts a sorted listing by MaxResults/NextToken.
func paginate[T any](q *Query, items []T, minMax int) ([]T, string, error) {
	start := 0
	if tok := q.Str("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "ec2sim:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "ec2sim:") || n < 0 || n > len(items) {
			return nil, "", apiErr("InvalidParameterValue", "Unable to parse pagination token")
		}
		start = n
	}
	max, err := q.Int("MaxResults", 0)
	if err != nil {
		return nil, "", err
	}
	if !q.Has("MaxResults") {
		return items[start:], "", nil
	}
	if max < minMax || max > 1000 {
		return nil, "", apiErr("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and 1000.", max, minMax)
	}
	end := start + max
	if end >= len(items) {
		return items[start:], "", nil
	}
	return items[start:end], base64.RawURLEncoding.EncodeToString([]byte("ec2sim:" + strconv.Itoa(end))), nil
}

func (c *call) nextToken(tok string) { c.x.opt("nextToken", tok) }

// lock takes the server lock for the rest of a handler.
func (c *call) lock() func() {
	c.s.mu.Lock()
	return c.s.mu.Unlock
}
