package ec2sim

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Flavor is what a seeded image boots: its name and default login user
// (every flavor boots the machines' Debian base, see catalogue.go).
type Flavor struct{ Name, User string }

// LaunchSpec describes one instance to the host backend.
type LaunchSpec struct {
	InstanceID, SnapshotID string
	IPs                    []string // loopback addresses sshd listens on
	Port                   int
	User                   string
	AuthorizedKey          string // authorized_keys line, may be ""
	UserData               []byte
	// RootVolumeGiB is the root volume's size: the instance's disk (0: default).
	RootVolumeGiB int
	// Admit decides per SSH connection whether the instance's security
	// groups let src reach port on the instance's address dst now (sgadmit.go).
	Admit func(src, dst string, port int) bool
}

// Hosts runs instances as machines. The real implementation is the vm
// package (a Debian machine in its own namespaces per instance); NoSSH uses hosts that only
// pretend.
type Hosts interface {
	SeedSnapshot(snapshotID string, f Flavor) error
	CopySnapshot(srcID, dstID string) error
	DeleteSnapshot(id string) error
	Create(spec LaunchSpec) (Machine, error)
	Close() error
}

// Machine is one instance's host.
type Machine interface {
	Boot(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Reboot(ctx context.Context) error
	Destroy() error
	Snapshot(snapshotID string) error
	ConsoleOutput() string
	RebootRequested() <-chan struct{}
	PowerOffRequested() <-chan struct{}
}

// noHosts keeps snapshots as names only and runs no SSH server; user data
// is echoed to the console so GetConsoleOutput still has something real.
// Nothing listens, so LaunchSpec.Admit is never asked.
type noHosts struct {
	mu    sync.Mutex
	snaps map[string]bool
}

func newNoHosts() *noHosts { return &noHosts{snaps: map[string]bool{}} }

func (h *noHosts) SeedSnapshot(id string, _ Flavor) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snaps[id] = true
	return nil
}

func (h *noHosts) CopySnapshot(src, dst string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.snaps[src] {
		return fmt.Errorf("copy snapshot %s: no such snapshot", src)
	}
	h.snaps[dst] = true
	return nil
}

func (h *noHosts) DeleteSnapshot(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.snaps, id)
	return nil
}

func (h *noHosts) Create(spec LaunchSpec) (Machine, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.snaps[spec.SnapshotID] {
		return nil, fmt.Errorf("create %s: no such snapshot %s", spec.InstanceID, spec.SnapshotID)
	}
	return &noMachine{h: h, spec: spec}, nil
}

func (h *noHosts) Close() error { return nil }

type noMachine struct {
	h       *noHosts
	spec    LaunchSpec
	mu      sync.Mutex
	booted  bool
	console strings.Builder
}

func (m *noMachine) Boot(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.booted && len(m.spec.UserData) > 0 {
		fmt.Fprintf(&m.console, "cloud-init: running user data\n%s\n", m.spec.UserData)
	}
	m.booted = true
	fmt.Fprintf(&m.console, "%s login: (no SSH server: simulator runs with NoSSH)\n", m.spec.InstanceID)
	return nil
}

func (m *noMachine) Shutdown(context.Context) error { return nil }
func (m *noMachine) Reboot(context.Context) error   { return nil }
func (m *noMachine) Destroy() error                 { return nil }
func (m *noMachine) Snapshot(id string) error {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	m.h.snaps[id] = true
	return nil
}
func (m *noMachine) ConsoleOutput() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.console.String()
}
func (m *noMachine) RebootRequested() <-chan struct{}   { return nil }
func (m *noMachine) PowerOffRequested() <-chan struct{} { return nil }
