package ec2sim

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func init() {
	actions["CreateSecurityGroup"] = createSecurityGroup
	actions["AuthorizeSecurityGroupIngress"] = authorizeIngress
	actions["RevokeSecurityGroupIngress"] = revokeIngress
	actions["DescribeSecurityGroups"] = describeSecurityGroups
	actions["DeleteSecurityGroup"] = deleteSecurityGroup
}

func (c *call) group(id, name string) (*group, error) {
	if id != "" {
		if !validID("sg", id) {
			return nil, apiErr("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
		}
		g := c.r.groups[id]
		if g == nil || !c.visible(id) {
			return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		return g, nil
	}
	if name == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter groupName or groupId")
	}
	g := c.r.groupByName(name)
	if g == nil || !c.visible(g.ID) {
		return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, c.r.vpcID)
	}
	return g, nil
}

func createSecurityGroup(c *call) error {
	defer c.lock()()
	q := c.q
	name, desc := q.Str("GroupName"), q.Str("GroupDescription")
	if name == "" {
		return apiErr("MissingParameter", "The request must contain the parameter GroupName")
	}
	if desc == "" {
		return apiErr("MissingParameter", "The request must contain the parameter GroupDescription")
	}
	if len(name) > 255 || strings.HasPrefix(name, "sg-") {
		return apiErr("InvalidParameterValue", "Invalid value '%s' for groupName.", name)
	}
	vpc := q.Str("VpcId")
	if vpc == "" {
		vpc = c.r.vpcID
	}
	if vpc != c.r.vpcID {
		return apiErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	if g := c.r.groupByName(name); g != nil {
		return apiErr("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc)
	}
	specs, err := c.tagSpecs("security-group")
	if err != nil {
		return err
	}
	g := &group{ID: c.s.newID("sg-"), Name: name, Description: desc, VpcID: vpc, Created: c.now}
	g.Egress = []permission{{Protocol: "-1", CIDRs: []string{"0.0.0.0/0"}, RuleIDs: []string{c.s.newID("sgr-")}}}
	c.r.groups[g.ID] = g
	c.born(g.ID)
	c.r.setTags(g.ID, specs["security-group"])
	c.x.leaf("groupId", g.ID)
	if tags := c.r.tags[g.ID]; len(tags) > 0 {
		c.x.tags(tags)
	}
	return nil
}

// readPermissions reads IpPermissions.N, or the legacy flat form
// (IpProtocol, FromPort, ToPort, CidrIp).
func readPermissions(q *Query) ([]permission, error) {
	subs := q.Sub("IpPermissions")
	if len(subs) == 0 && q.Has("IpProtocol") {
		sub := &Query{Params: map[string]string{
			"IpProtocol": q.Str("IpProtocol"), "FromPort": q.Str("FromPort"), "ToPort": q.Str("ToPort"),
		}}
		if q.Has("CidrIp") {
			sub.Params["IpRanges.1.CidrIp"] = q.Str("CidrIp")
		}
		subs = []*Query{sub}
	}
	if len(subs) == 0 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter ipPermissions")
	}
	var out []permission
	for _, s := range subs {
		p := permission{Protocol: strings.ToLower(s.Str("IpProtocol"))}
		switch p.Protocol {
		case "tcp", "udp", "icmp", "icmpv6", "-1", "all":
		case "6":
			p.Protocol = "tcp"
		case "17":
			p.Protocol = "udp"
		default:
			if _, err := strconv.Atoi(p.Protocol); err != nil {
				return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", s.Str("IpProtocol"))
			}
		}
		if p.Protocol == "all" {
			p.Protocol = "-1"
		}
		var err error
		if p.FromPort, err = s.Int("FromPort", -1); err != nil {
			return nil, err
		}
		if p.ToPort, err = s.Int("ToPort", -1); err != nil {
			return nil, err
		}
		if (p.Protocol == "tcp" || p.Protocol == "udp") && (p.FromPort < 0 || p.ToPort > 65535 || p.FromPort > p.ToPort) {
			return nil, apiErr("InvalidParameterValue", "Invalid port range %d-%d", p.FromPort, p.ToPort)
		}
		for _, r := range s.Sub("IpRanges") {
			cidr := r.Str("CidrIp")
			if pfx, err := netip.ParsePrefix(cidr); err != nil || !pfx.Addr().Is4() {
				return nil, apiErr("InvalidParameterValue", "CIDR block %s is malformed", cidr)
			}
			p.CIDRs = append(p.CIDRs, cidr)
		}
		for _, r := range s.Sub("Ipv6Ranges") {
			cidr := r.Str("CidrIpv6")
			if pfx, err := netip.ParsePrefix(cidr); err != nil || !pfx.Addr().Is6() {
				return nil, apiErr("InvalidParameterValue", "CIDR block %s is malformed", cidr)
			}
			p.CIDRv6 = append(p.CIDRv6, cidr)
		}
		for _, r := range s.Sub("Groups") {
			p.Groups = append(p.Groups, r.Str("GroupId"))
		}
		out = append(out, p)
	}
	return out, nil
}

func samePorts(a, b permission) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort
}

func authorizeIngress(c *call) error {
	defer c.lock()()
	g, err := c.group(c.q.Str("GroupId"), c.q.Str("GroupName"))
	if err != nil {
		return err
	}
	perms, err := readPermissions(c.q)
	if err != nil {
		return err
	}
	for _, p := range perms {
		for _, gid := range p.Groups {
			if c.r.groups[gid] == nil {
				return apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", gid)
			}
		}
		for _, e := range g.Ingress {
			if !samePorts(e, p) {
				continue
			}
			for _, cidr := range p.CIDRs {
				if slices.Contains(e.CIDRs, cidr) {
					return apiErr("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", cidr, strings.ToUpper(p.Protocol), p.FromPort, p.ToPort)
				}
			}
		}
	}
	x := &c.x
	x.boolean("return", true)
	x.open("securityGroupRuleSet")
	for _, p := range perms {
		n := len(p.CIDRs) + len(p.CIDRv6) + len(p.Groups)
		for range n {
			p.RuleIDs = append(p.RuleIDs, c.s.newID("sgr-"))
		}
		merged := false
		for i := range g.Ingress {
			if samePorts(g.Ingress[i], p) {
				e := &g.Ingress[i]
				e.CIDRs, e.CIDRv6, e.Groups = append(e.CIDRs, p.CIDRs...), append(e.CIDRv6, p.CIDRv6...), append(e.Groups, p.Groups...)
				e.RuleIDs = append(e.RuleIDs, p.RuleIDs...)
				merged = true
				break
			}
		}
		if !merged {
			g.Ingress = append(g.Ingress, p)
		}
		i := 0
		for _, cidr := range p.CIDRs {
			x.open("item")
			x.leaf("securityGroupRuleId", p.RuleIDs[i])
			x.leaf("groupId", g.ID)
			x.leaf("groupOwnerId", c.s.opt.AccountID)
			x.boolean("isEgress", false)
			x.leaf("ipProtocol", p.Protocol)
			x.num("fromPort", p.FromPort)
			x.num("toPort", p.ToPort)
			x.leaf("cidrIpv4", cidr)
			x.close("item")
			i++
		}
	}
	x.close("securityGroupRuleSet")
	return nil
}

func revokeIngress(c *call) error {
	defer c.lock()()
	g, err := c.group(c.q.Str("GroupId"), c.q.Str("GroupName"))
	if err != nil {
		return err
	}
	perms, err := readPermissions(c.q)
	if err != nil {
		return err
	}
	for _, p := range perms {
		for i := range g.Ingress {
			if samePorts(g.Ingress[i], p) {
				e := &g.Ingress[i]
				e.CIDRs = slices.DeleteFunc(e.CIDRs, func(s string) bool { return slices.Contains(p.CIDRs, s) })
				e.Groups = slices.DeleteFunc(e.Groups, func(s string) bool { return slices.Contains(p.Groups, s) })
			}
		}
		g.Ingress = slices.DeleteFunc(g.Ingress, func(e permission) bool { return len(e.CIDRs)+len(e.CIDRv6)+len(e.Groups) == 0 })
	}
	c.x.boolean("return", true)
	return nil
}

func describeSecurityGroups(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "group-id", "group-name", "vpc-id", "description", "owner-id",
		"ip-permission.from-port", "ip-permission.to-port", "ip-permission.protocol", "ip-permission.cidr"); err != nil {
		return err
	}
	var gs []*group
	ids, names := q.List("GroupId"), q.List("GroupName")
	for _, id := range ids {
		g, err := c.group(id, "")
		if err != nil {
			return err
		}
		gs = append(gs, g)
	}
	for _, n := range names {
		g, err := c.group("", n)
		if err != nil {
			return err
		}
		gs = append(gs, g)
	}
	if len(ids)+len(names) == 0 {
		for _, g := range c.r.groups {
			if c.visible(g.ID) {
				gs = append(gs, g)
			}
		}
		sort.Slice(gs, func(i, j int) bool { return gs[i].ID < gs[j].ID })
	}
	var kept []*group
	for _, g := range gs {
		if matches(filters, c.r.tags[g.ID], func(n string) []string {
			switch n {
			case "group-id":
				return []string{g.ID}
			case "group-name":
				return []string{g.Name}
			case "vpc-id":
				return []string{g.VpcID}
			case "description":
				return []string{g.Description}
			case "owner-id":
				return []string{c.s.opt.AccountID}
			}
			var out []string
			for _, p := range g.Ingress {
				switch n {
				case "ip-permission.from-port":
					out = append(out, strconv.Itoa(p.FromPort))
				case "ip-permission.to-port":
					out = append(out, strconv.Itoa(p.ToPort))
				case "ip-permission.protocol":
					out = append(out, p.Protocol)
				case "ip-permission.cidr":
					out = append(out, p.CIDRs...)
				}
			}
			return out
		}) {
			kept = append(kept, g)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "securityGroupInfo", page, func(g *group) {
		x.leaf("ownerId", c.s.opt.AccountID)
		x.leaf("groupId", g.ID)
		x.leaf("groupName", g.Name)
		x.leaf("groupDescription", g.Description)
		x.leaf("vpcId", g.VpcID)
		c.writePerms(x, "ipPermissions", g.Ingress)
		c.writePerms(x, "ipPermissionsEgress", g.Egress)
		if tags := c.r.tags[g.ID]; len(tags) > 0 {
			x.tags(tags)
		}
		x.leaf("securityGroupArn", "arn:aws:ec2:"+c.r.name+":"+c.s.opt.AccountID+":security-group/"+g.ID)
	})
	c.nextToken(next)
	return nil
}

func (c *call) writePerms(x *xw, name string, perms []permission) {
	list(x, name, perms, func(p permission) {
		x.leaf("ipProtocol", p.Protocol)
		if p.Protocol != "-1" {
			x.num("fromPort", p.FromPort)
			x.num("toPort", p.ToPort)
		}
		list(x, "groups", p.Groups, func(id string) {
			x.leaf("userId", c.s.opt.AccountID)
			x.leaf("groupId", id)
		})
		list(x, "ipRanges", p.CIDRs, func(cidr string) { x.leaf("cidrIp", cidr) })
		list(x, "ipv6Ranges", p.CIDRv6, func(cidr string) { x.leaf("cidrIpv6", cidr) })
		x.open("prefixListIds")
		x.close("prefixListIds")
	})
}

func deleteSecurityGroup(c *call) error {
	defer c.lock()()
	g, err := c.group(c.q.Str("GroupId"), c.q.Str("GroupName"))
	if err != nil {
		return err
	}
	if g.Name == "default" {
		return apiErr("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.ID)
	}
	for _, in := range c.r.instances {
		if in.State != "terminated" && slices.Contains(in.Groups, g.ID) {
			return apiErr("DependencyViolation", "resource %s has a dependent object", g.ID)
		}
	}
	for _, o := range c.r.groups {
		for _, p := range o.Ingress {
			if o != g && slices.Contains(p.Groups, g.ID) {
				return apiErr("DependencyViolation", "resource %s has a dependent object", g.ID)
			}
		}
	}
	delete(c.r.groups, g.ID)
	delete(c.r.tags, g.ID)
	c.x.boolean("return", true)
	c.x.leaf("groupId", g.ID)
	return nil
}
