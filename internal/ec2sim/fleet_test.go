package ec2sim_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

func createTemplate(t *testing.T, f *fixture) string {
	t.Helper()
	out, err := f.c.CreateLaunchTemplate(f.ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("packer-spot"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId:      aws.String(f.ami),
			InstanceType: types.InstanceTypeT3Micro,
			InstanceMarketOptions: &types.LaunchTemplateInstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
				SpotOptions: &types.LaunchTemplateSpotMarketOptionsRequest{MaxPrice: aws.String("0.05")}},
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("Packer Builder")}}}},
		},
	})
	if err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	return *out.LaunchTemplate.LaunchTemplateId
}

func fleetInput(lt, token string) *ec2.CreateFleetInput {
	in := &ec2.CreateFleetInput{
		Type: types.FleetTypeInstant,
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(lt), Version: aws.String("1")},
			Overrides:                   []types.FleetLaunchTemplateOverridesRequest{{InstanceType: types.InstanceTypeT3Small}},
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: types.DefaultTargetCapacityTypeSpot},
		TagSpecifications:           []types.TagSpecification{tagSpec(types.ResourceTypeInstance, "fleet-tag", "yes")},
	}
	if token != "" {
		in.ClientToken = aws.String(token)
	}
	return in
}

func TestSpotFleet(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	prices, err := f.c.DescribeSpotPriceHistory(f.ctx, &ec2.DescribeSpotPriceHistoryInput{
		InstanceTypes: []types.InstanceType{types.InstanceTypeT3Small}, ProductDescriptions: []string{"Linux/UNIX"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(prices.SpotPriceHistory) != 3 || aws.ToString(prices.SpotPriceHistory[0].SpotPrice) == "" {
		t.Fatalf("spot prices: %+v", prices.SpotPriceHistory)
	}
	lt := createTemplate(t, f)
	out, err := f.c.CreateFleet(f.ctx, fleetInput(lt, "tok-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) != 0 || len(out.Instances) != 1 || len(out.Instances[0].InstanceIds) != 1 {
		t.Fatalf("fleet: errors %+v instances %+v", out.Errors, out.Instances)
	}
	id := out.Instances[0].InstanceIds[0]
	again, err := f.c.CreateFleet(f.ctx, fleetInput(lt, "tok-1"))
	if err != nil {
		t.Fatal(err)
	}
	if *again.FleetId != *out.FleetId || again.Instances[0].InstanceIds[0] != id {
		t.Fatalf("the same client token launched again: %v vs %v", again.Instances, out.Instances)
	}
	d, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := d.Reservations[0].Instances[0]
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[*tg.Key] = *tg.Value
	}
	if in.InstanceLifecycle != types.InstanceLifecycleTypeSpot || in.InstanceType != types.InstanceTypeT3Small || tags["Name"] != "Packer Builder" || tags["fleet-tag"] != "yes" {
		t.Fatalf("fleet instance: lifecycle %s type %s tags %v", in.InstanceLifecycle, in.InstanceType, tags)
	}
	// EC2's own tags: the launch template and version, and the fleet.
	if tags["aws:ec2launchtemplate:id"] != lt || tags["aws:ec2launchtemplate:version"] != "1" || tags["aws:ec2:fleet-id"] != *out.FleetId {
		t.Errorf("fleet instance tags %v, want the launch template %s v1 and fleet %s", tags, lt, *out.FleetId)
	}
	byLT, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:aws:ec2launchtemplate:id"), Values: []string{lt}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(byLT.Reservations) != 1 || *byLT.Reservations[0].Instances[0].InstanceId != id {
		t.Errorf("filter tag:aws:ec2launchtemplate:id=%s found %+v", lt, byLT.Reservations)
	}
	if _, err := f.c.StopInstances(f.ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); apiCode(err) != "UnsupportedOperation" {
		t.Errorf("stopping a one-time spot instance: err = %v", err)
	}
	if _, err := f.c.TerminateInstances(f.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if f.srv.Inventory().Empty() {
		t.Fatal("a leftover launch template must make the inventory non-empty")
	}
	if _, err := f.c.DeleteLaunchTemplate(f.ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(lt)}); err != nil {
		t.Fatal(err)
	}
	if !f.srv.Inventory().Empty() {
		t.Fatalf("leftovers: %+v", f.srv.Inventory().Leftovers())
	}
}

func TestClientTokenIdempotency(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	first := f.run(t, func(in *ec2.RunInstancesInput) { in.ClientToken = aws.String("run-1") })
	second := f.run(t, func(in *ec2.RunInstancesInput) { in.ClientToken = aws.String("run-1") })
	if first != second {
		t.Fatalf("RunInstances with one token launched %s and %s", first, second)
	}
	if n := len(f.srv.Inventory().Regions["us-east-1"].Instances); n != 1 {
		t.Fatalf("%d instances, want 1", n)
	}
	ami := f.createImage(t, first, "token-image")
	west := client(f.srv, "us-west-2")
	in := &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(ami), Name: aws.String("copy"), ClientToken: aws.String("copy-1"), Encrypted: aws.Bool(true)}
	a, err := west.CopyImage(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := west.CopyImage(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if *a.ImageId != *b.ImageId {
		t.Fatalf("CopyImage with one token made %s and %s", *a.ImageId, *b.ImageId)
	}
	im, err := west.DescribeImages(f.ctx, &ec2.DescribeImagesInput{ImageIds: []string{*a.ImageId}})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(im.Images[0].BlockDeviceMappings[0].Ebs.Encrypted) || aws.ToString(im.Images[0].SourceImageId) != ami {
		t.Fatalf("copied image: %+v", im.Images[0])
	}
}
