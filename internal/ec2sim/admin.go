package ec2sim

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"sort"
	"time"
)

// Inventory is what the account owns, per region: what a test asserts a
// build left behind.
type Inventory struct {
	Regions map[string]RegionInventory `json:"regions"`
}

// RegionInventory lists one region's live resources by id (key pairs by
// name; security groups without the VPC's default group).
type RegionInventory struct {
	Instances      []string `json:"instances,omitempty"` // not terminated
	KeyPairs       []string `json:"key_pairs,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty"`
	Volumes        []string `json:"volumes,omitempty"`
	Snapshots      []string `json:"snapshots,omitempty"`
	Images         []string `json:"images,omitempty"`
	// LaunchTemplates are what spot builds create and must delete.
	LaunchTemplates []string `json:"launch_templates,omitempty"`
}

// leftovers counts what a finished build must not leave.
func (r RegionInventory) leftovers() int {
	return len(r.Instances) + len(r.KeyPairs) + len(r.SecurityGroups) + len(r.Volumes) + len(r.LaunchTemplates)
}

// Empty reports whether nothing but images and snapshots (a build's
// product) is left: no instance, key pair, security group, volume or
// launch template.
func (inv Inventory) Empty() bool {
	for _, r := range inv.Regions {
		if r.leftovers() > 0 {
			return false
		}
	}
	return true
}

// Leftovers lists what Empty objects to, for a test's failure message.
func (inv Inventory) Leftovers() map[string]RegionInventory {
	out := map[string]RegionInventory{}
	for name, r := range inv.Regions {
		if r.leftovers() > 0 {
			out[name] = RegionInventory{Instances: r.Instances, KeyPairs: r.KeyPairs, SecurityGroups: r.SecurityGroups, Volumes: r.Volumes, LaunchTemplates: r.LaunchTemplates}
		}
	}
	return out
}

// Inventory returns the account's live resources in every region.
func (s *Server) Inventory() Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv := Inventory{Regions: map[string]RegionInventory{}}
	acct := s.opt.AccountID
	for name, r := range s.regions {
		var ri RegionInventory
		for id, in := range r.instances {
			if in.State != "terminated" {
				ri.Instances = append(ri.Instances, id)
			}
		}
		for n := range r.keys {
			ri.KeyPairs = append(ri.KeyPairs, n)
		}
		for id, g := range r.groups {
			if g.Name != "default" {
				ri.SecurityGroups = append(ri.SecurityGroups, id)
			}
		}
		for id := range r.volumes {
			ri.Volumes = append(ri.Volumes, id)
		}
		for id, sn := range r.snapshots {
			if sn.OwnerID == acct {
				ri.Snapshots = append(ri.Snapshots, id)
			}
		}
		for id, im := range r.images {
			if im.OwnerID == acct {
				ri.Images = append(ri.Images, id)
			}
		}
		for id := range r.templates {
			ri.LaunchTemplates = append(ri.LaunchTemplates, id)
		}
		for _, l := range [][]string{ri.Instances, ri.KeyPairs, ri.SecurityGroups, ri.Volumes, ri.Snapshots, ri.Images, ri.LaunchTemplates} {
			sort.Strings(l)
		}
		if ri.leftovers()+len(ri.Snapshots)+len(ri.Images) > 0 {
			inv.Regions[name] = ri
		}
	}
	return inv
}

// Calls returns how often each action was called since the last reset.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.callCount)
}

// Succeeded returns how often each action was answered with success
// since the last reset: the calls that took effect, without those a
// client retried after an error (NotFound on an eventually consistent
// profile, an injected fault). Successful RunInstances calls are launches.
func (s *Server) Succeeded() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.succeeded)
}

// Event is one resource reaching a state (an instance running, stopped
// or terminated; an image or snapshot completing), for measuring how
// soon a client notices. Two instance events are not EC2 states:
// "ssh-ready" (the machine booted, its sshd accepting connections) and
// "console-posted" (new console output visible to GetConsoleOutput).
type Event struct {
	Time  time.Time `json:"time"`
	ID    string    `json:"id"`
	State string    `json:"state"`
}

// eventLocked records an event. Callers hold mu.
func (s *Server) eventLocked(id, state string) {
	if len(s.events) >= 10000 {
		s.events = s.events[1:]
	}
	s.events = append(s.events, Event{Time: time.Now(), ID: id, State: state})
}

// CallSpan is one API call: when it arrived and when its answer was
// written, the configured request latency included.
type CallSpan struct {
	Action string    `json:"action"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

func (s *Server) recordSpan(action string, start time.Time) {
	end := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spans) >= 10000 {
		s.spans = s.spans[1:]
	}
	s.spans = append(s.spans, CallSpan{Action: action, Start: start, End: end})
}

// CallSpans returns the calls since the last reset in the order they were
// answered (the most recent 10000).
func (s *Server) CallSpans() []CallSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallSpan(nil), s.spans...)
}

// Events returns the state changes so far (the most recent 10000).
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// CallTimes returns when each action was called (the most recent 10000).
func (s *Server) CallTimes() map[string][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]time.Time, len(s.calls))
	for k, v := range s.calls {
		out[k] = append([]time.Time(nil), v...)
	}
	return out
}

// ResetCalls zeroes the call counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string][]time.Time{}
	s.callCount = map[string]int{}
	s.succeeded = map[string]int{}
	s.events = nil
	s.spans = nil
}

// Faults returns the fault settings in force.
func (s *Server) Faults() FaultSettings { return s.faults.get() }

// SetFaults replaces the fault rules (and restarts their counters and
// random sequence from the seed).
func (s *Server) SetFaults(fs FaultSettings) error { return s.faults.set(fs) }

// Reset terminates every instance and forgets all state and counters, as
// if the simulator had just started.
func (s *Server) Reset() {
	s.mu.Lock()
	var ins []*instance
	for _, r := range s.regions {
		for _, in := range r.instances {
			ins = append(ins, in)
		}
	}
	s.mu.Unlock()
	for _, in := range ins {
		in.opMu.Lock()
		s.mu.Lock()
		m := in.machine
		s.mu.Unlock()
		if m != nil {
			if err := m.Destroy(); err != nil {
				s.log.Error("ec2sim: reset: destroy", "instance", in.ID, "err", err)
			}
		}
		s.setTerminated(in, "Client.UserInitiatedShutdown", "reset")
		in.opMu.Unlock()
	}
	s.mu.Lock()
	var snaps []string
	for _, r := range s.regions {
		for _, sn := range r.snapshots {
			if sn.content {
				snaps = append(snaps, sn.ID)
			}
		}
	}
	s.regions = map[string]*region{}
	s.ipInUse = map[string]bool{}
	s.calls = map[string][]time.Time{}
	s.callCount = map[string]int{}
	s.spans = nil
	s.succeeded = map[string]int{}
	s.mu.Unlock()
	for _, id := range snaps {
		_ = s.hosts.DeleteSnapshot(id)
	}
}

type callsJSON struct {
	Count int         `json:"count"`
	Times []time.Time `json:"times"`
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	switch r.URL.Path {
	case "/_sim/calls":
		if r.Method == http.MethodDelete {
			s.ResetCalls()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		counts, times := s.Calls(), s.CallTimes()
		out := map[string]callsJSON{}
		for k, n := range counts {
			out[k] = callsJSON{Count: n, Times: times[k]}
		}
		writeJSON(out)
	case "/_sim/events":
		writeJSON(s.Events())
	case "/_sim/inventory":
		inv := s.Inventory()
		writeJSON(struct {
			Inventory
			Empty bool `json:"empty"`
		}{inv, inv.Empty()})
	case "/_sim/reset":
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(s.Faults())
		case http.MethodPut, http.MethodPost:
			var fs FaultSettings
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&fs); err != nil {
				http.Error(w, "fault settings: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := s.SetFaults(fs); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			writeJSON(s.Faults())
		default:
			http.Error(w, "use GET or PUT", http.StatusMethodNotAllowed)
		}
	case "/_sim/myip":
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(host + "\n"))
	default:
		http.NotFound(w, r)
	}
}
