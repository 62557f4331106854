package plan

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/builder/amazonebs"
)

// ResolveSourceAMI finds the image source_ami / source_ami_filter names in
// region exactly as the builder's source step does (it is the builder's
// amazonebs.ResolveSourceAMI), with one DescribeImages call.
func ResolveSourceAMI(ctx context.Context, client *ec2.Client, c *amazonebs.Config, region string) (*types.Image, error) {
	return amazonebs.ResolveSourceAMI(ctx, client, c, region)
}
