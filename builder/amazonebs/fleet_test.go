package amazonebs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/pipeline"
)

// TestSpotFleetSeesNewResourcesLate: an instant fleet that cannot see the
// key pair just made answers with NotFound errors and launches nothing;
// the build asks again (same launch template, new ClientToken) instead of
// failing. (A late security group is waited for earlier, by its ingress
// rules.)
func TestSpotFleetSeesNewResourcesLate(t *testing.T) {
	src := strings.Replace(noComm, `instance_type = "t3.micro"`, "", 1) + `ami_name = "spot-late"
spot_price = "auto"
spot_instance_types = ["t3.micro"]
`
	// SSH, so that the build makes a key pair and a security group; it
	// stops once the instance runs.
	src = strings.Replace(src, `communicator  = "none"`, `ssh_username  = "root"`, 1)
	for _, kind := range []string{"key-pair"} {
		t.Run(kind, func(t *testing.T) {
			srv := sim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.Consistency{Name: "late-" + kind,
				Lags: []ec2sim.Lag{{Kind: kind, Calls: ec2sim.CallUse, Probability: 1, Min: 300 * time.Millisecond, Max: 500 * time.Millisecond}}}})
			st, u := testState(t, srv, mustConfig(t, src))
			var steps []pipeline.Step[*State]
			for _, step := range Steps(st.Config) {
				steps = append(steps, step)
				if _, ok := step.(*stepLaunch); ok {
					break
				}
			}
			c, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := (&pipeline.Runner[*State]{Steps: steps}).Run(c, st); err != nil {
				t.Fatalf("launch: %v\n%s", err, u)
			}
			if st.Instance == nil || st.Instance.State == nil || st.Instance.State.Name != "running" {
				t.Errorf("instance %+v", st.Instance)
			}
			// The simulator's own check (sim) fails the test on anything
			// left, launch templates included.
		})
	}
}
