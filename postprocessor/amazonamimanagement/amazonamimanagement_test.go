package amazonamimanagement

import (
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/prune"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

// The plugin's configuration rules, with its messages.
func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name, hcl, err string
	}{
		{"identifier", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]`, ""},
		{"tags and keep_days", `tags = { Team = "web" }
keep_days = 7
regions = ["us-east-1", "eu-west-1"]
dry_run = true`, ""},
		{"v0 region", `identifier = "app"
keep_releases = "3"
region = "us-east-1"`, ""},
		{"access options", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
profile = "ci"
skip_region_validation = true
assume_role {
  role_arn = "arn:aws:iam::123456789012:role/pruner"
  session_name = "prune"
}`, ""},
		{"no identifier", `keep_releases = 3
regions = ["us-east-1"]`, "empty `identifier` is not allowed"},
		{"both", `identifier = "a"
tags = { A = "b" }
keep_releases = 3
regions = ["us-east-1"]`, "`identifier` and `tags` cannot be set at the same time"},
		{"no keep", `identifier = "app"
regions = ["us-east-1"]`, "`keep_releases` or `keep_days` must be greater than 1"},
		{"keep both", `identifier = "app"
keep_releases = 2
keep_days = 3
regions = ["us-east-1"]`, "`keep_releases` and `keep_days` cannot be set as the same time"},
		{"negative", `identifier = "app"
keep_releases = -1
regions = ["us-east-1"]`, "`keep_releases` must be greater than 1"},
		{"no regions", `identifier = "app"
keep_releases = 3`, "empty `regions` is not allowed"},
		{"mfa", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
mfa_code = "123456"`, "mfa_code is not supported by amibake"},
		{"the builder's access options (one AccessConfig)", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
shared_credentials_file = "/etc/aws/credentials"
skip_metadata_api_check = true
skip_credential_validation = true
max_retries = 3`, ""},
		{"access options checked as the builder's", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
access_key = "AKID"`, "access_key and secret_key must both be set, or neither"},
		{"unimplemented access option", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
vault_aws_engine {
  name = "x"
}`, "vault_aws_engine is not supported by amibake"},
		{"aws_polling: nothing waits", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
aws_polling {
  max_attempts = 3
}`, "aws_polling has no effect"},
		{"unknown option", `identifier = "app"
keep_releases = 3
regions = ["us-east-1"]
keep_release = 3`, "Unsupported argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := New(provisionertest.HCL(t, "amazon-ami-management", tc.hcl, nil), nil)
			switch {
			case tc.err == "" && diags.HasErrors():
				t.Errorf("unexpected: %s", diags.Error())
			case tc.err != "" && !strings.Contains(diags.Error(), tc.err):
				t.Errorf("got %q, want %q", diags.Error(), tc.err)
			}
		})
	}
}

// The prune the configuration describes.
func TestOptions(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	p, diags := New(provisionertest.HCL(t, "amazon-ami-management", `identifier = "app"
keep_releases = 2
regions = ["us-east-1", "eu-west-1"]`, nil), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	o := p.Options(&artifact.Artifact{AMIs: map[string]string{"us-east-1": "ami-new"}}, now)
	if o.Selection.Tags[IdentifierTag] != "app" || len(o.Selection.Tags) != 1 || o.Rules.Keep != 2 || o.Rules.Within != 0 ||
		!o.OnlyRegions || o.GroupBy.Kind != prune.GroupAll || strings.Join(o.Regions, ",") != "us-east-1,eu-west-1" {
		t.Errorf("options %+v", o)
	}
	if o.Protect(prune.Image{Region: "us-east-1", ID: "ami-new"}) == "" || o.Protect(prune.Image{Region: "eu-west-1", ID: "ami-new"}) != "" {
		t.Error("the build's own AMI is not protected (only in its region)")
	}
	p, _ = New(provisionertest.HCL(t, "amazon-ami-management", `tags = { Team = "web" }
keep_days = 3
region = "us-east-1"`, nil), nil)
	o = p.Options(nil, now)
	if o.Selection.Tags["Team"] != "web" || o.Rules.Keep != -1 || o.Rules.Within != 72*time.Hour || o.Regions[0] != "us-east-1" {
		t.Errorf("options %+v", o)
	}
}

// The plugin's README example in a legacy JSON template (the template
// layer strips "type"): keep_releases is a string there.
func TestLegacyJSON(t *testing.T) {
	p, diags := New(provisionertest.JSON(t, "amazon-ami-management", `{
  "region": "us-east-1",
  "identifier": "packer-example",
  "keep_releases": "3"
}`), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if c := p.Config(); c.KeepReleases != 3 || c.Identifier != "packer-example" || p.Regions()[0] != "us-east-1" {
		t.Errorf("config %+v", c)
	}
}
