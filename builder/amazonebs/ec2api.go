package amazonebs

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// The EC2 methods the builder calls, one small interface per concern, the
// way the SDK's waiters take ec2.DescribeInstancesAPIClient: each step and
// helper names the few it uses, so it can be tested alone with a fake that
// implements just those. *ec2.Client satisfies all of them.

type runInstancesAPI interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
}

type terminateInstancesAPI interface {
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

type stopInstancesAPI interface {
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, opts ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	ModifyInstanceAttribute(ctx context.Context, in *ec2.ModifyInstanceAttributeInput, opts ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error)
}

// spotFleetAPI is what launchSpot calls.
type spotFleetAPI interface {
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, opts ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, opts ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
}

type keyPairAPI interface {
	ImportKeyPair(ctx context.Context, in *ec2.ImportKeyPairInput, opts ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	DeleteKeyPair(ctx context.Context, in *ec2.DeleteKeyPairInput, opts ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
}

type securityGroupAPI interface {
	ec2.DescribeSecurityGroupsAPIClient
	ec2.DescribeVpcsAPIClient
	CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(ctx context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, opts ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
}

type networkAPI interface {
	ec2.DescribeVpcsAPIClient
	ec2.DescribeSubnetsAPIClient
}

type createImageAPI interface {
	CreateImage(ctx context.Context, in *ec2.CreateImageInput, opts ...func(*ec2.Options)) (*ec2.CreateImageOutput, error)
	CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, opts ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	RegisterImage(ctx context.Context, in *ec2.RegisterImageInput, opts ...func(*ec2.Options)) (*ec2.RegisterImageOutput, error)
	ModifyImageAttribute(ctx context.Context, in *ec2.ModifyImageAttributeInput, opts ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

type copyImageAPI interface {
	CopyImage(ctx context.Context, in *ec2.CopyImageInput, opts ...func(*ec2.Options)) (*ec2.CopyImageOutput, error)
}

type shareImageAPI interface {
	ModifyImageAttribute(ctx context.Context, in *ec2.ModifyImageAttributeInput, opts ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	ModifySnapshotAttribute(ctx context.Context, in *ec2.ModifySnapshotAttributeInput, opts ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error)
	EnableImageDeprecation(ctx context.Context, in *ec2.EnableImageDeprecationInput, opts ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error)
}

type createTagsAPI interface {
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, opts ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

type deregisterAPI interface {
	ec2.DescribeImagesAPIClient
	DeregisterImage(ctx context.Context, in *ec2.DeregisterImageInput, opts ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, opts ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

type consoleOutputAPI interface {
	GetConsoleOutput(ctx context.Context, in *ec2.GetConsoleOutputInput, opts ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error)
}

type deleteVolumeAPI interface {
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, opts ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

// EC2API is every EC2 method the builder calls: what State.EC2 returns
// for a region. *ec2.Client satisfies it; a test's fake may implement only
// the methods of the narrow interface the step under test uses.
type EC2API interface {
	ec2.DescribeImagesAPIClient
	ec2.DescribeInstancesAPIClient
	ec2.DescribeSnapshotsAPIClient
	runInstancesAPI
	terminateInstancesAPI
	stopInstancesAPI
	spotFleetAPI
	keyPairAPI
	securityGroupAPI
	networkAPI
	createImageAPI
	copyImageAPI
	shareImageAPI
	createTagsAPI
	deregisterAPI
	consoleOutputAPI
	deleteVolumeAPI
}

var _ EC2API = (*ec2.Client)(nil)
