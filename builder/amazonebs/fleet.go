package amazonebs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"
)

// launchSpot starts one spot instance through an instant EC2 Fleet, as
// Packer does: EC2 picks among spot_instance_types by
// spot_allocation_strategy instead of amibake trying them one by one. The
// launch template the fleet needs is deleted as soon as the fleet answers.
func launchSpot(ctx context.Context, s *State, in *ec2.RunInstancesInput, instanceTypes []string, token string) (string, error) {
	c := s.Config
	client := s.ec2("")
	data := &types.RequestLaunchTemplateData{
		ImageId:      in.ImageId,
		KeyName:      in.KeyName,
		UserData:     in.UserData,
		EbsOptimized: in.EbsOptimized,
	}
	if in.SecurityGroupIds != nil {
		data.SecurityGroupIds = in.SecurityGroupIds
	}
	if p := in.IamInstanceProfile; p != nil {
		data.IamInstanceProfile = &types.LaunchTemplateIamInstanceProfileSpecificationRequest{Arn: p.Arn, Name: p.Name}
	}
	if m := in.MetadataOptions; m != nil {
		data.MetadataOptions = &types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpEndpoint:            types.LaunchTemplateInstanceMetadataEndpointState(m.HttpEndpoint),
			HttpTokens:              types.LaunchTemplateHttpTokensState(m.HttpTokens),
			HttpPutResponseHopLimit: m.HttpPutResponseHopLimit,
			InstanceMetadataTags:    types.LaunchTemplateInstanceMetadataTagsState(m.InstanceMetadataTags),
		}
	}
	for _, b := range in.BlockDeviceMappings {
		m := types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: b.DeviceName, NoDevice: b.NoDevice, VirtualName: b.VirtualName}
		if e := b.Ebs; e != nil {
			m.Ebs = &types.LaunchTemplateEbsBlockDeviceRequest{
				DeleteOnTermination: e.DeleteOnTermination, Encrypted: e.Encrypted, Iops: e.Iops, KmsKeyId: e.KmsKeyId,
				SnapshotId: e.SnapshotId, Throughput: e.Throughput, VolumeSize: e.VolumeSize, VolumeType: e.VolumeType,
			}
		}
		data.BlockDeviceMappings = append(data.BlockDeviceMappings, m)
	}
	for _, ni := range in.NetworkInterfaces {
		data.NetworkInterfaces = append(data.NetworkInterfaces, types.LaunchTemplateInstanceNetworkInterfaceSpecificationRequest{
			DeviceIndex: ni.DeviceIndex, AssociatePublicIpAddress: ni.AssociatePublicIpAddress,
			DeleteOnTermination: ni.DeleteOnTermination, Groups: ni.Groups, SubnetId: ni.SubnetId,
		})
	}
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType == types.ResourceTypeInstance || ts.ResourceType == types.ResourceTypeVolume {
			data.TagSpecifications = append(data.TagSpecifications, types.LaunchTemplateTagSpecificationRequest{ResourceType: ts.ResourceType, Tags: ts.Tags})
		}
	}
	if p := in.Placement; p != nil && (p.Tenancy != "" || p.HostId != nil) {
		data.Placement = &types.LaunchTemplatePlacementRequest{Tenancy: p.Tenancy, HostId: p.HostId, HostResourceGroupArn: p.HostResourceGroupArn}
	}

	ltName := "amibake_" + uuid.NewString()
	lt, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(ltName),
		LaunchTemplateData: data,
		ClientToken:        aws.String(token + "-lt"),
		TagSpecifications:  []types.TagSpecification{s.tagSpec(types.ResourceTypeLaunchTemplate, nil)},
	})
	if err != nil {
		return "", fmt.Errorf("create the launch template of the spot fleet: %w", err)
	}
	ltID := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	s.born(ltID)
	defer func() {
		// The fleet's instance no longer needs its template.
		if derr := s.deleteRetry(context.WithoutCancel(ctx), ltID, "delete launch template "+ltID, func(ctx context.Context) error {
			_, err := client.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(ltID)})
			return err
		}); derr != nil {
			s.UI.Error(fmt.Sprintf("Error deleting launch template %s: %v", ltID, derr))
		}
	}()

	var overrides []types.FleetLaunchTemplateOverridesRequest
	for i, t := range instanceTypes {
		o := types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(t), Priority: aws.Float64(float64(i))}
		if in.SubnetId != nil {
			o.SubnetId = in.SubnetId
		}
		if c.SpotPrice != "" && c.SpotPrice != "auto" {
			o.MaxPrice = aws.String(c.SpotPrice)
		}
		overrides = append(overrides, o)
	}
	fleetTags, err := s.renderTags("fleet_tags", c.Parsed.FleetTags)
	if err != nil {
		return "", err
	}
	strategy := types.SpotAllocationStrategy(c.SpotAllocationStrategy)
	if strategy == "" {
		strategy = types.SpotAllocationStrategyPriceCapacityOptimized
	}
	out, err := client.CreateFleet(ctx, &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(token),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot,
		},
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(ltID), Version: aws.String("$Latest")},
			Overrides:                   overrides,
		}},
		SpotOptions:       &types.SpotOptionsRequest{AllocationStrategy: strategy},
		TagSpecifications: []types.TagSpecification{s.tagSpec(types.ResourceTypeFleet, fleetTags)},
	})
	if err != nil {
		return "", fmt.Errorf("launch a spot instance through an EC2 fleet: %w", err)
	}
	for _, i := range out.Instances {
		if len(i.InstanceIds) > 0 {
			return i.InstanceIds[0], nil
		}
	}
	var why []string
	for _, e := range out.Errors {
		why = append(why, fmt.Sprintf("%s: %s (%s)", aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage), instanceTypeOf(e)))
	}
	return "", fmt.Errorf("the spot fleet launched no instance: %s", strings.Join(why, "; "))
}

func instanceTypeOf(e types.CreateFleetError) string {
	if e.LaunchTemplateAndOverrides != nil && e.LaunchTemplateAndOverrides.Overrides != nil {
		return string(e.LaunchTemplateAndOverrides.Overrides.InstanceType)
	}
	return "?"
}
