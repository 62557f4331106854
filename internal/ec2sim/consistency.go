package ec2sim

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// Eventual consistency, as "Eventual consistency in the Amazon EC2 API"
// (EC2 Developer Guide, devguide/eventual-consistency.html) describes it:
// a resource a call just created may not yet be known to the calls that
// follow, which then answer its NotFound code (InvalidInstanceID.NotFound
// after RunInstances for DescribeInstances and TerminateInstances,
// InvalidGroup.NotFound after CreateSecurityGroup for the next call that
// names the group). It is a propagation delay: short, per resource, and
// most new resources are visible at once.
//
// The simulator draws once, when a resource is created, whether it is
// seen late and for how long; the calls a Lag covers then answer NotFound
// (Describe calls by id) or leave it out (listings) until the window
// ends.

// CallClass is a kind of call a Lag delays.
type CallClass uint8

const (
	// CallDescribe: Describe* and Get* calls; by id they answer NotFound,
	// listings leave the resource out.
	CallDescribe CallClass = 1 << iota
	// CallTag: CreateTags and DeleteTags.
	CallTag
	// CallUse: every other call that names the resource (TerminateInstances,
	// RunInstances naming a group or key pair, AuthorizeSecurityGroupIngress,
	// CreateFleet naming a launch template, which answers it in its errorSet
	// rather than as the call's error: see createFleet...).
	CallUse
	AllCalls = CallDescribe | CallTag | CallUse
)

// Lag is how one kind of new resource is seen late: with Probability, for
// a window drawn uniformly from [Min, Max], by the calls in Calls.
type Lag struct {
	Kind        string // instance, security-group, key-pair, image, snapshot, volume, launch-template
	Calls       CallClass
	Probability float64
	Min, Max    time.Duration
}

// Consistency is an eventual-consistency profile. The zero value has no
// lag (every new resource is visible at once) unless the EC2SIM_CONSISTENCY
// environment variable names a profile (see Start).
type Consistency struct {
	Name string
	Lags []Lag
}

// Kinds of resource a Lag may name, by id prefix.
var lagKinds = map[string]string{
	"i-": "instance", "sg-": "security-group", "key-": "key-pair", "ami-": "image",
	"snap-": "snapshot", "vol-": "volume", "lt-": "launch-template",
}

func kindOf(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return lagKinds[id[:i+1]]
	}
	return ""
}

// NoConsistencyLag: every new resource is visible to every call at once
// (deterministic tests).
func NoConsistencyLag() Consistency { return Consistency{Name: "none"} }

// DefaultConsistency is EC2 as clients meet it every day. The documented
// cases (instances after RunInstances, security groups after
// CreateSecurityGroup) and key pairs (botocore's KeyPairExists waiter
// retries InvalidKeyPair.NotFound for this reason) are seen late by one
// call in a hundred, for up to a second. Images and snapshots are not:
// botocore's ImageAvailable and SnapshotCompleted waiters, the AWS CLI's
// `wait image-available` / `wait snapshot-completed` and Packer's AMI
// waiter treat NotFound as failure, and they succeed on EC2 right after
// CreateImage every day.
func DefaultConsistency() Consistency {
	lag := func(kind string) Lag {
		return Lag{Kind: kind, Calls: AllCalls, Probability: 0.01, Min: 100 * time.Millisecond, Max: time.Second}
	}
	return Consistency{Name: "default", Lags: []Lag{lag("instance"), lag("security-group"), lag("key-pair")}}
}

// HarshConsistency is the simulator's old behaviour and worse, for soaks
// and resilience tests: every new resource of every kind is unknown to
// every call for 1 to 2 seconds. Clients that retry NotFound with backoff
// (as the EC2 guide asks) survive it; the AWS CLI's image and snapshot
// waiters do not.
func HarshConsistency() Consistency {
	var lags []Lag
	for _, k := range []string{"instance", "security-group", "key-pair", "image", "snapshot", "volume", "launch-template"} {
		lags = append(lags, Lag{Kind: k, Calls: AllCalls, Probability: 1, Min: time.Second, Max: 2 * time.Second})
	}
	return Consistency{Name: "harsh", Lags: lags}
}

// MaxWindow is the longest any new resource stays unseen.
func (c Consistency) MaxWindow() time.Duration {
	var m time.Duration
	for _, l := range c.Lags {
		if l.Probability > 0 {
			m = max(m, l.Max)
		}
	}
	return m
}

// ConsistencyProfile returns a named profile: none, default or harsh.
func ConsistencyProfile(name string) (Consistency, error) {
	switch name {
	case "none", "zero":
		return NoConsistencyLag(), nil
	case "default":
		return DefaultConsistency(), nil
	case "harsh":
		return HarshConsistency(), nil
	}
	return Consistency{}, fmt.Errorf("consistency profile %q: want none, default or harsh", name)
}

// ConsistencyEnv names the environment variable that sets the profile of
// simulators whose Options.Consistency is the zero value, so that a whole
// test suite can be run once more on the harsh profile
// (EC2SIM_CONSISTENCY=harsh go test ./...).
const ConsistencyEnv = "EC2SIM_CONSISTENCY"

func consistencyFromEnv(c Consistency) (Consistency, error) {
	if c.Name != "" || len(c.Lags) > 0 {
		return c, nil
	}
	name := os.Getenv(ConsistencyEnv)
	if name == "" {
		return NoConsistencyLag(), nil
	}
	p, err := ConsistencyProfile(name)
	if err != nil {
		return c, fmt.Errorf("ec2sim: %s: %w", ConsistencyEnv, err)
	}
	return p, nil
}

// ParseLag parses the flag form KIND:CALLS%P@MIN-MAX, e.g.
// "instance:describe,tag%0.05@100ms-1s"; CALLS is "all" or a comma list of
// describe, tag, use.
func ParseLag(s string) (Lag, error) {
	var l Lag
	kind, rest, ok := strings.Cut(s, ":")
	calls, rest2, ok2 := strings.Cut(rest, "%")
	p, win, ok3 := strings.Cut(rest2, "@")
	lo, hi, ok4 := strings.Cut(win, "-")
	if !ok || !ok2 || !ok3 || !ok4 {
		return l, fmt.Errorf("lag %q: want KIND:CALLS%%P@MIN-MAX, e.g. instance:describe,tag%%0.05@100ms-1s", s)
	}
	l.Kind = kind
	known := false
	for _, k := range lagKinds {
		known = known || k == kind
	}
	if !known {
		return l, fmt.Errorf("lag %q: kind %q is not one of instance, security-group, key-pair, image, snapshot, volume, launch-template", s, kind)
	}
	for _, c := range strings.Split(calls, ",") {
		switch c {
		case "all":
			l.Calls |= AllCalls
		case "describe":
			l.Calls |= CallDescribe
		case "tag":
			l.Calls |= CallTag
		case "use":
			l.Calls |= CallUse
		default:
			return l, fmt.Errorf("lag %q: call class %q is not one of all, describe, tag, use", s, c)
		}
	}
	var err error
	if l.Probability, err = strconv.ParseFloat(p, 64); err != nil || !(l.Probability >= 0 && l.Probability <= 1) {
		return l, fmt.Errorf("lag %q: probability %q is not a number between 0 and 1", s, p)
	}
	if l.Min, err = time.ParseDuration(lo); err != nil {
		return l, fmt.Errorf("lag %q: %w", s, err)
	}
	if l.Max, err = time.ParseDuration(hi); err != nil {
		return l, fmt.Errorf("lag %q: %w", s, err)
	}
	if l.Min < 0 || l.Max < l.Min {
		return l, fmt.Errorf("lag %q: want 0 <= MIN <= MAX", s)
	}
	return l, nil
}

// classOf says which class of call an action is, for Lag.Calls.
func classOf(action string) CallClass {
	switch {
	case action == "CreateTags" || action == "DeleteTags":
		return CallTag
	case strings.HasPrefix(action, "Describe") || strings.HasPrefix(action, "Get"):
		return CallDescribe
	}
	return CallUse
}

// hidden is when a new resource becomes visible to each class of call.
type hidden struct {
	until [3]time.Time // Describe, Tag, Use
}

func classIndex(c CallClass) int {
	switch c {
	case CallDescribe:
		return 0
	case CallTag:
		return 1
	}
	return 2
}

// drawLag decides, once, how late a new resource is seen. Callers hold mu.
func (s *Server) drawLag(id string, now time.Time) (hidden, bool) {
	var h hidden
	late := false
	kind := kindOf(id)
	for _, l := range s.consistency.Lags {
		if l.Kind != kind || l.Probability <= 0 || l.Calls == 0 {
			continue
		}
		if l.Probability < 1 && s.lagRand.Float64() >= l.Probability {
			continue
		}
		w := l.Min
		if l.Max > l.Min {
			w += time.Duration(s.lagRand.Int64N(int64(l.Max - l.Min)))
		}
		for _, c := range []CallClass{CallDescribe, CallTag, CallUse} {
			if l.Calls&c != 0 {
				i := classIndex(c)
				if t := now.Add(w); t.After(h.until[i]) {
					h.until[i] = t
				}
				late = true
			}
		}
	}
	return h, late
}

func newLagRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x1a9))
}
