package ec2sim_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func TestParseLag(t *testing.T) {
	tests := []struct {
		in      string
		want    ec2sim.Lag
		wantErr string
	}{
		{in: "instance:describe,tag%0.05@100ms-1s", want: ec2sim.Lag{Kind: "instance", Calls: ec2sim.CallDescribe | ec2sim.CallTag, Probability: 0.05, Min: 100 * time.Millisecond, Max: time.Second}},
		{in: "image:all%1@1s-2s", want: ec2sim.Lag{Kind: "image", Calls: ec2sim.AllCalls, Probability: 1, Min: time.Second, Max: 2 * time.Second}},
		{in: "image:use%1@0s-0s", want: ec2sim.Lag{Kind: "image", Calls: ec2sim.CallUse, Probability: 1}},
		{in: "bucket:all%1@1s-2s", wantErr: "kind \"bucket\""},
		{in: "image:read%1@1s-2s", wantErr: "call class \"read\""},
		{in: "image:all%2@1s-2s", wantErr: "between 0 and 1"},
		{in: "image:all%NaN@1s-2s", wantErr: "between 0 and 1"},
		{in: "image:all%1@2s-1s", wantErr: "MIN <= MAX"},
		{in: "image:all", wantErr: "want KIND:CALLS%P@MIN-MAX"},
	}
	for _, tt := range tests {
		got, err := ec2sim.ParseLag(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseLag(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLag(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// The default profile follows the EC2 guide: images and snapshots are
// visible at once (the AWS CLI's image-available waiter fails on NotFound);
// instances are sometimes late, and only for a short window.
func TestDefaultConsistency(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.DefaultConsistency(), Seed: 3})
	late := 0
	const n = 200
	for range n {
		id := f.run(t)
		_, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		switch {
		case apiCode(err) == "InvalidInstanceID.NotFound":
			late++
		case err != nil:
			t.Fatal(err)
		}
		img, err := f.c.CreateImage(f.ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("img-" + id)})
		if apiCode(err) == "InvalidInstanceID.NotFound" {
			continue // the instance itself was late for CreateImage
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img.ImageId}}); err != nil {
			t.Fatalf("describe a new image: %v (the default profile shows images at once)", err)
		}
	}
	// 1% of instances, each seen late by the calls within its window: a
	// binomial(200, 0.01) is above 8 with probability < 1e-4.
	if late > 8 {
		t.Errorf("%d of %d new instances unknown to DescribeInstances, want about 1%%", late, n)
	}
}

func TestHarshConsistency(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.HarshConsistency()})
	start := time.Now()
	g, err := f.c.CreateSecurityGroup(f.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("h"), Description: aws.String("h")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.c.AuthorizeSecurityGroupIngress(f.ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}}}})
	if time.Since(start) < time.Second && apiCode(err) != "InvalidGroup.NotFound" {
		t.Fatalf("authorize right after create: %v, want InvalidGroup.NotFound", err)
	}
	w := ec2.NewSecurityGroupExistsWaiter(f.c, func(o *ec2.SecurityGroupExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 200*time.Millisecond
	})
	if err := w.Wait(f.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{*g.GroupId}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Errorf("group became visible after %s, want 1-2s", d)
	}
	// Calls count every attempt; Succeeded only those that took effect.
	calls, ok := f.srv.Calls()["DescribeSecurityGroups"], f.srv.Succeeded()["DescribeSecurityGroups"]
	if ok != 1 || calls < 2 {
		t.Errorf("DescribeSecurityGroups: %d calls, %d succeeded; want several calls, one success", calls, ok)
	}
	if n := f.srv.Succeeded()["CreateSecurityGroup"]; n != 1 {
		t.Errorf("CreateSecurityGroup succeeded %d times, want 1", n)
	}
}

// Close waits for the shutdown whoever started it: a signal watcher and
// the caller both close.
func TestCloseTwiceWaits(t *testing.T) {
	h := &slowHosts{delay: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := ec2sim.Start(ctx, ec2sim.Options{Hosts: h})
	if err != nil {
		t.Fatal(err)
	}
	cancel() // Start's watcher begins closing
	time.Sleep(20 * time.Millisecond)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Close(); err != nil {
				t.Error(err)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if !h.closed {
				t.Error("Close returned before the hosts were closed")
			}
		}()
	}
	wg.Wait()
}

type slowHosts struct {
	ec2sim.Hosts
	delay  time.Duration
	mu     sync.Mutex
	closed bool
}

func (h *slowHosts) Close() error {
	time.Sleep(h.delay)
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	return nil
}

// FuzzParseLag: the -lag flag parser answers every input with a lag or an
// error, never a panic, and what it accepts is well formed.
func FuzzParseLag(f *testing.F) {
	for _, s := range []string{"instance:describe,tag%0.05@100ms-1s", "image:all%1@1s-2s", "key-pair:use%0@0s-0s", "x:y%z@a-b", ":%@-", "instance:all%1e-300@1h-2h", "image:all%NaN@1s-2s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ec2sim.ParseLag(s)
		if err != nil {
			return
		}
		if !(l.Probability >= 0 && l.Probability <= 1) || l.Min < 0 || l.Max < l.Min || l.Calls == 0 {
			t.Fatalf("ParseLag(%q) accepted %+v", s, l)
		}
	})
}
