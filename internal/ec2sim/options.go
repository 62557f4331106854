package ec2sim

import (
	"log/slog"
	"time"
)

// Latency sets how long the simulated EC2 takes for each state
// transition. Zero durations complete the transition before the API call
// that started it returns, which keeps tests deterministic.
type Latency struct {
	Request         time.Duration // added to every API call
	Pending         time.Duration // instance pending → running
	SSHReady        time.Duration // running → sshd accepting connections
	Stopping        time.Duration // stopping → stopped
	ShuttingDown    time.Duration // shutting-down → terminated
	ImagePending    time.Duration // image pending → available (snapshot progress rises meanwhile)
	SnapshotPending time.Duration // CreateSnapshot pending → completed
	// ConsolePost is how long after an instance's console output changes
	// (boot, reboot, stop, termination) GetConsoleOutput shows it: EC2
	// "returns buffered information that was posted shortly after an
	// instance transition state" (GetConsoleOutput, EC2 API reference).
	// Zero posts at once. Latest=true reads the live console on Nitro
	// types regardless.
	ConsolePost time.Duration
}

// ZeroLatency is the profile for tests: every transition is immediate.
func ZeroLatency() Latency { return Latency{} }

// DefaultLatency is realistic in shape but quick: a bake sees pending
// instances, a running instance whose SSH is not up yet and pending
// images, in seconds rather than minutes.
func DefaultLatency() Latency {
	return Latency{
		Request:         5 * time.Millisecond,
		Pending:         2 * time.Second,
		SSHReady:        time.Second,
		Stopping:        2 * time.Second,
		ShuttingDown:    time.Second,
		ImagePending:    4 * time.Second,
		SnapshotPending: 3 * time.Second,
		ConsolePost:     2 * time.Second,
	}
}

// EC2Latency is a model of EC2's own durations for a small instance
// (t2.micro or t3.micro, 8 GiB gp3 root, a stock Ubuntu/Amazon Linux
// image) in a quiet region, from what users measure and report:
//   - pending to running 15 s, then 25 s more to SSH: Depot measured 40 s
//     from RunInstances to a booted instance ("Making EC2 boot time 8x
//     faster", depot.dev, 2024), Marty Sweet 20-40 s for current
//     general-purpose types ("EC2 Launch Times", martysweet.co.uk, 2023);
//   - stopping 40 s and shutting-down 30 s: typical of an EBS-backed
//     Linux instance's clean shutdown (a model: AWS gives no figure);
//   - image pending 4 min, snapshot 3 min: the user guide says "it can
//     take several minutes for the AMI-creation process to complete"
//     (Create an Amazon EBS-backed AMI); 4 min is a model for an 8 GiB
//     root that changed little;
//   - 150 ms per API call and console output posted 90 s after a change:
//     models (the GetConsoleOutput reference says only "shortly after").
//
// Scaled runs it faster for tests.
func EC2Latency() Latency {
	return Latency{
		Request:         150 * time.Millisecond,
		Pending:         15 * time.Second,
		SSHReady:        25 * time.Second,
		Stopping:        40 * time.Second,
		ShuttingDown:    30 * time.Second,
		ImagePending:    4 * time.Minute,
		SnapshotPending: 3 * time.Minute,
		ConsolePost:     90 * time.Second,
	}
}

// Scaled multiplies every duration by f (0.01: a four-minute image in
// 2.4 s).
func (l Latency) Scaled(f float64) Latency {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	return Latency{Request: s(l.Request), Pending: s(l.Pending), SSHReady: s(l.SSHReady), Stopping: s(l.Stopping),
		ShuttingDown: s(l.ShuttingDown), ImagePending: s(l.ImagePending), SnapshotPending: s(l.SnapshotPending), ConsolePost: s(l.ConsolePost)}
}

// Options configures a simulator.
type Options struct {
	// Addr is the listen address; default 127.0.0.1:0 (a free port).
	Addr string
	// AccountID owns everything created; default 123456789012.
	AccountID string
	Latency   Latency
	// Consistency is the eventual-consistency profile: which calls see a
	// new resource late, how often and for how long. The zero value means
	// none, or the profile EC2SIM_CONSISTENCY names (none, default, harsh).
	Consistency Consistency
	// Faults are injected into API calls; Seed makes them reproducible.
	Faults []FaultRule
	Seed   int64
	// SSHDropProbability drops an SSH connection mid-command with this
	// probability; SSHStartDelay delays every sshd start (slow SSH).
	SSHDropProbability float64
	SSHStartDelay      time.Duration
	// StateDir holds the instances' root filesystems; empty lets the vm
	// package choose. It must be root-owned and not under a group- or
	// world-writable directory (sshd's ChrootDirectory rule).
	StateDir string
	// NoSSH runs instances without SSH servers, for pure API tests and
	// for machines where sshd cannot run (not root).
	NoSSH bool
	// SSHPort is the port instances' sshd listen on; default 22.
	SSHPort int
	// Hosts replaces the instance backend (tests); nil uses the vm package,
	// or no-op hosts with NoSSH.
	Hosts Hosts
	// Log receives debug logs; nil discards them.
	Log *slog.Logger
}

// Regions the simulator serves, in the order their address ranges are
// assigned.
var Regions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2",
	"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
	"ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ap-south-1",
	"ca-central-1", "sa-east-1",
}
