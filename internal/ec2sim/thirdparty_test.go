package ec2sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ec2sim"
)

// Clients nobody here wrote, from Debian's packages (make setup installs
// them). Their paths are explicit: another `aws` may come first on PATH.
const (
	awsCLI  = "/usr/bin/aws"     // Debian's awscli
	python3 = "/usr/bin/python3" // with Debian's python3-boto3
)

// needClient fails under CI (which installs the clients) and skips, saying
// how to install them, elsewhere.
func needClient(t *testing.T, path string, check ...string) {
	t.Helper()
	err := exec.Command(path, check...).Run()
	if err == nil {
		return
	}
	msg := path + " " + strings.Join(check, " ") + ": " + err.Error() + " (make setup installs Debian's awscli and python3-boto3)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// thirdPartySim is the simulator as a user starts it: API only, the
// default latency and consistency profiles.
func thirdPartySim(t *testing.T) *ec2sim.Server {
	return startSim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.DefaultLatency(), Consistency: ec2sim.DefaultConsistency()})
}

func clientEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"HOME=" + home, "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
		"AWS_ACCESS_KEY_ID=AKIASIMULATOR000001", "AWS_SECRET_ACCESS_KEY=simulator-secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + home + "/config", "AWS_SHARED_CREDENTIALS_FILE=" + home + "/credentials",
		"AWS_PAGER=",
	}
}

// TestAWSCLIImageFlow runs a whole image flow with the AWS CLI, its
// waiters at their own pace (15 s polls).
func TestAWSCLIImageFlow(t *testing.T) {
	t.Parallel()
	needClient(t, awsCLI, "--version")
	srv := thirdPartySim(t)
	env := clientEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// This awscli ignores AWS_ENDPOINT_URL: --endpoint-url on every call.
	aws := func(args ...string) string {
		t.Helper()
		args = append([]string{"--endpoint-url", srv.URL(), "--output", "json", "ec2"}, args...)
		cmd := exec.CommandContext(ctx, awsCLI, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("aws %s: %v\n%s%s", strings.Join(args[4:], " "), err, out.String(), errb.String())
		}
		t.Logf("aws %s (%s)", strings.Join(args[4:], " "), time.Since(start).Round(100*time.Millisecond))
		return strings.TrimSpace(out.String())
	}
	str := func(s string) string {
		t.Helper()
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("want a JSON string, got %q", s)
		}
		return v
	}
	source := str(aws("describe-images", "--owners", "099720109477", "--filters",
		"Name=name,Values=ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
		"--query", "sort_by(Images, &CreationDate)[-1].ImageId"))
	subnet := str(aws("describe-subnets", "--filters", "Name=availabilityZone,Values=us-east-1a", "--query", "Subnets[0].SubnetId"))
	if arch := aws("describe-instance-types", "--instance-types", "t2.micro", "--query", "InstanceTypes[0].ProcessorInfo.SupportedArchitectures"); !strings.Contains(arch, "x86_64") {
		t.Fatalf("t2.micro architectures: %s", arch)
	}
	sg := str(aws("create-security-group", "--group-name", "cli-flow", "--description", "cli flow", "--query", "GroupId"))
	aws("authorize-security-group-ingress", "--group-id", sg, "--ip-permissions",
		`IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=127.0.0.1/32,Description="ssh from the test"}]`)
	if d := aws("describe-security-group-rules", "--filters", "Name=group-id,Values="+sg, "--query", "SecurityGroupRules[?IsEgress==`false`].Description"); !strings.Contains(d, "ssh from the test") {
		t.Fatalf("ingress rule descriptions: %s", d)
	}
	aws("create-key-pair", "--key-name", "cli-flow", "--query", "KeyPairId")
	id := str(aws("run-instances", "--image-id", source, "--instance-type", "t2.micro", "--key-name", "cli-flow",
		"--security-group-ids", sg, "--subnet-id", subnet, "--count", "1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli-flow}]", "--query", "Instances[0].InstanceId"))
	aws("wait", "instance-running", "--instance-ids", id)
	if s := str(aws("describe-instances", "--instance-ids", id, "--query", "Reservations[0].Instances[0].State.Name")); s != "running" {
		t.Fatalf("state after the running waiter: %s", s)
	}
	ami := str(aws("create-image", "--instance-id", id, "--name", "cli-flow-image", "--query", "ImageId"))
	aws("wait", "image-available", "--image-ids", ami)
	snap := str(aws("describe-images", "--image-ids", ami, "--query", "Images[0].BlockDeviceMappings[0].Ebs.SnapshotId"))
	aws("wait", "snapshot-completed", "--snapshot-ids", snap)
	aws("create-tags", "--resources", ami, snap, "--tags", "Key=Name,Value=cli-flow")
	aws("modify-image-attribute", "--image-id", ami, "--launch-permission", "Add=[{UserId=111122223333}]")
	if u := aws("describe-image-attribute", "--image-id", ami, "--attribute", "launchPermission", "--query", "LaunchPermissions[0].UserId"); str(u) != "111122223333" {
		t.Fatalf("launch permission: %s", u)
	}
	aws("deregister-image", "--image-id", ami)
	aws("delete-snapshot", "--snapshot-id", snap)
	aws("terminate-instances", "--instance-ids", id)
	aws("wait", "instance-terminated", "--instance-ids", id)
	aws("delete-key-pair", "--key-name", "cli-flow")
	aws("delete-security-group", "--group-id", sg)
	if inv := srv.Inventory(); !inv.Empty() {
		t.Fatalf("left behind: %+v", inv.Leftovers())
	}
}

// TestBoto3ImageFlow runs testdata/thirdparty/boto3_flow.py: the same
// flow through boto3, botocore's waiters included.
func TestBoto3ImageFlow(t *testing.T) {
	t.Parallel()
	needClient(t, python3, "-c", "import boto3")
	srv := thirdPartySim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python3, "testdata/thirdparty/boto3_flow.py", srv.URL(), "us-east-1")
	cmd.Env = clientEnv(t)
	out, err := cmd.CombinedOutput()
	t.Logf("boto3 flow:\n%s", out)
	if err != nil {
		t.Fatalf("boto3 flow: %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "done") {
		t.Fatal("boto3 flow did not finish")
	}
	if inv := srv.Inventory(); !inv.Empty() {
		t.Fatalf("left behind: %+v", inv.Leftovers())
	}
}
