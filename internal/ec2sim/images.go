package ec2sim

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	actions["DescribeImages"] = describeImages
	actions["CreateImage"] = createImage
	actions["CopyImage"] = copyImage
	actions["RegisterImage"] = registerImage
	actions["DeregisterImage"] = deregisterImage
	actions["DescribeImageAttribute"] = describeImageAttribute
	actions["ModifyImageAttribute"] = modifyImageAttribute
	actions["EnableImageDeprecation"] = enableImageDeprecation
	actions["DisableImageDeprecation"] = disableImageDeprecation
}

// The simulator's regexps compile on first use: amibake links the
// simulator (for demo builds) and init time is every command's start-up.
var idRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z]+-([0-9a-f]{8}|[0-9a-f]{17})$`) })

func validID(prefix, id string) bool {
	return strings.HasPrefix(id, prefix+"-") && idRe().MatchString(id)
}

// Lengths are checked apart from the character class: a counted
// repetition like {3,128} compiles to a large program, and package init
// time is start-up time for every amibake command that links the simulator.
var amiNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]+$`) })

func checkAMIName(name string) error {
	if name == "" {
		return apiErr("MissingParameter", "The request must contain the parameter name")
	}
	if len(name) < 3 || len(name) > 128 || !amiNameRe().MatchString(name) {
		return apiErr("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', ''' and '@': %q", name)
	}
	return nil
}

func (c *call) ownImage(im *image) bool { return im.OwnerID == c.s.opt.AccountID }

// canSee reports whether the account can see (and launch) an image.
func (c *call) canSee(im *image) bool {
	return im.Public || c.ownImage(im) || slices.Contains(im.LaunchUsers, c.s.opt.AccountID)
}

// image looks an image up by id for an action that needs it to exist.
func (c *call) image(id string) (*image, error) {
	if !validID("ami", id) {
		return nil, apiErr("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	im, ok := c.r.images[id]
	if !ok || !c.canSee(im) || !c.visible(id) {
		return nil, apiErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return im, nil
}

func (c *call) deprecated(im *image) bool {
	return !im.Deprecation.IsZero() && !im.Deprecation.After(c.now)
}

func describeImages(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "architecture", "block-device-mapping.delete-on-termination", "block-device-mapping.device-name",
		"block-device-mapping.snapshot-id", "block-device-mapping.volume-size", "block-device-mapping.volume-type",
		"block-device-mapping.encrypted", "creation-date", "description", "ena-support", "hypervisor", "image-id", "image-type",
		"is-public", "kernel-id", "manifest-location", "name", "owner-alias", "owner-id", "platform", "platform-details",
		"product-code", "ramdisk-id", "root-device-name", "root-device-type", "state", "state-reason-code", "state-reason-message",
		"sriov-net-support", "source-image-id", "source-image-region", "usage-operation", "virtualization-type", "boot-mode"); err != nil {
		return err
	}
	ids := q.List("ImageId")
	owners := q.List("Owner")
	execBy := q.List("ExecutableBy")
	var out []*image
	if len(ids) > 0 {
		if q.Has("MaxResults") {
			return apiErr("InvalidParameterCombination", "The parameter imageIdsSet cannot be used with the parameter maxResults")
		}
		for _, id := range ids {
			im, err := c.image(id)
			if err != nil {
				return err
			}
			out = append(out, im)
		}
	} else {
		for _, im := range c.r.images {
			if c.canSee(im) && c.visible(im.ID) {
				out = append(out, im)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	}
	includeDeprecated := q.Bool("IncludeDeprecated") || len(ids) > 0
	acct := c.s.opt.AccountID
	var kept []*image
	for _, im := range out {
		if !includeDeprecated && !c.ownImage(im) && c.deprecated(im) {
			continue
		}
		if len(owners) > 0 && !slices.ContainsFunc(owners, func(o string) bool {
			return o == im.OwnerID || (o == "self" && im.OwnerID == acct) || (o != "" && o == im.OwnerAlias)
		}) {
			continue
		}
		if len(execBy) > 0 && !slices.ContainsFunc(execBy, func(e string) bool {
			switch e {
			case "all":
				return im.Public
			case "self":
				return im.Public || c.ownImage(im) || slices.Contains(im.LaunchUsers, acct)
			}
			return im.Public || slices.Contains(im.LaunchUsers, e)
		}) {
			continue
		}
		if !matches(filters, c.imageTags(im), func(n string) []string { return imageField(im, n) }) {
			continue
		}
		kept = append(kept, im)
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	list(&c.x, "imagesSet", page, func(im *image) { c.writeImage(im) })
	c.nextToken(next)
	return nil
}

// imageTags: tags belong to the account that set them, so other owners'
// images show none.
func (c *call) imageTags(im *image) []Tag {
	if !c.ownImage(im) {
		return nil
	}
	return c.r.tags[im.ID]
}

func imageField(im *image, name string) []string {
	one := func(s string) []string { return []string{s} }
	switch name {
	case "architecture":
		return one(im.Arch)
	case "creation-date":
		return one(im.Created.UTC().Format("2006-01-02T15:04:05.000Z"))
	case "description":
		return one(im.Description)
	case "ena-support":
		return one("true")
	case "hypervisor":
		return one("xen")
	case "image-id":
		return one(im.ID)
	case "image-type":
		return one("machine")
	case "is-public":
		return one(boolStr(im.Public))
	case "manifest-location":
		return one(im.ImageLocation)
	case "name":
		return one(im.Name)
	case "owner-alias":
		return one(im.OwnerAlias)
	case "owner-id":
		return one(im.OwnerID)
	case "platform-details":
		return one("Linux/UNIX")
	case "usage-operation":
		return one("RunInstances")
	case "root-device-name":
		return one(im.RootDevice)
	case "root-device-type":
		return one("ebs")
	case "state":
		return one(im.State)
	case "virtualization-type":
		return one("hvm")
	case "boot-mode":
		return one(im.BootMode)
	case "source-image-id":
		return one(im.SourceImageID)
	case "source-image-region":
		return one(im.SourceRegion)
	case "state-reason-message":
		return one(im.StateReason)
	}
	var out []string
	for _, b := range im.BDMs {
		switch name {
		case "block-device-mapping.device-name":
			out = append(out, b.DeviceName)
		case "block-device-mapping.snapshot-id":
			out = append(out, b.SnapshotID)
		case "block-device-mapping.volume-size":
			out = append(out, strconv.Itoa(b.VolumeSize))
		case "block-device-mapping.volume-type":
			out = append(out, b.VolumeType)
		case "block-device-mapping.delete-on-termination":
			out = append(out, boolStr(b.DeleteOnTermination))
		case "block-device-mapping.encrypted":
			out = append(out, boolStr(b.Encrypted))
		}
	}
	return out
}

func (c *call) writeImage(im *image) {
	x := &c.x
	x.leaf("imageId", im.ID)
	x.leaf("imageLocation", im.ImageLocation)
	x.leaf("imageState", im.State)
	x.leaf("imageOwnerId", im.OwnerID)
	x.time("creationDate", im.Created)
	x.boolean("isPublic", im.Public)
	x.leaf("architecture", im.Arch)
	x.leaf("imageType", "machine")
	x.opt("imageOwnerAlias", im.OwnerAlias)
	x.leaf("name", im.Name)
	x.opt("description", im.Description)
	x.leaf("rootDeviceType", "ebs")
	x.leaf("rootDeviceName", im.RootDevice)
	writeBDMs(x, im.BDMs)
	x.leaf("virtualizationType", "hvm")
	if tags := c.imageTags(im); len(tags) > 0 {
		x.tags(tags)
	}
	x.leaf("hypervisor", "xen")
	x.boolean("enaSupport", true)
	x.leaf("sriovNetSupport", "simple")
	x.leaf("platformDetails", "Linux/UNIX")
	x.leaf("usageOperation", "RunInstances")
	x.opt("bootMode", im.BootMode)
	x.time("deprecationTime", im.Deprecation)
	x.opt("sourceImageId", im.SourceImageID)
	x.opt("sourceImageRegion", im.SourceRegion)
	if im.StateReason != "" {
		x.open("stateReason")
		x.leaf("code", "Server.InternalError")
		x.leaf("message", im.StateReason)
		x.close("stateReason")
	}
}

func writeBDMs(x *xw, bdms []bdm) {
	list(x, "blockDeviceMapping", bdms, func(b bdm) {
		x.leaf("deviceName", b.DeviceName)
		if b.VirtualName != "" {
			x.leaf("virtualName", b.VirtualName)
			return
		}
		if b.NoDevice {
			x.leaf("noDevice", "")
			return
		}
		x.open("ebs")
		x.opt("snapshotId", b.SnapshotID)
		x.num("volumeSize", b.VolumeSize)
		x.boolean("deleteOnTermination", b.DeleteOnTermination)
		x.leaf("volumeType", b.VolumeType)
		if b.Iops > 0 {
			x.num("iops", b.Iops)
		}
		x.boolean("encrypted", b.Encrypted)
		x.opt("kmsKeyId", b.KmsKeyID)
		x.close("ebs")
	})
}

// parseBDMs reads "BlockDeviceMapping.N" as RunInstances, CreateImage and
// RegisterImage send it.
func parseBDMs(q *Query) ([]bdm, error) {
	var out []bdm
	for _, s := range q.Sub("BlockDeviceMapping") {
		b := bdm{DeviceName: s.Str("DeviceName"), VirtualName: s.Str("VirtualName"), NoDevice: s.Has("NoDevice")}
		if b.DeviceName == "" {
			return nil, apiErr("MissingParameter", "The request must contain the parameter BlockDeviceMapping.DeviceName")
		}
		e := s.Struct("Ebs")
		var err error
		if b.VolumeSize, err = e.Int("VolumeSize", 0); err != nil {
			return nil, err
		}
		if b.Iops, err = e.Int("Iops", 0); err != nil {
			return nil, err
		}
		if b.VolumeSize < 0 || b.VolumeSize > 16384 {
			return nil, apiErr("InvalidParameterValue", "Volume of %d GiB is out of range for device %s", b.VolumeSize, b.DeviceName)
		}
		b.SnapshotID = e.Str("SnapshotId")
		b.VolumeType = e.Str("VolumeType")
		switch b.VolumeType {
		case "", "gp2", "gp3", "io1", "io2", "st1", "sc1", "standard":
		default:
			return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid.", b.VolumeType)
		}
		b.DeleteOnTermination = !e.Has("DeleteOnTermination") || e.Bool("DeleteOnTermination")
		b.Encrypted = e.Bool("Encrypted")
		b.KmsKeyID = e.Str("KmsKeyId")
		b.VirtualName = s.Str("VirtualName")
		b.NoDevice = s.Has("NoDevice")
		b.Iops, _ = e.Int("Iops", 0)
		if b.Throughput, err = e.Int("Throughput", 0); err != nil {
			return nil, err
		}
		if b.Throughput != 0 && b.VolumeType != "gp3" {
			return nil, apiErr("InvalidParameterCombination", "Throughput is only valid for gp3 volumes.")
		}
		out = append(out, b)
	}
	return out, nil
}

// mergeBDMs applies requested mappings over a base: same device names
// are overridden, NoDevice removes, others are added.
func mergeBDMs(base, req []bdm) []bdm {
	out := slices.Clone(base)
	for _, r := range req {
		i := slices.IndexFunc(out, func(b bdm) bool { return b.DeviceName == r.DeviceName })
		if r.NoDevice {
			if i >= 0 {
				out = slices.Delete(out, i, i+1)
			}
			continue
		}
		if i < 0 {
			if r.VolumeType == "" && r.VirtualName == "" {
				r.VolumeType = "gp3"
			}
			if r.VolumeSize == 0 && r.VirtualName == "" {
				r.VolumeSize = 8
			}
			out = append(out, r)
			continue
		}
		b := &out[i]
		if r.VolumeSize > 0 {
			b.VolumeSize = r.VolumeSize
		}
		if r.VolumeType != "" {
			b.VolumeType = r.VolumeType
		}
		if r.Iops > 0 {
			b.Iops = r.Iops
		}
		if r.Throughput > 0 {
			b.Throughput = r.Throughput
		}
		b.DeleteOnTermination = r.DeleteOnTermination
		if r.Encrypted {
			b.Encrypted, b.KmsKeyID = true, r.KmsKeyID
		}
	}
	return out
}

func (c *call) checkNameFree(name string) error {
	for _, im := range c.r.images {
		if c.ownImage(im) && im.Name == name {
			return apiErr("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.ID)
		}
	}
	return nil
}

func (c *call) tagSpecs(allowed ...string) (map[string][]Tag, error) {
	return tagSpecsOf(c.q, allowed...)
}

func tagSpecsOf(q *Query, allowed ...string) (map[string][]Tag, error) {
	specs, err := q.TagSpecs()
	if err != nil {
		return nil, err
	}
	for rt := range specs {
		if !slices.Contains(allowed, rt) {
			return nil, apiErr("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	return specs, nil
}

// clientToken returns the id an earlier call with the same ClientToken
// created, so retries are idempotent.
func (c *call) clientToken() (string, string) {
	tok := c.q.Str("ClientToken")
	if tok == "" {
		return "", ""
	}
	return tok, c.r.tokens[c.q.Action+"/"+tok]
}

func createImage(c *call) error {
	defer c.lock()()
	q := c.q
	in, err := c.instance(q.Str("InstanceId"))
	if err != nil {
		return err
	}
	name := q.Str("Name")
	if err := checkAMIName(name); err != nil {
		return err
	}
	if in.State != "running" && in.State != "stopped" {
		return apiErr("IncorrectInstanceState", "Instance '%s' is not in a state from which it can be imaged.", in.ID)
	}
	if err := c.checkNameFree(name); err != nil {
		return err
	}
	reqBDMs, err := parseBDMs(q)
	if err != nil {
		return err
	}
	specs, err := c.tagSpecs("image", "snapshot")
	if err != nil {
		return err
	}
	acct := c.s.opt.AccountID
	im := &image{
		ID: c.s.newID("ami-"), Name: name, Description: q.Str("Description"), OwnerID: acct,
		Arch: in.Arch, RootDevice: in.RootDevice, State: "pending", Created: c.now, Flavor: in.Flavor,
		BootMode: "uefi-preferred",
	}
	im.ImageLocation = acct + "/" + name
	var base []bdm
	var rootSnap *snapshot
	var snaps []*snapshot
	for _, d := range in.Devices {
		v := c.r.volumes[d.VolumeID]
		if v == nil {
			continue
		}
		sn := &snapshot{
			ID: c.s.newID("snap-"), VolumeID: v.ID, OwnerID: acct, State: "pending", Size: v.Size,
			Start: c.now, Duration: c.s.opt.Latency.ImagePending, Flavor: in.Flavor, Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyID,
			Description: fmt.Sprintf("Created by CreateImage(%s) for %s", in.ID, im.ID),
		}
		snaps = append(snaps, sn)
		if d.Device == in.RootDevice {
			rootSnap = sn
		}
		base = append(base, bdm{DeviceName: d.Device, SnapshotID: sn.ID, VolumeSize: v.Size, VolumeType: v.Type,
			DeleteOnTermination: v.DeleteOnTermination, Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyID, Iops: v.Iops})
	}
	im.BDMs = mergeBDMs(base, reqBDMs)
	for _, sn := range snaps {
		c.r.snapshots[sn.ID] = sn
		c.born(sn.ID)
		c.r.setTags(sn.ID, specs["snapshot"])
	}
	c.r.images[im.ID] = im
	c.born(im.ID)
	c.r.setTags(im.ID, specs["image"])
	failed := c.s.faults.resource("CreateImage", FaultImageFailed)
	noReboot := q.Bool("NoReboot")
	s, lat := c.s, c.s.opt.Latency.ImagePending
	c.spawn(lat > 0, func() {
		start := time.Now()
		in.opMu.Lock()
		s.mu.Lock()
		m, running := in.machine, in.State == "running"
		s.mu.Unlock()
		var err error
		if m != nil && rootSnap != nil {
			if running && !noReboot {
				// AWS reboots the instance so the filesystem is consistent.
				err = m.Shutdown(s.ctx)
				if err == nil {
					err = m.Snapshot(rootSnap.ID)
				}
				if berr := m.Boot(s.ctx); err == nil {
					err = berr
				}
			} else {
				err = m.Snapshot(rootSnap.ID)
			}
		} else if rootSnap != nil {
			err = fmt.Errorf("instance %s has no host", in.ID)
		}
		in.opMu.Unlock()
		if !s.sleep(lat - time.Since(start)) {
			return
		}
		s.finishImage(im, snaps, rootSnap, err, failed)
	})
	c.x.leaf("imageId", im.ID)
	return nil
}

// finishImage moves a pending image and its snapshots to their final
// state once the host work is done.
func (s *Server) finishImage(im *image, snaps []*snapshot, root *snapshot, err error, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Error("ec2sim: image capture failed", "image", im.ID, "err", err)
	}
	for _, sn := range snaps {
		if sn.State != "pending" {
			continue
		}
		sn.State = "completed"
		if err != nil || failed {
			sn.State = "error"
		}
		if sn == root && err == nil {
			sn.content = true
		}
		s.eventLocked(sn.ID, sn.State)
	}
	if im.State != "pending" {
		return // deregistered meanwhile
	}
	switch {
	case err != nil:
		im.State, im.StateReason = "failed", "Internal error while creating the image"
	case failed:
		im.State, im.StateReason = "failed", "Injected fault: the image failed"
	default:
		im.State = "available"
	}
	s.eventLocked(im.ID, im.State)
}

func copyImage(c *call) error {
	defer c.lock()()
	q := c.q
	if _, id := c.clientToken(); id != "" {
		c.x.leaf("imageId", id)
		return nil
	}
	srcRegion := q.Str("SourceRegion")
	if srcRegion == "" {
		return apiErr("MissingParameter", "The request must contain the parameter SourceRegion")
	}
	sr := c.s.region(srcRegion)
	if sr == nil {
		return apiErr("InvalidParameterValue", "Invalid value '%s' for SourceRegion", srcRegion)
	}
	srcID := q.Str("SourceImageId")
	if srcID == "" {
		return apiErr("MissingParameter", "The request must contain the parameter SourceImageId")
	}
	src := &call{s: c.s, r: sr, q: q, now: c.now}
	sim, err := src.image(srcID)
	if err != nil {
		return err
	}
	if sim.State != "available" {
		return apiErr("IncorrectState", "Image %s is not in a state that can be copied (%s)", srcID, sim.State)
	}
	name := q.Str("Name")
	if err := checkAMIName(name); err != nil {
		return err
	}
	if err := c.checkNameFree(name); err != nil {
		return err
	}
	specs, err := c.tagSpecs("image", "snapshot")
	if err != nil {
		return err
	}
	acct := c.s.opt.AccountID
	encrypted := q.Bool("Encrypted")
	im := &image{
		ID: c.s.newID("ami-"), Name: name, Description: q.Str("Description"), OwnerID: acct, Arch: sim.Arch,
		RootDevice: sim.RootDevice, State: "pending", Created: c.now, Flavor: sim.Flavor, BootMode: sim.BootMode,
		SourceImageID: sim.ID, SourceRegion: srcRegion, ImageLocation: acct + "/" + name,
	}
	type pair struct{ src, dst *snapshot }
	var pairs []pair
	var snaps []*snapshot
	var root *snapshot
	for _, b := range sim.BDMs {
		if b.SnapshotID != "" {
			ss := sr.snapshots[b.SnapshotID]
			if ss == nil {
				return apiErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", b.SnapshotID)
			}
			ds := &snapshot{
				ID: c.s.newID("snap-"), OwnerID: acct, State: "pending", Size: ss.Size, Start: c.now,
				Duration: c.s.opt.Latency.ImagePending, Flavor: ss.Flavor, Encrypted: ss.Encrypted || encrypted,
				Description: fmt.Sprintf("Copied for DestinationAmi %s from SourceAmi %s for SourceSnapshot %s. Task created on %s.", im.ID, sim.ID, ss.ID, c.now.UTC().Format(time.RFC3339)),
			}
			if encrypted {
				ds.KmsKeyID = q.Str("KmsKeyId")
				b.Encrypted, b.KmsKeyID = true, ds.KmsKeyID
			}
			b.SnapshotID = ds.ID
			pairs = append(pairs, pair{ss, ds})
			snaps = append(snaps, ds)
			if b.DeviceName == sim.RootDevice {
				root = ds
			}
		}
		im.BDMs = append(im.BDMs, b)
	}
	for _, sn := range snaps {
		c.r.snapshots[sn.ID] = sn
		c.born(sn.ID)
		c.r.setTags(sn.ID, specs["snapshot"])
	}
	c.r.images[im.ID] = im
	c.born(im.ID)
	imTags := specs["image"]
	if q.Bool("CopyImageTags") && sim.OwnerID == acct {
		imTags = append(slices.Clone(sr.tags[sim.ID]), imTags...)
	}
	c.r.setTags(im.ID, imTags)
	if tok := q.Str("ClientToken"); tok != "" {
		c.r.tokens["CopyImage/"+tok] = im.ID
	}
	failed := c.s.faults.resource("CopyImage", FaultImageFailed)
	s, lat := c.s, c.s.opt.Latency.ImagePending
	c.spawn(lat > 0, func() {
		start := time.Now()
		var err error
		for _, p := range pairs {
			if p.dst != root {
				continue
			}
			if err = s.ensureContent(p.src); err == nil {
				err = s.hosts.CopySnapshot(p.src.ID, p.dst.ID)
			}
		}
		if !s.sleep(lat - time.Since(start)) {
			return
		}
		s.finishImage(im, snaps, root, err, failed)
	})
	c.x.leaf("imageId", im.ID)
	return nil
}

// ensureContent makes sure the host backend holds a filesystem for a
// snapshot: catalogue snapshots are seeded on first use so start-up stays
// instant.
func (s *Server) ensureContent(sn *snapshot) error {
	if !sn.public {
		s.mu.Lock()
		ok := sn.content
		s.mu.Unlock()
		if !ok {
			return fmt.Errorf("snapshot %s has no content (not completed)", sn.ID)
		}
		return nil
	}
	sn.seedOnce.Do(func() { sn.seedErr = s.hosts.SeedSnapshot(sn.ID, sn.Flavor) })
	return sn.seedErr
}

func registerImage(c *call) error {
	defer c.lock()()
	q := c.q
	name := q.Str("Name")
	if err := checkAMIName(name); err != nil {
		return err
	}
	if err := c.checkNameFree(name); err != nil {
		return err
	}
	if q.Str("ImageLocation") != "" {
		return apiErr("InvalidParameterValue", "Instance store (S3) images are not supported; register an EBS-backed image")
	}
	root := q.Str("RootDeviceName")
	if root == "" {
		return apiErr("MissingParameter", "The request must contain the parameter RootDeviceName")
	}
	bdms, err := parseBDMs(q)
	if err != nil {
		return err
	}
	specs, err := c.tagSpecs("image")
	if err != nil {
		return err
	}
	acct := c.s.opt.AccountID
	im := &image{
		ID: c.s.newID("ami-"), Name: name, Description: q.Str("Description"), OwnerID: acct,
		Arch: q.Str("Architecture"), RootDevice: root, State: "pending", Created: c.now,
		BootMode: q.Str("BootMode"), ImageLocation: acct + "/" + name,
	}
	if im.Arch == "" {
		im.Arch = "x86_64"
	}
	var rootSnap *snapshot
	for i, b := range bdms {
		if b.SnapshotID == "" {
			continue
		}
		sn := c.r.snapshots[b.SnapshotID]
		if sn == nil || (!sn.public && sn.OwnerID != acct) {
			return apiErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", b.SnapshotID)
		}
		if sn.State != "completed" {
			return apiErr("IncorrectState", "Snapshot %s is not completed", sn.ID)
		}
		if bdms[i].VolumeSize == 0 {
			bdms[i].VolumeSize = sn.Size
		}
		if bdms[i].VolumeType == "" {
			bdms[i].VolumeType = "gp3"
		}
		if b.DeviceName == root {
			rootSnap = sn
		}
	}
	if rootSnap == nil {
		return apiErr("InvalidBlockDeviceMapping", "The root device %s must map to an EBS snapshot", root)
	}
	im.BDMs = bdms
	im.Flavor = rootSnap.Flavor
	c.r.images[im.ID] = im
	c.born(im.ID)
	c.r.setTags(im.ID, specs["image"])
	failed := c.s.faults.resource("RegisterImage", FaultImageFailed)
	s, lat := c.s, c.s.opt.Latency.ImagePending
	c.spawn(lat > 0, func() {
		if s.sleep(lat) {
			s.finishImage(im, nil, nil, nil, failed)
		}
	})
	c.x.leaf("imageId", im.ID)
	return nil
}

func (c *call) ownedImage(id string) (*image, error) {
	im, err := c.image(id)
	if err != nil {
		return nil, err
	}
	if !c.ownImage(im) {
		return nil, apiErr("UnauthorizedOperation", "You are not authorized to modify image %s owned by %s.", id, im.OwnerID)
	}
	return im, nil
}

func deregisterImage(c *call) error {
	defer c.lock()()
	im, err := c.ownedImage(c.q.Str("ImageId"))
	if err != nil {
		return err
	}
	im.State = "deregistered"
	delete(c.r.images, im.ID)
	delete(c.r.tags, im.ID)
	if c.q.Bool("DeleteAssociatedSnapshots") {
		for _, b := range im.BDMs {
			if sn := c.r.snapshots[b.SnapshotID]; sn != nil && !sn.public {
				c.deleteSnapshot(sn)
			}
		}
	}
	c.x.boolean("return", true)
	return nil
}

func describeImageAttribute(c *call) error {
	defer c.lock()()
	im, err := c.image(c.q.Str("ImageId"))
	if err != nil {
		return err
	}
	x := &c.x
	x.leaf("imageId", im.ID)
	switch attr := c.q.Str("Attribute"); attr {
	case "launchPermission":
		if !c.ownImage(im) {
			return apiErr("AuthFailure", "Not authorized for image:%s", im.ID)
		}
		x.open("launchPermission")
		if im.Public {
			x.open("item")
			x.leaf("group", "all")
			x.close("item")
		}
		for _, u := range im.LaunchUsers {
			x.open("item")
			x.leaf("userId", u)
			x.close("item")
		}
		for _, o := range im.LaunchOrgs {
			x.open("item")
			x.leaf("organizationArn", o)
			x.close("item")
		}
		for _, o := range im.LaunchOUs {
			x.open("item")
			x.leaf("organizationalUnitArn", o)
			x.close("item")
		}
		x.close("launchPermission")
	case "description":
		x.open("description")
		x.opt("value", im.Description)
		x.close("description")
	case "blockDeviceMapping":
		writeBDMs(x, im.BDMs)
	case "bootMode":
		x.open("bootMode")
		x.opt("value", im.BootMode)
		x.close("bootMode")
	case "kernel", "ramdisk", "sriovNetSupport", "imdsSupport", "tpmSupport", "uefiData", "lastLaunchedTime", "deregistrationProtection":
		x.open(attr)
		x.close(attr)
	case "productCodes":
		x.open("productCodes")
		x.close("productCodes")
	case "":
		return apiErr("MissingParameter", "The request must contain the parameter Attribute")
	default:
		return apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	return nil
}

var accountIDRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{12}$`) })

type launchPerm struct{ user, group, org, ou string }

func readPerms(subs []*Query) []launchPerm {
	var out []launchPerm
	for _, s := range subs {
		out = append(out, launchPerm{user: s.Str("UserId"), group: s.Str("Group"), org: s.Str("OrganizationArn"), ou: s.Str("OrganizationalUnitArn")})
	}
	return out
}

func modifyImageAttribute(c *call) error {
	defer c.lock()()
	q := c.q
	im, err := c.ownedImage(q.Str("ImageId"))
	if err != nil {
		return err
	}
	if d := q.Struct("Description"); d.Has("Value") || (q.Str("Attribute") == "description" && q.Has("Value")) {
		v := d.Str("Value")
		if !d.Has("Value") {
			v = q.Str("Value")
		}
		im.Description = v
		return nil
	}
	add := readPerms(q.Struct("LaunchPermission").Sub("Add"))
	remove := readPerms(q.Struct("LaunchPermission").Sub("Remove"))
	var legacy []launchPerm
	for _, u := range q.List("UserId") {
		legacy = append(legacy, launchPerm{user: u})
	}
	for _, g := range q.List("UserGroup") {
		legacy = append(legacy, launchPerm{group: g})
	}
	for _, o := range q.List("OrganizationArn") {
		legacy = append(legacy, launchPerm{org: o})
	}
	for _, o := range q.List("OrganizationalUnitArn") {
		legacy = append(legacy, launchPerm{ou: o})
	}
	switch q.Str("OperationType") {
	case "add":
		add = append(add, legacy...)
	case "remove":
		remove = append(remove, legacy...)
	case "":
		// Packer's ami_users (and SDK v1 callers) send the same users both
		// as LaunchPermission.Add.N.UserId and as UserId.N, without
		// OperationType, and EC2 accepts it: the flat list only repeats the
		// structured one. A flat list alone still needs OperationType.
		for _, l := range legacy {
			if !slices.Contains(add, l) && !slices.Contains(remove, l) {
				return apiErr("MissingParameter", "The request must contain the parameter OperationType")
			}
		}
	default:
		return apiErr("InvalidParameterValue", "Value (%s) for parameter operationType is invalid.", q.Str("OperationType"))
	}
	if len(add)+len(remove) == 0 {
		return apiErr("MissingParameter", "No attributes specified.")
	}
	for _, p := range append(slices.Clone(add), remove...) {
		switch {
		case p.user != "" && !accountIDRe().MatchString(p.user):
			return apiErr("InvalidAMIAttributeItemValue", "Invalid attribute item value \"%s\" for userId item type.", p.user)
		case p.group != "" && p.group != "all":
			return apiErr("InvalidParameterValue", "Invalid value '%s' for group: only 'all' is supported", p.group)
		case p.org != "" && !strings.HasPrefix(p.org, "arn:aws:organizations::"):
			return apiErr("InvalidParameterValue", "Invalid organization ARN '%s'", p.org)
		case p.ou != "" && !strings.HasPrefix(p.ou, "arn:aws:organizations::"):
			return apiErr("InvalidParameterValue", "Invalid organizational unit ARN '%s'", p.ou)
		}
	}
	addStr := func(l []string, v string) []string {
		if v == "" || slices.Contains(l, v) {
			return l
		}
		return append(l, v)
	}
	delStr := func(l []string, v string) []string {
		return slices.DeleteFunc(l, func(s string) bool { return s == v })
	}
	for _, p := range add {
		im.LaunchUsers, im.LaunchOrgs, im.LaunchOUs = addStr(im.LaunchUsers, p.user), addStr(im.LaunchOrgs, p.org), addStr(im.LaunchOUs, p.ou)
		if p.group == "all" {
			im.Public = true
		}
	}
	for _, p := range remove {
		im.LaunchUsers, im.LaunchOrgs, im.LaunchOUs = delStr(im.LaunchUsers, p.user), delStr(im.LaunchOrgs, p.org), delStr(im.LaunchOUs, p.ou)
		if p.group == "all" {
			im.Public = false
		}
	}
	return nil
}

func enableImageDeprecation(c *call) error {
	defer c.lock()()
	im, err := c.ownedImage(c.q.Str("ImageId"))
	if err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339, c.q.Str("DeprecateAt"))
	if err != nil {
		return apiErr("InvalidParameterValue", "Invalid value '%s' for DeprecateAt: want an ISO 8601 time", c.q.Str("DeprecateAt"))
	}
	// "If you specify a value for seconds, Amazon EC2 rounds the seconds to
	// the nearest minute. You can't specify a date in the past."
	// (EnableImageDeprecation, EC2 API reference); a minute of slack for
	// clock skew.
	if at.Before(c.now.Add(-time.Minute)) {
		return apiErr("InvalidParameterValue", "DeprecateAt %s is in the past", c.q.Str("DeprecateAt"))
	}
	im.Deprecation = at.Round(time.Minute)
	c.x.boolean("return", true)
	return nil
}

func disableImageDeprecation(c *call) error {
	defer c.lock()()
	im, err := c.ownedImage(c.q.Str("ImageId"))
	if err != nil {
		return err
	}
	im.Deprecation = time.Time{}
	c.x.boolean("return", true)
	return nil
}
