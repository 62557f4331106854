package awsclient

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// AccessConfig is the AWS access options of Packer's amazon plugin
// (awscommon.AccessConfig), in Packer's names: one struct, decoded the same
// way wherever a template talks to AWS. The amazon-ebs builder, the
// amazon-ami data source and the amazon-ami-management post-processor embed
// it, and open their session with Open.
type AccessConfig struct {
	AccessKey                   string          `hcl:"access_key,optional"`
	SecretKey                   string          `hcl:"secret_key,optional"`
	Token                       string          `hcl:"token,optional"`
	Region                      string          `hcl:"region,optional"`
	Profile                     string          `hcl:"profile,optional"`
	SharedCredentialsFile       string          `hcl:"shared_credentials_file,optional"`
	AssumeRole                  *AssumeRole     `hcl:"assume_role,block"`
	VaultAWSEngine              *VaultAWSEngine `hcl:"vault_aws_engine,block"`
	CustomEndpointEC2           string          `hcl:"custom_endpoint_ec2,optional"`
	SkipCredentialValidation    bool            `hcl:"skip_credential_validation,optional"`
	SkipMetadataAPICheck        bool            `hcl:"skip_metadata_api_check,optional"`
	SkipRegionValidation        bool            `hcl:"skip_region_validation,optional"`
	DecodeAuthorizationMessages bool            `hcl:"decode_authorization_messages,optional"`
	InsecureSkipTLSVerify       bool            `hcl:"insecure_skip_tls_verify,optional"`
	MFACode                     string          `hcl:"mfa_code,optional"`
	MaxRetries                  int             `hcl:"max_retries,optional"`
	Polling                     *Polling        `hcl:"aws_polling,block"`
}

// VaultAWSEngine is Packer's vault_aws_engine block.
type VaultAWSEngine struct {
	Name       string `hcl:"name,optional"`
	RoleARN    string `hcl:"role_arn,optional"`
	TTL        string `hcl:"ttl,optional"`
	EngineName string `hcl:"engine_name,optional"`
}

// Polling overrides the waiters' delay and attempts (AWS_POLL_DELAY_SECONDS,
// AWS_MAX_ATTEMPTS).
type Polling struct {
	DelaySeconds int `hcl:"delay_seconds,optional"`
	MaxAttempts  int `hcl:"max_attempts,optional"`
}

// UnimplementedAccess are the access options amibake accepts in a template
// but cannot honour: whoever embeds AccessConfig refuses them when set.
var UnimplementedAccess = []string{"vault_aws_engine", "mfa_code", "decode_authorization_messages"}

// Unimplemented names the options of UnimplementedAccess that a sets,
// sorted.
func (a *AccessConfig) Unimplemented() []string { return a.set(UnimplementedAccess) }

// set returns which of names are set (non-zero) in a, by hcl tag.
func (a *AccessConfig) set(names []string) []string {
	var out []string
	rv := reflect.ValueOf(a).Elem()
	for i := 0; i < rv.NumField(); i++ {
		tag, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("hcl"), ",")
		for _, n := range names {
			if n == tag && !rv.Field(i).IsZero() {
				out = append(out, tag)
			}
		}
	}
	sort.Strings(out)
	return out
}

var regionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// IsRegionName reports whether s has the shape of an AWS region name.
func IsRegionName(s string) bool { return regionRe.MatchString(s) }

// Problem is an access option set wrongly: the option's path
// ("aws_polling.delay_seconds"), a summary and a detail, for the caller's
// diagnostics.
type Problem struct{ Option, Summary, Detail string }

// Check finds what can be found wrong in a without calling AWS.
func (a *AccessConfig) Check() []Problem {
	var out []Problem
	add := func(opt, summary, format string, args ...any) {
		out = append(out, Problem{opt, summary, fmt.Sprintf(format, args...)})
	}
	// An empty region is left to the SDK's chain (AWS_REGION, the
	// profile), as in Packer; opening the session fails if it finds none.
	if a.Region != "" && !a.SkipRegionValidation && !IsRegionName(a.Region) {
		add("region", "Invalid region", "%q is not an AWS region name (like us-east-1 or ap-northeast-1).", a.Region)
	}
	if (a.AccessKey == "") != (a.SecretKey == "") {
		add("access_key", "Incomplete static credentials", "access_key and secret_key must both be set, or neither.")
	}
	if a.MaxRetries < 0 {
		add("max_retries", "Invalid max_retries", "max_retries must be zero or more, not %d.", a.MaxRetries)
	}
	if p := a.Polling; p != nil {
		if p.DelaySeconds < 0 {
			add("aws_polling.delay_seconds", "Invalid delay_seconds", "delay_seconds must be positive.")
		}
		if p.MaxAttempts < 0 {
			add("aws_polling.max_attempts", "Invalid max_attempts", "max_attempts must be positive.")
		}
	}
	if a.AssumeRole != nil && a.AssumeRole.RoleARN == "" {
		add("assume_role", "Missing role_arn", "assume_role needs role_arn.")
	}
	if a.CustomEndpointEC2 != "" && !strings.Contains(a.CustomEndpointEC2, "://") {
		add("custom_endpoint_ec2", "Invalid custom_endpoint_ec2", "custom_endpoint_ec2 must be a URL with a scheme, such as https://ec2.example.com, not %q.", a.CustomEndpointEC2)
	}
	return out
}

// Options are the session options a describes.
func (a *AccessConfig) Options() Options {
	return Options{
		Region: a.Region, Profile: a.Profile, SharedCredentialsFile: a.SharedCredentialsFile,
		AccessKey: a.AccessKey, SecretKey: a.SecretKey, Token: a.Token,
		AssumeRole: a.AssumeRole, CustomEndpointEC2: a.CustomEndpointEC2,
		MaxRetries: a.MaxRetries, SkipCredentialValidation: a.SkipCredentialValidation,
		SkipMetadataAPICheck:  a.SkipMetadataAPICheck,
		InsecureSkipTLSVerify: a.InsecureSkipTLSVerify,
	}
}

// Open opens the session a describes (New with a's options), in region
// when not "" instead of a.Region.
func (a *AccessConfig) Open(ctx context.Context, shared *Shared, region string) (*Session, error) {
	o := a.Options()
	if region != "" {
		o.Region = region
	}
	return New(ctx, shared, o)
}
