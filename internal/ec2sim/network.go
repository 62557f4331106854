package ec2sim

import (
	"slices"
	"sort"
	"strings"
)

func init() {
	actions["DescribeVpcs"] = describeVpcs
	actions["DescribeSubnets"] = describeSubnets
	actions["DescribeRegions"] = describeRegions
	actions["DescribeAvailabilityZones"] = describeAvailabilityZones
	actions["DescribeAccountAttributes"] = describeAccountAttributes
	actions["CreateTags"] = createTags
	actions["DeleteTags"] = deleteTags
	actions["DescribeTags"] = describeTags
}

func describeVpcs(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "vpc-id", "is-default", "cidr", "cidr-block-association.cidr-block", "state", "owner-id", "dhcp-options-id"); err != nil {
		return err
	}
	for _, id := range q.List("VpcId") {
		if id != c.r.vpcID {
			return apiErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	x := &c.x
	x.open("vpcSet")
	if matches(filters, c.r.tags[c.r.vpcID], func(n string) []string {
		return []string{map[string]string{"vpc-id": c.r.vpcID, "is-default": "true", "cidr": c.r.vpcCIDR,
			"cidr-block-association.cidr-block": c.r.vpcCIDR, "state": "available", "owner-id": c.s.opt.AccountID,
			"dhcp-options-id": stableID("dopt-", c.r.name)}[n]}
	}) {
		x.open("item")
		x.leaf("vpcId", c.r.vpcID)
		x.leaf("ownerId", c.s.opt.AccountID)
		x.leaf("state", "available")
		x.leaf("cidrBlock", c.r.vpcCIDR)
		x.open("cidrBlockAssociationSet")
		x.open("item")
		x.leaf("cidrBlock", c.r.vpcCIDR)
		x.leaf("associationId", stableID("vpc-cidr-assoc-", c.r.name))
		x.open("cidrBlockState")
		x.leaf("state", "associated")
		x.close("cidrBlockState")
		x.close("item")
		x.close("cidrBlockAssociationSet")
		x.leaf("dhcpOptionsId", stableID("dopt-", c.r.name))
		x.leaf("instanceTenancy", "default")
		x.boolean("isDefault", true)
		if tags := c.r.tags[c.r.vpcID]; len(tags) > 0 {
			x.tags(tags)
		}
		x.close("item")
	}
	x.close("vpcSet")
	return nil
}

func describeSubnets(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	// The DescribeSubnets reference: "cidr-block ... You can also use cidr
	// or cidrBlock as the filter names", "default-for-az ... You can also
	// use defaultForAz"; availabilityZone is the same older spelling
	// (Packer's subnet_filter sends it).
	legacy := map[string]string{"availabilityZone": "availability-zone", "cidr": "cidr-block", "cidrBlock": "cidr-block", "defaultForAz": "default-for-az"}
	for i, f := range filters {
		if n, ok := legacy[f.Name]; ok {
			filters[i].Name = n
		}
	}
	if err := checkFilters(filters, "subnet-id", "vpc-id", "availability-zone", "availability-zone-id", "default-for-az",
		"cidr-block", "state", "owner-id", "map-public-ip-on-launch", "available-ip-address-count", "subnet-arn"); err != nil {
		return err
	}
	subs := c.r.subnets
	if ids := q.List("SubnetId"); len(ids) > 0 {
		subs = nil
		for _, id := range ids {
			sn := c.r.subnet(id)
			if sn == nil {
				return apiErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
			}
			subs = append(subs, sn)
		}
	}
	var kept []*subnet
	for _, sn := range subs {
		if matches(filters, c.r.tags[sn.ID], func(n string) []string {
			return []string{map[string]string{"subnet-id": sn.ID, "vpc-id": c.r.vpcID, "availability-zone": sn.AZ,
				"availability-zone-id": sn.ZoneID, "default-for-az": "true", "cidr-block": sn.CIDR, "state": "available",
				"owner-id": c.s.opt.AccountID, "map-public-ip-on-launch": "true", "available-ip-address-count": "4091",
				"subnet-arn": "arn:aws:ec2:" + c.r.name + ":" + c.s.opt.AccountID + ":subnet/" + sn.ID}[n]}
		}) {
			kept = append(kept, sn)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "subnetSet", page, func(sn *subnet) {
		x.leaf("subnetId", sn.ID)
		x.leaf("subnetArn", "arn:aws:ec2:"+c.r.name+":"+c.s.opt.AccountID+":subnet/"+sn.ID)
		x.leaf("state", "available")
		x.leaf("ownerId", c.s.opt.AccountID)
		x.leaf("vpcId", c.r.vpcID)
		x.leaf("cidrBlock", sn.CIDR)
		x.num("availableIpAddressCount", 4091)
		x.leaf("availabilityZone", sn.AZ)
		x.leaf("availabilityZoneId", sn.ZoneID)
		x.boolean("defaultForAz", true)
		x.boolean("mapPublicIpOnLaunch", true)
		x.boolean("assignIpv6AddressOnCreation", false)
		if tags := c.r.tags[sn.ID]; len(tags) > 0 {
			x.tags(tags)
		}
	})
	c.nextToken(next)
	return nil
}

func describeRegions(c *call) error {
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "endpoint", "region-name", "opt-in-status"); err != nil {
		return err
	}
	names := q.List("RegionName")
	for _, n := range names {
		if !slices.Contains(Regions, n) {
			return apiErr("InvalidParameterValue", "Invalid region: %s", n)
		}
	}
	x := &c.x
	x.open("regionInfo")
	for _, r := range Regions {
		if len(names) > 0 && !slices.Contains(names, r) {
			continue
		}
		ep := "ec2." + r + ".amazonaws.com"
		if !matches(filters, nil, func(n string) []string {
			return []string{map[string]string{"endpoint": ep, "region-name": r, "opt-in-status": "opt-in-not-required"}[n]}
		}) {
			continue
		}
		x.open("item")
		x.leaf("regionName", r)
		x.leaf("regionEndpoint", ep)
		x.leaf("optInStatus", "opt-in-not-required")
		x.close("item")
	}
	x.close("regionInfo")
	return nil
}

func describeAvailabilityZones(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "zone-name", "zone-id", "region-name", "state", "zone-type", "group-name", "opt-in-status"); err != nil {
		return err
	}
	names, ids := q.List("ZoneName"), q.List("ZoneId")
	x := &c.x
	x.open("availabilityZoneInfo")
	for _, sn := range c.r.subnets {
		if (len(names) > 0 && !slices.Contains(names, sn.AZ)) || (len(ids) > 0 && !slices.Contains(ids, sn.ZoneID)) {
			continue
		}
		if !matches(filters, nil, func(n string) []string {
			return []string{map[string]string{"zone-name": sn.AZ, "zone-id": sn.ZoneID, "region-name": c.r.name, "state": "available",
				"zone-type": "availability-zone", "group-name": c.r.name, "opt-in-status": "opt-in-not-required"}[n]}
		}) {
			continue
		}
		x.open("item")
		x.leaf("zoneName", sn.AZ)
		x.leaf("zoneId", sn.ZoneID)
		x.leaf("zoneState", "available")
		x.leaf("regionName", c.r.name)
		x.leaf("groupName", c.r.name)
		x.leaf("networkBorderGroup", c.r.name)
		x.leaf("zoneType", "availability-zone")
		x.leaf("optInStatus", "opt-in-not-required")
		x.open("messageSet")
		x.close("messageSet")
		x.close("item")
	}
	x.close("availabilityZoneInfo")
	return nil
}

func describeAccountAttributes(c *call) error {
	attrs := [][2]string{
		{"supported-platforms", "VPC"}, {"default-vpc", c.r.vpcID}, {"max-instances", "256"},
		{"vpc-max-security-groups-per-interface", "5"}, {"max-elastic-ips", "5"}, {"vpc-max-elastic-ips", "5"},
	}
	want := c.q.List("AttributeName")
	x := &c.x
	x.open("accountAttributeSet")
	for _, a := range attrs {
		if len(want) > 0 && !slices.Contains(want, a[0]) {
			continue
		}
		x.open("item")
		x.leaf("attributeName", a[0])
		x.open("attributeValueSet")
		x.open("item")
		x.leaf("attributeValue", a[1])
		x.close("item")
		x.close("attributeValueSet")
		x.close("item")
	}
	x.close("accountAttributeSet")
	return nil
}

// resourceType names what an id refers to, as DescribeTags reports it;
// ok is false when no such resource exists (yet).
func (c *call) resourceType(id string) (string, bool) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		_, ok := c.r.instances[id]
		return "instance", ok
	case "ami":
		im, ok := c.r.images[id]
		return "image", ok && c.ownImage(im)
	case "snap":
		sn, ok := c.r.snapshots[id]
		return "snapshot", ok && !sn.public
	case "vol":
		_, ok := c.r.volumes[id]
		return "volume", ok
	case "sg":
		_, ok := c.r.groups[id]
		return "security-group", ok
	case "key":
		for _, k := range c.r.keys {
			if k.ID == id {
				return "key-pair", true
			}
		}
		return "key-pair", false
	case "vpc":
		return "vpc", id == c.r.vpcID
	case "subnet":
		return "subnet", c.r.subnet(id) != nil
	case "sir":
		for _, in := range c.r.instances {
			if in.SpotRequestID == id {
				return "spot-instances-request", true
			}
		}
		return "spot-instances-request", false
	case "lt":
		_, ok := c.r.templates[id]
		return "launch-template", ok
	}
	return "", false
}

var notFoundCodes = map[string]string{
	"instance": "InvalidInstanceID.NotFound", "image": "InvalidAMIID.NotFound", "snapshot": "InvalidSnapshot.NotFound",
	"volume": "InvalidVolume.NotFound", "security-group": "InvalidGroup.NotFound", "key-pair": "InvalidKeyPair.NotFound",
	"vpc": "InvalidVpcID.NotFound", "subnet": "InvalidSubnetID.NotFound", "spot-instances-request": "InvalidSpotInstanceRequestID.NotFound",
	"launch-template": "InvalidLaunchTemplateId.NotFound",
}

func (c *call) taggable(ids []string) error {
	if len(ids) == 0 {
		return apiErr("MissingParameter", "The request must contain the parameter resourceIdSet")
	}
	for _, id := range ids {
		rt, ok := c.resourceType(id)
		if rt == "" {
			return apiErr("InvalidID", "The ID '%s' is not valid", id)
		}
		// New ids are not yet known to the tagging service either: AWS
		// answers NotFound here, which is why builders retry CreateTags.
		if !ok || !c.visible(id) {
			return apiErr(notFoundCodes[rt], "The %s ID '%s' does not exist", rt, id)
		}
	}
	return nil
}

func createTags(c *call) error {
	defer c.lock()()
	ids := c.q.List("ResourceId")
	if err := c.taggable(ids); err != nil {
		return err
	}
	tags, err := c.q.Tags("Tag")
	if err != nil {
		return err
	}
	for _, id := range ids {
		c.r.setTags(id, tags)
	}
	c.x.boolean("return", true)
	return nil
}

func deleteTags(c *call) error {
	defer c.lock()()
	ids := c.q.List("ResourceId")
	if err := c.taggable(ids); err != nil {
		return err
	}
	subs := c.q.Sub("Tag")
	for _, id := range ids {
		if len(subs) == 0 {
			delete(c.r.tags, id)
			continue
		}
		c.r.tags[id] = slices.DeleteFunc(c.r.tags[id], func(t Tag) bool {
			for _, s := range subs {
				if s.Str("Key") == t.Key && (!s.Has("Value") || s.Str("Value") == t.Value) {
					return true
				}
			}
			return false
		})
	}
	c.x.boolean("return", true)
	return nil
}

func describeTags(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "key", "value", "resource-id", "resource-type"); err != nil {
		return err
	}
	type row struct{ id, rt, key, value string }
	var rows []row
	for id, tags := range c.r.tags {
		rt, ok := c.resourceType(id)
		if !ok {
			continue
		}
		for _, t := range tags {
			r := row{id, rt, t.Key, t.Value}
			if matches(filters, nil, func(n string) []string {
				return []string{map[string]string{"key": r.key, "value": r.value, "resource-id": r.id, "resource-type": r.rt}[n]}
			}) {
				rows = append(rows, r)
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].id != rows[j].id {
			return rows[i].id < rows[j].id
		}
		return rows[i].key < rows[j].key
	})
	page, next, err := paginate(q, rows, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "tagSet", page, func(r row) {
		x.leaf("resourceId", r.id)
		x.leaf("resourceType", r.rt)
		x.leaf("key", r.key)
		x.leaf("value", r.value)
	})
	c.nextToken(next)
	return nil
}
