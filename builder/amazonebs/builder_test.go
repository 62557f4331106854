package amazonebs

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/pipeline"
	"github.com/amibake/amibake/provisioner"
)

const tutorial = `
region        = "ap-northeast-1"
source_ami    = "ami-06128816a1c781a57"
instance_type = "t2.micro"
ssh_username  = "root"
ami_name      = "hello_ami 1529395142"
tags = { Base = "{{ .SourceAMI }}", Region = "{{ .BuildRegion }}" }
`

func runSteps(t *testing.T, st *State) error {
	t.Helper()
	r := &pipeline.Runner[*State]{Steps: Steps(st.Config)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return r.Run(ctx, st)
}

func TestPipelineTutorial(t *testing.T) {
	srv := sim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	st, u := testState(t, srv, mustConfig(t, tutorial))
	var out bytes.Buffer
	st.Provision = func(ctx context.Context, comm communicator.Communicator, b *provisioner.Build) error {
		res, err := comm.Run(ctx, &communicator.Cmd{Command: "echo baked > /etc/baked; cat /etc/os-release", Stdout: &out, Stderr: &out})
		if err != nil || res.ExitStatus != 0 {
			t.Errorf("run: %v %+v: %s", err, res, out.String())
		}
		if b.InstanceID == "" || b.Host == "" || b.SourceAMI != "ami-06128816a1c781a57" {
			t.Errorf("provisioner.Build = %+v", b)
		}
		return nil
	}
	if err := runSteps(t, st); err != nil {
		t.Fatalf("build: %v\n%s", err, u)
	}
	id := st.AMIs["ap-northeast-1"]
	if !strings.HasPrefix(id, "ami-") {
		t.Fatalf("AMIs = %v\n%s", st.AMIs, u)
	}
	im, err := simClient(srv, "ap-northeast-1").DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(im.Images) != 1 {
		t.Fatalf("describe: %v", err)
	}
	tags := tagMap(im.Images[0].Tags)
	if tags["Base"] != "ami-06128816a1c781a57" || tags["Region"] != "ap-northeast-1" || tags["amibake:run-id"] != "run-1" {
		t.Errorf("image tags = %v", tags)
	}
	if aws.ToString(im.Images[0].Name) != "hello_ami 1529395142" {
		t.Errorf("name = %q", aws.ToString(im.Images[0].Name))
	}
	for _, want := range []string{
		"==> Prevalidating AMI Name: hello_ami 1529395142",
		"    Found Image ID: ami-06128816a1c781a57",
		"==> Creating temporary keypair: amibake_",
		"==> Authorizing access to port 22 from [127.0.0.1/32] in the temporary security groups...",
		"==> Waiting for SSH to become available...",
		"==> Connected to SSH!",
		"==> Creating AMI hello_ami 1529395142 from instance i-",
		"==> Attaching run tags to AMI...",
		"==> Terminating the source AWS instance...",
		"==> Deleting temporary keypair...",
	} {
		if !strings.Contains(u.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, u)
		}
	}
	t.Logf("calls: %v\n%s", srv.Calls(), u)
}

func TestPipelinePrivateIPAndRSAKey(t *testing.T) {
	srv := sim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	st, u := testState(t, srv, mustConfig(t, tutorial+`
ssh_interface = "private_ip"
ssh_clear_authorized_keys = true
temporary_key_pair_type = "rsa"
temporary_key_pair_bits = 2048
run_tags = { Owner = "{{ .SourceAMIName }}" }
`))
	var seen string
	st.Provision = func(ctx context.Context, comm communicator.Communicator, b *provisioner.Build) error {
		seen = b.Host
		return nil
	}
	if err := runSteps(t, st); err != nil {
		t.Fatalf("build: %v\n%s", err, u)
	}
	if seen == "" || seen != aws.ToString(st.Instance.PrivateIpAddress) {
		t.Errorf("connected to %q, want the private IP %q", seen, aws.ToString(st.Instance.PrivateIpAddress))
	}
	if strings.Contains(u.String(), "127.0.0.1/32 ") || strings.Contains(u.String(), "127.0.0.1/32]") {
		t.Errorf("a private connection opened SSH to the caller's public IP:\n%s", u)
	}
	if !strings.Contains(u.String(), "Trying to remove ephemeral keys from authorized_keys files") || strings.Contains(u.String(), "Error removing") {
		t.Errorf("authorized_keys not cleared:\n%s", u)
	}
}
