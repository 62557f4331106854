package amazonebs

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/communicator"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ledger"
	"github.com/amibake/amibake/provisioner"
)

func specMap(specs []types.TagSpecification) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, s := range specs {
		out[string(s.ResourceType)] = tagMap(s.Tags)
	}
	return out
}

func TestImageTagSpecs(t *testing.T) {
	own := map[string]string{"amibake:run-id": "r"}
	run := map[string]string{"Owner": "me"}
	for _, tc := range []struct {
		name string
		run  map[string]string
		skip bool
		want map[string]map[string]string
	}{
		{"no run_tags: the image carries amibake's tags only, no snapshot spec", nil, false,
			map[string]map[string]string{"image": own}},
		{"run_tags on image and snapshots", run, false,
			map[string]map[string]string{"image": {"amibake:run-id": "r", "Owner": "me"}, "snapshot": run}},
		{"skip_ami_run_tags", run, true,
			map[string]map[string]string{"image": own}},
		{"run_tags cannot override amibake's", map[string]string{"amibake:run-id": "x"}, false,
			map[string]map[string]string{"image": own, "snapshot": {"amibake:run-id": "x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := specMap(imageTagSpecs(own, tc.run, tc.skip)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestImageTagCalls(t *testing.T) {
	own := map[string]string{"amibake:run-id": "r"}
	type call struct {
		res  string
		tags map[string]string
	}
	for _, tc := range []struct {
		name           string
		snaps          []string
		tags, snapTags map[string]string
		want           []call
	}{
		{"tutorial: amibake's snapshot tags only", []string{"snap-1"}, nil, nil,
			[]call{{"snap-1", own}}},
		{"tags then snapshot_tags, as Packer", []string{"snap-1", "snap-2"}, map[string]string{"Name": "n"}, map[string]string{"S": "y"},
			[]call{{"ami-1 snap-1 snap-2", map[string]string{"Name": "n"}}, {"snap-1 snap-2", map[string]string{"S": "y", "amibake:run-id": "r"}}}},
		{"no snapshots", nil, map[string]string{"Name": "n"}, map[string]string{"S": "y"},
			[]call{{"ami-1", map[string]string{"Name": "n"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []call
			for _, in := range imageTagCalls("ami-1", tc.snaps, tc.tags, tc.snapTags, own) {
				got = append(got, call{strings.Join(in.Resources, " "), tagMap(in.Tags)})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// formLog records the form of every EC2 request a client sends.
type formLog struct {
	mu    sync.Mutex
	forms []url.Values
	next  aws.HTTPClient
}

func (l *formLog) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if f, err := url.ParseQuery(string(b)); err == nil {
			l.mu.Lock()
			l.forms = append(l.forms, f)
			l.mu.Unlock()
		}
	}
	return l.next.Do(r)
}

func (l *formLog) actions(name string) []url.Values {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []url.Values
	for _, f := range l.forms {
		if f.Get("Action") == name {
			out = append(out, f)
		}
	}
	return out
}

// formSpecs reads TagSpecification.N.* of a request form.
func formSpecs(f url.Values) map[string]map[string]string {
	out := map[string]map[string]string{}
	for i := 1; f.Has("TagSpecification." + itoa(i) + ".ResourceType"); i++ {
		p := "TagSpecification." + itoa(i) + "."
		m := map[string]string{}
		for j := 1; f.Has(p + "Tag." + itoa(j) + ".Key"); j++ {
			m[f.Get(p+"Tag."+itoa(j)+".Key")] = f.Get(p + "Tag." + itoa(j) + ".Value")
		}
		out[f.Get(p+"ResourceType")] = m
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestTagPlacementOnTheWire bakes on the simulator and reads the requests
// as sent: CreateImage carries snapshot TagSpecifications only for
// run_tags (a tutorial bake sends none, which moto needs), tags and
// snapshot_tags arrive by CreateTags, and every tag ends where Packer puts
// it (packer-outputs/tags-no-ami-users/state.*.json).
func TestTagPlacementOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name, extra  string
		wantSpecs    map[string]map[string]string // CreateImage, without amibake's tags
		wantAMI      map[string]string
		wantSnapshot map[string]string
	}{
		{"tutorial", "", map[string]map[string]string{"image": {}}, map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1"}, map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1"}},
		{"run_tags, snapshot_tags", "run_tags = { CostCenter = \"42\" }\nsnapshot_tags = { Snap = \"yes\" }\n",
			map[string]map[string]string{"image": {"CostCenter": "42"}, "snapshot": {"CostCenter": "42"}},
			map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1", "CostCenter": "42"},
			map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1", "CostCenter": "42", "Snap": "yes"}},
		{"skip_ami_run_tags", "run_tags = { CostCenter = \"42\" }\nskip_ami_run_tags = true\n", map[string]map[string]string{"image": {}},
			map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1"}, map[string]string{"Base": "ami-06128816a1c781a57", "Region": "ap-northeast-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sim(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
			st, u := testState(t, srv, mustConfig(t, tutorial+tc.extra))
			log := &formLog{next: awshttp.NewBuildableClient()}
			st.EC2 = func(region string) EC2API {
				if region == "" {
					region = st.Region
				}
				return ec2.New(ec2.Options{
					Region: region, BaseEndpoint: aws.String(srv.URL()), HTTPClient: log,
					Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
				})
			}
			st.Provision = func(context.Context, communicator.Communicator, *provisioner.Build) error { return nil }
			if err := runSteps(t, st); err != nil {
				t.Fatalf("build: %v\n%s", err, u)
			}
			ci := log.actions("CreateImage")
			if len(ci) != 1 {
				t.Fatalf("%d CreateImage requests", len(ci))
			}
			specs := formSpecs(ci[0])
			if specs["image"]["amibake:run-id"] != "run-1" {
				t.Errorf("the image lacks amibake's tags at creation: %v", specs)
			}
			for _, m := range specs {
				maps.DeleteFunc(m, func(k, _ string) bool { return strings.HasPrefix(k, "amibake:") })
			}
			if !reflect.DeepEqual(specs, tc.wantSpecs) {
				t.Errorf("CreateImage TagSpecifications = %v, want %v", specs, tc.wantSpecs)
			}
			c := simClient(srv, "ap-northeast-1")
			im, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{st.AMIs["ap-northeast-1"]}})
			if err != nil || len(im.Images) != 1 {
				t.Fatalf("describe: %v", err)
			}
			user := func(ts []types.Tag) map[string]string {
				m := tagMap(ts)
				maps.DeleteFunc(m, func(k, _ string) bool { return strings.HasPrefix(k, "amibake:") })
				return m
			}
			if got := user(im.Images[0].Tags); !reflect.DeepEqual(got, tc.wantAMI) {
				t.Errorf("AMI tags = %v, want %v", got, tc.wantAMI)
			}
			snaps := imageSnapshots(&im.Images[0])
			sort.Strings(snaps)
			ds, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
			if err != nil || len(ds.Snapshots) == 0 {
				t.Fatalf("describe snapshots: %v", err)
			}
			for _, sn := range ds.Snapshots {
				if tagMap(sn.Tags)["amibake:run-id"] != "run-1" {
					t.Errorf("snapshot %s lacks amibake's tags: %v", aws.ToString(sn.SnapshotId), tagMap(sn.Tags))
				}
				if got := user(sn.Tags); !reflect.DeepEqual(got, tc.wantSnapshot) {
					t.Errorf("snapshot tags = %v, want %v", got, tc.wantSnapshot)
				}
			}
		})
	}
}

func TestDebugInstanceLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   types.Instance
		key  string
		want []string
	}{
		{"public and private", types.Instance{PublicIpAddress: aws.String("203.0.113.5"), PrivateIpAddress: aws.String("10.0.0.5"), PublicDnsName: aws.String("ec2-203-0-113-5.compute.amazonaws.com")}, "/w/ec2_one.pem",
			[]string{"Public DNS: ec2-203-0-113-5.compute.amazonaws.com", "Public IP: 203.0.113.5", "Private IP: 10.0.0.5", "SSH key: /w/ec2_one.pem (ssh -i /w/ec2_one.pem ubuntu@203.0.113.5)"}},
		{"private only", types.Instance{PrivateIpAddress: aws.String("10.0.0.5")}, "/w/k.pem",
			[]string{"Private IP: 10.0.0.5", "SSH key: /w/k.pem (ssh -i /w/k.pem ubuntu@10.0.0.5)"}},
		{"own key pair: no key file", types.Instance{PrivateIpAddress: aws.String("10.0.0.5")}, "", []string{"Private IP: 10.0.0.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := debugInstanceLines(&tc.in, tc.key, "ubuntu"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPackerNames: -debug's key file and the artifact's build name (the
// manifest's "name") use Packer's packer_build_name: the source's name in
// HCL2, the builder's name in JSON.
func TestPackerNames(t *testing.T) {
	for _, tc := range []struct{ packer, build, want string }{
		{"ubuntu", "learn-packer.amazon-ebs.ubuntu", "ec2_ubuntu.pem"},
		{"amazon-ebs", "amazon-ebs", "ec2_amazon-ebs.pem"},
		{"", "amazon-ebs.first", "ec2_amazon-ebs.first.pem"},
	} {
		if got := debugKeyFile(tc.packer, tc.build); got != tc.want {
			t.Errorf("debugKeyFile(%q, %q) = %q, want %q", tc.packer, tc.build, got, tc.want)
		}
	}
}

// TestTagImageLines: Packer's lines (tags-no-ami-users/build.human.stdout),
// with amibake's own tags left out.
func TestTagImageLines(t *testing.T) {
	got := tagImageLines("ami-1", []string{"snap-1", "snap-2"},
		map[string]string{"Name": "tagged-ami", "amibake:input-digest": "d"}, map[string]string{"Snap": "yes"})
	want := []string{"Adding tags to AMI (ami-1)...", "Tagging snapshot: snap-1", "Tagging snapshot: snap-2",
		"Creating AMI tags", `Adding tag: "Name": "tagged-ami"`, "Creating snapshot tags", `Adding tag: "Snap": "yes"`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := tagImageLines("ami-1", []string{"snap-1"}, map[string]string{"amibake:input-digest": "d"}, nil); got != nil {
		t.Errorf("only amibake's tags: %q", got)
	}
}

// TestLeaseFromBirth: every resource is created with amibake:lease-until
// at AMIBAKE_LEASE (the keeper's lease) after its creation, so that a run
// killed before its first refresh is still judged by its own lease.
func TestLeaseFromBirth(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ env, want string }{
		{"", "2026-12-02T10:15:00Z"},
		{"3s", "2026-12-02T10:00:03Z"},
		{"2h", "2026-12-02T12:00:00Z"},
		// The command refuses it before any build; the default stays.
		{"soon", "2026-12-02T10:15:00Z"},
	} {
		s := &State{RunID: "run-1", BuildName: "b", Now: func() time.Time { return now },
			Getenv: func(k string) string {
				if k == ledger.LeaseEnv {
					return tt.env
				}
				return ""
			}}
		if got := s.ownTags()[ledger.TagLeaseUntil]; got != tt.want {
			t.Errorf("AMIBAKE_LEASE=%q: lease-until %q, want %q", tt.env, got, tt.want)
		}
	}
}
