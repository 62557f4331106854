package amazonebs

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/pipeline"
)

// cutShort lets a call of one action reach EC2, then cancels the build
// and drops the answer: the resource exists but the build never learns
// its id, as when SIGINT arrives while the create call is in flight. An
// answer that created nothing (an error, or a fleet that launched no
// instance, as when what the call names is not visible yet) goes through:
// it is the call that creates that is cut short.
type cutShort struct {
	action string
	cancel context.CancelFunc
}

func (c *cutShort) Do(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || form.Get("Action") != c.action {
		return resp, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || c.action == "CreateFleet" && !bytes.Contains(answer, []byte("<instanceIds>")) {
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		return resp, nil
	}
	c.cancel()
	return nil, context.Canceled
}

func TestCleanupAfterUnansweredCreate(t *testing.T) {
	srv := apiSim(t)
	// SSH, so that the build makes a key pair; it is cut short before it
	// connects.
	withSSH := strings.Replace(noComm, `communicator  = "none"`, `ssh_username  = "root"`, 1)
	// A fleet's instance does not carry the ClientToken: the build finds
	// it by its launch template.
	spot := strings.Replace(noComm, `instance_type = "t3.micro"`, "spot_price = \"auto\"\nspot_instance_types = [\"t3.micro\"]", 1)
	for _, tt := range []struct{ action, src, want string }{
		{"ImportKeyPair", withSSH, "Deleting temporary keypair"},
		{"CreateSecurityGroup", withSSH, "Deleting temporary security group"},
		{"RunInstances", noComm, "Terminating the source AWS instance"},
		{"CreateFleet", spot, "Terminating the source AWS instance"},
		{"CreateImage", noComm, "made by a CreateImage call that was cut short"},
	} {
		t.Run(tt.action, func(t *testing.T) {
			name := "unanswered-" + strings.ToLower(tt.action)
			st, u := testState(t, srv, mustConfig(t, tt.src+`ami_name = "`+name+`"`))
			runCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			client := ec2.New(ec2.Options{
				Region: st.Region, BaseEndpoint: aws.String(srv.URL()),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
				HTTPClient:  &cutShort{action: tt.action, cancel: cancel},
			})
			st.EC2 = func(string) EC2API { return client }
			r := &pipeline.Runner[*State]{Steps: Steps(st.Config)}
			if err := r.Run(runCtx, st); err == nil {
				t.Fatalf("the build survived its cancellation:\n%s", u)
			}
			if !strings.Contains(u.String(), tt.want) {
				t.Errorf("log lacks %q:\n%s", tt.want, u)
			}
			// The simulator's own check (sim) fails the test on a leftover
			// instance, key pair or group; images are looked up here.
			out, err := simClient(srv, st.Region).DescribeImages(ctx(t), &ec2.DescribeImagesInput{
				Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range out.Images {
				t.Errorf("AMI %s left", aws.ToString(im.ImageId))
			}
		})
	}
}
