package plan

import (
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/artifact"
	"github.com/amibake/amibake/internal/reuse"
	"github.com/amibake/amibake/internal/template"
)

// BuildTime is the build-time template data of the resolved source AMI,
// for rendering ami_name and tags as the builder does.
func (d *Decision) BuildTime() template.BuildTimeData {
	return amazonebs.BuildTimeData(d.BuildRegion, d.SourceImage)
}

// CopyOptions are reuse.CopyOptions for copying a found AMI to the regions
// that lack one, with the build's AMI tags (rendered), encryption and
// per-region KMS keys. The copies keep the found AMI's name.
func (d *Decision) CopyOptions(c *amazonebs.Config) reuse.CopyOptions {
	bt := d.BuildTime()
	tags := map[string]string{}
	for k, v := range c.Parsed.AMITags {
		rk, err1 := template.RenderBuildTime(k, bt)
		rv, err2 := template.RenderBuildTime(v, bt)
		if err1 != nil || err2 != nil {
			rk, rv = k, v
		}
		tags[rk] = rv
	}
	return reuse.CopyOptions{
		Tags:      tags,
		Encrypted: c.EncryptBoot != nil && *c.EncryptBoot,
		KMSKeyIDs: c.RegionKMSKeyIDs,
	}
}

// Artifact is the build's artifact when it reuses AMIs instead of baking:
// Reused is set (the manifest records "reused": true) and Data carries the
// source AMI and the input digest as a baked artifact would.
func (d *Decision) Artifact(buildName string, amis map[string]string) *artifact.Artifact {
	return &artifact.Artifact{
		BuildName: buildName, BuilderType: "amazon-ebs", AMIs: maps.Clone(amis), Reused: true,
		Data: map[string]string{
			"SourceAMI": aws.ToString(d.SourceImage.ImageId), "SourceAMIName": aws.ToString(d.SourceImage.Name),
			"BuildRegion": d.BuildRegion, "InputDigest": d.Digest.Sum,
		},
	}
}
