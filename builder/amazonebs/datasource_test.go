package amazonebs

import (
	"context"
	"strings"
	"testing"
)

func TestEvaluateDataSource(t *testing.T) {
	srv := apiSim(t)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	base := `region = "us-east-1"
access_key = "AKIDTEST"
secret_key = "secret"
`
	tests := []struct{ name, src, wantName, wantErr string }{
		{"most recent", base + `filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
owners = ["099720109477"]
most_recent = true`, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105", ""},
		{"ambiguous", base + `filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
owners = ["099720109477"]`, "", "More than one AMI found"},
		{"no owner", base + `filters = { name = "x" }`, "", "Missing owners"},
		// The access options are the builder's (one AccessConfig).
		{"shared access options", base + `skip_credential_validation = true
skip_metadata_api_check = true
max_retries = 2
filters = { name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105" }
owners = ["099720109477"]`, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261105", ""},
		{"invalid region", `region = "Tokyo"
access_key = "AKIDTEST"
secret_key = "secret"
filters = { name = "x" }
owners = ["099720109477"]`, "", "Invalid region"},
		{"unimplemented access option refused", base + `mfa_code = "123456"
filters = { name = "x" }
owners = ["099720109477"]`, "", "mfa_code"},
		{"aws_polling refused: a lookup does not wait", base + `aws_polling {
  delay_seconds = 5
}
filters = { name = "x" }
owners = ["099720109477"]`, "", "aws_polling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := hclBlock(t, tt.src)
			b.Type = "amazon-ami"
			v, diags := EvaluateDataSource(context.Background(), nil, b)
			if tt.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diags %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := v.GetAttr("name").AsString(); got != tt.wantName || !strings.HasPrefix(v.GetAttr("id").AsString(), "ami-") {
				t.Errorf("name %q id %q", got, v.GetAttr("id").AsString())
			}
		})
	}
}
