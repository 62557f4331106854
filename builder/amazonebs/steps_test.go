package amazonebs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
)

func apiSim(t *testing.T) *ec2sim.Server {
	return sim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStepSourceAMI(t *testing.T) {
	srv := apiSim(t)
	base := `
region = "us-east-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "x-test"
`
	tests := []struct {
		name, src, wantName, wantErr string
	}{
		{"most recent", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
  owners = ["099720109477"]
  most_recent = true
}`, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105", ""},
		{"ambiguous", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
  owners = ["099720109477"]
}`, "", "make the filter more specific"},
		{"no match", `source_ami_filter {
  filters = { name = "nothing-like-this-*" }
  owners = ["099720109477"]
}`, "", "no AMI matches"},
		{"wrong owner", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105" }
  owners = ["136693071363"]
}`, "", "no AMI matches"},
		{"deprecated hidden", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260612" }
  owners = ["099720109477"]
}`, "", "no AMI matches"},
		{"deprecated included", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260612" }
  owners = ["099720109477"]
  include_deprecated = true
}`, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20260612", ""},
		{"unknown id", `source_ami = "ami-0123456789abcdef0"`, "", "no AMI matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, u := testState(t, srv, mustConfig(t, base+tt.src))
			err := stepSourceAMI{}.Run(ctx(t), st)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.BuildTime.SourceAMIName != tt.wantName || st.BuildTime.SourceAMIOwner != "099720109477" || st.BuildTime.BuildRegion != "us-east-1" {
				t.Errorf("BuildTime = %+v", st.BuildTime)
			}
			if !strings.Contains(u.String(), "Found Image ID: "+st.BuildTime.SourceAMI) {
				t.Errorf("log: %s", u)
			}
		})
	}
}

// ownImage makes an AMI of this account named name (a copy of a public one).
func ownImage(t *testing.T, srv *ec2sim.Server, region, name string) string {
	t.Helper()
	c := simClient(srv, region)
	out, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"099720109477"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20261105"}}}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("find a public image: %v", err)
	}
	cp, err := c.CopyImage(ctx(t), &ec2.CopyImageInput{SourceImageId: out.Images[0].ImageId, SourceRegion: aws.String(region), Name: aws.String(name)})
	if err != nil {
		t.Fatalf("copy image: %v", err)
	}
	// It stands for an AMI made earlier than the steps look for it.
	simtest.Visible(ctx(t), t, c, aws.ToString(cp.ImageId))
	return aws.ToString(cp.ImageId)
}

func TestStepPrevalidateAndDeregister(t *testing.T) {
	srv := apiSim(t)
	src := `
region = "eu-west-1"
source_ami = "ami-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "taken-name"
ami_regions = ["eu-west-2"]
force_delete_snapshot = true
`
	old := ownImage(t, srv, "eu-west-1", "taken-name")
	oldCopy := ownImage(t, srv, "eu-west-2", "taken-name")

	st, _ := testState(t, srv, mustConfig(t, src))
	err := stepPrevalidate{}.Run(ctx(t), st)
	if err == nil || !strings.Contains(err.Error(), old) || !strings.Contains(err.Error(), "force_deregister") {
		t.Fatalf("err = %v, want the existing AMI named", err)
	}

	st, u := testState(t, srv, mustConfig(t, src))
	st.Force = true
	if err := (stepPrevalidate{}).Run(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	st.AMIName = "taken-name"
	if err := (stepDeregister{}).Run(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	for region, id := range map[string]string{"eu-west-1": old, "eu-west-2": oldCopy} {
		out, err := simClient(srv, region).DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"self"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range out.Images {
			if aws.ToString(im.ImageId) == id {
				t.Errorf("%s still registered in %s", id, region)
			}
		}
	}
	if !strings.Contains(u.String(), "Deregistered AMI id: "+old) || !strings.Contains(u.String(), "Deleted snapshot") {
		t.Errorf("log: %s", u)
	}
	if inv := srv.Inventory(); len(inv.Regions["eu-west-1"].Snapshots) != 0 {
		t.Errorf("snapshots of the deregistered AMI left: %v", inv.Regions["eu-west-1"].Snapshots)
	}
}

func TestStepSecurityGroupSources(t *testing.T) {
	srv := apiSim(t)
	base := `
region = "us-east-1"
source_ami = "ami-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "x-test"
`
	vpcs, err := simClient(srv, "us-east-1").DescribeVpcs(context.Background(), &ec2.DescribeVpcsInput{
		Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatalf("default VPC: %v", err)
	}
	vpcCIDR := aws.ToString(vpcs.Vpcs[0].CidrBlock)
	tests := []struct {
		name, src string
		want      []string
		port      int32
	}{
		{"public: caller's IP", "", []string{"127.0.0.1/32"}, 22},
		{"explicit cidrs", `temporary_security_group_source_cidrs = ["203.0.113.0/24", "2001:db8::/32"]
ssh_port = 2222`, []string{"203.0.113.0/24", "2001:db8::/32"}, 2222},
		{"private: the VPC", `ssh_interface = "private_ip"`, []string{vpcCIDR}, 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, u := testState(t, srv, mustConfig(t, base+tt.src))
			step := &stepSecurityGroup{}
			if err := step.Run(ctx(t), st); err != nil {
				t.Fatal(err)
			}
			out, err := st.ec2("").DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: st.SecurityGroupIDs})
			if err != nil || len(out.SecurityGroups) != 1 {
				t.Fatalf("describe: %v", err)
			}
			g := out.SecurityGroups[0]
			var got []string
			for _, p := range g.IpPermissions {
				if aws.ToInt32(p.FromPort) != tt.port || aws.ToInt32(p.ToPort) != tt.port {
					t.Errorf("ports %d-%d, want %d", aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), tt.port)
				}
				for _, r := range p.IpRanges {
					got = append(got, aws.ToString(r.CidrIp))
				}
				for _, r := range p.Ipv6Ranges {
					got = append(got, aws.ToString(r.CidrIpv6))
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("sources %v, want %v", got, tt.want)
			}
			if tagMap(g.Tags)["amibake:run-id"] != "run-1" {
				t.Errorf("tags %v", tagMap(g.Tags))
			}
			if err := step.Cleanup(ctx(t), st); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(u.String(), "Deleting temporary security group...") {
				t.Errorf("log: %s", u)
			}
		})
	}
	t.Run("given groups", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base+`security_group_ids = ["sg-1", "sg-2"]`))
		if err := (&stepSecurityGroup{}).Run(ctx(t), st); err != nil {
			t.Fatal(err)
		}
		if strings.Join(st.SecurityGroupIDs, ",") != "sg-1,sg-2" {
			t.Errorf("groups %v", st.SecurityGroupIDs)
		}
	})
	t.Run("checkip fails", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base+`temporary_security_group_source_public_ip_url = "http://127.0.0.1:1/nothing"`))
		err := (&stepSecurityGroup{}).Run(ctx(t), st)
		if err == nil || !strings.Contains(err.Error(), "temporary_security_group_source_cidrs") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestStepKeyPair(t *testing.T) {
	srv := apiSim(t)
	base := `
region = "us-east-1"
source_ami = "ami-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "x-test"
`
	for _, tt := range []struct{ name, src, keyType string }{
		{"ed25519 default", "", "ed25519"},
		{"rsa", "temporary_key_pair_type = \"rsa\"\ntemporary_key_pair_bits = 2048\n", "rsa"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, u := testState(t, srv, mustConfig(t, base+tt.src))
			dir := t.TempDir()
			wd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			st.Debug = true
			step := &stepKeyPair{}
			if err := step.Run(ctx(t), st); err != nil {
				t.Fatal(err)
			}
			out, err := simClient(srv, st.Region).DescribeKeyPairs(ctx(t), &ec2.DescribeKeyPairsInput{KeyNames: []string{st.KeyName}}, simtest.RetryNotFound)
			if err != nil || len(out.KeyPairs) != 1 {
				t.Fatalf("describe: %v", err)
			}
			if string(out.KeyPairs[0].KeyType) != tt.keyType {
				t.Errorf("key type %s, want %s", out.KeyPairs[0].KeyType, tt.keyType)
			}
			if got := st.Secrets.Mask(string(st.PrivateKey)); strings.Contains(got, "PRIVATE KEY-----\n") && !strings.Contains(got, "<sensitive>") {
				t.Error("private key not registered as a secret")
			}
			pem := filepath.Join(dir, "ec2_amazon-ebs.pem")
			fi, err := os.Stat(pem)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("debug key: %v %v", fi, err)
			}
			if err := step.Cleanup(ctx(t), st); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(pem); !os.IsNotExist(err) {
				t.Errorf("debug key not removed: %v", err)
			}
			if !strings.Contains(u.String(), "Deleting temporary keypair...") {
				t.Errorf("log: %s", u)
			}
		})
	}
	t.Run("own key file", func(t *testing.T) {
		_, priv, err := generateKey("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "id")
		_ = os.WriteFile(f, priv, 0o600)
		st, _ := testState(t, srv, mustConfig(t, base+`ssh_keypair_name = "mine"
ssh_private_key_file = "`+f+`"`))
		before := srv.Calls()["ImportKeyPair"]
		if err := (&stepKeyPair{}).Run(ctx(t), st); err != nil {
			t.Fatal(err)
		}
		if st.KeyName != "mine" || string(st.PrivateKey) != string(priv) || srv.Calls()["ImportKeyPair"] != before {
			t.Errorf("key %q, imported %d", st.KeyName, srv.Calls()["ImportKeyPair"]-before)
		}
	})
}

func TestStepNetwork(t *testing.T) {
	srv := apiSim(t)
	base := `
region = "us-east-1"
source_ami = "ami-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "x-test"
`
	subnets, err := simClient(srv, "us-east-1").DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v (%d)", err, len(subnets.Subnets))
	}
	most := subnets.Subnets[0]
	for _, s := range subnets.Subnets {
		if aws.ToInt32(s.AvailableIpAddressCount) > aws.ToInt32(most.AvailableIpAddressCount) {
			most = s
		}
	}
	t.Run("nothing set: no call", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base))
		before := srv.Calls()
		if err := (stepNetwork{}).Run(ctx(t), st); err != nil {
			t.Fatal(err)
		}
		if after := srv.Calls(); after["DescribeSubnets"] != before["DescribeSubnets"] || after["DescribeVpcs"] != before["DescribeVpcs"] {
			t.Errorf("calls before %v after %v", before, after)
		}
	})
	t.Run("most_free", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base+`subnet_filter {
  filters = { "default-for-az" = "true" }
  most_free = true
}`))
		if err := (stepNetwork{}).Run(ctx(t), st); err != nil {
			t.Fatal(err)
		}
		if st.SubnetID == "" || st.VPCID == "" || st.AZ == "" {
			t.Errorf("network %q %q %q", st.SubnetID, st.VPCID, st.AZ)
		}
	})
	t.Run("ambiguous", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base+`subnet_filter {
  filters = { "default-for-az" = "true" }
}`))
		err := (stepNetwork{}).Run(ctx(t), st)
		if err == nil || !strings.Contains(err.Error(), "most_free or random") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("subnet id", func(t *testing.T) {
		st, _ := testState(t, srv, mustConfig(t, base+`subnet_id = "`+aws.ToString(most.SubnetId)+`"`))
		if err := (stepNetwork{}).Run(ctx(t), st); err != nil {
			t.Fatal(err)
		}
		if st.VPCID != aws.ToString(most.VpcId) || st.AZ != aws.ToString(most.AvailabilityZone) {
			t.Errorf("vpc %q az %q", st.VPCID, st.AZ)
		}
	})
}

func TestWaitsFrom(t *testing.T) {
	env := map[string]string{"AWS_POLL_DELAY_SECONDS": "3", "AWS_MAX_ATTEMPTS": "7"}
	c := mustConfig(t, minimal)
	w := WaitsFrom(c, func(k string) string { return env[k] })
	if w.Delay != 3*time.Second || w.MaxAttempts != 7 {
		t.Errorf("from env: %+v", w)
	}
	c = mustConfig(t, minimal+"aws_polling {\n delay_seconds = 5\n max_attempts = 2\n}\n")
	w = WaitsFrom(c, func(k string) string { return env[k] })
	if w.Delay != 5*time.Second || w.MaxAttempts != 2 {
		t.Errorf("aws_polling must win: %+v", w)
	}
}

func TestPollBoundedAndBacksOff(t *testing.T) {
	w := Waits{MinDelay: 2 * time.Millisecond, MaxDelay: 20 * time.Millisecond, MaxAttempts: 5}
	var times []time.Time
	err := w.poll(context.Background(), "a thing", time.Minute, func(context.Context) (bool, error) {
		times = append(times, time.Now())
		return false, nil
	})
	if !errors.Is(err, ErrWaitTimeout) || !strings.Contains(err.Error(), "wait for a thing") {
		t.Fatalf("err = %v", err)
	}
	if len(times) != 5 {
		t.Fatalf("%d polls, want 5", len(times))
	}
	// Delays 2, 2.4, 2.88, 3.46ms: the last is 1.7 times the first.
	if gap := times[4].Sub(times[3]); gap < 3400*time.Microsecond {
		t.Errorf("last gap %s: no backoff", gap)
	}
	n := 0
	err = w.poll(context.Background(), "x", time.Minute, func(context.Context) (bool, error) { n++; return n == 2, nil })
	if err != nil || n != 2 {
		t.Errorf("err %v after %d polls", err, n)
	}
}
