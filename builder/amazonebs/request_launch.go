package amazonebs

import (
	"encoding/base64"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The requests that launch the source instance, built by pure functions of
// the configuration and of what the earlier steps found (launchState), so
// that a table test can cover every option that reaches them.

// launchState is what the launch requests need beyond the configuration:
// what the earlier steps produced, with the tags already rendered.
type launchState struct {
	ImageID          string
	KeyName          string
	SubnetID, AZ     string
	SecurityGroupIDs []string
	// UserData is user_data, or user_data_file's content, as written.
	UserData string
	// Token is the ClientToken that makes retries and the journal safe.
	Token string
	// Own are amibake's own tags; RunTags, VolumeTags and SpotTags the
	// user's run_tags, run_volume_tags and spot_tags.
	Own, RunTags, VolumeTags, SpotTags map[string]string
}

// isSpot reports whether the build launches a spot instance (by a fleet).
func isSpot(c *Config) bool { return c.SpotPrice != "" || len(c.SpotInstanceTypes) > 0 }

// runInstancesInput is the RunInstances request of an on-demand launch,
// and the source of a spot fleet's launch template data.
func runInstancesInput(c *Config, l launchState) *ec2.RunInstancesInput {
	// Packer's placement: run_tags on the instance and its network
	// interface, run_volume_tags on the volumes.
	instanceSpec := tagSpecOf(types.ResourceTypeInstance, l.Own, l.RunTags)
	if isSpot(c) { // the fleet's instance carries them
		instanceSpec.Tags = append(instanceSpec.Tags, ec2Tags(l.SpotTags)...)
	}
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(l.ImageID),
		InstanceType: types.InstanceType(c.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		EbsOptimized: aws.Bool(c.EBSOptimized),
		ClientToken:  aws.String(l.Token),
		TagSpecifications: []types.TagSpecification{
			instanceSpec,
			tagSpecOf(types.ResourceTypeNetworkInterface, l.Own, l.RunTags),
			tagSpecOf(types.ResourceTypeVolume, l.Own, l.VolumeTags),
		},
		InstanceInitiatedShutdownBehavior: types.ShutdownBehavior(c.ShutdownBehavior),
		BlockDeviceMappings:               blockDeviceMappings(c.LaunchBlockDevices),
		IamInstanceProfile:                iamInstanceProfile(c.IAMInstanceProfile),
		MetadataOptions:                   metadataOptions(c.MetadataOptions),
		Placement:                         placement(c, l.AZ),
		CapacityReservationSpecification:  capacityReservation(c),
	}
	if l.KeyName != "" {
		in.KeyName = aws.String(l.KeyName)
	}
	if l.UserData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(l.UserData)))
	}
	if c.EnableUnlimitedCredits || c.EnableT2Unlimited {
		in.CreditSpecification = &types.CreditSpecificationRequest{CpuCredits: aws.String("unlimited")}
	}
	if c.EnableNitroEnclave {
		in.EnclaveOptions = &types.EnclaveOptionsRequest{Enabled: aws.Bool(true)}
	}
	for _, l := range c.LicenseSpecifications {
		in.LicenseSpecifications = append(in.LicenseSpecifications, types.LicenseConfigurationRequest{
			LicenseConfigurationArn: aws.String(l.LicenseConfigurationRequest.LicenseConfigurationARN)})
	}
	if c.AssociatePublicIPAddress != nil {
		// Only a network interface specification can set the public IP.
		in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              aws.Int32(0),
			AssociatePublicIpAddress: c.AssociatePublicIPAddress,
			DeleteOnTermination:      aws.Bool(true),
			Groups:                   l.SecurityGroupIDs,
			SubnetId:                 optString(l.SubnetID),
		}}
	} else {
		in.SecurityGroupIds = l.SecurityGroupIDs
		in.SubnetId = optString(l.SubnetID)
	}
	return in
}

// optString is nil for "": EC2 takes an absent parameter as "not set".
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func iamInstanceProfile(p string) *types.IamInstanceProfileSpecification {
	switch {
	case p == "":
		return nil
	case strings.HasPrefix(p, "arn:"):
		return &types.IamInstanceProfileSpecification{Arn: aws.String(p)}
	}
	return &types.IamInstanceProfileSpecification{Name: aws.String(p)}
}

func metadataOptions(m *MetadataOptions) *types.InstanceMetadataOptionsRequest {
	if m == nil {
		return nil
	}
	mo := &types.InstanceMetadataOptionsRequest{
		HttpEndpoint:         types.InstanceMetadataEndpointState(m.HTTPEndpoint),
		HttpTokens:           types.HttpTokensState(m.HTTPTokens),
		InstanceMetadataTags: types.InstanceMetadataTagsState(m.InstanceMetadataTags),
	}
	if m.HTTPPutResponseHopLimit > 0 {
		mo.HttpPutResponseHopLimit = aws.Int32(m.HTTPPutResponseHopLimit)
	}
	return mo
}

// placement is availability_zone (or the subnet's), tenancy and the
// placement block, whose tenancy wins.
func placement(c *Config, az string) *types.Placement {
	if az == "" && c.Placement == nil && c.Tenancy == "" {
		return nil
	}
	pl := &types.Placement{AvailabilityZone: optString(az), Tenancy: types.Tenancy(c.Tenancy)}
	if p := c.Placement; p != nil {
		if p.Tenancy != "" {
			pl.Tenancy = types.Tenancy(p.Tenancy)
		}
		pl.HostId = optString(p.HostID)
		pl.HostResourceGroupArn = optString(p.HostResourceGroupARN)
	}
	return pl
}

// capacityReservation: a reservation named by id or group wins over
// capacity_reservation_preference.
func capacityReservation(c *Config) *types.CapacityReservationSpecification {
	switch {
	case c.CapacityReservationID != "":
		return &types.CapacityReservationSpecification{CapacityReservationTarget: &types.CapacityReservationTarget{
			CapacityReservationId: aws.String(c.CapacityReservationID)}}
	case c.CapacityReservationGroupARN != "":
		return &types.CapacityReservationSpecification{CapacityReservationTarget: &types.CapacityReservationTarget{
			CapacityReservationResourceGroupArn: aws.String(c.CapacityReservationGroupARN)}}
	case c.CapacityReservationPreference != "":
		return &types.CapacityReservationSpecification{
			CapacityReservationPreference: types.CapacityReservationPreference(c.CapacityReservationPreference)}
	}
	return nil
}

func blockDeviceMappings(devs []BlockDevice) []types.BlockDeviceMapping {
	out := make([]types.BlockDeviceMapping, 0, len(devs))
	for _, d := range devs {
		m := types.BlockDeviceMapping{DeviceName: aws.String(d.DeviceName)}
		switch {
		case d.NoDevice:
			m.NoDevice = aws.String("")
		case d.VirtualName != "":
			m.VirtualName = aws.String(d.VirtualName)
		default:
			m.Ebs = &types.EbsBlockDevice{
				DeleteOnTermination: aws.Bool(d.DeleteOnTermination),
				VolumeType:          types.VolumeType(d.VolumeType),
				Iops:                d.IOPS, Throughput: d.Throughput, Encrypted: d.Encrypted,
				SnapshotId: optString(d.SnapshotID),
				KmsKeyId:   optString(d.KMSKeyID),
			}
			if d.VolumeSize > 0 {
				m.Ebs.VolumeSize = aws.Int32(d.VolumeSize)
			}
		}
		out = append(out, m)
	}
	return out
}

// launchTemplateData is a spot fleet's launch template: the RunInstances
// request's settings that a launch template carries. The fleet's request
// (createFleetInput) carries the instance types, the subnet and the price.
func launchTemplateData(in *ec2.RunInstancesInput) *types.RequestLaunchTemplateData {
	data := &types.RequestLaunchTemplateData{
		ImageId:          in.ImageId,
		KeyName:          in.KeyName,
		UserData:         in.UserData,
		EbsOptimized:     in.EbsOptimized,
		SecurityGroupIds: in.SecurityGroupIds,
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
	return data
}

// createLaunchTemplateInput makes the spot fleet's launch template.
func createLaunchTemplateInput(name, token string, data *types.RequestLaunchTemplateData, own map[string]string) *ec2.CreateLaunchTemplateInput {
	return &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: data,
		ClientToken:        aws.String(token + "-lt"),
		TagSpecifications:  []types.TagSpecification{tagSpecOf(types.ResourceTypeLaunchTemplate, own, nil)},
	}
}

// createFleetInput is the instant fleet that launches one spot instance
// from launch template ltID: spot_instance_types (else instance_type) in
// order of priority, spot_price, spot_allocation_strategy, fleet_tags; in
// subnetID, else in zone az (availability_zone without a subnet).
func createFleetInput(c *Config, ltID, token, subnetID, az string, own, fleetTags map[string]string) *ec2.CreateFleetInput {
	instanceTypes := c.SpotInstanceTypes
	if len(instanceTypes) == 0 {
		instanceTypes = []string{c.InstanceType}
	}
	var overrides []types.FleetLaunchTemplateOverridesRequest
	for i, t := range instanceTypes {
		o := types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(t), Priority: aws.Float64(float64(i)), SubnetId: optString(subnetID)}
		if subnetID == "" {
			o.AvailabilityZone = optString(az)
		}
		if c.SpotPrice != "" && c.SpotPrice != "auto" {
			o.MaxPrice = aws.String(c.SpotPrice)
		}
		overrides = append(overrides, o)
	}
	strategy := types.SpotAllocationStrategy(c.SpotAllocationStrategy)
	if strategy == "" {
		strategy = types.SpotAllocationStrategyPriceCapacityOptimized
	}
	return &ec2.CreateFleetInput{
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
		TagSpecifications: []types.TagSpecification{tagSpecOf(types.ResourceTypeFleet, own, fleetTags)},
	}
}
