// Package reaper removes what amibake runs left behind: by run id from the
// local ledger, or by amibake's tags across regions (a CI reaper job on
// another machine). It never touches a resource without amibake's tags.
package reaper

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/amibake/amibake/internal/ledger"
)

// EC2API is the part of the EC2 client the reaper calls; *ec2.Client
// satisfies it.
type EC2API interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(context.Context, *ec2.DeleteVolumeInput, ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	DeleteKeyPair(context.Context, *ec2.DeleteKeyPairInput, ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DeleteLaunchTemplate(context.Context, *ec2.DeleteLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

var _ EC2API = (*ec2.Client)(nil)

// ClientFactory returns the EC2 client of a region, reached the way loc
// says (its endpoint, profile and role; loc.Account is not used here). A
// zero loc means the caller's own configuration.
type ClientFactory func(loc ledger.Location, region string) (EC2API, error)

// IdentityFunc returns the account the credentials of loc belong to (STS
// GetCallerIdentity), so that a cleanup never looks for a run's resources
// in another account and takes "not found" there for "gone".
type IdentityFunc func(ctx context.Context, loc ledger.Location) (account string, err error)

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isGone: the resource no longer exists, so removing it is done.
func isGone(err error) bool {
	c := errorCode(err)
	// "NotFound" is the sweep's own notFound: a Describe showed it gone.
	// Launch templates say InvalidLaunchTemplateName.NotFoundException.
	return c == "NotFound" || strings.HasSuffix(c, ".NotFound") || strings.HasSuffix(c, ".NotFoundException") || c == "InvalidAMIID.Unavailable"
}

// isBusy: something still uses the resource; it frees up on its own once
// the instances that use it are terminated.
func isBusy(err error) bool {
	switch errorCode(err) {
	case "DependencyViolation", "VolumeInUse", "InvalidSnapshot.InUse", "IncorrectState", "InvalidVolume.InUse":
		return true
	}
	return false
}
