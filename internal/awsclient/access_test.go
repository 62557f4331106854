package awsclient

import (
	"reflect"
	"testing"
)

// TestAccessConfig: the checks every template block that talks to AWS
// shares, what it refuses, and the session options it describes.
func TestAccessConfig(t *testing.T) {
	tests := []struct {
		name       string
		a          AccessConfig
		problems   []string // options
		unimpl     []string
		wantRegion string
	}{
		{"empty: the SDK's chain decides", AccessConfig{}, nil, nil, ""},
		{"valid", AccessConfig{Region: "eu-west-1", AccessKey: "A", SecretKey: "S", MaxRetries: 3}, nil, nil, "eu-west-1"},
		{"invalid region", AccessConfig{Region: "Tokyo"}, []string{"region"}, nil, "Tokyo"},
		{"skip_region_validation", AccessConfig{Region: "local-1x", SkipRegionValidation: true}, nil, nil, "local-1x"},
		{"half the static credentials", AccessConfig{AccessKey: "A"}, []string{"access_key"}, nil, ""},
		{"negative numbers", AccessConfig{MaxRetries: -1, Polling: &Polling{DelaySeconds: -1, MaxAttempts: -1}},
			[]string{"max_retries", "aws_polling.delay_seconds", "aws_polling.max_attempts"}, nil, ""},
		{"assume_role without role_arn", AccessConfig{AssumeRole: &AssumeRole{SessionName: "s"}}, []string{"assume_role"}, nil, ""},
		{"endpoint without scheme", AccessConfig{CustomEndpointEC2: "ec2.example.com"}, []string{"custom_endpoint_ec2"}, nil, ""},
		{"unimplemented", AccessConfig{MFACode: "1", VaultAWSEngine: &VaultAWSEngine{}, DecodeAuthorizationMessages: true}, nil,
			[]string{"decode_authorization_messages", "mfa_code", "vault_aws_engine"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range tt.a.Check() {
				got = append(got, p.Option)
				if p.Summary == "" || p.Detail == "" {
					t.Errorf("%s: empty summary or detail", p.Option)
				}
			}
			if !reflect.DeepEqual(got, tt.problems) {
				t.Errorf("problems %v, want %v", got, tt.problems)
			}
			if got := tt.a.Unimplemented(); !reflect.DeepEqual(got, tt.unimpl) {
				t.Errorf("unimplemented %v, want %v", got, tt.unimpl)
			}
			if got := tt.a.Options().Region; got != tt.wantRegion {
				t.Errorf("region %q, want %q", got, tt.wantRegion)
			}
		})
	}
}

// TestAccessOptions: every option that reaches the session.
func TestAccessOptions(t *testing.T) {
	role := &AssumeRole{RoleARN: "arn:aws:iam::111122223333:role/r"}
	a := AccessConfig{
		AccessKey: "A", SecretKey: "S", Token: "T", Region: "eu-west-1", Profile: "p", SharedCredentialsFile: "/c",
		AssumeRole: role, CustomEndpointEC2: "http://127.0.0.1:1", SkipCredentialValidation: true,
		SkipMetadataAPICheck: true, InsecureSkipTLSVerify: true, MaxRetries: 4,
	}
	want := Options{
		Region: "eu-west-1", Profile: "p", SharedCredentialsFile: "/c", AccessKey: "A", SecretKey: "S", Token: "T",
		AssumeRole: role, CustomEndpointEC2: "http://127.0.0.1:1", MaxRetries: 4, SkipCredentialValidation: true,
		SkipMetadataAPICheck: true, InsecureSkipTLSVerify: true,
	}
	if got := a.Options(); !reflect.DeepEqual(got, want) {
		t.Errorf("Options() = %+v\nwant %+v", got, want)
	}
}
