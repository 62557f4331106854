package amazonebs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/communicator/ssh"
	"github.com/amibake/amibake/internal/ec2sim"
)

// consoleHosts are API-only instances whose console shows cloud-init's
// host key block, so pinning can be tested without sshd.
type consoleHosts struct {
	mu    sync.Mutex
	snaps map[string]bool
}

const consoleFingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

func (h *consoleHosts) SeedSnapshot(id string, _ ec2sim.Flavor) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snaps[id] = true
	return nil
}
func (h *consoleHosts) CopySnapshot(_, dst string) error { return h.SeedSnapshot(dst, ec2sim.Flavor{}) }
func (h *consoleHosts) DeleteSnapshot(string) error      { return nil }
func (h *consoleHosts) Close() error                     { return nil }
func (h *consoleHosts) Create(spec ec2sim.LaunchSpec) (ec2sim.Machine, error) {
	return &consoleMachine{h: h}, nil
}

// consoleMachine prints the host keys once booted (cloud-init prints them
// at the end of boot, when sshd is up).
type consoleMachine struct {
	h      *consoleHosts
	mu     sync.Mutex
	booted bool
}

func (m *consoleMachine) Boot(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.booted = true
	return nil
}
func (m *consoleMachine) Shutdown(context.Context) error { return nil }
func (m *consoleMachine) Reboot(context.Context) error   { return nil }
func (m *consoleMachine) Destroy() error                 { return nil }
func (m *consoleMachine) Snapshot(id string) error {
	return m.h.SeedSnapshot(id, ec2sim.Flavor{})
}
func (m *consoleMachine) ConsoleOutput() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.booted {
		return ""
	}
	return "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\nec2: 256 " + consoleFingerprint + " root@ip-10-0-0-1 (ED25519)\nec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
}
func (m *consoleMachine) RebootRequested() <-chan struct{}   { return nil }
func (m *consoleMachine) PowerOffRequested() <-chan struct{} { return nil }

// TestHostKeyFromConsole: pinning works on EC2's console timing, and a
// console read that fails is never taken for "no fingerprints".
func TestHostKeyFromConsole(t *testing.T) {
	tests := []struct {
		name     string
		itype    string
		mode     string
		wait     string
		post     time.Duration
		faults   []ec2sim.FaultRule
		wantMode ssh.HostKeyMode
		wantErr  string
		wantUI   string
	}{
		{name: "nitro reads the live console", itype: "t3.micro", post: time.Hour, wantMode: ssh.HostKeyPinned},
		{name: "xen waits for the buffered console", itype: "t2.micro", post: 300 * time.Millisecond, wantMode: ssh.HostKeyPinned},
		{name: "xen console too late: trust on first use, saying why", itype: "t2.micro", wait: "1s", post: time.Hour,
			wantMode: ssh.HostKeyTOFU, wantUI: "t2.micro is not a Nitro type"},
		{name: "require fails instead", itype: "t2.micro", mode: "require", wait: "1s", post: time.Hour,
			wantErr: `ssh_host_key_checking = "require" does not fall back`},
		{name: "unauthorized fails the build", itype: "t3.micro",
			faults:  []ec2sim.FaultRule{{Action: "GetConsoleOutput", Fault: ec2sim.FaultUnauthorized, Probability: 1}},
			wantErr: "UnauthorizedOperation"},
		{name: "throttling is retried", itype: "t3.micro",
			faults:   []ec2sim.FaultRule{{Action: "GetConsoleOutput", Fault: ec2sim.FaultThrottle, Calls: []int{1, 2, 3, 4, 5}}},
			wantMode: ssh.HostKeyPinned},
		{name: "throttled throughout: trust on first use, saying why", itype: "t3.micro", wait: "1s",
			faults:   []ec2sim.FaultRule{{Action: "GetConsoleOutput", Fault: ec2sim.FaultThrottle, Probability: 1}},
			wantMode: ssh.HostKeyTOFU, wantUI: "could not be read (last error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The test's own calls right after launching need no lag.
			srv := sim(t, ec2sim.Options{Hosts: &consoleHosts{snaps: map[string]bool{}}, Latency: ec2sim.Latency{ConsolePost: tt.post}, Faults: tt.faults,
				Consistency: ec2sim.NoConsistencyLag()})
			src := fmt.Sprintf("region = \"us-east-1\"\ninstance_type = %q\nssh_username = \"ubuntu\"\nami_name = \"hostkey-test\"\nsource_ami = \"ami-0123456789abcdef0\"\n", tt.itype)
			if tt.mode != "" {
				src += fmt.Sprintf("ssh_host_key_checking = %q\n", tt.mode)
			}
			if tt.wait != "" {
				src += fmt.Sprintf("ssh_host_key_wait_timeout = %q\n", tt.wait)
			}
			c := mustConfig(t, src)
			s, u := testState(t, srv, c)
			cx := ctx(t)
			img, err := s.ec2("").DescribeImages(cx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"},
				Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105"}}}})
			if err != nil {
				t.Fatal(err)
			}
			run, err := s.ec2("").RunInstances(cx, &ec2.RunInstancesInput{ImageId: img.Images[0].ImageId, InstanceType: types.InstanceType(tt.itype), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			if err != nil {
				t.Fatal(err)
			}
			s.Instance = &run.Instances[0]
			defer func() {
				if _, err := s.ec2("").TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{*s.Instance.InstanceId}}); err != nil {
					t.Error(err)
				}
			}()
			hk, err := (&stepConnect{}).hostKeyChecker(cx, s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hk.Mode() != tt.wantMode {
				t.Fatalf("mode %v, want %v; UI:\n%s", hk.Mode(), tt.wantMode, u)
			}
			if tt.wantMode == ssh.HostKeyPinned && !strings.Contains(u.String(), consoleFingerprint) {
				t.Errorf("UI does not show the pinned fingerprint:\n%s", u)
			}
			if tt.wantUI != "" && !strings.Contains(u.String(), tt.wantUI) {
				t.Errorf("UI lacks %q:\n%s", tt.wantUI, u)
			}
		})
	}
}

func TestLatestConsole(t *testing.T) {
	for typ, want := range map[string]bool{"t2.micro": false, "m4.large": false, "c4.xlarge": false, "t3.micro": true, "t4g.small": true, "m5.large": true, "i3.metal": true, "m4.16xlarge": true} {
		if got := latestConsole(typ); got != want {
			t.Errorf("latestConsole(%s) = %v, want %v", typ, got, want)
		}
	}
}

// BenchmarkHostKeyWait measures what pinning costs on EC2's console
// timing (ec2sim.EC2Latency, a model): from the instance reaching
// running to its fingerprints being pinned, for a Xen t2.micro (buffered
// console) and a Nitro t3.micro (Latest=true), against the time SSH
// needs anyway after running (SSHReady). AMIBAKE_BENCH_TIME_SCALE
// (default 0.1) shortens EC2's durations; amibake polls in real time
// (200 ms growing x1.2 to 15 s), so quote figures from a run at 1.
func BenchmarkHostKeyWait(b *testing.B) {
	scale := 0.1
	if v, err := strconv.ParseFloat(os.Getenv("AMIBAKE_BENCH_TIME_SCALE"), 64); err == nil && v > 0 {
		scale = v
	}
	lat := ec2sim.EC2Latency().Scaled(scale)
	lat.Request = 0
	srv := sim(b, ec2sim.Options{Hosts: &consoleHosts{snaps: map[string]bool{}}, Latency: lat, Consistency: ec2sim.NoConsistencyLag()})
	for _, itype := range []string{"t2.micro", "t3.micro"} {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			c := mustConfig(b, fmt.Sprintf("region = \"us-east-1\"\ninstance_type = %q\nssh_username = \"ubuntu\"\nami_name = \"hostkey-bench\"\nsource_ami = \"ami-0123456789abcdef0\"\nssh_host_key_checking = \"require\"\nssh_host_key_wait_timeout = \"30m\"\n", itype))
			s, _ := testState(b, srv, c)
			s.Waits = DefaultWaits()
			cx := context.Background()
			img, err := s.ec2("").DescribeImages(cx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"},
				Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105"}}}})
			if err != nil {
				b.Fatal(err)
			}
			run, err := s.ec2("").RunInstances(cx, &ec2.RunInstancesInput{ImageId: img.Images[0].ImageId, InstanceType: types.InstanceType(itype), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			if err != nil {
				b.Fatal(err)
			}
			s.Instance = &run.Instances[0]
			if err := ec2.NewInstanceRunningWaiter(s.ec2(""), func(o *ec2.InstanceRunningWaiterOptions) {
				o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
			}).
				Wait(cx, &ec2.DescribeInstancesInput{InstanceIds: []string{*s.Instance.InstanceId}}, time.Hour); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if _, err := (&stepConnect{}).hostKeyChecker(cx, s); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			if _, err := s.ec2("").TerminateInstances(cx, &ec2.TerminateInstancesInput{InstanceIds: []string{*s.Instance.InstanceId}}); err != nil {
				b.Fatal(err)
			}
			if err := ec2.NewInstanceTerminatedWaiter(s.ec2(""), func(o *ec2.InstanceTerminatedWaiterOptions) {
				o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
			}).
				Wait(cx, &ec2.DescribeInstancesInput{InstanceIds: []string{*s.Instance.InstanceId}}, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("%s: fingerprints pinned %.1f s (EC2 time) after running", itype, (total/time.Duration(b.N)).Seconds()/scale)
		b.ReportMetric((total/time.Duration(b.N)).Seconds()/scale, "pin-"+strings.TrimSuffix(itype, ".micro")+"-ec2-s")
	}
	b.ReportMetric(lat.SSHReady.Seconds()/scale, "ssh-after-running-ec2-s")
	b.ReportMetric(scale, "time-scale")
}
