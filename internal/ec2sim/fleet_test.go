package ec2sim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
	"github.com/amibake/amibake/internal/ec2sim/simtest"
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

// instanceCount is how many instances the simulator holds in us-east-1.
func instanceCount(f *fixture) int {
	return len(f.srv.Inventory().Regions["us-east-1"].Instances)
}

// TestFleetLaunchTemplateVersion: an instant fleet launches from the
// version its LaunchTemplateSpecification names (a number, $Latest or
// $Default), answers the number it used, and refuses a version the
// template does not have, or none, without launching anything.
func TestFleetLaunchTemplateVersion(t *testing.T) {
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
	// Version n launches its own instance type; 2 is the default, 3 the latest.
	lt, err := f.c.CreateLaunchTemplate(f.ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("versions"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(f.ami), InstanceType: types.InstanceTypeT3Nano}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	for _, it := range []types.InstanceType{types.InstanceTypeT3Micro, types.InstanceTypeT3Small} {
		if _, err := f.c.CreateLaunchTemplateVersion(f.ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: aws.String(id),
			SourceVersion: aws.String("1"), LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: it}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.c.ModifyLaunchTemplate(f.ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		byName   bool
		version  *string
		wantType types.InstanceType
		wantVer  string
		wantErr  string
	}{
		{name: "1", version: aws.String("1"), wantType: types.InstanceTypeT3Nano, wantVer: "1"},
		{name: "3", version: aws.String("3"), wantType: types.InstanceTypeT3Small, wantVer: "3"},
		{name: "$Latest", version: aws.String("$Latest"), wantType: types.InstanceTypeT3Small, wantVer: "3"},
		{name: "$Default", version: aws.String("$Default"), wantType: types.InstanceTypeT3Micro, wantVer: "2"},
		{name: "$Default by name", byName: true, version: aws.String("$Default"), wantType: types.InstanceTypeT3Micro, wantVer: "2"},
		{name: "missing version", version: aws.String("7"), wantErr: "InvalidLaunchTemplateId.VersionNotFound"},
		{name: "not a version", version: aws.String("$Newest"), wantErr: "InvalidLaunchTemplateId.VersionNotFound"},
		// "You must specify a value, otherwise the request fails" (EC2 API
		// Reference, FleetLaunchTemplateSpecificationRequest).
		{name: "no version", wantErr: "MissingParameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := fleetInput(id, "")
			in.LaunchTemplateConfigs[0].Overrides = nil
			in.LaunchTemplateConfigs[0].LaunchTemplateSpecification.Version = tt.version
			if tt.byName {
				in.LaunchTemplateConfigs[0].LaunchTemplateSpecification = &types.FleetLaunchTemplateSpecificationRequest{
					LaunchTemplateName: aws.String("versions"), Version: tt.version}
			}
			before := instanceCount(f)
			out, err := f.c.CreateFleet(f.ctx, in)
			if tt.wantErr != "" {
				if apiCode(err) != tt.wantErr {
					t.Fatalf("CreateFleet: %v, want %s", err, tt.wantErr)
				}
				if n := instanceCount(f); n != before {
					t.Errorf("a refused fleet launched %d instances", n-before)
				}
				return
			}
			if err != nil || len(out.Errors) != 0 || len(out.Instances) != 1 || len(out.Instances[0].InstanceIds) != 1 {
				t.Fatalf("CreateFleet: %v, errors %+v, instances %+v", err, out.Errors, out.Instances)
			}
			fi := out.Instances[0]
			spec := fi.LaunchTemplateAndOverrides.LaunchTemplateSpecification
			if aws.ToString(spec.LaunchTemplateId) != id || aws.ToString(spec.Version) != tt.wantVer || fi.InstanceType != tt.wantType {
				t.Errorf("answer: template %s version %s type %s, want %s version %s type %s",
					aws.ToString(spec.LaunchTemplateId), aws.ToString(spec.Version), fi.InstanceType, id, tt.wantVer, tt.wantType)
			}
			d, err := f.c.DescribeInstances(f.ctx, &ec2.DescribeInstancesInput{InstanceIds: fi.InstanceIds})
			if err != nil {
				t.Fatal(err)
			}
			in0 := d.Reservations[0].Instances[0]
			tags := map[string]string{}
			for _, tg := range in0.Tags {
				tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			if in0.InstanceType != tt.wantType || tags["aws:ec2launchtemplate:version"] != tt.wantVer {
				t.Errorf("instance: type %s, aws:ec2launchtemplate:version %q; want %s, %q", in0.InstanceType, tags["aws:ec2launchtemplate:version"], tt.wantType, tt.wantVer)
			}
		})
	}
	// A repeated ClientToken answers the first fleet, the version it used included.
	in := fleetInput(id, "tok-v1")
	in.LaunchTemplateConfigs[0].LaunchTemplateSpecification.Version = aws.String("$Default")
	first, err := f.c.CreateFleet(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.c.CreateFleet(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []*ec2.CreateFleetOutput{first, again} {
		if len(out.Instances) != 1 || aws.ToString(out.Instances[0].LaunchTemplateAndOverrides.LaunchTemplateSpecification.Version) != "2" ||
			aws.ToString(out.Instances[0].LaunchTemplateAndOverrides.LaunchTemplateSpecification.LaunchTemplateId) != id {
			t.Errorf("fleet with token tok-v1: %+v, want %s version 2", out.Instances, id)
		}
	}
}

// TestFleetLaunchTemplateNotYetVisible: a fleet that names a template
// still within its eventual-consistency window launches nothing; the call
// succeeds, and the answer's errorSet holds the template's NotFound (by
// id or by name, as the request named it), until the window ends. A
// template that never existed is the call's own error.
func TestFleetLaunchTemplateNotYetVisible(t *testing.T) {
	const window = 1500 * time.Millisecond
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.Consistency{Name: "lt",
		Lags: []ec2sim.Lag{{Kind: "launch-template", Calls: ec2sim.AllCalls, Probability: 1, Min: window, Max: window}}}})
	spec := func(id, name string) *types.FleetLaunchTemplateSpecificationRequest {
		s := &types.FleetLaunchTemplateSpecificationRequest{Version: aws.String("$Latest")}
		if name != "" {
			s.LaunchTemplateName = aws.String(name)
		} else {
			s.LaunchTemplateId = aws.String(id)
		}
		return s
	}
	for _, tt := range []struct {
		name     string
		byName   bool
		never    bool // the template was never created
		wantCode string
	}{
		{name: "by id", wantCode: "InvalidLaunchTemplateId.NotFound"},
		{name: "by name", byName: true, wantCode: "InvalidLaunchTemplateName.NotFoundException"},
		{name: "no such id", never: true, wantCode: "InvalidLaunchTemplateId.NotFound"},
		{name: "no such name", byName: true, never: true, wantCode: "InvalidLaunchTemplateName.NotFoundException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ltName := "lag-" + strings.ReplaceAll(tt.name, " ", "-")
			id := "lt-0123456789abcdef0"
			start := time.Now()
			if !tt.never {
				id = createTemplateNamed(t, f, ltName)
			}
			in := fleetInput(id, "")
			in.LaunchTemplateConfigs[0].LaunchTemplateSpecification = spec(id, map[bool]string{true: ltName}[tt.byName])
			before := instanceCount(f)
			out, err := f.c.CreateFleet(f.ctx, in)
			if tt.never {
				if apiCode(err) != tt.wantCode {
					t.Fatalf("CreateFleet for a template that never existed: %v, want the call's error %s", err, tt.wantCode)
				}
				return
			}
			if time.Since(start) >= window {
				t.Fatalf("the first CreateFleet came %s after the template, past its %s window", time.Since(start), window)
			}
			if err != nil {
				t.Fatalf("CreateFleet: %v, want an answer with the NotFound in its errors", err)
			}
			if aws.ToString(out.FleetId) == "" || len(out.Instances) != 0 || len(out.Errors) != 1 {
				t.Fatalf("answer: fleet %q, instances %+v, errors %+v; want a fleet id, no instances, one error", aws.ToString(out.FleetId), out.Instances, out.Errors)
			}
			e := out.Errors[0]
			got := e.LaunchTemplateAndOverrides.LaunchTemplateSpecification
			wantID, wantName := id, ""
			if tt.byName {
				wantID, wantName = "", ltName
			}
			if aws.ToString(e.ErrorCode) != tt.wantCode || e.Lifecycle != types.InstanceLifecycleSpot ||
				aws.ToString(got.LaunchTemplateId) != wantID || aws.ToString(got.LaunchTemplateName) != wantName || aws.ToString(got.Version) != "$Latest" ||
				e.LaunchTemplateAndOverrides.Overrides.InstanceType != types.InstanceTypeT3Small {
				t.Errorf("error %s (%s) for %+v %+v, want %s for the template as requested", aws.ToString(e.ErrorCode), e.Lifecycle, got, e.LaunchTemplateAndOverrides.Overrides, tt.wantCode)
			}
			if n := instanceCount(f); n != before {
				t.Errorf("a fleet that could not see its template launched %d instances", n-before)
			}
			// Describe calls do not know it yet either.
			_, derr := f.c.DescribeLaunchTemplates(f.ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}})
			all, lerr := f.c.DescribeLaunchTemplates(f.ctx, &ec2.DescribeLaunchTemplatesInput{})
			if time.Since(start) < window {
				if apiCode(derr) != "InvalidLaunchTemplateId.NotFound" {
					t.Errorf("DescribeLaunchTemplates by id within the window: %v, want InvalidLaunchTemplateId.NotFound", derr)
				}
				if lerr != nil {
					t.Fatal(lerr)
				}
				for _, lt := range all.LaunchTemplates {
					if aws.ToString(lt.LaunchTemplateId) == id {
						t.Errorf("listing within the window shows %s, want it left out", id)
					}
				}
			}
			// Retried as a client does, it launches once the window is over.
			var launched *ec2.CreateFleetOutput
			simtest.Eventually(f.ctx, t, "the fleet to launch from "+id, func(ctx context.Context) (bool, error) {
				out, err := f.c.CreateFleet(ctx, in)
				if err != nil {
					return false, err
				}
				for _, e := range out.Errors {
					if !strings.HasSuffix(aws.ToString(e.ErrorCode), "NotFound") && !strings.HasSuffix(aws.ToString(e.ErrorCode), "NotFoundException") {
						return false, fmt.Errorf("fleet error %s: %s", aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
					}
				}
				launched = out
				return len(out.Instances) == 1, nil
			})
			if d := time.Since(start); d < window {
				t.Errorf("the fleet launched %s after the template was created, within its %s window", d, window)
			}
			if got := aws.ToString(launched.Instances[0].LaunchTemplateAndOverrides.LaunchTemplateSpecification.LaunchTemplateId); got != id {
				t.Errorf("launched from %s, want %s", got, id)
			}
		})
	}
}

func createTemplateNamed(t *testing.T, f *fixture, name string) string {
	t.Helper()
	out, err := f.c.CreateLaunchTemplate(f.ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(f.ami), InstanceType: types.InstanceTypeT3Micro}})
	if err != nil {
		t.Fatalf("create launch template %s: %v", name, err)
	}
	return aws.ToString(out.LaunchTemplate.LaunchTemplateId)
}

// Every other launch template call, like those naming a security group or
// key pair, answers NotFound for a template still within its window and
// works once it is over; version listings leave it out meanwhile.
func TestLaunchTemplateCallsNotYetVisible(t *testing.T) {
	const window = time.Second
	f := newFixture(t, ec2sim.Options{Latency: ec2sim.ZeroLatency(), Consistency: ec2sim.Consistency{Name: "lt",
		Lags: []ec2sim.Lag{{Kind: "launch-template", Calls: ec2sim.AllCalls, Probability: 1, Min: window, Max: window}}}})
	for _, tt := range []struct {
		name string
		call func(ctx context.Context, id string) error
	}{
		{"CreateLaunchTemplateVersion", func(ctx context.Context, id string) error {
			_, err := f.c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: aws.String(id),
				LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Small}})
			return err
		}},
		{"ModifyLaunchTemplate", func(ctx context.Context, id string) error {
			_, err := f.c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("1")})
			return err
		}},
		{"DescribeLaunchTemplateVersions", func(ctx context.Context, id string) error {
			_, err := f.c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id)})
			return err
		}},
		{"RunInstances", func(ctx context.Context, id string) error {
			out, err := f.c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
				LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(id), Version: aws.String("$Latest")}})
			if err == nil {
				_, err = f.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(out.Instances[0].InstanceId)}}, simtest.RetryNotFound)
			}
			return err
		}},
		{"DeleteLaunchTemplate", func(ctx context.Context, id string) error {
			_, err := f.c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			id := createTemplateNamed(t, f, "lagged-"+tt.name)
			err := tt.call(f.ctx, id)
			if time.Since(start) >= window {
				t.Fatalf("the call came %s after the template, past its %s window", time.Since(start), window)
			}
			if apiCode(err) != "InvalidLaunchTemplateId.NotFound" {
				t.Errorf("%s within the window: %v, want InvalidLaunchTemplateId.NotFound", tt.name, err)
			}
			if tt.name == "DescribeLaunchTemplateVersions" {
				all, err := f.c.DescribeLaunchTemplateVersions(f.ctx, &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{"$Latest"}})
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range all.LaunchTemplateVersions {
					if aws.ToString(v.LaunchTemplateId) == id && time.Since(start) < window {
						t.Errorf("listing within the window shows %s", id)
					}
				}
			}
			simtest.Eventually(f.ctx, t, tt.name+" on "+id, func(ctx context.Context) (bool, error) {
				err := tt.call(ctx, id)
				if apiCode(err) == "InvalidLaunchTemplateId.NotFound" {
					return false, nil
				}
				return err == nil, err
			})
		})
	}
}
