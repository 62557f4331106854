package amazonebs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The request builders against what Packer 1.16 (amazon plugin 1.8.2)
// sent for the same template options, recorded in
// shared/reference/packer-outputs/*/requests.human.jsonl. Both sides are
// compared as they go on the wire: amibake's inputs are serialized by the
// SDK's own EC2 query serializer. Every difference must be one listed
// here, with its reason.

// packerRequests reads the recorded requests of one reference run.
func packerRequests(t *testing.T, run string) []map[string]string {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "reference", "packer-outputs", run, "requests.human.jsonl")
	f, err := os.Open(path)
	if err != nil {
		// shared/ stands beside the repository on developers' machines
		// and in CI; a bare clone has no reference to compare with.
		t.Skipf("Packer reference not beside the repository: %v", err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		m := map[string]string{}
		for k, v := range raw {
			if !strings.HasPrefix(k, "_") { // the proxy's own fields
				m[k] = fmt.Sprint(v)
			}
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// packerRequest is the n-th (from 0) request of action in a run.
func packerRequest(t *testing.T, reqs []map[string]string, action string, n int) map[string]string {
	t.Helper()
	for _, r := range reqs {
		if r["Action"] == action {
			if n == 0 {
				return r
			}
			n--
		}
	}
	t.Fatalf("no %s request in the reference", action)
	return nil
}

// captureHTTP keeps a request's form and sends nothing.
type captureHTTP struct{ form url.Values }

var errCaptured = errors.New("captured, not sent")

func (c *captureHTTP) Do(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.form, err = url.ParseQuery(string(b))
	if err != nil {
		return nil, err
	}
	return nil, errCaptured
}

// onTheWire is the form the SDK sends for the request call makes.
func onTheWire(t *testing.T, call func(context.Context, *ec2.Client) error) map[string]string {
	t.Helper()
	h := &captureHTTP{}
	client := ec2.New(ec2.Options{
		Region: "ap-northeast-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), HTTPClient: h,
		Retryer: aws.NopRetryer{}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
	})
	if err := call(context.Background(), client); !errors.Is(err, errCaptured) {
		t.Fatalf("serialize the request: %v", err)
	}
	out := map[string]string{}
	for k, v := range h.form {
		out[k] = v[0]
	}
	return out
}

// difference is a parameter on which amibake deliberately differs from
// Packer: absent on one side, or with another value.
type difference struct {
	key, why string
}

// compareWithPacker checks that amibake's request equals Packer's but for
// the listed differences (each key a parameter, or a prefix ending in ".").
func compareWithPacker(t *testing.T, ours, packer map[string]string, diffs []difference) {
	t.Helper()
	excused := func(k string) bool {
		for _, d := range diffs {
			if k == d.key || (strings.HasSuffix(d.key, ".") && strings.HasPrefix(k, d.key)) {
				return true
			}
		}
		return false
	}
	keys := map[string]bool{}
	for k := range ours {
		keys[k] = true
	}
	for k := range packer {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		o, inOurs := ours[k]
		p, inPacker := packer[k]
		if inOurs == inPacker && o == p {
			continue
		}
		if !excused(k) {
			t.Errorf("%s: amibake sends %q (%t), Packer %q (%t)", k, o, inOurs, p, inPacker)
		}
	}
}

// userTagSpecs drops amibake's own tags from a form's TagSpecifications,
// and renumbers, so the user's compare with Packer's.
func userTagSpecs(form map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range form {
		if !strings.HasPrefix(k, "TagSpecification.") {
			out[k] = v
		}
	}
	for i := 1; form[fmt.Sprintf("TagSpecification.%d.ResourceType", i)] != ""; i++ {
		p := fmt.Sprintf("TagSpecification.%d.", i)
		var tags [][2]string
		for j := 1; form[fmt.Sprintf("%sTag.%d.Key", p, j)] != ""; j++ {
			k := form[fmt.Sprintf("%sTag.%d.Key", p, j)]
			if !strings.HasPrefix(k, "amibake:") {
				tags = append(tags, [2]string{k, form[fmt.Sprintf("%sTag.%d.Value", p, j)]})
			}
		}
		if len(tags) == 0 {
			continue // Packer sends no specification without user tags
		}
		n := 1
		for form[fmt.Sprintf("TagSpecification.%d.ResourceType", n)] != "" && out[fmt.Sprintf("TagSpecification.%d.ResourceType", n)] != "" {
			n++
		}
		q := fmt.Sprintf("TagSpecification.%d.", n)
		out[q+"ResourceType"] = form[p+"ResourceType"]
		for j, tg := range tags {
			out[fmt.Sprintf("%sTag.%d.Key", q, j+1)] = tg[0]
			out[fmt.Sprintf("%sTag.%d.Value", q, j+1)] = tg[1]
		}
	}
	return out
}

// packerDefaults are the RunInstances parameters Packer sends with their
// EC2 defaults, which amibake leaves out so that EC2 (and the AMI, for
// the metadata options) decides, as the console and the CLI do.
var packerDefaults = []difference{
	{"SubnetId", "Packer sends empty strings for unset options; amibake omits them"},
	{"Placement.AvailabilityZone", "empty string, as SubnetId"},
	{"IamInstanceProfile.Name", "empty string, as SubnetId"},
	{"UserData", "empty string, as SubnetId"},
	{"CreditSpecification.CpuCredits", "Packer forces standard, also on T3 types whose default is unlimited; amibake sends it only for enable_unlimited_credits"},
	{"CapacityReservationSpecification.CapacityReservationPreference", "Packer sends none without capacity_reservation_preference (EC2's default is open); amibake sends only the option"},
	{"EnclaveOptions.Enabled", "false, EC2's default"},
	{"MetadataOptions.", "Packer forces enabled/optional/1 without metadata_options, overriding an AMI's imds_support v2.0; amibake leaves EC2's (the AMI's) defaults"},
}

func TestRunInstancesAsPacker(t *testing.T) {
	tests := []struct {
		run, hcl string
		diffs    []difference
	}{
		{"tutorial", `instance_type = "t2.micro"`, nil},
		{"tags-no-ami-users", `instance_type = "t2.micro"
run_tags = { CostCenter = "42" }
run_volume_tags = { Vol = "run" }
launch_block_device_mappings {
  device_name = "/dev/sda1"
  volume_type = "gp3"
  volume_size = 10
  delete_on_termination = true
}
launch_block_device_mappings {
  device_name = "/dev/sdf"
  volume_type = "gp2"
  volume_size = 5
}
user_data = "#!/bin/sh\necho x"
associate_public_ip_address = true`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.run, func(t *testing.T) {
			packer := packerRequest(t, packerRequests(t, tt.run), "RunInstances", 0)
			s := reqState(t, tt.hcl)
			// What Packer's earlier steps produced: the same names and ids.
			s.KeyName = packer["KeyName"]
			s.SecurityGroupIDs = []string{packer["SecurityGroupId.1"]}
			if g := packer["NetworkInterface.1.SecurityGroupId.1"]; g != "" {
				s.SecurityGroupIDs = []string{g}
				s.SubnetID, s.AZ = packer["NetworkInterface.1.SubnetId"], packer["Placement.AvailabilityZone"]
			}
			l, err := (&stepLaunch{token: packer["ClientToken"]}).launchState(s)
			if err != nil {
				t.Fatal(err)
			}
			in := runInstancesInput(s.Config, l)
			ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.RunInstances(ctx, in); return err })
			compareWithPacker(t, userTagSpecs(ours), packer, append(packerDefaults, tt.diffs...))
		})
	}
}

func TestImageRequestsAsPacker(t *testing.T) {
	reqs := packerRequests(t, "tags-no-ami-users")
	s := reqState(t, `instance_type = "t2.micro"
run_tags = { CostCenter = "42" }
ami_regions = ["us-west-2"]
ami_description = "hello AMI built from {{ .SourceAMIName }}"
encrypt_boot = false`)
	s.BuildTime.SourceAMIName = "ubuntu/images/hvm-ssd/ubuntu-bionic-18.04-amd64-server-20190212.1"
	desc, err := s.description()
	if err != nil {
		t.Fatal(err)
	}
	// Packer sets ami_description by a ModifyImageAttribute per region
	// once the AMI is available; amibake at creation, one call fewer.
	if want := packerRequest(t, reqs, "ModifyImageAttribute", 0)["Description.Value"]; desc != want {
		t.Errorf("description %q, Packer's %q", desc, want)
	}
	descAtCreation := difference{"Description", "ami_description: amibake sets it in the create call, Packer by a later ModifyImageAttribute"}

	t.Run("CreateImage", func(t *testing.T) {
		packer := packerRequest(t, reqs, "CreateImage", 0)
		specs, err := s.imageTagSpecs()
		if err != nil {
			t.Fatal(err)
		}
		in := createImageInput(s.Config, packer["InstanceId"], packer["Name"], desc, specs)
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.CreateImage(ctx, in); return err })
		compareWithPacker(t, userTagSpecs(ours), packer, []difference{descAtCreation})
	})
	t.Run("CopyImage", func(t *testing.T) {
		packer := packerRequest(t, reqs, "CopyImage", 0)
		in := copyImageInput(s.Config, imageCopy{SourceID: packer["SourceImageId"], SourceRegion: packer["SourceRegion"], Region: "us-west-2",
			Name: packer["Name"], Description: desc, Token: packer["ClientToken"], Own: s.ownTags()})
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.CopyImage(ctx, in); return err })
		compareWithPacker(t, userTagSpecs(ours), packer, []difference{
			descAtCreation,
			{"Encrypted", "Packer sends false; amibake sends Encrypted only to encrypt"},
			{"KmsKeyId", "empty string"},
		})
	})
	t.Run("StopInstances", func(t *testing.T) {
		packer := packerRequest(t, reqs, "StopInstances", 0)
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error {
			_, err := c.StopInstances(ctx, stopInstancesInput(packer["InstanceId.1"]))
			return err
		})
		compareWithPacker(t, ours, packer, nil)
	})
	t.Run("CreateSecurityGroup", func(t *testing.T) {
		packer := packerRequest(t, reqs, "CreateSecurityGroup", 0)
		in := createSecurityGroupInput(packer["GroupName"], "amazon-ebs", packer["VpcId"], s.tagSpec(types.ResourceTypeSecurityGroup, map[string]string{"CostCenter": "42"}))
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.CreateSecurityGroup(ctx, in); return err })
		compareWithPacker(t, userTagSpecs(ours), packer, []difference{
			{"GroupDescription", "amibake names itself and the build: Temporary group for amibake build <name>"},
		})
	})
	t.Run("AuthorizeSecurityGroupIngress", func(t *testing.T) {
		packer := packerRequest(t, reqs, "AuthorizeSecurityGroupIngress", 0)
		in := authorizeIngressInput(packer["GroupId"], 22, []string{packer["IpPermissions.1.IpRanges.1.CidrIp"]})
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error {
			_, err := c.AuthorizeSecurityGroupIngress(ctx, in)
			return err
		})
		compareWithPacker(t, ours, packer, nil)
	})
	t.Run("key pair", func(t *testing.T) {
		packer := packerRequest(t, reqs, "CreateKeyPair", 0)
		pub, _, err := generateKey("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		in := importKeyPairInput(packer["KeyName"], pub, s.tagSpec(types.ResourceTypeKeyPair, map[string]string{"CostCenter": "42"}))
		ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.ImportKeyPair(ctx, in); return err })
		compareWithPacker(t, userTagSpecs(ours), packer, []difference{
			{"Action", "ImportKeyPair instead of CreateKeyPair: the private key is made here and never crosses the network"},
			{"KeyType", "CreateKeyPair's; the imported key's type is in its material (ed25519 by default, rsa with temporary_key_pair_type)"},
			{"PublicKeyMaterial", "ImportKeyPair's"},
		})
	})
}

// TestCreateTagsAsPacker: tags on the AMI and its snapshots, then
// snapshot_tags on the snapshots, per region, as Packer's StepCreateTags.
func TestCreateTagsAsPacker(t *testing.T) {
	reqs := packerRequests(t, "tags-no-ami-users")
	for n, region := range []string{"ap-northeast-1", "us-west-2"} {
		t.Run(region, func(t *testing.T) {
			amiTags := packerRequest(t, reqs, "CreateTags", 2*n)
			snapTags := packerRequest(t, reqs, "CreateTags", 2*n+1)
			ami := amiTags["ResourceId.1"]
			snaps := []string{amiTags["ResourceId.2"], amiTags["ResourceId.3"]}
			tags := map[string]string{}
			for j := 1; amiTags[fmt.Sprintf("Tag.%d.Key", j)] != ""; j++ {
				tags[amiTags[fmt.Sprintf("Tag.%d.Key", j)]] = amiTags[fmt.Sprintf("Tag.%d.Value", j)]
			}
			calls := imageTagCalls(ami, snaps, tags, map[string]string{"Snap": "yes"}, nil)
			if len(calls) != 2 {
				t.Fatalf("%d CreateTags calls, Packer sends 2", len(calls))
			}
			for i, packer := range []map[string]string{amiTags, snapTags} {
				ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.CreateTags(ctx, calls[i]); return err })
				// Packer's tag order is Go map order; amibake's is sorted.
				compareWithPacker(t, sortedTags(ours), sortedTags(packer), nil)
			}
		})
	}
}

// sortedTags renumbers a CreateTags form's Tag.N by key.
func sortedTags(form map[string]string) map[string]string {
	out := map[string]string{}
	var keys []string
	values := map[string]string{}
	for k, v := range form {
		if !strings.HasPrefix(k, "Tag.") {
			out[k] = v
			continue
		}
		if strings.HasSuffix(k, ".Key") {
			keys = append(keys, v)
			values[v] = form[strings.TrimSuffix(k, ".Key")+".Value"]
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		out[fmt.Sprintf("Tag.%d.Key", i+1)] = k
		out[fmt.Sprintf("Tag.%d.Value", i+1)] = values[k]
	}
	return out
}

// TestShareAsPacker: ami_users. Packer also sends the legacy UserId.1,
// without OperationType; amibake sends the LaunchPermission form only.
func TestShareAsPacker(t *testing.T) {
	reqs := packerRequests(t, "tags-sim-workaround")
	var packer map[string]string
	for n := 0; ; n++ {
		packer = packerRequest(t, reqs, "ModifyImageAttribute", n)
		if packer["LaunchPermission.Add.1.UserId"] != "" {
			break
		}
	}
	in := launchPermissionInput(reqState(t, `instance_type = "t2.micro"
ami_users = ["111122223333"]`).Config, packer["ImageId"])
	ours := onTheWire(t, func(ctx context.Context, c *ec2.Client) error { _, err := c.ModifyImageAttribute(ctx, in); return err })
	compareWithPacker(t, ours, packer, []difference{
		{"UserId.1", "the legacy form, which EC2 takes only with OperationType (the simulator refuses it without); LaunchPermission.Add says the same"},
	})
}
