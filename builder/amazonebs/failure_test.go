package amazonebs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/ec2sim"
)

// A TerminateInstances that fails a few times is retried with backoff,
// and each failure is reported.
func TestTerminateRetried(t *testing.T) {
	srv := sim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(),
		Faults: []ec2sim.FaultRule{{Action: "TerminateInstances", Fault: ec2sim.FaultUnauthorized, Probability: 1, Count: 2}}})
	st, u := testState(t, srv, mustConfig(t, noComm+`ami_name = "terminate-retried"`))
	if err := runSteps(t, st); err != nil {
		t.Fatalf("build: %v\n%s", err, u)
	}
	log := u.String()
	if !strings.Contains(log, "failed (attempt 1 of 5)") || !strings.Contains(log, "failed (attempt 2 of 5)") || strings.Contains(log, "attempt 3 of 5") {
		t.Errorf("retries not reported:\n%s", log)
	}
	if inv := srv.Inventory().Regions["eu-west-1"]; len(inv.Instances) != 0 {
		t.Errorf("instance left: %+v", inv)
	}
}

// A TerminateInstances that keeps failing: the build fails in seconds
// with an error that says what is left and what removes it (no 300 s wait
// for a security group the instance still holds), and the AMI it made
// does not survive the failed build.
func TestTerminateFailsClearly(t *testing.T) {
	srv := sim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(),
		Faults: []ec2sim.FaultRule{{Action: "TerminateInstances", Fault: ec2sim.FaultUnauthorized, Probability: 1}}})
	c := mustConfig(t, noComm+`ami_name = "terminate-fails"`)
	st, u := testState(t, srv, c)
	// communicator = "none" makes no temporary group: give the instance
	// one, as an SSH build has, with the step's own cleanup.
	steps := Steps(c)
	for i, step := range steps {
		if _, ok := step.(*stepSecurityGroup); ok {
			steps[i] = &heldGroup{&stepSecurityGroup{}}
		}
	}
	b := &Builder{Config: c, Name: "amazon-ebs", UI: u}
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.runSteps(cctx, st, steps)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("build succeeded with an instance that cannot be terminated\n%s", u)
	}
	t.Logf("error: %v\nlog:\n%s", err, u)
	msg := err.Error()
	for _, want := range []string{"5 attempts", "amibake cleanup --run-id run-1", "was not terminated, so it still holds it; `amibake cleanup --run-id run-1` removes both"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if elapsed > 30*time.Second {
		t.Errorf("the failing build took %s", elapsed)
	}
	inv := srv.Inventory().Regions["eu-west-1"]
	if len(inv.Images)+len(inv.Snapshots) != 0 {
		t.Errorf("the failed build's AMI survived: %+v\n%s", inv, u)
	}
	// Leave the simulator clean for sim's check.
	srv.SetFaults(ec2sim.FaultSettings{})
	for _, id := range inv.Instances {
		st.ec2("").TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	}
	for _, id := range inv.SecurityGroups {
		st.ec2("").DeleteSecurityGroup(ctx(t), &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
	}
}

// heldGroup creates a temporary security group for the instance whatever
// the communicator; its cleanup is the real step's.
type heldGroup struct{ *stepSecurityGroup }

func (h *heldGroup) Run(ctx context.Context, s *State) error {
	g, err := s.ec2("").CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("held"), Description: aws.String("x")})
	if err != nil {
		return err
	}
	h.created = aws.ToString(g.GroupId)
	s.SecurityGroupIDs = []string{h.created}
	return nil
}

func TestWriteKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ec2_x.pem")
	if err := writeKeyFile(path, []byte("KEY")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	// An existing file keeps its content and mode: the key is not written.
	old := filepath.Join(dir, "old.pem")
	os.WriteFile(old, []byte("old"), 0o666)
	if err := writeKeyFile(old, []byte("KEY")); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("existing file: %v", err)
	}
	// A planted symlink is not followed.
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link.pem")
	os.Symlink(target, link)
	if err := writeKeyFile(link, []byte("KEY")); err == nil {
		t.Error("wrote through a symlink")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("symlink target created: %v", err)
	}
}
