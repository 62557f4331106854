// Package prune removes old AMIs and their snapshots: it selects the
// account's AMIs (by tag, name pattern or what a template builds), groups
// them, keeps the newest releases of each group and those in use, and
// deregisters the rest in every region with their snapshots, each deletion
// journaled first so an interrupted prune can be finished. `amibake prune`
// and the amazon-ami-management post-processor both run it.
package prune

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// EC2 is what a prune calls; *ec2.Client implements it.
type EC2 interface {
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	DescribeImageAttribute(context.Context, *ec2.DescribeImageAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeImageAttributeOutput, error)
	DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	EnableImageDeprecation(context.Context, *ec2.EnableImageDeprecationInput, ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error)
}

// Clients returns a region's EC2 client.
type Clients func(region string) (EC2, error)

// Image is one AMI owned by the account, as DescribeImages shows it.
type Image struct {
	Region, ID, Name string
	Created          time.Time
	Tags             map[string]string
	Snapshots        []string // EBS snapshots of its block device mappings
	Public           bool
	Deprecation      time.Time // zero when no deprecation time is set
	SourceRegion     string    // set on copies (CopyImage)
	SourceImageID    string
}

// Actions of a decision.
const (
	ActionKeep      = "keep"
	ActionDelete    = "delete"
	ActionDeprecate = "deprecate"
)

// Decision is what happens to one AMI, and why.
type Decision struct {
	Region  string    `json:"region"`
	ImageID string    `json:"image_id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Group   string    `json:"group"`
	Release string    `json:"release"`
	Action  string    `json:"action"`
	Reason  string    `json:"reason"`
	// Snapshots are the AMI's EBS snapshots.
	Snapshots []string `json:"snapshots,omitempty"`
	// Result is what a real run did: "deleted", "deprecated", "failed: ...".
	Result string `json:"result,omitempty"`

	img Image
}

// SnapshotDecision is what happens to one snapshot of an AMI that goes.
type SnapshotDecision struct {
	Region     string `json:"region"`
	SnapshotID string `json:"snapshot_id"`
	ImageID    string `json:"image_id"`
	Action     string `json:"action"`
	Reason     string `json:"reason"`
	Result     string `json:"result,omitempty"`
}

// Plan is every decision of a prune.
type Plan struct {
	Images    []Decision         `json:"images"`
	Snapshots []SnapshotDecision `json:"snapshots"`
	Regions   []string           `json:"regions"`
}

// Count returns how many images have the action.
func (p *Plan) Count(action string) int {
	n := 0
	for _, d := range p.Images {
		if d.Action == action {
			n++
		}
	}
	return n
}

// SnapshotCount returns how many snapshots have the action.
func (p *Plan) SnapshotCount(action string) int {
	n := 0
	for _, s := range p.Snapshots {
		if s.Action == action {
			n++
		}
	}
	return n
}
