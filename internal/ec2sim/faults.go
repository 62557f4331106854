package ec2sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Fault names. The first group fails the API call itself; the rest change
// what happens to the resource the call creates.
const (
	FaultThrottle           = "RequestLimitExceeded"
	FaultInternalError      = "InternalError" // HTTP 500
	FaultUnavailable        = "Unavailable"   // HTTP 503
	FaultInsufficientCap    = "InsufficientInstanceCapacity"
	FaultUnauthorized       = "UnauthorizedOperation" // HTTP 403
	FaultInstanceTerminated = "InstanceTerminated"    // RunInstances: the instance goes straight to terminated
	FaultImageFailed        = "ImageFailed"           // CreateImage/CopyImage/RegisterImage: the image ends up failed
)

var requestFaults = map[string]string{
	FaultThrottle:        "Request limit exceeded.",
	FaultInternalError:   "An internal error has occurred",
	FaultUnavailable:     "The service is unavailable. Please try again shortly.",
	FaultInsufficientCap: "We currently do not have sufficient capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity.",
	FaultUnauthorized:    "You are not authorized to perform this operation.",
}

// FaultRule injects one fault into the calls of an action ("" or "*" for
// all): on the listed call numbers (1-based, counted per rule), and/or with
// a probability; Count (when > 0) caps how often it fires.
type FaultRule struct {
	Action      string  `json:"action"`
	Fault       string  `json:"fault"`
	Probability float64 `json:"probability,omitempty"`
	Calls       []int   `json:"calls,omitempty"`
	Count       int     `json:"count,omitempty"`
}

// ParseFaultRule parses the flag form ACTION:FAULT[@N,M...][%P][#COUNT],
// e.g. "RunInstances:InsufficientInstanceCapacity@1" (first call only) or
// "*:RequestLimitExceeded%0.1" (one call in ten).
func ParseFaultRule(s string) (FaultRule, error) {
	var r FaultRule
	action, rest, ok := strings.Cut(s, ":")
	if !ok {
		return r, fmt.Errorf("fault %q: want ACTION:FAULT[@N,...][%%P][#COUNT]", s)
	}
	r.Action = action
	end := strings.IndexAny(rest, "@%#")
	if end < 0 {
		end = len(rest)
	}
	r.Fault, rest = rest[:end], rest[end:]
	for rest != "" {
		kind := rest[0]
		rest = rest[1:]
		end := strings.IndexAny(rest, "@%#")
		if end < 0 {
			end = len(rest)
		}
		val := rest[:end]
		rest = rest[end:]
		switch kind {
		case '@':
			for _, n := range strings.Split(val, ",") {
				i, err := strconv.Atoi(n)
				if err != nil || i < 1 {
					return r, fmt.Errorf("fault %q: call number %q is not a positive integer", s, n)
				}
				r.Calls = append(r.Calls, i)
			}
		case '%':
			p, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return r, fmt.Errorf("fault %q: probability %q: %w", s, val, err)
			}
			r.Probability = p
		case '#':
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return r, fmt.Errorf("fault %q: count %q is not a non-negative integer", s, val)
			}
			r.Count = n
		}
	}
	if len(r.Calls) == 0 && r.Probability == 0 {
		r.Probability = 1
	}
	return r, r.validate()
}

func (r FaultRule) validate() error {
	if _, ok := requestFaults[r.Fault]; !ok && r.Fault != FaultInstanceTerminated && r.Fault != FaultImageFailed {
		return fmt.Errorf("fault %q is unknown (want one of RequestLimitExceeded, InternalError, Unavailable, InsufficientInstanceCapacity, UnauthorizedOperation, InstanceTerminated, ImageFailed)", r.Fault)
	}
	if r.Probability < 0 || r.Probability > 1 {
		return fmt.Errorf("fault %s: probability %v is not between 0 and 1", r.Fault, r.Probability)
	}
	return nil
}

func (r FaultRule) String() string {
	a := r.Action
	if a == "" {
		a = "*"
	}
	s := a + ":" + r.Fault
	if len(r.Calls) > 0 {
		var ns []string
		for _, n := range r.Calls {
			ns = append(ns, strconv.Itoa(n))
		}
		s += "@" + strings.Join(ns, ",")
	}
	if r.Probability > 0 && !(r.Probability == 1 && len(r.Calls) == 0) {
		s += "%" + strconv.FormatFloat(r.Probability, 'g', -1, 64)
	}
	if r.Count > 0 {
		s += "#" + strconv.Itoa(r.Count)
	}
	return s
}

// FaultSettings is what GET/PUT /_sim/faults exchange.
type FaultSettings struct {
	Seed  int64       `json:"seed"`
	Rules []FaultRule `json:"rules"`
	// Fired counts how often each rule fired (read only).
	Fired []int `json:"fired,omitempty"`
}

type faultSet struct {
	mu    sync.Mutex
	seed  int64
	rules []FaultRule
	seen  []int
	fired []int
	rng   *rand.Rand
}

func newFaultSet(rules []FaultRule, seed int64) (*faultSet, error) {
	f := &faultSet{}
	return f, f.set(FaultSettings{Seed: seed, Rules: rules})
}

func (f *faultSet) set(fs FaultSettings) error {
	for _, r := range fs.Rules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seed = fs.Seed
	f.rules = slices.Clone(fs.Rules)
	f.seen = make([]int, len(f.rules))
	f.fired = make([]int, len(f.rules))
	f.rng = rand.New(rand.NewPCG(uint64(fs.Seed), 0x5eed))
	return nil
}

func (f *faultSet) get() FaultSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FaultSettings{Seed: f.seed, Rules: slices.Clone(f.rules), Fired: slices.Clone(f.fired)}
}

// fire reports whether a fault of one of the kinds fires for this call of
// action, returning its name.
func (f *faultSet) fire(action string, kinds func(string) bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if (r.Action != "" && r.Action != "*" && r.Action != action) || !kinds(r.Fault) {
			continue
		}
		f.seen[i]++
		if r.Count > 0 && f.fired[i] >= r.Count {
			continue
		}
		hit := slices.Contains(r.Calls, f.seen[i])
		if !hit && r.Probability > 0 {
			hit = f.rng.Float64() < r.Probability
		}
		if hit {
			f.fired[i]++
			return r.Fault
		}
	}
	return ""
}

// request returns the API error a request fault injects, if one fires.
func (f *faultSet) request(action string) *APIError {
	name := f.fire(action, func(k string) bool {
		_, ok := requestFaults[k]
		if k == FaultInsufficientCap {
			// CreateFleet reports capacity errors in its answer instead.
			return ok && (action == "RunInstances" || action == "StartInstances")
		}
		return ok
	})
	if name == "" {
		return nil
	}
	if name == FaultThrottle {
		return apiErr(name, "Request limit exceeded.")
	}
	return apiErr(name, "%s", requestFaults[name])
}

// resource reports whether a resource fault (InstanceTerminated,
// ImageFailed) fires for this call.
func (f *faultSet) resource(action, kind string) bool {
	return f.fire(action, func(k string) bool { return k == kind }) != ""
}
