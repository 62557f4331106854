package ec2sim

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

func init() {
	actions["DescribeVolumes"] = describeVolumes
	actions["DeleteVolume"] = deleteVolume
	actions["CreateVolume"] = createVolume
	actions["CreateSnapshot"] = createSnapshot
	actions["DescribeSnapshots"] = describeSnapshots
	actions["DeleteSnapshot"] = deleteSnapshotAction
	actions["ModifySnapshotAttribute"] = modifySnapshotAttribute
	actions["DescribeSnapshotAttribute"] = describeSnapshotAttribute
}

func (c *call) volume(id string) (*volume, error) {
	if !validID("vol", id) {
		return nil, apiErr("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	v := c.r.volumes[id]
	if v == nil || !c.visible(id) {
		return nil, apiErr("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	return v, nil
}

func describeVolumes(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "attachment.instance-id", "attachment.device", "attachment.status", "attachment.delete-on-termination",
		"availability-zone", "create-time", "encrypted", "size", "snapshot-id", "status", "volume-id", "volume-type"); err != nil {
		return err
	}
	var vs []*volume
	if ids := q.List("VolumeId"); len(ids) > 0 {
		for _, id := range ids {
			v, err := c.volume(id)
			if err != nil {
				return err
			}
			vs = append(vs, v)
		}
	} else {
		for _, v := range c.r.volumes {
			if c.visible(v.ID) {
				vs = append(vs, v)
			}
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
	}
	var kept []*volume
	for _, v := range vs {
		if matches(filters, c.r.tags[v.ID], func(n string) []string {
			return []string{map[string]string{
				"attachment.instance-id": v.InstanceID, "attachment.device": v.Device, "attachment.status": map[bool]string{true: "attached", false: ""}[v.InstanceID != ""],
				"attachment.delete-on-termination": boolStr(v.DeleteOnTermination), "availability-zone": v.AZ,
				"create-time": v.Created.UTC().Format("2006-01-02T15:04:05.000Z"), "encrypted": boolStr(v.Encrypted), "size": strconv.Itoa(v.Size),
				"snapshot-id": v.SnapshotID, "status": v.State, "volume-id": v.ID, "volume-type": v.Type,
			}[n]}
		}) {
			kept = append(kept, v)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "volumeSet", page, func(v *volume) {
		x.leaf("volumeId", v.ID)
		x.num("size", v.Size)
		x.leaf("snapshotId", v.SnapshotID)
		x.leaf("availabilityZone", v.AZ)
		x.leaf("status", v.State)
		x.time("createTime", v.Created)
		x.open("attachmentSet")
		if v.InstanceID != "" {
			x.open("item")
			x.leaf("volumeId", v.ID)
			x.leaf("instanceId", v.InstanceID)
			x.leaf("device", v.Device)
			x.leaf("status", "attached")
			x.time("attachTime", v.AttachTime)
			x.boolean("deleteOnTermination", v.DeleteOnTermination)
			x.close("item")
		}
		x.close("attachmentSet")
		if tags := c.r.tags[v.ID]; len(tags) > 0 {
			x.tags(tags)
		}
		x.leaf("volumeType", v.Type)
		iops, tput := volumePerf(v)
		if iops > 0 {
			x.num("iops", iops)
		}
		if tput > 0 {
			x.num("throughput", tput)
		}
		x.boolean("encrypted", v.Encrypted)
		x.opt("kmsKeyId", v.KmsKeyID)
		x.boolean("multiAttachEnabled", false)
	})
	c.nextToken(next)
	return nil
}

// volumePerf is what DescribeVolumes reports: gp3 has a 3,000 IOPS and
// 125 MiB/s baseline unless more was asked (EBS volume types, "General
// Purpose SSD volumes": gp3); gp2 3 IOPS per GiB, at least 100 and at
// most 16,000.
func volumePerf(v *volume) (iops, throughput int) {
	iops, throughput = v.Iops, v.Throughput
	switch v.Type {
	case "gp3":
		if iops == 0 {
			iops = 3000
		}
		if throughput == 0 {
			throughput = 125
		}
	case "gp2":
		iops = min(max(3*v.Size, 100), 16000)
	}
	return iops, throughput
}

// createVolume makes an unattached volume, from a snapshot or empty: the
// answer says "creating", the volume is "available" right after (EBS
// volume creation from the console or API is near-instant for a small
// volume; the snapshot's blocks load lazily).
func createVolume(c *call) error {
	defer c.lock()()
	q := c.q
	az := q.Str("AvailabilityZone")
	if az == "" && q.Str("AvailabilityZoneId") != "" {
		for _, sn := range c.r.subnets {
			if sn.ZoneID == q.Str("AvailabilityZoneId") {
				az = sn.AZ
			}
		}
	}
	if az == "" {
		return apiErr("MissingParameter", "The request must contain the parameter AvailabilityZone")
	}
	if !slices.Contains(c.r.zones, az) {
		return apiErr("InvalidParameterValue", "Invalid availability zone: [%s]", az)
	}
	if tok := q.Str("ClientToken"); tok != "" {
		if id, ok := c.r.tokens["CreateVolume/"+tok]; ok {
			if v := c.r.volumes[id]; v != nil {
				c.writeVolumeBody(v, v.State)
				return nil
			}
		}
	}
	size, err := q.Int("Size", 0)
	if err != nil {
		return err
	}
	v := &volume{ID: c.s.newID("vol-"), AZ: az, State: "creating", SnapshotID: q.Str("SnapshotId"), Created: c.now,
		Type: q.Str("VolumeType"), Encrypted: q.Bool("Encrypted"), KmsKeyID: q.Str("KmsKeyId")}
	if v.Type == "" {
		v.Type = "gp2" // CreateVolume's documented default
	}
	switch v.Type {
	case "gp2", "gp3", "io1", "io2", "st1", "sc1", "standard":
	default:
		return apiErr("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid.", v.Type)
	}
	if v.Iops, err = q.Int("Iops", 0); err != nil {
		return err
	}
	if v.Throughput, err = q.Int("Throughput", 0); err != nil {
		return err
	}
	if v.Throughput != 0 && v.Type != "gp3" {
		return apiErr("InvalidParameterCombination", "Throughput is only valid for gp3 volumes.")
	}
	if v.SnapshotID != "" {
		sn, err := c.snapshot(v.SnapshotID)
		if err != nil {
			return err
		}
		if size == 0 {
			size = sn.Size
		}
		if size < sn.Size {
			return apiErr("InvalidParameterValue", "Volume of %dGiB is too small; minimum is %dGiB.", size, sn.Size)
		}
		v.Encrypted = v.Encrypted || sn.Encrypted
	} else if size == 0 {
		return apiErr("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	if size < 1 || size > 16384 {
		return apiErr("InvalidParameterValue", "Volume of %d GiB is out of range", size)
	}
	v.Size = size
	specs, err := c.tagSpecs("volume")
	if err != nil {
		return err
	}
	c.r.volumes[v.ID] = v
	c.born(v.ID)
	c.r.setTags(v.ID, specs["volume"])
	if tok := q.Str("ClientToken"); tok != "" {
		c.r.tokens["CreateVolume/"+tok] = v.ID
	}
	c.writeVolumeBody(v, "creating")
	s := c.s
	c.spawn(false, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if v.State == "creating" {
			v.State = "available"
		}
	})
	return nil
}

func (c *call) writeVolumeBody(v *volume, state string) {
	x := &c.x
	x.leaf("volumeId", v.ID)
	x.num("size", v.Size)
	x.leaf("snapshotId", v.SnapshotID)
	x.leaf("availabilityZone", v.AZ)
	x.leaf("status", state)
	x.time("createTime", v.Created)
	x.leaf("volumeType", v.Type)
	iops, tput := volumePerf(v)
	if iops > 0 {
		x.num("iops", iops)
	}
	if tput > 0 {
		x.num("throughput", tput)
	}
	x.boolean("encrypted", v.Encrypted)
	x.opt("kmsKeyId", v.KmsKeyID)
	x.boolean("multiAttachEnabled", false)
	if tags := c.r.tags[v.ID]; len(tags) > 0 {
		x.tags(tags)
	}
}

func deleteVolume(c *call) error {
	defer c.lock()()
	v, err := c.volume(c.q.Str("VolumeId"))
	if err != nil {
		return err
	}
	if v.State == "in-use" {
		return apiErr("VolumeInUse", "Volume %s is currently attached to %s", v.ID, v.InstanceID)
	}
	delete(c.r.volumes, v.ID)
	delete(c.r.tags, v.ID)
	c.x.boolean("return", true)
	return nil
}

func (c *call) snapshot(id string) (*snapshot, error) {
	if !validID("snap", id) {
		return nil, apiErr("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	sn := c.r.snapshots[id]
	if sn == nil || !c.visible(id) || (!sn.public && sn.OwnerID != c.s.opt.AccountID && !slices.Contains(sn.CreateVolumeUsers, c.s.opt.AccountID)) {
		return nil, apiErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return sn, nil
}

func (c *call) ownedSnapshot(id string) (*snapshot, error) {
	sn, err := c.snapshot(id)
	if err != nil {
		return nil, err
	}
	if sn.OwnerID != c.s.opt.AccountID {
		return nil, apiErr("UnauthorizedOperation", "You are not authorized to modify snapshot %s.", id)
	}
	return sn, nil
}

// progress is how far a pending snapshot has come, rising with time.
func (c *call) progress(sn *snapshot) int {
	switch sn.State {
	case "completed":
		return 100
	case "error":
		return 0
	}
	if sn.Duration <= 0 {
		return 99
	}
	p := int(99 * c.now.Sub(sn.Start) / sn.Duration)
	return min(max(p, 0), 99)
}

func describeSnapshots(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "description", "encrypted", "owner-alias", "owner-id", "progress", "snapshot-id",
		"start-time", "status", "volume-id", "volume-size", "storage-tier"); err != nil {
		return err
	}
	acct := c.s.opt.AccountID
	var ss []*snapshot
	if ids := q.List("SnapshotId"); len(ids) > 0 {
		for _, id := range ids {
			sn, err := c.snapshot(id)
			if err != nil {
				return err
			}
			ss = append(ss, sn)
		}
	} else {
		owners := q.List("Owner")
		restorable := q.List("RestorableBy")
		for _, sn := range c.r.snapshots {
			if !c.visible(sn.ID) {
				continue
			}
			own := sn.OwnerID == acct
			switch {
			case len(owners) > 0:
				if !slices.ContainsFunc(owners, func(o string) bool { return o == sn.OwnerID || (o == "self" && own) }) {
					continue
				}
			case len(restorable) > 0:
				if !slices.ContainsFunc(restorable, func(o string) bool {
					return (o == "self" || o == acct) && (own || slices.Contains(sn.CreateVolumeUsers, acct)) || o == "all" && sn.CreateVolumeAll
				}) {
					continue
				}
			default:
				// Public catalogue snapshots would drown the answer, as
				// AWS's public snapshots do; list the account's own.
				if !own && !slices.Contains(sn.CreateVolumeUsers, acct) {
					continue
				}
			}
			ss = append(ss, sn)
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].ID < ss[j].ID })
	}
	var kept []*snapshot
	for _, sn := range ss {
		if matches(filters, c.r.tags[sn.ID], func(n string) []string {
			return []string{map[string]string{
				"description": sn.Description, "encrypted": boolStr(sn.Encrypted), "owner-id": sn.OwnerID,
				"progress": strconv.Itoa(c.progress(sn)) + "%", "snapshot-id": sn.ID, "start-time": sn.Start.UTC().Format("2006-01-02T15:04:05.000Z"),
				"status": sn.State, "volume-id": sn.VolumeID, "volume-size": strconv.Itoa(sn.Size), "storage-tier": "standard",
			}[n]}
		}) {
			kept = append(kept, sn)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "snapshotSet", page, func(sn *snapshot) {
		x.leaf("snapshotId", sn.ID)
		x.leaf("volumeId", sn.VolumeID)
		x.leaf("status", sn.State)
		x.time("startTime", sn.Start)
		x.leaf("progress", strconv.Itoa(c.progress(sn))+"%")
		x.leaf("ownerId", sn.OwnerID)
		x.num("volumeSize", sn.Size)
		x.leaf("description", sn.Description)
		x.boolean("encrypted", sn.Encrypted)
		x.opt("kmsKeyId", sn.KmsKeyID)
		if tags := c.r.tags[sn.ID]; len(tags) > 0 && sn.OwnerID == acct {
			x.tags(tags)
		}
		x.leaf("storageTier", "standard")
	})
	c.nextToken(next)
	return nil
}

func createSnapshot(c *call) error {
	defer c.lock()()
	v, err := c.volume(c.q.Str("VolumeId"))
	if err != nil {
		return err
	}
	specs, err := c.tagSpecs("snapshot")
	if err != nil {
		return err
	}
	var in *instance
	if v.InstanceID != "" {
		in = c.r.instances[v.InstanceID]
	}
	lat := c.s.opt.Latency.SnapshotPending
	sn := &snapshot{
		ID: c.s.newID("snap-"), VolumeID: v.ID, OwnerID: c.s.opt.AccountID, State: "pending", Size: v.Size,
		Start: c.now, Duration: lat, Description: c.q.Str("Description"), Encrypted: v.Encrypted, KmsKeyID: v.KmsKeyID,
	}
	if in != nil {
		sn.Flavor = in.Flavor
	} else if src := c.r.snapshots[v.SnapshotID]; src != nil {
		sn.Flavor = src.Flavor
	}
	c.r.snapshots[sn.ID] = sn
	c.born(sn.ID)
	c.r.setTags(sn.ID, specs["snapshot"])
	root := in != nil && v.Device == in.RootDevice
	s := c.s
	c.spawn(lat > 0, func() {
		start := time.Now()
		var err error
		if root {
			in.opMu.Lock()
			s.mu.Lock()
			m := in.machine
			s.mu.Unlock()
			if m != nil {
				err = m.Snapshot(sn.ID)
			} else {
				err = fmt.Errorf("instance %s has no host", in.ID)
			}
			in.opMu.Unlock()
		}
		if !s.sleep(lat - time.Since(start)) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if sn.State != "pending" {
			return
		}
		sn.State, sn.content = "completed", root && err == nil
		if err != nil {
			sn.State = "error"
		}
	})
	x := &c.x
	x.leaf("snapshotId", sn.ID)
	x.leaf("volumeId", v.ID)
	x.leaf("status", sn.State)
	x.time("startTime", sn.Start)
	x.leaf("progress", "0%")
	x.leaf("ownerId", sn.OwnerID)
	x.num("volumeSize", sn.Size)
	x.leaf("description", sn.Description)
	x.boolean("encrypted", sn.Encrypted)
	if tags := c.r.tags[sn.ID]; len(tags) > 0 {
		x.tags(tags)
	}
	return nil
}

// deleteSnapshot removes a snapshot and its filesystem. Callers hold mu.
func (c *call) deleteSnapshot(sn *snapshot) {
	delete(c.r.snapshots, sn.ID)
	delete(c.r.tags, sn.ID)
	sn.State = "deleted"
	if sn.content {
		id := sn.ID
		c.then = append(c.then, func() {
			if err := c.s.hosts.DeleteSnapshot(id); err != nil {
				c.s.log.Error("ec2sim: delete snapshot", "snapshot", id, "err", err)
			}
		})
	}
}

func deleteSnapshotAction(c *call) error {
	defer c.lock()()
	sn, err := c.ownedSnapshot(c.q.Str("SnapshotId"))
	if err != nil {
		return err
	}
	for _, im := range c.r.images {
		for _, b := range im.BDMs {
			if b.SnapshotID == sn.ID {
				return apiErr("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", sn.ID, im.ID)
			}
		}
	}
	c.deleteSnapshot(sn)
	c.x.boolean("return", true)
	return nil
}

func modifySnapshotAttribute(c *call) error {
	defer c.lock()()
	q := c.q
	sn, err := c.ownedSnapshot(q.Str("SnapshotId"))
	if err != nil {
		return err
	}
	if a := q.Str("Attribute"); a != "" && a != "createVolumePermission" {
		return apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", a)
	}
	cvp := q.Struct("CreateVolumePermission")
	type perm struct {
		user, group string
	}
	var add, remove []perm
	for _, s := range cvp.Sub("Add") {
		add = append(add, perm{s.Str("UserId"), s.Str("Group")})
	}
	for _, s := range cvp.Sub("Remove") {
		remove = append(remove, perm{s.Str("UserId"), s.Str("Group")})
	}
	var legacy []perm
	for _, u := range q.List("UserId") {
		legacy = append(legacy, perm{user: u})
	}
	for _, g := range q.List("UserGroup") {
		legacy = append(legacy, perm{group: g})
	}
	switch q.Str("OperationType") {
	case "add":
		add = append(add, legacy...)
	case "remove":
		remove = append(remove, legacy...)
	}
	if len(add)+len(remove) == 0 {
		return apiErr("MissingParameter", "No attributes specified.")
	}
	for _, p := range append(slices.Clone(add), remove...) {
		if p.user != "" && !accountIDRe().MatchString(p.user) {
			return apiErr("InvalidParameterValue", "Invalid user id %q", p.user)
		}
		if p.group != "" && p.group != "all" {
			return apiErr("InvalidParameterValue", "Invalid group %q: only 'all' is supported", p.group)
		}
	}
	for _, p := range add {
		if p.user != "" && !slices.Contains(sn.CreateVolumeUsers, p.user) {
			sn.CreateVolumeUsers = append(sn.CreateVolumeUsers, p.user)
		}
		if p.group == "all" {
			sn.CreateVolumeAll = true
		}
	}
	for _, p := range remove {
		sn.CreateVolumeUsers = slices.DeleteFunc(sn.CreateVolumeUsers, func(u string) bool { return u == p.user })
		if p.group == "all" {
			sn.CreateVolumeAll = false
		}
	}
	return nil
}

func describeSnapshotAttribute(c *call) error {
	defer c.lock()()
	sn, err := c.ownedSnapshot(c.q.Str("SnapshotId"))
	if err != nil {
		return err
	}
	x := &c.x
	x.leaf("snapshotId", sn.ID)
	x.open("createVolumePermission")
	if sn.CreateVolumeAll {
		x.open("item")
		x.leaf("group", "all")
		x.close("item")
	}
	for _, u := range sn.CreateVolumeUsers {
		x.open("item")
		x.leaf("userId", u)
		x.close("item")
	}
	x.close("createVolumePermission")
	return nil
}
