package ec2sim_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/vm"
)

// needRoot: instances are Debian machines in their own namespaces over
// overlayfs, which only root can start (make test runs as root in a
// loopback-only network namespace).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("instances with SSH need root (run: unshare --net sh -c 'ip link set lo up; go test ./internal/ec2sim/...')")
	}
}

// recordingSigner records the signature algorithms the SSH handshake
// asked an RSA key for.
type recordingSigner struct {
	ssh.MultiAlgorithmSigner
	used *[]string
}

func (r recordingSigner) SignWithAlgorithm(rnd io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	*r.used = append(*r.used, algo)
	return r.MultiAlgorithmSigner.SignWithAlgorithm(rnd, data, algo)
}

// hostKeyFromConsole checks the server's host key against the
// fingerprints the instance printed to its console, as a careful client
// (and Packer's ssh_host_key checks) would.
func hostKeyFromConsole(console string) ssh.HostKeyCallback {
	fps := vm.ParseHostKeyFingerprints(console)
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		got := ssh.FingerprintSHA256(key)
		for _, fp := range fps {
			if fp.Fingerprint == got {
				return nil
			}
		}
		return fmt.Errorf("host key %s is not among the console's fingerprints %v", got, fps)
	}
}

func dialSSH(t testing.TB, addr, user string, signer ssh.Signer, hostKey ssh.HostKeyCallback) *ssh.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hostKey, Timeout: 10 * time.Second}
	var lastErr error
	// SSH may come up a moment after the instance reports running, as on
	// real EC2.
	for range 50 {
		cl, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg)
		if err == nil {
			return cl
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ssh %s@%s: %v", user, addr, lastErr)
	return nil
}

func run(t testing.TB, cl *ssh.Client, cmd string) string {
	t.Helper()
	s, err := cl.NewSession()
	if err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("run %q: %v\n%s", cmd, err, out)
	}
	return string(out)
}

func consoleOf(ctx context.Context, t testing.TB, c *ec2.Client, id string) string {
	t.Helper()
	out, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		t.Fatalf("console output: %v", err)
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		t.Fatalf("console output is not base64: %v", err)
	}
	return string(b)
}

func tagSpec(rt types.ResourceType, kv ...string) types.TagSpecification {
	ts := types.TagSpecification{ResourceType: rt}
	for i := 0; i+1 < len(kv); i += 2 {
		ts.Tags = append(ts.Tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return ts
}

// bake drives a whole Packer-style bake through aws-sdk-go-v2 and SSH, as
// issue 2's "Done when" describes. It returns the new AMI ids.
func bake(t testing.TB, srv *ec2sim.Server, withSSH bool) {
	ctx := ctxT(t)
	const region = "us-east-1"
	c := client(srv, region, 3)

	// Source AMI: owner + name filter, most recent chosen client-side.
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners: []string{"099720109477"},
		Filters: []types.Filter{
			{Name: aws.String("name"), Values: []string{"ubuntu/images/*ubuntu-noble-24.04-amd64-server-*"}},
			{Name: aws.String("root-device-type"), Values: []string{"ebs"}},
			{Name: aws.String("virtualization-type"), Values: []string{"hvm"}},
		},
	})
	if err != nil {
		t.Fatalf("describe images: %v", err)
	}
	if len(imgs.Images) < 2 {
		t.Fatalf("want several noble images for most_recent to matter, got %d", len(imgs.Images))
	}
	sort.Slice(imgs.Images, func(i, j int) bool { return *imgs.Images[i].CreationDate > *imgs.Images[j].CreationDate })
	src := imgs.Images[0]
	if !strings.HasSuffix(*src.Name, "-20261105") {
		t.Fatalf("most recent noble image = %s, want the 20261105 one", *src.Name)
	}

	// Keys: an imported ed25519 key, and an RSA key created by EC2.
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	sshEdPub, _ := ssh.NewPublicKey(edPub)
	if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("bake-ed25519"), PublicKeyMaterial: ssh.MarshalAuthorizedKey(sshEdPub)}); err != nil {
		t.Fatalf("import key pair: %v", err)
	}
	edSigner, _ := ssh.NewSignerFromKey(edPriv)
	rsaKey, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("bake-rsa"), KeyType: types.KeyTypeRsa})
	if err != nil {
		t.Fatalf("create key pair: %v", err)
	}
	rsaSigner, err := ssh.ParsePrivateKey([]byte(aws.ToString(rsaKey.KeyMaterial)))
	if err != nil {
		t.Fatalf("parse created RSA key: %v", err)
	}

	// Temporary security group open on port 22.
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("packer_bake"), Description: aws.String("Temporary group for Packer"),
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeSecurityGroup, "Name", "bake")},
	})
	if err != nil {
		t.Fatalf("create security group: %v", err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: sg.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}}},
	}); err != nil {
		t.Fatalf("authorize ingress: %v", err)
	}

	launch := func(ami *string, key string) types.Instance {
		t.Helper()
		out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: ami, InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			KeyName: aws.String(key), SecurityGroupIds: []string{*sg.GroupId},
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho user-data-ran\n"))),
			TagSpecifications: []types.TagSpecification{
				tagSpec(types.ResourceTypeInstance, "Name", "Packer Builder"),
				tagSpec(types.ResourceTypeVolume, "Name", "Packer Builder"),
			},
		})
		if err != nil {
			t.Fatalf("run instances: %v", err)
		}
		id := *out.Instances[0].InstanceId
		if err := ec2.NewInstanceRunningWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, time.Minute); err != nil {
			t.Fatalf("wait for %s running: %v", id, err)
		}
		d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatalf("describe instance: %v", err)
		}
		in := d.Reservations[0].Instances[0]
		if ip := net.ParseIP(aws.ToString(in.PublicIpAddress)); ip == nil || !ip.IsLoopback() {
			t.Fatalf("public IP %q is not a loopback address", aws.ToString(in.PublicIpAddress))
		}
		return in
	}

	builder := launch(src.ImageId, "bake-ed25519")
	if withSSH {
		console := consoleOf(ctx, t, c, *builder.InstanceId)
		if !strings.Contains(console, "-----BEGIN SSH HOST KEY FINGERPRINTS-----") || !strings.Contains(console, "user-data-ran") {
			t.Fatalf("console output lacks the host key fingerprints or the user data's output:\n%s", console)
		}
		cl := dialSSH(t, *builder.PublicIpAddress, "ubuntu", edSigner, hostKeyFromConsole(console))
		// Every seeded image boots the Debian base, and says so.
		if out := run(t, cl, "grep VERSION_ID /etc/os-release"); !strings.Contains(out, `"12"`) {
			t.Errorf("os-release in the instance: %q", out)
		}
		sc, err := sftp.NewClient(cl)
		if err != nil {
			t.Fatalf("sftp: %v", err)
		}
		f, err := sc.Create("baked.txt")
		if err != nil {
			t.Fatalf("sftp create: %v", err)
		}
		if _, err := f.Write([]byte("baked by the test\n")); err != nil {
			t.Fatalf("sftp write: %v", err)
		}
		f.Close()
		sc.Close()
		if out := run(t, cl, "cat baked.txt"); out != "baked by the test\n" {
			t.Errorf("uploaded file reads %q", out)
		}
		cl.Close()
	}

	// A group in use cannot be deleted.
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); apiCode(err) != "DependencyViolation" {
		t.Errorf("delete group in use: err = %v, want DependencyViolation", err)
	}

	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{*builder.InstanceId}}); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := ec2.NewInstanceStoppedWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*builder.InstanceId}}, time.Minute); err != nil {
		t.Fatalf("wait stopped: %v", err)
	}
	if withSSH {
		if cl, err := ssh.Dial("tcp", net.JoinHostPort(*builder.PublicIpAddress, "22"), &ssh.ClientConfig{User: "ubuntu",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(edSigner)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Second}); err == nil {
			cl.Close()
			t.Error("a stopped instance still answers SSH")
		}
	}
	ci, err := c.CreateImage(ctx, &ec2.CreateImageInput{
		InstanceId: builder.InstanceId, Name: aws.String("bake-test " + time.Now().Format("20060102150405")),
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeImage, "Built", "yes"), tagSpec(types.ResourceTypeSnapshot, "Built", "yes")},
	})
	if err != nil {
		t.Fatalf("create image: %v", err)
	}
	if err := ec2.NewImageAvailableWaiter(c).Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*ci.ImageId}}, time.Minute); err != nil {
		t.Fatalf("wait image available: %v", err)
	}

	// The new AMI carries the uploaded file.
	second := launch(ci.ImageId, "bake-rsa")
	if withSSH {
		var used []string
		mas, err := ssh.NewSignerWithAlgorithms(rsaSigner.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512})
		if err != nil {
			t.Fatal(err)
		}
		cl := dialSSH(t, *second.PublicIpAddress, "ubuntu", recordingSigner{mas, &used}, hostKeyFromConsole(consoleOf(ctx, t, c, *second.InstanceId)))
		if out := run(t, cl, "cat baked.txt"); out != "baked by the test\n" {
			t.Errorf("file from the new AMI reads %q", out)
		}
		cl.Close()
		if len(used) == 0 || slices.ContainsFunc(used, func(a string) bool { return a == ssh.KeyAlgoRSA }) {
			t.Errorf("RSA key signed with %v, want rsa-sha2-256/512 only", used)
		}
	}

	// Copy to another region.
	west := client(srv, "us-west-2", 3)
	cp, err := west.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String(region), SourceImageId: ci.ImageId, Name: aws.String("bake-test copy")})
	if err != nil {
		t.Fatalf("copy image: %v", err)
	}
	if err := ec2.NewImageAvailableWaiter(west).Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*cp.ImageId}}, time.Minute); err != nil {
		t.Fatalf("wait copied image: %v", err)
	}

	ids := []string{*builder.InstanceId, *second.InstanceId}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if err := ec2.NewInstanceTerminatedWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, time.Minute); err != nil {
		t.Fatalf("wait terminated: %v", err)
	}
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
		t.Fatalf("delete security group: %v", err)
	}
	for _, k := range []string{"bake-ed25519", "bake-rsa"} {
		if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(k)}); err != nil {
			t.Fatalf("delete key pair: %v", err)
		}
	}
	inv := srv.Inventory()
	if !inv.Empty() {
		t.Fatalf("the bake left resources behind: %+v", inv.Leftovers())
	}
	if got := inv.Regions[region].Images; !slices.Contains(got, *ci.ImageId) {
		t.Errorf("inventory images in %s = %v, want %s", region, got, *ci.ImageId)
	}
	if got := inv.Regions["us-west-2"].Images; !slices.Contains(got, *cp.ImageId) {
		t.Errorf("inventory images in us-west-2 = %v, want %s", got, *cp.ImageId)
	}
}

func TestWholeBake(t *testing.T) {
	needRoot(t)
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	bake(t, srv, true)
}

func TestWholeBakeNoSSH(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	bake(t, srv, false)
}

// BenchmarkWholeBake measures the simulator's overhead for a whole bake
// (real sshd instances, zero-latency profile), and counts its API calls.
func BenchmarkWholeBake(b *testing.B) {
	needRoot(b)
	benchBake(b, ec2sim.Options{Latency: ec2sim.ZeroLatency()}, true)
}

// BenchmarkWholeBakeNoSSH is the same bake through the API alone: the
// Query API's share of the overhead.
func BenchmarkWholeBakeNoSSH(b *testing.B) {
	benchBake(b, ec2sim.Options{Latency: ec2sim.ZeroLatency(), NoSSH: true}, false)
}

func benchBake(b *testing.B, opts ec2sim.Options, withSSH bool) {
	srv := startSim(b, opts)
	calls := 0
	b.ResetTimer()
	for range b.N {
		bake(b, srv, withSSH)
		b.StopTimer()
		for _, n := range srv.Calls() {
			calls += n
		}
		srv.Reset()
		b.StartTimer()
	}
	b.ReportMetric(float64(calls)/float64(b.N), "api-calls/op")
}
