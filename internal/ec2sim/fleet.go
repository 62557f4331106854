package ec2sim

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func init() {
	actions["CreateLaunchTemplate"] = createLaunchTemplate
	actions["DeleteLaunchTemplate"] = deleteLaunchTemplate
	actions["DescribeLaunchTemplates"] = describeLaunchTemplates
	actions["CreateFleet"] = createFleet
	actions["DescribeSpotPriceHistory"] = describeSpotPriceHistory
}

// mergeQuery overlays a request's parameters on a launch template's data;
// list parameters the request sends replace the template's.
func mergeQuery(base, over *Query) *Query {
	out := &Query{Action: over.Action, Version: over.Version, Params: maps.Clone(base.Params)}
	lists := map[string]bool{}
	for k := range over.Params {
		if i := strings.IndexByte(k, '.'); i > 0 {
			lists[k[:i]] = true
		}
	}
	for k := range out.Params {
		if i := strings.IndexByte(k, '.'); i > 0 && lists[k[:i]] && k[:i] != "TagSpecification" {
			delete(out.Params, k)
		}
	}
	// Tag specifications add up: renumber the request's after the template's.
	n := len(base.Indices("TagSpecification"))
	for k, v := range over.Params {
		if rest, ok := strings.CutPrefix(k, "TagSpecification."); ok {
			idx, tail, _ := strings.Cut(rest, ".")
			i, err := strconv.Atoi(idx)
			if err != nil {
				continue
			}
			out.Params["TagSpecification."+strconv.Itoa(i+n)+"."+tail] = v
			continue
		}
		out.Params[k] = v
	}
	return out
}

func (c *call) template(id, name string) (*launchTemplate, error) {
	for _, t := range c.r.templates {
		if (id != "" && t.ID == id) || (id == "" && name != "" && t.Name == name) {
			return t, nil
		}
	}
	if id == "" && name == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter LaunchTemplateId or LaunchTemplateName")
	}
	return nil, templateNotFound(id, name)
}

// templateNotFound is EC2's answer for a launch template it does not
// know, by id or by name.
func templateNotFound(id, name string) *APIError {
	if id != "" {
		return apiErr("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	}
	return apiErr("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
}

// visibleTemplate is template for a call that must not see a template
// still within its eventual-consistency window: it is NotFound, as a
// security group or key pair is (every launch template call but
// CreateFleet, which answers it in its errorSet).
func (c *call) visibleTemplate(id, name string) (*launchTemplate, error) {
	t, err := c.template(id, name)
	if err == nil && !c.visible(t.ID) {
		return nil, templateNotFound(id, name)
	}
	return t, err
}

func (c *call) writeTemplate(t *launchTemplate) {
	x := &c.x
	x.leaf("launchTemplateId", t.ID)
	x.leaf("launchTemplateName", t.Name)
	x.time("createTime", t.Created)
	x.leaf("createdBy", "arn:aws:iam::"+c.s.opt.AccountID+":user/amibake")
	x.num("defaultVersionNumber", t.defaultNumber())
	x.num("latestVersionNumber", t.latestNumber())
	if tags := c.r.tags[t.ID]; len(tags) > 0 {
		x.tags(tags)
	}
}

func createLaunchTemplate(c *call) error {
	defer c.lock()()
	name := c.q.Str("LaunchTemplateName")
	if len(name) < 3 || len(name) > 128 {
		return apiErr("InvalidLaunchTemplateName.MalformedException", "The launch template name %q must be 3 to 128 characters long", name)
	}
	for _, t := range c.r.templates {
		if t.Name == name {
			return apiErr("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
	}
	specs, err := c.tagSpecs("launch-template")
	if err != nil {
		return err
	}
	data := c.q.Struct("LaunchTemplateData")
	if _, err := tagSpecsOf(data, "instance", "volume", "network-interface", "spot-instances-request"); err != nil {
		return err
	}
	t := &launchTemplate{ID: c.s.newID("lt-"), Name: name, Data: data, Created: c.now}
	c.r.templates[t.ID] = t
	c.born(t.ID)
	c.r.setTags(t.ID, specs["launch-template"])
	c.x.open("launchTemplate")
	c.writeTemplate(t)
	c.x.close("launchTemplate")
	return nil
}

func deleteLaunchTemplate(c *call) error {
	defer c.lock()()
	// Like DeleteSecurityGroup, a template still within its consistency
	// window is NotFound: the builder deletes it right after the fleet.
	t, err := c.visibleTemplate(c.q.Str("LaunchTemplateId"), c.q.Str("LaunchTemplateName"))
	if err != nil {
		return err
	}
	delete(c.r.templates, t.ID)
	delete(c.r.tags, t.ID)
	c.x.open("launchTemplate")
	c.writeTemplate(t)
	c.x.close("launchTemplate")
	return nil
}

func describeLaunchTemplates(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "launch-template-name", "create-time"); err != nil {
		return err
	}
	// A template within its eventual-consistency window (consistency.go)
	// is unknown by id or name and left out of listings, as for other
	// kinds of resource.
	var ts []*launchTemplate
	for _, id := range q.List("LaunchTemplateId") {
		t, err := c.visibleTemplate(id, "")
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	for _, n := range q.List("LaunchTemplateName") {
		t, err := c.visibleTemplate("", n)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 && len(q.List("LaunchTemplateId"))+len(q.List("LaunchTemplateName")) == 0 {
		for _, t := range c.r.templates {
			if c.visible(t.ID) {
				ts = append(ts, t)
			}
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	}
	var kept []*launchTemplate
	for _, t := range ts {
		if matches(filters, c.r.tags[t.ID], func(n string) []string {
			return []string{map[string]string{"launch-template-name": t.Name, "create-time": t.Created.UTC().Format(time.RFC3339)}[n]}
		}) {
			kept = append(kept, t)
		}
	}
	page, next, err := paginate(q, kept, 1)
	if err != nil {
		return err
	}
	list(&c.x, "launchTemplates", page, func(t *launchTemplate) { c.writeTemplate(t) })
	c.nextToken(next)
	return nil
}

// createFleet implements the instant fleet Packer-style spot builds use:
// instances are launched synchronously from a launch template and the
// answer lists them (or the errors).
//
// The template's version is the one the request names: "The launch
// template version number, $Latest, or $Default. You must specify a
// value, otherwise the request fails" (EC2 API Reference,
// FleetLaunchTemplateSpecificationRequest). The answer names the template
// by id and the version by the number it resolved to, whatever the
// request said.
func createFleet(c *call) error {
	defer c.lock()()
	q := c.q
	if typ := q.Str("Type"); typ != "instant" {
		return apiErr("InvalidParameterValue", "Fleet type %q is not supported by this simulator: use instant", typ)
	}
	if tok, id := c.clientToken(); id != "" {
		c.x.leaf("fleetId", id)
		ins := c.reservation(c.r.tokens["CreateFleet/"+tok+"/reservation"])
		c.writeFleetInstances(ins, c.launchedFrom(ins), "")
		return nil
	}
	tcs := q.Struct("TargetCapacitySpecification")
	total, err := tcs.Int("TotalTargetCapacity", 0)
	if err != nil {
		return err
	}
	if total < 1 {
		return apiErr("MissingParameter", "The request must contain TargetCapacitySpecification.TotalTargetCapacity")
	}
	lifecycle := tcs.Str("DefaultTargetCapacityType")
	if lifecycle == "" {
		lifecycle = "on-demand"
	}
	if lifecycle != "spot" && lifecycle != "on-demand" {
		return apiErr("InvalidParameterValue", "Value (%s) for DefaultTargetCapacityType is invalid.", lifecycle)
	}
	configs := q.Sub("LaunchTemplateConfigs")
	if len(configs) == 0 {
		return apiErr("MissingParameter", "The request must contain the parameter LaunchTemplateConfigs")
	}
	cfg := configs[0]
	spec := cfg.Struct("LaunchTemplateSpecification")
	ltID, ltName, want := spec.Str("LaunchTemplateId"), spec.Str("LaunchTemplateName"), spec.Str("Version")
	if want == "" {
		return apiErr("MissingParameter", "The request must contain the parameter LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version")
	}
	t, err := c.template(ltID, ltName)
	if err != nil {
		return err
	}
	overrides := cfg.Sub("Overrides")
	sort.SliceStable(overrides, func(i, j int) bool {
		pi, _ := strconv.ParseFloat(overrides[i].Str("Priority"), 64)
		pj, _ := strconv.ParseFloat(overrides[j].Str("Priority"), 64)
		return pi < pj
	})
	over := &Query{Params: map[string]string{}}
	if len(overrides) > 0 {
		over = overrides[0]
	}
	fleetTags, err := c.tagSpecs("fleet", "instance", "volume")
	if err != nil {
		return err
	}
	itype, subnetID := over.Str("InstanceType"), over.Str("SubnetId")
	fleetID := "fleet-" + c.s.newID("")[:8] + "-" + c.s.newID("")[:4] + "-" + c.s.newID("")[:4] + "-" + c.s.newID("")[:12]
	if !c.visible(t.ID) {
		// A template created moments ago may not be known to the fleet
		// yet (eventual consistency, consistency.go). An instant fleet
		// "returns the instances that launched and provides errors for
		// those instances that could not be launched" (EC2 User Guide, EC2
		// Fleet request types): the call succeeds, with a fleet id and
		// the template's NotFound in its errorSet. That is how clients
		// meet it on EC2: tibanna, which retries a fleet whose template
		// "is not yet available when the fleet is created" (4dn-dcic/
		// tibanna PR #383), looks for an InvalidLaunchTemplate* code among
		// the answer's Errors, not for an error of the call. A template
		// that does not exist at all is the call's error, above:
		// Karpenter's instance provider retries CreateFleet on that error
		// (InvalidLaunchTemplateName.NotFoundException) for a template
		// deleted behind its cache.
		c.x.leaf("fleetId", fleetID)
		nf := templateNotFound(ltID, ltName)
		c.writeFleetError(fleetSpec{id: ltID, name: ltName, version: want}, itype, subnetID, lifecycle, nf.Code, nf.Message)
		return nil
	}
	ver, err := t.version(want)
	if err != nil {
		return err
	}
	used := fleetSpec{id: t.ID, version: strconv.Itoa(ver.Number)}
	merged := mergeQuery(ver.Data, &Query{Action: "CreateFleet", Params: map[string]string{}})
	n := len(merged.Indices("TagSpecification"))
	for _, rt := range []string{"instance", "volume"} {
		if tags := fleetTags[rt]; len(tags) > 0 {
			n++
			merged.Params["TagSpecification."+strconv.Itoa(n)+".ResourceType"] = rt
			for i, tg := range tags {
				merged.Params[fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", n, i+1)] = tg.Key
				merged.Params[fmt.Sprintf("TagSpecification.%d.Tag.%d.Value", n, i+1)] = tg.Value
			}
		}
	}
	if itype == "" {
		itype = merged.Str("InstanceType")
	}
	if subnetID == "" {
		subnetID = merged.Str("NetworkInterface.1.SubnetId")
	}
	if az := over.Str("AvailabilityZone"); az != "" && subnetID == "" {
		merged.Params["Placement.AvailabilityZone"] = az
	}
	if img := over.Str("ImageId"); img != "" {
		merged.Params["ImageId"] = img
	}
	c.x.leaf("fleetId", fleetID)
	if c.s.faults.fire("CreateFleet", func(k string) bool { return k == FaultInsufficientCap }) != "" {
		c.writeFleetError(used, itype, subnetID, lifecycle, "InsufficientInstanceCapacity", requestFaults[FaultInsufficientCap])
		return nil
	}
	resID, ins, err := c.launch(runRequest{q: merged, imageID: merged.Str("ImageId"), itype: itype, subnetID: subnetID,
		spot: lifecycle == "spot", min: total, max: total, token: "", action: "CreateFleet"})
	if err != nil {
		var ae *APIError
		if !asAPIError(err, &ae) {
			return err
		}
		c.writeFleetError(used, itype, subnetID, lifecycle, ae.Code, ae.Message)
		return nil
	}
	if tok := q.Str("ClientToken"); tok != "" {
		c.r.tokens["CreateFleet/"+tok] = fleetID
		c.r.tokens["CreateFleet/"+tok+"/reservation"] = resID
	}
	c.r.setTags(fleetID, fleetTags["fleet"])
	c.tagLaunchedFrom(ins, t, ver.Number, fleetID)
	c.writeFleetInstances(ins, used, lifecycle)
	return nil
}

// fleetSpec is the launchTemplateSpecification of a fleet's answer.
type fleetSpec struct{ id, name, version string }

// launchedFrom reads the template and version a fleet launched ins from
// off EC2's own tags on them, for the answer to a repeated ClientToken.
func (c *call) launchedFrom(ins []*instance) fleetSpec {
	var sp fleetSpec
	if len(ins) == 0 {
		return sp
	}
	for _, tg := range c.r.tags[ins[0].ID] {
		switch tg.Key {
		case "aws:ec2launchtemplate:id":
			sp.id = tg.Value
		case "aws:ec2launchtemplate:version":
			sp.version = tg.Value
		}
	}
	return sp
}

func (c *call) writeLTAndOverrides(sp fleetSpec, itype, subnetID string) {
	x := &c.x
	x.open("launchTemplateAndOverrides")
	x.open("launchTemplateSpecification")
	x.opt("launchTemplateId", sp.id)
	x.opt("launchTemplateName", sp.name)
	x.opt("version", sp.version)
	x.close("launchTemplateSpecification")
	x.open("overrides")
	x.opt("instanceType", itype)
	x.opt("subnetId", subnetID)
	x.close("overrides")
	x.close("launchTemplateAndOverrides")
}

// writeFleetError answers a fleet that launched nothing: one error, no
// instances.
func (c *call) writeFleetError(sp fleetSpec, itype, subnetID, lifecycle, code, msg string) {
	x := &c.x
	x.open("errorSet")
	x.open("item")
	c.writeLTAndOverrides(sp, itype, subnetID)
	x.leaf("lifecycle", lifecycle)
	x.leaf("errorCode", code)
	x.leaf("errorMessage", msg)
	x.close("item")
	x.close("errorSet")
	x.open("fleetInstanceSet")
	x.close("fleetInstanceSet")
}

func (c *call) writeFleetInstances(ins []*instance, sp fleetSpec, lifecycle string) {
	x := &c.x
	x.open("errorSet")
	x.close("errorSet")
	x.open("fleetInstanceSet")
	if len(ins) > 0 {
		if lifecycle == "" {
			lifecycle = "on-demand"
			if ins[0].Spot {
				lifecycle = "spot"
			}
		}
		x.open("item")
		c.writeLTAndOverrides(sp, ins[0].Type, ins[0].SubnetID)
		x.leaf("lifecycle", lifecycle)
		list(x, "instanceIds", ins, func(in *instance) { x.b.WriteString(in.ID) })
		x.leaf("instanceType", ins[0].Type)
		x.leaf("platform", "")
		x.close("item")
	}
	x.close("fleetInstanceSet")
}

// spotPrice is a stable, plausible price for an instance type in a zone.
func spotPrice(itype, az string) string {
	h := fnv.New32a()
	h.Write([]byte(itype + az))
	size := 1.0
	for _, s := range []struct {
		suffix string
		mult   float64
	}{{"nano", 0.25}, {"micro", 0.5}, {"small", 1}, {"medium", 2}, {".large", 4}, {".xlarge", 8}, {"2xlarge", 16}, {"4xlarge", 32}} {
		if strings.HasSuffix(itype, s.suffix) {
			size = s.mult
		}
	}
	return strconv.FormatFloat(size*0.0035*(1+float64(h.Sum32()%40)/100), 'f', 6, 64)
}

func describeSpotPriceHistory(c *call) error {
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "availability-zone", "instance-type", "product-description", "spot-price", "timestamp"); err != nil {
		return err
	}
	types := q.List("InstanceType")
	if len(types) == 0 {
		types = []string{"t2.micro", "t3.micro", "t3.small", "t3.medium", "m5.large", "c5.large"}
	}
	products := q.List("ProductDescription")
	if len(products) == 0 {
		products = []string{"Linux/UNIX"}
	}
	c.s.mu.Lock()
	zones := slices.Clone(c.r.zones)
	c.s.mu.Unlock()
	if az := q.Str("AvailabilityZone"); az != "" {
		if !slices.Contains(zones, az) {
			return apiErr("InvalidParameterValue", "Invalid availability zone: [%s]", az)
		}
		zones = []string{az}
	}
	type row struct{ itype, product, az, price string }
	var rows []row
	for _, it := range types {
		for _, p := range products {
			for _, z := range zones {
				r := row{it, p, z, spotPrice(it, z)}
				if matches(filters, nil, func(n string) []string {
					return []string{map[string]string{"availability-zone": z, "instance-type": it, "product-description": p, "spot-price": r.price}[n]}
				}) {
					rows = append(rows, r)
				}
			}
		}
	}
	page, next, err := paginate(q, rows, 1)
	if err != nil {
		return err
	}
	ts := c.now.Add(-time.Hour).Truncate(time.Hour)
	x := &c.x
	list(x, "spotPriceHistorySet", page, func(r row) {
		x.leaf("instanceType", r.itype)
		x.leaf("productDescription", r.product)
		x.leaf("spotPrice", r.price)
		x.time("timestamp", ts)
		x.leaf("availabilityZone", r.az)
	})
	c.nextToken(next)
	return nil
}

// tagLaunchedFrom gives instances launched from launch template t (version
// ver) the tags EC2 itself puts on them: "Instances that are launched
// using a launch template are automatically assigned two tags with the
// keys aws:ec2launchtemplate:id and aws:ec2launchtemplate:version" (EC2
// User Guide, "Launch EC2 instances using a launch template"), and, for an
// EC2 Fleet's instances, aws:ec2:fleet-id with the fleet's id. Users
// cannot set aws: tags (CreateTags refuses them), so these are proof of
// where an instance came from: `amibake cleanup` finds a spot build's
// instance by its launch template when the CreateFleet answer was lost.
func (c *call) tagLaunchedFrom(ins []*instance, t *launchTemplate, ver int, fleetID string) {
	tags := []Tag{{Key: "aws:ec2launchtemplate:id", Value: t.ID}, {Key: "aws:ec2launchtemplate:version", Value: strconv.Itoa(ver)}}
	if fleetID != "" {
		tags = append(tags, Tag{Key: "aws:ec2:fleet-id", Value: fleetID})
	}
	for _, in := range ins {
		c.r.setTags(in.ID, tags)
	}
}
