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
	actions["AuthorizeSecurityGroupEgress"] = authorizeEgress
	actions["RevokeSecurityGroupEgress"] = revokeEgress
	actions["DescribeSecurityGroupRules"] = describeSecurityGroupRules
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
			p.describe(cidr, r.Str("Description"))
		}
		for _, r := range s.Sub("Ipv6Ranges") {
			cidr := r.Str("CidrIpv6")
			if pfx, err := netip.ParsePrefix(cidr); err != nil || !pfx.Addr().Is6() {
				return nil, apiErr("InvalidParameterValue", "CIDR block %s is malformed", cidr)
			}
			p.CIDRv6 = append(p.CIDRv6, cidr)
			p.describe(cidr, r.Str("Description"))
		}
		for _, r := range s.Sub("Groups") {
			p.Groups = append(p.Groups, r.Str("GroupId"))
			p.describe(r.Str("GroupId"), r.Str("Description"))
		}
		out = append(out, p)
	}
	return out, nil
}

func (p *permission) describe(src, desc string) {
	if desc == "" {
		return
	}
	if p.Descs == nil {
		p.Descs = map[string]string{}
	}
	p.Descs[src] = desc
}

// sources lists a permission's sources: IPv4 CIDRs, IPv6 CIDRs, groups.
func (p permission) sources() []string {
	return slices.Concat(p.CIDRs, p.CIDRv6, p.Groups)
}

func samePorts(a, b permission) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort
}

func authorizeIngress(c *call) error { return c.authorize(false) }
func authorizeEgress(c *call) error  { return c.authorize(true) }
func revokeIngress(c *call) error    { return c.revoke(false) }
func revokeEgress(c *call) error     { return c.revoke(true) }

// authorize adds rules to a group's ingress or egress permissions; a rule
// that exists already fails the whole call (InvalidPermission.Duplicate),
// as EC2 does.
func (c *call) authorize(egress bool) error {
	defer c.lock()()
	var g *group
	var err error
	if egress {
		// AuthorizeSecurityGroupEgress takes only GroupId (VPC groups).
		if !c.q.Has("GroupId") {
			return apiErr("MissingParameter", "The request must contain the parameter groupId")
		}
		g, err = c.group(c.q.Str("GroupId"), "")
	} else {
		g, err = c.group(c.q.Str("GroupId"), c.q.Str("GroupName"))
	}
	if err != nil {
		return err
	}
	perms, err := readPermissions(c.q)
	if err != nil {
		return err
	}
	set := &g.Ingress
	if egress {
		set = &g.Egress
	}
	for _, p := range perms {
		for _, gid := range p.Groups {
			if c.r.groups[gid] == nil {
				return apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", gid)
			}
		}
		for _, e := range *set {
			if !samePorts(e, p) {
				continue
			}
			for _, src := range p.sources() {
				if slices.Contains(e.sources(), src) {
					return apiErr("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", src, strings.ToUpper(p.Protocol), p.FromPort, p.ToPort)
				}
			}
		}
	}
	x := &c.x
	x.boolean("return", true)
	x.open("securityGroupRuleSet")
	newRule := func() string { return c.s.newID("sgr-") }
	for _, p := range perms {
		var e *permission
		for i := range *set {
			if samePorts((*set)[i], p) {
				e = &(*set)[i]
				break
			}
		}
		if e == nil {
			*set = append(*set, permission{Protocol: p.Protocol, FromPort: p.FromPort, ToPort: p.ToPort})
			e = &(*set)[len(*set)-1]
		}
		for _, src := range e.sources() {
			e.ruleOf(src, newRule) // existing sources keep their ids
		}
		e.CIDRs, e.CIDRv6, e.Groups = append(e.CIDRs, p.CIDRs...), append(e.CIDRv6, p.CIDRv6...), append(e.Groups, p.Groups...)
		for src, d := range p.Descs {
			e.describe(src, d)
		}
		for _, src := range p.sources() {
			id := e.ruleOf(src, newRule)
			e.RuleIDs = append(e.RuleIDs, id)
			x.open("item")
			c.writeRule(x, g, *e, src, id, egress)
			x.close("item")
		}
	}
	x.close("securityGroupRuleSet")
	return nil
}

// writeRule writes one SecurityGroupRule: one source of one permission.
func (c *call) writeRule(x *xw, g *group, p permission, src, id string, egress bool) {
	x.leaf("securityGroupRuleId", id)
	x.leaf("groupId", g.ID)
	x.leaf("groupOwnerId", c.s.opt.AccountID)
	x.boolean("isEgress", egress)
	x.leaf("ipProtocol", p.Protocol)
	x.num("fromPort", p.FromPort)
	x.num("toPort", p.ToPort)
	switch {
	case slices.Contains(p.CIDRs, src):
		x.leaf("cidrIpv4", src)
	case slices.Contains(p.CIDRv6, src):
		x.leaf("cidrIpv6", src)
	default:
		x.open("referencedGroupInfo")
		x.leaf("groupId", src)
		x.leaf("userId", c.s.opt.AccountID)
		x.close("referencedGroupInfo")
	}
	x.opt("description", p.Descs[src])
	x.leaf("securityGroupRuleArn", "arn:aws:ec2:"+c.r.name+":"+c.s.opt.AccountID+":security-group-rule/"+id)
	if tags := c.r.tags[id]; len(tags) > 0 {
		x.tags(tags)
	}
}

func (c *call) revoke(egress bool) error {
	defer c.lock()()
	g, err := c.group(c.q.Str("GroupId"), c.q.Str("GroupName"))
	if err != nil {
		return err
	}
	set := &g.Ingress
	if egress {
		set = &g.Egress
	}
	if ids := c.q.List("SecurityGroupRuleId"); len(ids) > 0 {
		for _, id := range ids {
			found := false
			for i := range *set {
				e := &(*set)[i]
				for src, rid := range e.Rules {
					if rid == id {
						e.drop(src)
						found = true
					}
				}
			}
			if !found {
				return apiErr("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
			}
		}
	} else {
		perms, err := readPermissions(c.q)
		if err != nil {
			return err
		}
		for _, p := range perms {
			for i := range *set {
				if samePorts((*set)[i], p) {
					for _, src := range p.sources() {
						(*set)[i].drop(src)
					}
				}
			}
		}
	}
	*set = slices.DeleteFunc(*set, func(e permission) bool { return len(e.sources()) == 0 })
	c.x.boolean("return", true)
	return nil
}

// drop removes one source from a permission.
func (p *permission) drop(src string) {
	del := func(s string) bool { return s == src }
	p.CIDRs = slices.DeleteFunc(p.CIDRs, del)
	p.CIDRv6 = slices.DeleteFunc(p.CIDRv6, del)
	p.Groups = slices.DeleteFunc(p.Groups, del)
	if id, ok := p.Rules[src]; ok {
		p.RuleIDs = slices.DeleteFunc(p.RuleIDs, func(s string) bool { return s == id })
	}
	delete(p.Rules, src)
	delete(p.Descs, src)
}

// describeSecurityGroupRules lists rules one source at a time, as EC2's
// SecurityGroupRule does.
func describeSecurityGroupRules(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "group-id", "security-group-rule-id"); err != nil {
		return err
	}
	type rule struct {
		g      *group
		p      permission
		src    string
		id     string
		egress bool
	}
	var rules []rule
	newRule := func() string { return c.s.newID("sgr-") }
	for _, g := range c.r.groups {
		if !c.visible(g.ID) {
			continue
		}
		for _, set := range []struct {
			perms  []permission
			egress bool
		}{{g.Ingress, false}, {g.Egress, true}} {
			for i := range set.perms {
				p := &set.perms[i]
				for _, src := range p.sources() {
					rules = append(rules, rule{g, *p, src, p.ruleOf(src, newRule), set.egress})
				}
			}
		}
	}
	ids := q.List("SecurityGroupRuleId")
	var kept []rule
	for _, r := range rules {
		if len(ids) > 0 && !slices.Contains(ids, r.id) {
			continue
		}
		if matches(filters, c.r.tags[r.id], func(n string) []string {
			if n == "group-id" {
				return []string{r.g.ID}
			}
			return []string{r.id}
		}) {
			kept = append(kept, r)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(rules, func(r rule) bool { return r.id == id }) {
			return apiErr("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].id < kept[j].id })
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "securityGroupRuleSet", page, func(r rule) { c.writeRule(x, r.g, r.p, r.src, r.id, r.egress) })
	c.nextToken(next)
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
			x.opt("description", p.Descs[id])
		})
		list(x, "ipRanges", p.CIDRs, func(cidr string) {
			x.leaf("cidrIp", cidr)
			x.opt("description", p.Descs[cidr])
		})
		list(x, "ipv6Ranges", p.CIDRv6, func(cidr string) {
			x.leaf("cidrIpv6", cidr)
			x.opt("description", p.Descs[cidr])
		})
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
