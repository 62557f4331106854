package ec2sim

import (
	"sort"
	"strconv"
	"time"
)

// Launch template versions, as the EC2 API reference describes them:
// "Launch templates are immutable; after you create a launch template, you
// can't modify it. Instead, you can create a new version" (User Guide,
// Modify a launch template). CreateLaunchTemplate makes version 1, the
// default; CreateLaunchTemplateVersion adds the next number (optionally
// based on SourceVersion); ModifyLaunchTemplate's SetDefaultVersion picks
// the default, which RunInstances uses when no version is given.
// DescribeLaunchTemplateVersions accepts "$Latest" and "$Default" and, with
// no template named, describes those versions of every template ("To
// describe all the $Latest, $Default, or $Latest and $Default versions of
// all the launch templates in your account, you must omit
// LaunchTemplateId and LaunchTemplateName").

func init() {
	actions["CreateLaunchTemplateVersion"] = createLaunchTemplateVersion
	actions["ModifyLaunchTemplate"] = modifyLaunchTemplate
	actions["DescribeLaunchTemplateVersions"] = describeLaunchTemplateVersions
}

type ltVersion struct {
	Number      int
	Description string
	Data        *Query
	Created     time.Time
}

// ensureVersions gives a template made by CreateLaunchTemplate its
// version 1 (its Data), the default.
func (t *launchTemplate) ensureVersions() {
	if len(t.versions) == 0 {
		t.versions = []*ltVersion{{Number: 1, Data: t.Data, Created: t.Created}}
		t.defaultVersion = 1
	}
}

func (t *launchTemplate) defaultNumber() int {
	t.ensureVersions()
	return t.defaultVersion
}

func (t *launchTemplate) latestNumber() int {
	t.ensureVersions()
	return t.versions[len(t.versions)-1].Number
}

// version resolves "", "$Default", "$Latest" or a number. A version the
// template does not have is InvalidLaunchTemplateId.VersionNotFound, "The
// specified launch template version does not exist." (EC2 API Reference,
// Error codes).
func (t *launchTemplate) version(v string) (*ltVersion, error) {
	t.ensureVersions()
	n := 0
	switch v {
	case "", "$Default":
		n = t.defaultVersion
	case "$Latest":
		n = t.latestNumber()
	default:
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return nil, versionNotFound()
		}
	}
	for _, ver := range t.versions {
		if ver.Number == n {
			return ver, nil
		}
	}
	return nil, versionNotFound()
}

func versionNotFound() *APIError {
	return apiErr("InvalidLaunchTemplateId.VersionNotFound", "The specified launch template version does not exist.")
}

func createLaunchTemplateVersion(c *call) error {
	defer c.lock()()
	q := c.q
	t, err := c.visibleTemplate(q.Str("LaunchTemplateId"), q.Str("LaunchTemplateName"))
	if err != nil {
		return err
	}
	data := q.Struct("LaunchTemplateData")
	if _, err := tagSpecsOf(data, "instance", "volume", "network-interface", "spot-instances-request"); err != nil {
		return err
	}
	if src := q.Str("SourceVersion"); src != "" {
		base, err := t.version(src)
		if err != nil {
			return err
		}
		data = mergeQuery(base.Data, data)
	}
	t.ensureVersions()
	ver := &ltVersion{Number: t.latestNumber() + 1, Description: q.Str("VersionDescription"), Data: data, Created: c.now}
	t.versions = append(t.versions, ver)
	c.x.open("launchTemplateVersion")
	c.writeVersion(t, ver)
	c.x.close("launchTemplateVersion")
	return nil
}

func modifyLaunchTemplate(c *call) error {
	defer c.lock()()
	q := c.q
	t, err := c.visibleTemplate(q.Str("LaunchTemplateId"), q.Str("LaunchTemplateName"))
	if err != nil {
		return err
	}
	if v := q.Str("SetDefaultVersion"); v != "" {
		ver, err := t.version(v)
		if err != nil {
			return err
		}
		t.defaultVersion = ver.Number
		// RunInstances without a version launches the default.
		t.Data = ver.Data
	}
	c.x.open("launchTemplate")
	c.writeTemplate(t)
	c.x.close("launchTemplate")
	return nil
}

func describeLaunchTemplateVersions(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "create-time", "ebs-optimized", "iam-instance-profile", "image-id",
		"instance-type", "is-default-version", "kernel-id", "ram-disk-id"); err != nil {
		return err
	}
	wanted := q.List("LaunchTemplateVersion")
	id, name := q.Str("LaunchTemplateId"), q.Str("LaunchTemplateName")
	var templates []*launchTemplate
	if id == "" && name == "" {
		if len(wanted) == 0 {
			return apiErr("MissingParameter", "The request must contain the parameter LaunchTemplateId or LaunchTemplateName, or only $Latest and $Default versions")
		}
		for _, v := range wanted {
			if v != "$Latest" && v != "$Default" {
				return apiErr("InvalidParameterCombination", "To describe version %s, specify LaunchTemplateId or LaunchTemplateName; without them only $Latest and $Default can be described", v)
			}
		}
		for _, t := range c.r.templates {
			if c.visible(t.ID) {
				templates = append(templates, t)
			}
		}
		sort.Slice(templates, func(i, j int) bool { return templates[i].ID < templates[j].ID })
	} else {
		t, err := c.visibleTemplate(id, name)
		if err != nil {
			return err
		}
		templates = []*launchTemplate{t}
	}
	minV, err := q.Int("MinVersion", 0)
	if err != nil {
		return err
	}
	maxV, err := q.Int("MaxVersion", 0)
	if err != nil {
		return err
	}
	type pair struct {
		t *launchTemplate
		v *ltVersion
	}
	var out []pair
	for _, t := range templates {
		var vers []*ltVersion
		if len(wanted) > 0 {
			seen := map[int]bool{}
			for _, w := range wanted {
				v, err := t.version(w)
				if err != nil {
					return err
				}
				if !seen[v.Number] {
					seen[v.Number] = true
					vers = append(vers, v)
				}
			}
			sort.Slice(vers, func(i, j int) bool { return vers[i].Number < vers[j].Number })
		} else {
			t.ensureVersions()
			vers = t.versions
		}
		for _, v := range vers {
			if (minV > 0 && v.Number < minV) || (maxV > 0 && v.Number > maxV) {
				continue
			}
			isDefault := v.Number == t.defaultNumber()
			if !matches(filters, nil, func(n string) []string {
				return []string{map[string]string{
					"create-time": v.Created.UTC().Format(time.RFC3339), "image-id": v.Data.Str("ImageId"),
					"instance-type": v.Data.Str("InstanceType"), "is-default-version": boolStr(isDefault),
					"ebs-optimized": boolStr(v.Data.Bool("EbsOptimized")), "iam-instance-profile": v.Data.Str("IamInstanceProfile.Arn"),
					"kernel-id": v.Data.Str("KernelId"), "ram-disk-id": v.Data.Str("RamDiskId"),
				}[n]}
			}) {
				continue
			}
			out = append(out, pair{t, v})
		}
	}
	page, next, err := paginate(q, out, 1)
	if err != nil {
		return err
	}
	list(&c.x, "launchTemplateVersionSet", page, func(p pair) { c.writeVersion(p.t, p.v) })
	c.nextToken(next)
	return nil
}

func (c *call) writeVersion(t *launchTemplate, v *ltVersion) {
	x := &c.x
	x.leaf("launchTemplateId", t.ID)
	x.leaf("launchTemplateName", t.Name)
	x.num("versionNumber", v.Number)
	x.opt("versionDescription", v.Description)
	x.time("createTime", v.Created)
	x.leaf("createdBy", "arn:aws:iam::"+c.s.opt.AccountID+":user/amibake")
	x.boolean("defaultVersion", v.Number == t.defaultNumber())
	x.open("launchTemplateData")
	if v.Data != nil {
		x.opt("imageId", v.Data.Str("ImageId"))
		x.opt("instanceType", v.Data.Str("InstanceType"))
		x.opt("keyName", v.Data.Str("KeyName"))
	}
	x.close("launchTemplateData")
}
