package ec2sim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errorsAs(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestRequestFaults(t *testing.T) {
	tests := []struct {
		fault  string
		action string
		call   func(f *fixture) error
		status int
	}{
		{"RequestLimitExceeded", "DescribeRegions", func(f *fixture) error {
			_, err := f.c.DescribeRegions(f.ctx, &ec2.DescribeRegionsInput{})
			return err
		}, 503},
		{"InternalError", "DescribeVpcs", func(f *fixture) error {
			_, err := f.c.DescribeVpcs(f.ctx, &ec2.DescribeVpcsInput{})
			return err
		}, 500},
		{"Unavailable", "DescribeSubnets", func(f *fixture) error {
			_, err := f.c.DescribeSubnets(f.ctx, &ec2.DescribeSubnetsInput{})
			return err
		}, 503},
		{"UnauthorizedOperation", "DescribeKeyPairs", func(f *fixture) error {
			_, err := f.c.DescribeKeyPairs(f.ctx, &ec2.DescribeKeyPairsInput{})
			return err
		}, 403},
		{"InsufficientInstanceCapacity", "RunInstances", func(f *fixture) error {
			_, err := f.c.RunInstances(f.ctx, &ec2.RunInstancesInput{ImageId: aws.String(f.ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Faults: []ec2sim.FaultRule{{Action: tt.action, Fault: tt.fault, Calls: []int{1}}}})
			err := tt.call(f)
			if apiCode(err) != tt.fault || httpStatus(err) != tt.status {
				t.Fatalf("first call: err = %v (status %d), want %s with HTTP %d", err, httpStatus(err), tt.fault, tt.status)
			}
			if err := tt.call(f); err != nil {
				t.Fatalf("second call (the script fires on call 1 only): %v", err)
			}
			if got := f.srv.Faults().Fired; !slices.Equal(got, []int{1}) {
				t.Errorf("fired = %v, want [1]", got)
			}
		})
	}
}

func TestThrottlingIsRetriedBySDK(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Faults: []ec2sim.FaultRule{{Action: "DescribeRegions", Fault: "RequestLimitExceeded", Calls: []int{1, 2}}}})
	c := client(f.srv, "us-east-1", 5)
	f.srv.ResetCalls()
	if _, err := c.DescribeRegions(f.ctx, &ec2.DescribeRegionsInput{}); err != nil {
		t.Fatalf("the SDK's retryer should ride out two throttles: %v", err)
	}
	if n := f.srv.Calls()["DescribeRegions"]; n != 3 {
		t.Fatalf("DescribeRegions called %d times, want 3", n)
	}
}

func TestProbabilisticFaultsAreReproducible(t *testing.T) {
	pattern := func(seed int64) []bool {
		f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Seed: seed, Faults: []ec2sim.FaultRule{{Action: "DescribeRegions", Fault: "RequestLimitExceeded", Probability: 0.5}}})
		var out []bool
		for range 40 {
			_, err := f.c.DescribeRegions(f.ctx, &ec2.DescribeRegionsInput{})
			out = append(out, err != nil)
		}
		return out
	}
	a, b, c := pattern(42), pattern(42), pattern(43)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different fault sequences")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave the same fault sequence")
	}
	n := 0
	for _, failed := range a {
		if failed {
			n++
		}
	}
	if n < 8 || n > 32 {
		t.Fatalf("%d of 40 calls failed at probability 0.5", n)
	}
}

func TestResourceFaults(t *testing.T) {
	t.Run("instance straight to terminated", func(t *testing.T) {
		f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Faults: []ec2sim.FaultRule{{Action: "RunInstances", Fault: "InstanceTerminated", Calls: []int{1}}}})
		id := f.run(t)
		err := ec2.NewInstanceRunningWaiter(f.c).Wait(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "Failure") {
			t.Fatalf("running waiter: err = %v, want a failure state", err)
		}
		out, _ := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		in := out.Reservations[0].Instances[0]
		if in.State.Name != types.InstanceStateNameTerminated || aws.ToString(in.StateReason.Code) != "Server.InternalError" {
			t.Fatalf("state %s reason %v", in.State.Name, in.StateReason)
		}
		if !f.srv.Inventory().Empty() {
			t.Fatalf("a failed launch left resources: %+v", f.srv.Inventory().Leftovers())
		}
	})
	t.Run("image failed", func(t *testing.T) {
		f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Faults: []ec2sim.FaultRule{{Action: "CreateImage", Fault: "ImageFailed", Calls: []int{1}}}})
		id := f.run(t)
		ami := f.createImage(t, id, "doomed")
		err := ec2.NewImageAvailableWaiter(f.c).Wait(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}}, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "Failure") {
			t.Fatalf("image waiter: err = %v, want a failure state", err)
		}
		if im := f.image(t, ami); im.State != types.ImageStateFailed || im.StateReason == nil {
			t.Fatalf("image state %s reason %v", im.State, im.StateReason)
		}
	})
	t.Run("fleet capacity error in the answer", func(t *testing.T) {
		f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Faults: []ec2sim.FaultRule{{Action: "CreateFleet", Fault: "InsufficientInstanceCapacity", Calls: []int{1}}}})
		lt := createTemplate(t, f)
		out, err := f.c.CreateFleet(f.ctx, fleetInput(lt, ""))
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Errors) != 1 || aws.ToString(out.Errors[0].ErrorCode) != "InsufficientInstanceCapacity" || len(out.Instances) != 0 {
			t.Fatalf("fleet answer: errors %+v instances %+v", out.Errors, out.Instances)
		}
	})
}

func TestParseFaultRule(t *testing.T) {
	tests := []struct {
		in      string
		want    ec2sim.FaultRule
		wantErr bool
	}{
		{in: "RunInstances:InsufficientInstanceCapacity@1", want: ec2sim.FaultRule{Action: "RunInstances", Fault: "InsufficientInstanceCapacity", Calls: []int{1}}},
		{in: "*:RequestLimitExceeded%0.25#10", want: ec2sim.FaultRule{Action: "*", Fault: "RequestLimitExceeded", Probability: 0.25, Count: 10}},
		{in: "CreateImage:ImageFailed", want: ec2sim.FaultRule{Action: "CreateImage", Fault: "ImageFailed", Probability: 1}},
		{in: "RunInstances", wantErr: true},
		{in: "RunInstances:Gremlins", wantErr: true},
		{in: "RunInstances:InternalError@0", wantErr: true},
		{in: "RunInstances:InternalError%2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ec2sim.ParseFaultRule(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			if !bytes.Equal(gj, wj) {
				t.Fatalf("got %s, want %s", gj, wj)
			}
			if back, err := ec2sim.ParseFaultRule(got.String()); err != nil || back.String() != got.String() {
				t.Fatalf("String() %q does not parse back: %v", got.String(), err)
			}
		})
	}
}

func TestAdminEndpoints(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	id := f.run(t)
	if _, err := f.c.ImportKeyPair(f.ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("k"), PublicKeyMaterial: edPublicKey(t)}); err != nil {
		t.Fatal(err)
	}
	base := f.srv.URL()

	var calls map[string]struct {
		Count int         `json:"count"`
		Times []time.Time `json:"times"`
	}
	getJSON(t, base+"/_sim/calls", &calls)
	if c := calls["RunInstances"]; c.Count != 1 || len(c.Times) != 1 || time.Since(c.Times[0]) > time.Minute {
		t.Errorf("calls[RunInstances] = %+v", c)
	}

	var inv struct {
		Regions map[string]ec2sim.RegionInventory `json:"regions"`
		Empty   bool                              `json:"empty"`
	}
	getJSON(t, base+"/_sim/inventory", &inv)
	if r := inv.Regions["us-east-1"]; inv.Empty || !slices.Equal(r.Instances, []string{id}) || !slices.Equal(r.KeyPairs, []string{"k"}) || len(r.Volumes) != 1 {
		t.Errorf("inventory = %+v", inv)
	}

	// Faults: PUT a rule, see it fire, read it back.
	body := `{"seed": 3, "rules": [{"action": "DescribeVpcs", "fault": "Unavailable", "calls": [1]}]}`
	req, _ := http.NewRequest(http.MethodPut, base+"/_sim/faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT faults: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	if _, err := f.c.DescribeVpcs(f.ctx, &ec2.DescribeVpcsInput{}); apiCode(err) != "Unavailable" {
		t.Errorf("after PUT faults: err = %v, want Unavailable", err)
	}
	var fs ec2sim.FaultSettings
	getJSON(t, base+"/_sim/faults", &fs)
	if fs.Seed != 3 || len(fs.Rules) != 1 || !slices.Equal(fs.Fired, []int{1}) {
		t.Errorf("GET faults = %+v", fs)
	}
	req, _ = http.NewRequest(http.MethodPut, base+"/_sim/faults", strings.NewReader(`{"rules": [{"fault": "Gremlins"}]}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("PUT an unknown fault: %v %v, want 400", err, resp.Status)
	}

	// What-is-my-IP answers the caller's address.
	resp, err = http.Get(base + "/_sim/myip")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(buf.String()) != "127.0.0.1" {
		t.Errorf("myip = %q", buf.String())
	}

	// Reset forgets everything.
	resp, err = http.Post(base+"/_sim/reset", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %v %v", err, resp.Status)
	}
	if inv := f.srv.Inventory(); len(inv.Regions) != 0 || len(f.srv.Calls()) != 0 {
		t.Errorf("after reset: inventory %+v calls %v", inv, f.srv.Calls())
	}
	if _, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("instance after reset: err = %v", err)
	}
}
