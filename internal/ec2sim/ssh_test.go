package ec2sim_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/amibake/amibake/internal/ec2sim"
)

// sshInstance launches one instance with an imported ed25519 key and
// returns its public IP and a signer for its default user.
func sshInstance(t *testing.T, srv *ec2sim.Server, image string) (*ec2.Client, string, string, ssh.Signer) {
	t.Helper()
	ctx := ctxT(t)
	c := client(srv, "us-east-1")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	spub, _ := ssh.NewPublicKey(pub)
	name := "k-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: ssh.MarshalAuthorizedKey(spub)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{image}}}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("image %s: %v", image, err)
	}
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: out.Images[0].ImageId, KeyName: aws.String(name), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SecurityGroupIds: []string{sshGroup(t, c)}})
	if err != nil {
		t.Fatal(err)
	}
	id := *run.Instances[0].InstanceId
	if err := ec2.NewInstanceRunningWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return c, id, *d.Reservations[0].Instances[0].PublicIpAddress, signer
}

// sshGroup creates a security group open on port 22 to the host (the
// default group admits only its own members, as on EC2).
func sshGroup(t *testing.T, c *ec2.Client) string {
	t.Helper()
	ctx := ctxT(t)
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("ssh-" + strconv.FormatInt(time.Now().UnixNano(), 36)), Description: aws.String("SSH from the host")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId,
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}}}}); err != nil {
		t.Fatal(err)
	}
	return *sg.GroupId
}

const nobleAMD64 = "*ubuntu-noble-24.04-amd64-server-20261105"

func TestGuestRebootAndPowerOff(t *testing.T) {
	needRoot(t)
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	c, id, ip, signer := sshInstance(t, srv, nobleAMD64)
	ctx := ctxT(t)
	cl := dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
	// Provisioning installs packages from the simulator's offline mirror.
	s, _ := cl.NewSession()
	out, err := s.CombinedOutput("sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq && jq --version")
	s.Close()
	if err != nil || !strings.Contains(string(out), "jq-1.") {
		t.Errorf("apt-get inside the instance: err %v output %q, want jq installed", err, out)
	}
	// The simulator's API (admin endpoints included) is out of the
	// instance's reach: it has its own network namespace.
	s, _ = cl.NewSession()
	out, err = s.CombinedOutput("curl -sS -m 3 " + srv.URL() + "/_sim/inventory 2>&1")
	s.Close()
	if err == nil || strings.Contains(string(out), "regions") {
		t.Errorf("the simulator's API answered inside the instance: %v %q", err, out)
	}
	// The root file system is the root volume's size (8 GiB in the catalogue).
	if got := run(t, cl, "df -BG --output=size / | tail -1"); strings.TrimSpace(got) != "8G" {
		t.Errorf("root file system size %q, want the volume's 8G", got)
	}
	run(t, cl, "echo before > marker")
	s, _ = cl.NewSession()
	_ = s.Run("sudo reboot") // the connection drops as the machine goes down
	s.Close()
	cl.Close()
	cl = dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
	if got := run(t, cl, "cat marker"); got != "before\n" {
		t.Errorf("after reboot the file reads %q", got)
	}
	if st, _ := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); st.Reservations[0].Instances[0].State.Name != types.InstanceStateNameRunning {
		t.Errorf("state after a guest reboot: %s", st.Reservations[0].Instances[0].State.Name)
	}
	s, _ = cl.NewSession()
	_ = s.Run("sudo poweroff")
	s.Close()
	cl.Close()
	w := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 20*time.Second); err != nil {
		t.Fatalf("a guest poweroff should stop the instance: %v", err)
	}
	// Started again, it answers SSH with its files intact.
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceRunningWaiter(c).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	cl = dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
	defer cl.Close()
	if got := run(t, cl, "cat marker"); got != "before\n" {
		t.Errorf("after stop and start the file reads %q", got)
	}
}

func TestCopiedImageCarriesFilesystem(t *testing.T) {
	needRoot(t)
	srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	c, id, ip, signer := sshInstance(t, srv, "*ubuntu-jammy-22.04-amd64-server-20261105")
	ctx := ctxT(t)
	cl := dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
	run(t, cl, "echo carried > carried.txt")
	cl.Close()
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("carry"), NoReboot: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	west := client(srv, "eu-west-1")
	cp, err := west.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: img.ImageId, Name: aws.String("carry")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewImageAvailableWaiter(west).Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*cp.ImageId}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := west.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("west"), PublicKeyMaterial: ssh.MarshalAuthorizedKey(signer.PublicKey())}); err != nil {
		t.Fatal(err)
	}
	run2, err := west.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: cp.ImageId, KeyName: aws.String("west"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SecurityGroupIds: []string{sshGroup(t, west)}})
	if err != nil {
		t.Fatal(err)
	}
	wid := *run2.Instances[0].InstanceId
	if err := ec2.NewInstanceRunningWaiter(west).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{wid}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	d, err := west.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{wid}})
	if err != nil {
		t.Fatal(err)
	}
	wip := *d.Reservations[0].Instances[0].PublicIpAddress
	if wip == ip {
		t.Fatalf("instances in two regions share the address %s", ip)
	}
	cl = dialSSH(t, wip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
	defer cl.Close()
	if got := run(t, cl, "cat carried.txt; grep VERSION_ID /etc/os-release"); !strings.Contains(got, "carried") || !strings.Contains(got, `VERSION_ID="12"`) {
		t.Errorf("instance from the copied image: %q", got)
	}
}

func TestSSHFaults(t *testing.T) {
	needRoot(t)
	t.Run("connection dropped mid-command", func(t *testing.T) {
		srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), SSHDropProbability: 1, Seed: 1})
		_, _, ip, signer := sshInstance(t, srv, nobleAMD64)
		cl := dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
		defer cl.Close()
		s, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		err = s.Run("sleep 1; echo done")
		var exitErr *ssh.ExitError
		if err == nil || errors.As(err, &exitErr) {
			t.Fatalf("run: err = %v, want the connection dropped before an exit status", err)
		}
	})
	t.Run("slow SSH start", func(t *testing.T) {
		const delay = 700 * time.Millisecond
		srv := startSim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), SSHStartDelay: delay})
		start := time.Now()
		_, _, ip, signer := sshInstance(t, srv, nobleAMD64)
		if time.Since(start) < delay {
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), time.Second); err == nil {
				conn.Close()
				t.Fatal("SSH answered before the configured start delay")
			}
		}
		cl := dialSSH(t, ip, "ubuntu", signer, ssh.InsecureIgnoreHostKey())
		cl.Close()
	})
}

// TestCloseLeavesNothing: closing the simulator ends every sshd and
// removes every file it made.
func TestCloseLeavesNothing(t *testing.T) {
	needRoot(t)
	dir := filepath.Join("/var/lib", "amibake-ec2sim-test-"+strconv.Itoa(os.Getpid()))
	// The none profile, as startSim pins it: the instance's fixture names
	// its new group at once.
	srv, err := ec2sim.Start(t.Context(), ec2sim.Options{Latency: ec2sim.ZeroLatency(), StateDir: dir, Consistency: ec2sim.NoConsistencyLag()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, ip, _ := sshInstance(t, srv, nobleAMD64)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), time.Second); err == nil {
		conn.Close()
		t.Error("an instance's sshd outlived the simulator")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("state directory %s left behind (%v): %v", dir, err, entries)
		os.RemoveAll(dir)
	}
}
