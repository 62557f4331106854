package bake

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/ledger"
)

// What the journal records about where a build's resources live, from
// the template and the SDK's environment; never a secret.
func TestLocation(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCATIONTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "location-secret")
	t.Setenv("AWS_PROFILE", "")
	for _, tt := range []struct {
		name string
		env  map[string]string
		cfg  amazonebs.Config
		want ledger.Location
	}{
		{"defaults", nil, amazonebs.Config{}, ledger.Location{}},
		{"AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, amazonebs.Config{},
			ledger.Location{Endpoint: "http://127.0.0.1:1", STSEndpoint: "http://127.0.0.1:1"}},
		{"service endpoints and custom_endpoint_ec2", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:2", "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:3"},
			amazonebs.Config{AccessConfig: awsclient.AccessConfig{CustomEndpointEC2: "http://127.0.0.1:4"}},
			ledger.Location{Endpoint: "http://127.0.0.1:4", STSEndpoint: "http://127.0.0.1:2"}},
		{"AWS_ENDPOINT_URL_EC2", map[string]string{"AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:3"}, amazonebs.Config{},
			ledger.Location{Endpoint: "http://127.0.0.1:3"}},
		{"role, credentials file, AWS_PROFILE", map[string]string{"AWS_PROFILE": "ci"},
			amazonebs.Config{AccessConfig: awsclient.AccessConfig{SharedCredentialsFile: "/etc/aws/creds", AssumeRole: &amazonebs.AssumeRole{RoleARN: "arn:aws:iam::111111111111:role/bake"}}},
			ledger.Location{Profile: "ci", CredentialsFile: "/etc/aws/creds", RoleARN: "arn:aws:iam::111111111111:role/bake"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_EC2"} {
				t.Setenv(k, tt.env[k])
			}
			sess, err := awsclient.New(context.Background(), nil, awsclient.Options{Region: "us-east-1", SkipCredentialValidation: true})
			if err != nil {
				t.Fatal(err)
			}
			sess.Identity = &awsclient.Identity{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/ci"}
			tt.want.Account, tt.want.Caller = "111111111111", "arn:aws:iam::111111111111:user/ci"
			getenv := func(k string) string { return tt.env[k] }
			if got := Location(sess, &tt.cfg, getenv); got != tt.want {
				t.Errorf("Location = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}
