package ec2sim

import (
	"slices"
	"sort"
)

// The default VPC's other parts, as DescribeVpcAttribute,
// DescribeRouteTables, DescribeInternetGateways and
// DescribeNetworkInterfaces show a default VPC (Amazon VPC user guide,
// "Default VPCs": an internet gateway, a main route table sending
// 0.0.0.0/0 to it, DNS support and hostnames enabled).

func init() {
	actions["DescribeVpcAttribute"] = describeVpcAttribute
	actions["DescribeRouteTables"] = describeRouteTables
	actions["DescribeInternetGateways"] = describeInternetGateways
	actions["DescribeNetworkInterfaces"] = describeNetworkInterfaces
	actions["GetPasswordData"] = getPasswordData
}

func (r *region) igwID() string        { return stableID("igw-", r.name, "default") }
func (r *region) routeTableID() string { return stableID("rtb-", r.name, "main") }

func describeVpcAttribute(c *call) error {
	defer c.lock()()
	id := c.q.Str("VpcId")
	if id == "" {
		return apiErr("MissingParameter", "The request must contain the parameter VpcId")
	}
	if id != c.r.vpcID {
		return apiErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	attr := c.q.Str("Attribute")
	values := map[string]string{"enableDnsSupport": "true", "enableDnsHostnames": "true", "enableNetworkAddressUsageMetrics": "false"}
	v, ok := values[attr]
	if !ok {
		return apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	x := &c.x
	x.leaf("vpcId", id)
	x.open(attr)
	x.leaf("value", v)
	x.close(attr)
	return nil
}

func describeRouteTables(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "route-table-id", "vpc-id", "association.main", "association.subnet-id",
		"route.destination-cidr-block", "route.gateway-id", "owner-id"); err != nil {
		return err
	}
	id := c.r.routeTableID()
	for _, want := range q.List("RouteTableId") {
		if want != id {
			return apiErr("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", want)
		}
	}
	x := &c.x
	x.open("routeTableSet")
	// The main table has one implicit association; subnets without an
	// explicit one use it, so association.subnet-id matches none.
	if matches(filters, c.r.tags[id], func(n string) []string {
		return map[string][]string{"route-table-id": {id}, "vpc-id": {c.r.vpcID}, "association.main": {"true"},
			"route.destination-cidr-block": {c.r.vpcCIDR, "0.0.0.0/0"}, "route.gateway-id": {"local", c.r.igwID()},
			"owner-id": {c.s.opt.AccountID}}[n]
	}) {
		x.open("item")
		x.leaf("routeTableId", id)
		x.leaf("vpcId", c.r.vpcID)
		x.leaf("ownerId", c.s.opt.AccountID)
		x.open("routeSet")
		for _, rt := range [][2]string{{c.r.vpcCIDR, "local"}, {"0.0.0.0/0", c.r.igwID()}} {
			x.open("item")
			x.leaf("destinationCidrBlock", rt[0])
			x.leaf("gatewayId", rt[1])
			x.leaf("state", "active")
			x.leaf("origin", map[bool]string{true: "CreateRouteTable", false: "CreateRoute"}[rt[1] == "local"])
			x.close("item")
		}
		x.close("routeSet")
		x.open("associationSet")
		x.open("item")
		x.leaf("routeTableAssociationId", stableID("rtbassoc-", c.r.name, "main"))
		x.leaf("routeTableId", id)
		x.boolean("main", true)
		x.open("associationState")
		x.leaf("state", "associated")
		x.close("associationState")
		x.close("item")
		x.close("associationSet")
		x.open("propagatingVgwSet")
		x.close("propagatingVgwSet")
		if tags := c.r.tags[id]; len(tags) > 0 {
			x.tags(tags)
		}
		x.close("item")
	}
	x.close("routeTableSet")
	return nil
}

func describeInternetGateways(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "internet-gateway-id", "attachment.vpc-id", "attachment.state", "owner-id"); err != nil {
		return err
	}
	id := c.r.igwID()
	for _, want := range q.List("InternetGatewayId") {
		if want != id {
			return apiErr("InvalidInternetGatewayID.NotFound", "The internetGateway ID '%s' does not exist", want)
		}
	}
	x := &c.x
	x.open("internetGatewaySet")
	if matches(filters, c.r.tags[id], func(n string) []string {
		return []string{map[string]string{"internet-gateway-id": id, "attachment.vpc-id": c.r.vpcID,
			"attachment.state": "available", "owner-id": c.s.opt.AccountID}[n]}
	}) {
		x.open("item")
		x.leaf("internetGatewayId", id)
		x.leaf("ownerId", c.s.opt.AccountID)
		x.open("attachmentSet")
		x.open("item")
		x.leaf("vpcId", c.r.vpcID)
		x.leaf("state", "available")
		x.close("item")
		x.close("attachmentSet")
		if tags := c.r.tags[id]; len(tags) > 0 {
			x.tags(tags)
		}
		x.close("item")
	}
	x.close("internetGatewaySet")
	return nil
}

// describeNetworkInterfaces lists the primary interface of every
// instance that is not terminated (EC2 deletes it with the instance).
func describeNetworkInterfaces(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "network-interface-id", "attachment.instance-id", "subnet-id", "vpc-id", "availability-zone",
		"private-ip-address", "addresses.private-ip-address", "association.public-ip", "group-id", "status", "mac-address",
		"owner-id", "interface-type"); err != nil {
		return err
	}
	var ins []*instance
	for _, in := range c.allInstances() {
		if in.State != "terminated" {
			ins = append(ins, in)
		}
	}
	eni := func(in *instance) string { return stableID("eni-", in.ID) }
	ids := q.List("NetworkInterfaceId")
	for _, id := range ids {
		if !slices.ContainsFunc(ins, func(in *instance) bool { return eni(in) == id }) {
			return apiErr("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
		}
	}
	var kept []*instance
	for _, in := range ins {
		if len(ids) > 0 && !slices.Contains(ids, eni(in)) {
			continue
		}
		if matches(filters, nil, func(n string) []string {
			switch n {
			case "group-id":
				return in.Groups
			}
			return []string{map[string]string{"network-interface-id": eni(in), "attachment.instance-id": in.ID, "subnet-id": in.SubnetID,
				"vpc-id": in.VpcID, "availability-zone": in.AZ, "private-ip-address": in.PrivateIP, "addresses.private-ip-address": in.PrivateIP,
				"association.public-ip": in.PublicIP, "status": "in-use", "mac-address": in.MAC, "owner-id": c.s.opt.AccountID,
				"interface-type": "interface"}[n]}
		}) {
			kept = append(kept, in)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return eni(kept[i]) < eni(kept[j]) })
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "networkInterfaceSet", page, func(in *instance) {
		priv, pub := dnsNames(c.r.name, in.PrivateIP, in.PublicIP)
		x.leaf("networkInterfaceId", eni(in))
		x.leaf("subnetId", in.SubnetID)
		x.leaf("vpcId", in.VpcID)
		x.leaf("availabilityZone", in.AZ)
		x.leaf("description", "")
		x.leaf("ownerId", c.s.opt.AccountID)
		x.boolean("requesterManaged", false)
		x.leaf("status", "in-use")
		x.leaf("macAddress", in.MAC)
		x.leaf("privateIpAddress", in.PrivateIP)
		x.leaf("privateDnsName", priv)
		c.writeENIDetails(x, in, priv, pub, true)
	})
	c.nextToken(next)
	return nil
}

// getPasswordData: only Windows instances have a password; for Linux
// instances EC2 answers with an empty passwordData (the AWS CLI's
// password-data-available waiter keeps waiting on it).
func getPasswordData(c *call) error {
	defer c.lock()()
	in, err := c.instance(c.q.Str("InstanceId"))
	if err != nil {
		return err
	}
	x := &c.x
	x.leaf("instanceId", in.ID)
	x.time("timestamp", c.now)
	x.leaf("passwordData", "")
	return nil
}

// writeENIDetails writes what an instance's primary network interface says
// of itself in DescribeNetworkInterfaces and in DescribeInstances'
// networkInterfaceSet. Only the former's attachment names the instance
// (NetworkInterfaceAttachment vs InstanceNetworkInterfaceAttachment, EC2
// API reference).
func (c *call) writeENIDetails(x *xw, in *instance, priv, pub string, namesInstance bool) {
	x.boolean("sourceDestCheck", in.SourceDestCheck)
	c.writeGroupSet(x, in.Groups)
	x.open("attachment")
	x.leaf("attachmentId", stableID("eni-attach-", in.ID))
	if namesInstance {
		x.leaf("instanceId", in.ID)
		x.leaf("instanceOwnerId", c.s.opt.AccountID)
	}
	x.num("deviceIndex", 0)
	x.leaf("status", "attached")
	x.boolean("deleteOnTermination", true)
	x.close("attachment")
	if in.PublicIP != "" {
		x.open("association")
		x.leaf("publicIp", in.PublicIP)
		x.leaf("publicDnsName", pub)
		x.leaf("ipOwnerId", "amazon")
		x.close("association")
	}
	x.open("privateIpAddressesSet")
	x.open("item")
	x.leaf("privateIpAddress", in.PrivateIP)
	x.leaf("privateDnsName", priv)
	x.boolean("primary", true)
	x.close("item")
	x.close("privateIpAddressesSet")
	x.leaf("interfaceType", "interface")
}
