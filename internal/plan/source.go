package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/builder/amazonebs"
)

// ResolveSourceAMI finds the image source_ami / source_ami_filter names, as
// the builder's source step does (most_recent picks the newest), with one
// DescribeImages call.
func ResolveSourceAMI(ctx context.Context, client *ec2.Client, c *amazonebs.Config) (*types.Image, error) {
	in := &ec2.DescribeImagesInput{}
	if c.SourceAMI != "" {
		in.ImageIds = []string{c.SourceAMI}
	}
	what := "source_ami " + c.SourceAMI
	if f := c.SourceAMIFilter; f != nil {
		in.Filters = ec2Filters(c.Parsed.AMIFilters)
		in.Owners = f.Owners
		if f.IncludeDeprecated {
			in.IncludeDeprecated = aws.Bool(true)
		}
		what = "source_ami_filter " + describeFilters(c.Parsed.AMIFilters, f.Owners)
	}
	if len(in.ImageIds) == 0 && len(in.Filters) == 0 {
		return nil, errors.New("neither source_ami nor source_ami_filter is set")
	}
	out, err := client.DescribeImages(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "InvalidAMIID.NotFound" || ae.ErrorCode() == "InvalidAMIID.Malformed") {
			return nil, fmt.Errorf("no AMI matches %s: %w", what, err)
		}
		return nil, fmt.Errorf("describe the source AMI (%s): %w", what, err)
	}
	images := out.Images
	switch {
	case len(images) == 0:
		return nil, fmt.Errorf("no AMI matches %s", what)
	case len(images) > 1 && (c.SourceAMIFilter == nil || !c.SourceAMIFilter.MostRecent):
		return nil, fmt.Errorf("%d AMIs match %s: make the filter more specific, or set most_recent = true", len(images), what)
	}
	sort.SliceStable(images, func(i, j int) bool {
		return aws.ToString(images[i].CreationDate) > aws.ToString(images[j].CreationDate)
	})
	im := images[0]
	return &im, nil
}

func ec2Filters(m map[string]string) []types.Filter {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Filter, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Filter{Name: aws.String(k), Values: []string{m[k]}})
	}
	return out
}

func describeFilters(f map[string]string, owners []string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, f[k]))
	}
	if len(owners) > 0 {
		parts = append(parts, "owners="+strings.Join(owners, ","))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
