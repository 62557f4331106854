package amazonebs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/template"
)

// AMIDataSource is the amazon-ami data source: an AMI looked up by
// filters, with the access options of the builder (the shared
// AccessConfig, as Packer's data source).
type AMIDataSource struct {
	awsclient.AccessConfig
	Filters           map[string]string `hcl:"filters,optional"`
	Filter            []NameValue       `hcl:"filter,block"`
	Owners            []string          `hcl:"owners,optional"`
	MostRecent        bool              `hcl:"most_recent,optional"`
	IncludeDeprecated bool              `hcl:"include_deprecated,optional"`
}

// DataSources returns template.LoadOptions.DataSource for a run: data
// blocks are evaluated with the load's context and the run's shared AWS
// state (one credential check for the data sources and the builds).
func DataSources(shared *awsclient.Shared) func(context.Context, *template.Block) (cty.Value, hcl.Diagnostics) {
	return func(ctx context.Context, b *template.Block) (cty.Value, hcl.Diagnostics) {
		return EvaluateDataSource(ctx, shared, b)
	}
}

// EvaluateDataSource evaluates a data block; amibake knows amazon-ami.
// Its value has Packer's attributes: id, name, creation_date, owner,
// owner_name and tags. shared may be nil.
func EvaluateDataSource(ctx context.Context, shared *awsclient.Shared, b *template.Block) (cty.Value, hcl.Diagnostics) {
	if b.Type != "amazon-ami" {
		return cty.DynamicVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Unknown data source type %q", b.Type),
			Detail:   "amibake evaluates amazon-ami data sources only.",
			Subject:  b.DefRange.Ptr(),
		}}
	}
	var c AMIDataSource
	if diags := b.Decode(&c, nil); diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	fail := func(summary, detail string) (cty.Value, hcl.Diagnostics) {
		return cty.DynamicVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: b.DefRange.Ptr()}}
	}
	if diags := checkDataSourceAccess(b, &c.AccessConfig); diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	filters := mergeNV(c.Filters, c.Filter)
	if len(c.Owners) == 0 && filters["owner-id"] == "" && filters["owner-alias"] == "" {
		return fail("Missing owners", "For security reasons, an amazon-ami data source must name the AMI's owner: set owners, or the owner-id or owner-alias filter.")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sess, err := c.AccessConfig.Open(ctx, shared, "")
	if err != nil {
		return fail("Cannot evaluate amazon-ami data source", err.Error())
	}
	in := &ec2.DescribeImagesInput{Filters: ec2Filters(filters), Owners: c.Owners}
	if c.IncludeDeprecated {
		in.IncludeDeprecated = aws.Bool(true)
	}
	out, err := sess.EC2("").DescribeImages(ctx, in)
	if err != nil {
		return fail("Cannot evaluate amazon-ami data source", fmt.Sprintf("describe images: %v", err))
	}
	images := out.Images
	switch {
	case len(images) == 0:
		return fail("No AMI found", fmt.Sprintf("No AMI matches %s.", describeFilters(filters, c.Owners)))
	case len(images) > 1 && !c.MostRecent:
		return fail("More than one AMI found", fmt.Sprintf("%d AMIs match %s: make the filters more specific, or set most_recent = true.", len(images), describeFilters(filters, c.Owners)))
	}
	sort.SliceStable(images, func(i, j int) bool {
		return aws.ToString(images[i].CreationDate) > aws.ToString(images[j].CreationDate)
	})
	im := images[0]
	tags := map[string]cty.Value{}
	for k, v := range tagMap(im.Tags) {
		tags[k] = cty.StringVal(v)
	}
	tagVal := cty.MapValEmpty(cty.String)
	if len(tags) > 0 {
		tagVal = cty.MapVal(tags)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"id":            cty.StringVal(aws.ToString(im.ImageId)),
		"name":          cty.StringVal(aws.ToString(im.Name)),
		"creation_date": cty.StringVal(aws.ToString(im.CreationDate)),
		"owner":         cty.StringVal(aws.ToString(im.OwnerId)),
		"owner_name":    cty.StringVal(aws.ToString(im.ImageOwnerAlias)),
		"tags":          tagVal,
	}), nil
}

// checkDataSourceAccess checks the access options as the builder does, and
// refuses those that would change nothing here: the unimplemented ones,
// and aws_polling (a lookup does not wait).
func checkDataSourceAccess(b *template.Block, a *awsclient.AccessConfig) hcl.Diagnostics {
	v := &validator{body: b.Body, def: b.DefRange}
	for _, p := range a.Check() {
		v.errorf(p.Option, p.Summary, "%s", p.Detail)
	}
	for _, opt := range a.Unimplemented() {
		v.errorf(opt, "Option not implemented by amibake", "amibake cannot honour %s in an amazon-ami data source yet; remove it.", opt)
	}
	if a.Polling != nil {
		v.errorf("aws_polling", "Option without effect", "aws_polling paces waits, and an amazon-ami data source does not wait; remove it.")
	}
	return v.diags
}
