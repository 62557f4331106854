package amazonebs

import (
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	gossh "golang.org/x/crypto/ssh"
)

// The requests of the steps around the instance and the AMI, built by pure
// functions of the configuration and of what the earlier steps produced.

// stopInstancesInput stops the source instance.
func stopInstancesInput(id string) *ec2.StopInstancesInput {
	return &ec2.StopInstancesInput{InstanceIds: []string{id}}
}

// instanceAttributeInputs are ena_support and sriov_support, set on the
// stopped instance so that the AMI inherits them.
func instanceAttributeInputs(c *Config, id string) []*ec2.ModifyInstanceAttributeInput {
	var out []*ec2.ModifyInstanceAttributeInput
	if c.ENASupport != nil {
		out = append(out, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), EnaSupport: &types.AttributeBooleanValue{Value: c.ENASupport}})
	}
	if c.SRIOVSupport {
		out = append(out, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), SriovNetSupport: &types.AttributeValue{Value: aws.String("simple")}})
	}
	return out
}

// createImageInput makes the AMI named name from the stopped instance.
func createImageInput(c *Config, instanceID, name, desc string, specs []types.TagSpecification) *ec2.CreateImageInput {
	in := &ec2.CreateImageInput{
		InstanceId:          aws.String(instanceID),
		Name:                aws.String(name),
		Description:         optString(desc),
		BlockDeviceMappings: blockDeviceMappings(c.AMIBlockDevices),
		TagSpecifications:   specs,
	}
	if c.DisableStopInstance {
		// The instance was left running: no reboot, as Packer.
		in.NoReboot = aws.Bool(true)
	}
	return in
}

// imdsSupportInput is imds_support, set after CreateImage (nil without it).
func imdsSupportInput(c *Config, id string) *ec2.ModifyImageAttributeInput {
	if c.IMDSSupport == "" {
		return nil
	}
	return &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), ImdsSupport: &types.AttributeValue{Value: aws.String(c.IMDSSupport)}}
}

// imageCopy is one CopyImage: the AMI id in its region, and the copy's
// name, description and ClientToken.
type imageCopy struct {
	SourceID, SourceRegion, Region string
	Name, Description, Token       string
	Own                            map[string]string
}

// copyImageInput copies an AMI, taking its tags (CopyImageTags, as
// Packer) with amibake's own on the copy from its creation. A copy in the
// build region is encrypt_boot's encrypted copy, with kms_key_id; a copy
// to another region is encrypted with region_kms_key_ids' key for it, or
// the default key under encrypt_boot.
func copyImageInput(c *Config, cp imageCopy) *ec2.CopyImageInput {
	in := &ec2.CopyImageInput{
		SourceImageId: aws.String(cp.SourceID), SourceRegion: aws.String(cp.SourceRegion),
		Name: aws.String(cp.Name), Description: optString(cp.Description), ClientToken: aws.String(cp.Token),
		CopyImageTags: aws.Bool(true), TagSpecifications: copyTagSpecs(cp.Own),
	}
	encrypt := c.EncryptBoot != nil && *c.EncryptBoot
	key := c.RegionKMSKeyIDs[cp.Region]
	if cp.Region == cp.SourceRegion {
		encrypt = true
		if c.KMSKeyID != "" {
			key = c.KMSKeyID
		}
	}
	if key != "" {
		encrypt = true
		in.KmsKeyId = aws.String(key)
	}
	if encrypt {
		in.Encrypted = aws.Bool(true)
	}
	return in
}

// createSnapshotInput snapshots one volume of the stopped instance
// (ami_from_snapshot, amibake's own).
func createSnapshotInput(vol, device, instanceID, amiName string, spec types.TagSpecification) *ec2.CreateSnapshotInput {
	return &ec2.CreateSnapshotInput{
		VolumeId:          aws.String(vol),
		Description:       aws.String(fmt.Sprintf("%s of %s for AMI %s", device, instanceID, amiName)),
		TagSpecifications: []types.TagSpecification{spec},
	}
}

// deviceSnapshot is a snapshot of the volume at device.
type deviceSnapshot struct{ Device, SnapshotID string }

// registerImageInput registers the AMI from the instance's snapshots, with
// the source AMI's architecture and boot mode and the instance's root
// device; ena_support (else the source's), sriov_support and imds_support.
func registerImageInput(c *Config, src *types.Image, rootDevice *string, name, desc string, spec types.TagSpecification, snaps []deviceSnapshot) *ec2.RegisterImageInput {
	reg := &ec2.RegisterImageInput{
		Name:               aws.String(name),
		Description:        optString(desc),
		Architecture:       src.Architecture,
		BootMode:           src.BootMode,
		RootDeviceName:     rootDevice,
		VirtualizationType: aws.String(c.AMIVirtType),
		EnaSupport:         c.ENASupport,
		ImdsSupport:        types.ImdsSupportValues(c.IMDSSupport),
		TagSpecifications:  []types.TagSpecification{spec},
	}
	if reg.EnaSupport == nil {
		reg.EnaSupport = src.EnaSupport
	}
	if c.SRIOVSupport {
		reg.SriovNetSupport = aws.String("simple")
	}
	for _, sn := range snaps {
		reg.BlockDeviceMappings = append(reg.BlockDeviceMappings, types.BlockDeviceMapping{
			DeviceName: aws.String(sn.Device),
			Ebs:        &types.EbsBlockDevice{SnapshotId: aws.String(sn.SnapshotID), DeleteOnTermination: aws.Bool(true)},
		})
	}
	reg.BlockDeviceMappings = append(reg.BlockDeviceMappings, blockDeviceMappings(c.AMIBlockDevices)...)
	return reg
}

// launchPermissionInput shares AMI id with ami_users, ami_groups,
// ami_org_arns and ami_ou_arns (nil when none is set).
func launchPermissionInput(c *Config, id string) *ec2.ModifyImageAttributeInput {
	if len(c.AMIUsers)+len(c.AMIGroups)+len(c.AMIOrgARNs)+len(c.AMIOUARNs) == 0 {
		return nil
	}
	perm := &types.LaunchPermissionModifications{}
	for _, u := range c.AMIUsers {
		perm.Add = append(perm.Add, types.LaunchPermission{UserId: aws.String(u)})
	}
	for _, g := range c.AMIGroups {
		perm.Add = append(perm.Add, types.LaunchPermission{Group: types.PermissionGroup(g)})
	}
	for _, a := range c.AMIOrgARNs {
		perm.Add = append(perm.Add, types.LaunchPermission{OrganizationArn: aws.String(a)})
	}
	for _, a := range c.AMIOUARNs {
		perm.Add = append(perm.Add, types.LaunchPermission{OrganizationalUnitArn: aws.String(a)})
	}
	return &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: perm}
}

// createVolumePermissionInput shares snapshot id with snapshot_users and
// snapshot_groups (nil when neither is set).
func createVolumePermissionInput(c *Config, id string) *ec2.ModifySnapshotAttributeInput {
	if len(c.SnapshotUsers)+len(c.SnapshotGroups) == 0 {
		return nil
	}
	mods := &types.CreateVolumePermissionModifications{}
	for _, u := range c.SnapshotUsers {
		mods.Add = append(mods.Add, types.CreateVolumePermission{UserId: aws.String(u)})
	}
	for _, g := range c.SnapshotGroups {
		mods.Add = append(mods.Add, types.CreateVolumePermission{Group: types.PermissionGroup(g)})
	}
	return &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(id), CreateVolumePermission: mods}
}

// deprecationInput is deprecate_at (nil without it); NewConfig checked
// the time.
func deprecationInput(c *Config, id string) *ec2.EnableImageDeprecationInput {
	if c.Parsed.DeprecateAt == "" {
		return nil
	}
	t, _ := time.Parse(time.RFC3339, c.Parsed.DeprecateAt)
	return &ec2.EnableImageDeprecationInput{ImageId: aws.String(id), DeprecateAt: aws.Time(t)}
}

// importKeyPairInput imports the temporary key pair's public key (the
// private key never leaves this machine).
func importKeyPairInput(name string, pub gossh.PublicKey, spec types.TagSpecification) *ec2.ImportKeyPairInput {
	return &ec2.ImportKeyPairInput{
		KeyName:           aws.String(name),
		PublicKeyMaterial: gossh.MarshalAuthorizedKey(pub),
		TagSpecifications: []types.TagSpecification{spec},
	}
}

// createSecurityGroupInput makes the temporary security group, in the
// build's VPC when one was resolved (else EC2's default VPC).
func createSecurityGroupInput(name, buildName, vpcID string, spec types.TagSpecification) *ec2.CreateSecurityGroupInput {
	return &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(name),
		Description:       aws.String("Temporary group for amibake build " + buildName),
		VpcId:             optString(vpcID),
		TagSpecifications: []types.TagSpecification{spec},
	}
}

// authorizeIngressInput opens TCP port to cidrs (IPv4 and IPv6).
func authorizeIngressInput(groupID string, port int, cidrs []string) *ec2.AuthorizeSecurityGroupIngressInput {
	perm := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(int32(port)), ToPort: aws.Int32(int32(port))}
	for _, cidr := range cidrs {
		if strings.Contains(cidr, ":") {
			perm.Ipv6Ranges = append(perm.Ipv6Ranges, types.Ipv6Range{CidrIpv6: aws.String(cidr)})
		} else {
			perm.IpRanges = append(perm.IpRanges, types.IpRange{CidrIp: aws.String(cidr)})
		}
	}
	return &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(groupID), IpPermissions: []types.IpPermission{perm}}
}

// securityGroupFilterInput finds security_group_filter's groups, in the
// build's VPC when one was resolved.
func securityGroupFilterInput(c *Config, vpcID string) *ec2.DescribeSecurityGroupsInput {
	in := &ec2.DescribeSecurityGroupsInput{Filters: ec2Filters(c.Parsed.SGFilters)}
	if vpcID != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpcID}})
	}
	return in
}

// describeSubnetsInput finds the build's subnet: subnet_id, else
// subnet_filter within the VPC and zone already chosen.
func describeSubnetsInput(c *Config, subnetID, vpcID, az string) *ec2.DescribeSubnetsInput {
	if subnetID != "" {
		return &ec2.DescribeSubnetsInput{SubnetIds: []string{subnetID}}
	}
	in := &ec2.DescribeSubnetsInput{Filters: ec2Filters(c.Parsed.SubnetFilters)}
	if vpcID != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpcID}})
	}
	if az != "" {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("availability-zone"), Values: []string{az}})
	}
	return in
}
