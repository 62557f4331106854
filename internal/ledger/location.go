package ledger

import (
	"fmt"
	"strings"
)

// Location says where a resource lives beyond its region: whose account,
// through which endpoint, created with which profile or role. None of it is
// a secret; it is what `amibake cleanup` needs to look in the right place
// from another shell, and what it checks the caller against first.
type Location struct {
	// Account is the AWS account id STS GetCallerIdentity answered when
	// the build checked its credentials; empty with skip_credential_validation.
	Account string `json:"account,omitempty"`
	// Caller is the ARN STS answered (a user or an assumed-role session).
	Caller string `json:"caller,omitempty"`
	// Endpoint is the EC2 endpoint when it is not AWS's default
	// (custom_endpoint_ec2, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL).
	Endpoint string `json:"endpoint,omitempty"`
	// STSEndpoint is the STS endpoint the account was asked at, when it
	// is not AWS's default (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL).
	STSEndpoint string `json:"sts_endpoint,omitempty"`
	// Profile is the shared-config profile (profile, AWS_PROFILE).
	Profile string `json:"profile,omitempty"`
	// CredentialsFile is the template's shared_credentials_file.
	CredentialsFile string `json:"credentials_file,omitempty"`
	// RoleARN is the role the build assumed (assume_role.role_arn).
	RoleARN string `json:"role_arn,omitempty"`
}

// IsZero reports whether nothing is known.
func (l Location) IsZero() bool { return l == Location{} }

// Access is the location without the account: what selects credentials
// and endpoint, so resources with the same Access share one client.
func (l Location) Access() Location {
	l.Account, l.Caller = "", ""
	return l
}

// String describes the location for messages: "account 123 (profile p,
// endpoint e)".
func (l Location) String() string {
	var parts []string
	if l.Profile != "" {
		parts = append(parts, "profile "+l.Profile)
	}
	if l.RoleARN != "" {
		parts = append(parts, "role "+l.RoleARN)
	}
	if l.Endpoint != "" {
		parts = append(parts, "endpoint "+l.Endpoint)
	}
	acct := "an unrecorded account"
	if l.Account != "" {
		acct = "account " + l.Account
	}
	if len(parts) == 0 {
		return acct
	}
	return fmt.Sprintf("%s (%s)", acct, strings.Join(parts, ", "))
}

// CLIFlags are the aws CLI flags that reach the location (for the
// commands cleanup suggests): --profile and --endpoint-url.
func (l Location) CLIFlags() string {
	var b strings.Builder
	if l.Profile != "" {
		b.WriteString(" --profile " + l.Profile)
	}
	if l.Endpoint != "" {
		b.WriteString(" --endpoint-url " + l.Endpoint)
	}
	return b.String()
}
