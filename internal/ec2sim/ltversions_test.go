package ec2sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/internal/ec2sim"
)

// TestLaunchTemplateVersions: versions, $Default/$Latest, the default
// RunInstances launches, and describing every template's $Default and
// $Latest without naming one.
func TestLaunchTemplateVersions(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	ec := client(srv, "us-east-1")
	ctx := context.Background()
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
	if err != nil || len(imgs.Images) < 2 {
		t.Fatalf("catalogue: %v %d", err, len(imgs.Images))
	}
	a, b := aws.ToString(imgs.Images[0].ImageId), aws.ToString(imgs.Images[1].ImageId)
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(a), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := lt.LaunchTemplate.LaunchTemplateId
	v2, err := ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: id, SourceVersion: aws.String("1"), VersionDescription: aws.String("new image"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(b)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber); n != 2 || aws.ToBool(v2.LaunchTemplateVersion.DefaultVersion) {
		t.Fatalf("version %d default %v, want 2 and not the default", n, aws.ToBool(v2.LaunchTemplateVersion.DefaultVersion))
	}
	if got := v2.LaunchTemplateVersion.LaunchTemplateData.InstanceType; got != types.InstanceTypeT3Micro {
		t.Errorf("SourceVersion's instance type not inherited: %q", got)
	}
	versions := func(in *ec2.DescribeLaunchTemplateVersionsInput) map[int64]string {
		t.Helper()
		out, err := ec.DescribeLaunchTemplateVersions(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		m := map[int64]string{}
		for _, v := range out.LaunchTemplateVersions {
			m[aws.ToInt64(v.VersionNumber)] = aws.ToString(v.LaunchTemplateData.ImageId)
		}
		return m
	}
	if got := versions(&ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{"$Default", "$Latest"}}); len(got) != 2 || got[1] != a || got[2] != b {
		t.Errorf("$Default,$Latest of every template = %v", got)
	}
	if got := versions(&ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: id, Versions: []string{"$Default"}}); len(got) != 1 || got[1] != a {
		t.Errorf("$Default = %v", got)
	}
	if _, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{"2"}}); apiCode(err) != "InvalidParameterCombination" {
		t.Errorf("a numbered version without a template: %v", err)
	}
	if _, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: id, Versions: []string{"7"}}); apiCode(err) != "InvalidLaunchTemplateId.VersionNotFound" {
		t.Errorf("missing version: %v", err)
	}
	mod, err := ec.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: id, DefaultVersion: aws.String("2")})
	if err != nil {
		t.Fatal(err)
	}
	if d, l := aws.ToInt64(mod.LaunchTemplate.DefaultVersionNumber), aws.ToInt64(mod.LaunchTemplate.LatestVersionNumber); d != 2 || l != 2 {
		t.Errorf("default %d latest %d, want 2 2", d, l)
	}
	run, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: id}})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(run.Instances[0].ImageId); got != b {
		t.Errorf("RunInstances launched %s, want the default version's %s", got, b)
	}
	ltTags := map[string]string{}
	for _, tg := range run.Instances[0].Tags {
		ltTags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if ltTags["aws:ec2launchtemplate:id"] != aws.ToString(id) || ltTags["aws:ec2launchtemplate:version"] != "2" || ltTags["aws:ec2:fleet-id"] != "" {
		t.Errorf("instance tags %v, want EC2's launch template tags (%s version 2) and no fleet", ltTags, aws.ToString(id))
	}
	if _, err := ec.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(run.Instances[0].InstanceId)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: id}); err != nil {
		t.Fatal(err)
	}
}

// TestImageDeprecationTime: EC2 rounds DeprecateAt to the minute and
// refuses a time in the past; the owner still sees a deprecated image.
func TestImageDeprecationTime(t *testing.T) {
	srv := startSim(t, ec2sim.Options{NoSSH: true, Latency: ec2sim.ZeroLatency()})
	ec := client(srv, "us-east-1")
	ctx := context.Background()
	imgs, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
	if err != nil {
		t.Fatal(err)
	}
	root := imgs.Images[0].BlockDeviceMappings[0]
	reg, err := ec.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("mine"), RootDeviceName: root.DeviceName,
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: root.DeviceName, Ebs: &types.EbsBlockDevice{SnapshotId: root.Ebs.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: reg.ImageId, DeprecateAt: aws.Time(time.Now().Add(-time.Hour))}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("a DeprecateAt in the past: %v", err)
	}
	at := time.Now().Add(2 * time.Minute).Truncate(time.Minute).Add(40 * time.Second)
	if _, err := ec.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: reg.ImageId, DeprecateAt: aws.Time(at)}); err != nil {
		t.Fatal(err)
	}
	out, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("own images: %v %d", err, len(out.Images))
	}
	if got, want := aws.ToString(out.Images[0].DeprecationTime), at.Round(time.Minute).UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
		t.Errorf("DeprecationTime %s, want %s", got, want)
	}
}
