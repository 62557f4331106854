package ec2sim

import (
	"log/slog"

	"github.com/amibake/amibake/internal/ec2sim/vm"
)

// vmHosts adapts the vm package (Debian machines in their own namespaces) to Hosts.
type vmHosts struct{ m *vm.Manager }

func newVMHosts(opts Options, log *slog.Logger) (Hosts, error) {
	m, err := vm.NewManager(vm.Options{
		Dir: opts.StateDir, Log: log, DropProbability: opts.SSHDropProbability,
		Seed: opts.Seed, SSHStartDelay: opts.SSHStartDelay,
	})
	if err != nil {
		return nil, err
	}
	return vmHosts{m}, nil
}

func (h vmHosts) SeedSnapshot(id string, f Flavor) error {
	return h.m.SeedSnapshot(id, vm.Flavor{Name: f.Name, User: f.User})
}
func (h vmHosts) CopySnapshot(src, dst string) error { return h.m.CopySnapshot(src, dst) }
func (h vmHosts) DeleteSnapshot(id string) error     { return h.m.DeleteSnapshot(id) }
func (h vmHosts) Close() error                       { return h.m.Close() }

func (h vmHosts) Create(s LaunchSpec) (Machine, error) {
	mc, err := h.m.Create(vm.LaunchSpec{
		InstanceID: s.InstanceID, SnapshotID: s.SnapshotID, IPs: s.IPs, Port: s.Port,
		User: s.User, AuthorizedKey: s.AuthorizedKey, UserData: s.UserData, Admit: s.Admit,
		DiskBytes: int64(s.RootVolumeGiB) << 30,
	})
	if err != nil {
		return nil, err
	}
	return mc, nil
}
