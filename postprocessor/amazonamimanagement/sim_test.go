package amazonamimanagement

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

// TestPerRegionAsThePlugin: like the plugin, keep_releases counts each
// region's AMIs on its own. eu-west-1 only has copies of the two oldest
// bakes; both stay there while us-east-1 keeps its two newest. dry_run
// changes nothing and says what it would do.
func TestPerRegionAsThePlugin(t *testing.T) {
	srv, err := ec2sim.Start(context.Background(), ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	home := t.TempDir()
	empty := filepath.Join(home, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_EC2_METADATA_DISABLED": "true", "HOME": home, "XDG_STATE_HOME": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PROFILE": "", "AWS_REGION": "",
		"AWS_ACCESS_KEY_ID": "AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY": "simulator-secret",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	client := func(region string) *ec2.Client {
		return ec2.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(srv.URL()), HTTPClient: awsclient.HTTPClient(nil),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDSIMULATOR", "simulator-secret", "")})
	}
	east, west := client("us-east-1"), client("eu-west-1")
	cat, err := east.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
	if err != nil {
		t.Fatal(err)
	}
	tag := []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String(IdentifierTag), Value: aws.String("app")}}}}
	var made []string
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("app %d", 1795600000+i)
		out, err := east.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String(name), SourceImageId: cat.Images[0].ImageId, SourceRegion: aws.String("us-east-1"), TagSpecifications: tag})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, aws.ToString(out.ImageId))
		if i <= 2 {
			// CopyImage names the image just made: it may not be known yet.
			cp, err := west.CopyImage(ctx, &ec2.CopyImageInput{Name: aws.String(name), SourceImageId: out.ImageId, SourceRegion: aws.String("us-east-1"), TagSpecifications: tag}, simtest.RetryNotFound)
			if err != nil {
				t.Fatal(err)
			}
			simtest.Visible(ctx, t, west, aws.ToString(cp.ImageId))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The releases are older than the post-processor's run, as in use:
	// every one is listed by then.
	simtest.Visible(ctx, t, east, made...)
	count := func(region string) int { return len(srv.Inventory().Regions[region].Images) }
	run := func(extra string) string {
		t.Helper()
		p, diags := New(provisionertest.HCL(t, "amazon-ami-management", `identifier = "app"
keep_releases = 2
regions = ["us-east-1", "eu-west-1"]
`+extra, nil), nil)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		ios, _, out, _ := ui.Test()
		u := ui.New(ios, ui.Options{}).ForBuild("amazon-ebs")
		if _, _, err := p.PostProcess(ctx, u, &artifact.Artifact{AMIs: map[string]string{"us-east-1": made[3]}}); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out.String()
	}
	out := run("dry_run = true")
	if count("us-east-1") != 4 || count("eu-west-1") != 2 {
		t.Fatalf("dry run changed something:\n%s", out)
	}
	for _, want := range []string{"[DryRun] Processing in us-east-1", "[DryRun] Deleting image: " + made[0], "[DryRun] Processing in eu-west-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	out = run("")
	if count("us-east-1") != 2 || count("eu-west-1") != 2 {
		t.Errorf("after the post-processor: %d AMIs in us-east-1 (want 2), %d in eu-west-1 (want 2)\n%s", count("us-east-1"), count("eu-west-1"), out)
	}
	left := srv.Inventory().Regions["us-east-1"].Images
	sort.Strings(left)
	want := []string{made[2], made[3]}
	sort.Strings(want)
	if strings.Join(left, ",") != strings.Join(want, ",") {
		t.Errorf("us-east-1 keeps %v, want %v", left, want)
	}
}
