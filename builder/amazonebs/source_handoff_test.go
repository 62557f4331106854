package amazonebs

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// A source AMI resolved before the build (for the input digest) is handed
// to the source step, which then does not describe it again; one that does
// not match source_ami is not trusted.
func TestStepSourceAMIHandedImage(t *testing.T) {
	srv := apiSim(t)
	base := `
region = "us-east-1"
instance_type = "t3.micro"
ssh_username = "ubuntu"
ami_name = "x-test"
`
	st, _ := testState(t, srv, mustConfig(t, base+`source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
  owners = ["099720109477"]
  most_recent = true
}`))
	if err := (stepSourceAMI{}).Run(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	resolved := st.SourceImage
	id := aws.ToString(resolved.ImageId)
	handed := &types.Image{ImageId: aws.String(id), Name: aws.String("handed-over"), OwnerId: aws.String("099720109477")}
	tests := []struct {
		name      string
		src       string
		handed    *types.Image
		wantName  string
		wantCalls int
	}{
		{"handed, pinned id", `source_ami = "` + id + `"`, handed, "handed-over", 0},
		{"handed, filter", `source_ami_filter {
  filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
  owners = ["099720109477"]
  most_recent = true
}`, handed, "handed-over", 0},
		{"handed for another id", `source_ami = "` + id + `"`, &types.Image{ImageId: aws.String("ami-0fffffffffffffff0"), Name: aws.String("stale")}, aws.ToString(resolved.Name), 1},
		{"none handed", `source_ami = "` + id + `"`, nil, aws.ToString(resolved.Name), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := testState(t, srv, mustConfig(t, base+tt.src))
			st.ResolvedSource = tt.handed
			srv.ResetCalls()
			if err := (stepSourceAMI{}).Run(ctx(t), st); err != nil {
				t.Fatal(err)
			}
			if got := srv.Calls()["DescribeImages"]; got != tt.wantCalls {
				t.Errorf("DescribeImages called %d times, want %d", got, tt.wantCalls)
			}
			if st.BuildTime.SourceAMIName != tt.wantName || st.BuildTime.SourceAMI != id {
				t.Errorf("BuildTime = %+v", st.BuildTime)
			}
		})
	}
}
