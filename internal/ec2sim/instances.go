package ec2sim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	actions["RunInstances"] = runInstances
	actions["DescribeInstances"] = describeInstances
	actions["DescribeInstanceStatus"] = describeInstanceStatus
	actions["StopInstances"] = stopInstances
	actions["StartInstances"] = startInstances
	actions["RebootInstances"] = rebootInstances
	actions["TerminateInstances"] = terminateInstances
	actions["GetConsoleOutput"] = getConsoleOutput
	actions["ModifyInstanceAttribute"] = modifyInstanceAttribute
	actions["DescribeInstanceAttribute"] = describeInstanceAttribute
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (c *call) instance(id string) (*instance, error) {
	if id == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter InstanceId")
	}
	if !validID("i", id) {
		return nil, apiErr("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	in, ok := c.r.instances[id]
	if !ok || !c.visible(id) {
		return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	return in, nil
}

// instances looks up a list of ids, naming every missing one as AWS does.
func (c *call) instances(ids []string) ([]*instance, error) {
	if len(ids) == 0 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter InstanceId")
	}
	var out []*instance
	var missing []string
	for _, id := range ids {
		in, err := c.instance(id)
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == "InvalidInstanceID.NotFound" {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if len(missing) == 1 {
		return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	if len(missing) > 1 {
		return nil, apiErr("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	return out, nil
}

// allocIP picks a free address: unused by this simulator and, when
// instances run sshd, not bound by anything else on the host (another
// simulator in a parallel test process).
func (s *Server) allocIP(next func() string) (string, error) {
	for range 5000 {
		ip := next()
		if s.ipInUse[ip] {
			continue
		}
		if !s.opt.NoSSH && s.opt.Hosts == nil {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(s.opt.SSHPort)))
			if err != nil && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			if err == nil {
				l.Close()
			}
		}
		s.ipInUse[ip] = true
		return ip, nil
	}
	return "", apiErr("InsufficientFreeAddressesInSubnet", "No free address: port %d is taken on every candidate address (does something listen on 0.0.0.0:%d? set Options.SSHPort)", s.opt.SSHPort, s.opt.SSHPort)
}

func (sn *subnet) nextIP() string {
	n := sn.next
	sn.next++
	if sn.next >= 4090 {
		sn.next = 10
	}
	return fmt.Sprintf("%d.%d.%d.%d", sn.base[0], sn.base[1], int(sn.base[2])+n/256, n%256)
}

func (r *region) nextPublicIP() string {
	n := r.publicIP
	r.publicIP = (r.publicIP + 1) % (254 * 250)
	return fmt.Sprintf("127.%d.%d.%d", 128+r.index, n/254, n%254+1)
}

func dnsNames(region, private, public string) (string, string) {
	dash := func(ip string) string { return strings.ReplaceAll(ip, ".", "-") }
	priv := "ip-" + dash(private) + "." + region + ".compute.internal"
	pub := ""
	if public != "" {
		pub = "ec2-" + dash(public) + "." + region + ".compute.amazonaws.com"
	}
	if region == "us-east-1" {
		priv = "ip-" + dash(private) + ".ec2.internal"
		if public != "" {
			pub = "ec2-" + dash(public) + ".compute-1.amazonaws.com"
		}
	}
	return priv, pub
}

// runRequest is RunInstances' parameters, also built by CreateFleet.
type runRequest struct {
	q        *Query
	imageID  string
	itype    string
	subnetID string
	spot     bool
	min, max int
	token    string
	action   string
}

func runInstances(c *call) error {
	defer c.lock()()
	q := c.q
	if tok, id := c.clientToken(); id != "" {
		ins := c.reservation(id)
		if len(ins) > 0 {
			c.writeReservationBody(id, ins)
			return nil
		}
		_ = tok
	}
	var fromTemplate *launchTemplate
	fromVersion := 0
	if lt := q.Struct("LaunchTemplate"); len(lt.Params) > 0 {
		t, err := c.visibleTemplate(lt.Str("LaunchTemplateId"), lt.Str("LaunchTemplateName"))
		if err != nil {
			return err
		}
		ver, err := t.version(lt.Str("Version"))
		if err != nil {
			return err
		}
		q = mergeQuery(ver.Data, q)
		fromTemplate, fromVersion = t, ver.Number
	}
	min, err := q.Int("MinCount", -1)
	if err != nil {
		return err
	}
	max, err := q.Int("MaxCount", -1)
	if err != nil {
		return err
	}
	if min < 0 || max < 0 {
		return apiErr("MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	}
	ni := q.Struct("NetworkInterface.1")
	req := runRequest{
		q: q, imageID: q.Str("ImageId"), itype: q.Str("InstanceType"), subnetID: q.Str("SubnetId"),
		spot: q.Str("InstanceMarketOptions.MarketType") == "spot", min: min, max: max, token: q.Str("ClientToken"), action: "RunInstances",
	}
	if req.subnetID == "" {
		req.subnetID = ni.Str("SubnetId")
	}
	resID, ins, err := c.launch(req)
	if err != nil {
		return err
	}
	if fromTemplate != nil {
		c.tagLaunchedFrom(ins, fromTemplate, fromVersion, "")
	}
	c.writeReservationBody(resID, ins)
	return nil
}

func (c *call) reservation(id string) []*instance {
	var out []*instance
	for _, in := range c.r.instances {
		if in.ReservationID == id {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LaunchIndex < out[j].LaunchIndex })
	return out
}

// launch validates a run request and creates its instances, starting
// them in the background (or before the answer, with zero latency).
func (c *call) launch(req runRequest) (string, []*instance, error) {
	q := req.q
	if req.imageID == "" {
		return "", nil, apiErr("MissingParameter", "The request must contain the parameter ImageId")
	}
	im, err := c.image(req.imageID)
	if err != nil {
		return "", nil, err
	}
	if im.State != "available" {
		return "", nil, apiErr("InvalidAMIID.Unavailable", "Image %s is not available (state %s)", im.ID, im.State)
	}
	if req.min < 1 || req.max < req.min {
		return "", nil, apiErr("InvalidParameterValue", "Invalid MinCount %d / MaxCount %d", req.min, req.max)
	}
	if req.max > 256 {
		return "", nil, apiErr("InstanceLimitExceeded", "You have requested more instances (%d) than your current instance limit of 256 allows", req.max)
	}
	if req.itype == "" {
		req.itype = "m1.small"
	}
	itype, err := checkLaunchType(req.itype, im.Arch)
	if err != nil {
		return "", nil, err
	}
	opts, err := readLaunchOptions(q, itype)
	if err != nil {
		return "", nil, err
	}
	var key *keyPair
	if name := q.Str("KeyName"); name != "" {
		if key = c.r.keys[name]; key == nil || !c.visible(key.ID) {
			return "", nil, apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
		}
	}
	sn := c.r.subnets[0]
	if req.subnetID != "" {
		if sn = c.r.subnet(req.subnetID); sn == nil {
			return "", nil, apiErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", req.subnetID)
		}
	} else if az := q.Str("Placement.AvailabilityZone"); az != "" {
		if sn = c.r.zoneSubnet(az); sn == nil {
			return "", nil, apiErr("InvalidParameterValue", "Invalid availability zone: [%s]", az)
		}
	}
	ni := q.Struct("NetworkInterface.1")
	var groups []string
	for _, id := range append(q.List("SecurityGroupId"), ni.List("SecurityGroupId")...) {
		g := c.r.groups[id]
		if g == nil || !c.visible(id) {
			return "", nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		groups = append(groups, id)
	}
	for _, name := range q.List("SecurityGroup") {
		g := c.r.groupByName(name)
		if g == nil {
			return "", nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, c.r.vpcID)
		}
		groups = append(groups, g.ID)
	}
	if len(groups) == 0 {
		groups = []string{c.r.groupByName("default").ID}
	}
	var userData []byte
	if ud := q.Str("UserData"); ud != "" {
		if userData, err = base64.StdEncoding.DecodeString(ud); err != nil {
			return "", nil, apiErr("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(userData) > 16384 {
			return "", nil, apiErr("InvalidParameterValue", "User data is limited to 16384 bytes")
		}
	}
	reqBDMs, err := parseBDMs(q)
	if err != nil {
		return "", nil, err
	}
	bdms := mergeBDMs(im.BDMs, reqBDMs)
	rootSnap := c.r.snapshots[im.rootSnapshot()]
	if rootSnap == nil {
		return "", nil, apiErr("InvalidAMIID.Unavailable", "Image %s has no root snapshot", im.ID)
	}
	for _, b := range bdms {
		if b.SnapshotID == "" {
			continue
		}
		if sn := c.r.snapshots[b.SnapshotID]; sn != nil && b.VolumeSize < sn.Size {
			return "", nil, apiErr("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", b.VolumeSize, sn.ID, sn.Size)
		}
	}
	specs, err := tagSpecsOf(q, "instance", "volume", "network-interface", "spot-instances-request")
	if err != nil {
		return "", nil, err
	}
	behavior := q.Str("InstanceInitiatedShutdownBehavior")
	if behavior == "" {
		behavior = "stop"
	}
	if behavior != "stop" && behavior != "terminate" {
		return "", nil, apiErr("InvalidParameterValue", "Value (%s) for parameter instanceInitiatedShutdownBehavior is invalid.", behavior)
	}
	publicIP := !ni.Has("AssociatePublicIpAddress") || ni.Bool("AssociatePublicIpAddress")
	hopLimit, _ := q.Int("MetadataOptions.HttpPutResponseHopLimit", 2)
	resID := c.s.newID("r-")
	var out []*instance
	for i := range req.max {
		in := &instance{
			ID: c.s.newID("i-"), ReservationID: resID, ImageID: im.ID, Type: req.itype, SubnetID: sn.ID, VpcID: c.r.vpcID,
			AZ: sn.AZ, State: "pending", Launch: c.now.Truncate(time.Second), Groups: groups, RootDevice: im.RootDevice,
			Arch: im.Arch, ClientToken: req.token, IamProfile: q.Str("IamInstanceProfile.Arn"), UserData: userData,
			Spot: req.spot, HttpTokens: q.Str("MetadataOptions.HttpTokens"), HttpEndpoint: q.Str("MetadataOptions.HttpEndpoint"),
			HopLimit: hopLimit, LaunchIndex: i, ShutdownBehavior: behavior, Flavor: im.Flavor, Created: c.now,
			SourceDestCheck: true, EbsOptimized: q.Bool("EbsOptimized"), DisableAPITermination: q.Bool("DisableApiTermination"),
			Opts: opts, done: make(chan struct{}),
		}
		in.MAC = macFor(c.s.newID(""))
		if key != nil {
			in.KeyName = key.Name
		}
		if n := q.Str("IamInstanceProfile.Name"); n != "" && in.IamProfile == "" {
			in.IamProfile = "arn:aws:iam::" + c.s.opt.AccountID + ":instance-profile/" + n
		}
		if in.HttpTokens == "" {
			in.HttpTokens = "required"
		}
		if in.HttpEndpoint == "" {
			in.HttpEndpoint = "enabled"
		}
		if req.spot {
			in.SpotRequestID = c.s.newID("sir-")
		}
		if in.PrivateIP, err = c.s.allocIP(sn.nextIP); err != nil {
			return "", nil, err
		}
		if publicIP {
			if in.PublicIP, err = c.s.allocIP(c.r.nextPublicIP); err != nil {
				return "", nil, err
			}
		}
		for _, b := range bdms {
			if b.VirtualName != "" || b.NoDevice {
				continue
			}
			v := &volume{
				ID: c.s.newID("vol-"), Type: b.VolumeType, AZ: sn.AZ, State: "in-use", SnapshotID: b.SnapshotID,
				Size: b.VolumeSize, Iops: b.Iops, Throughput: b.Throughput, Encrypted: b.Encrypted, KmsKeyID: b.KmsKeyID, Created: c.now,
				InstanceID: in.ID, Device: b.DeviceName, AttachTime: c.now, DeleteOnTermination: b.DeleteOnTermination,
			}
			c.r.volumes[v.ID] = v
			c.born(v.ID)
			c.r.setTags(v.ID, specs["volume"])
			in.Devices = append(in.Devices, instDevice{Device: b.DeviceName, VolumeID: v.ID})
		}
		c.r.instances[in.ID] = in
		c.born(in.ID)
		c.r.setTags(in.ID, specs["instance"])
		if in.SpotRequestID != "" {
			c.r.setTags(in.SpotRequestID, specs["spot-instances-request"])
		}
		out = append(out, in)
	}
	if req.token != "" {
		c.r.tokens[req.action+"/"+req.token] = resID
	}
	L := c.s.opt.Latency
	for _, in := range out {
		spec := LaunchSpec{
			InstanceID: in.ID, SnapshotID: rootSnap.ID, Port: c.s.opt.SSHPort, User: im.Flavor.User, UserData: in.UserData,
			IPs: []string{in.PrivateIP}, Admit: func(src, dst string, port int) bool { return c.s.admitSSH(in.ID, src, dst, port) },
		}
		if in.PublicIP != "" {
			spec.IPs = append(spec.IPs, in.PublicIP)
		}
		if key != nil {
			spec.AuthorizedKey = key.PublicKey
		}
		for _, b := range bdms {
			if b.DeviceName == im.RootDevice {
				spec.RootVolumeGiB = b.VolumeSize
			}
		}
		terminate := c.s.faults.resource(req.action, FaultInstanceTerminated)
		c.spawn(L.Pending+L.SSHReady > 0, func() { c.s.boot(in, rootSnap, spec, terminate) })
	}
	return resID, out, nil
}

// boot takes a pending instance to running: its host is created from the
// image's root snapshot (first launch) and its sshd started.
func (s *Server) boot(in *instance, snap *snapshot, spec LaunchSpec, terminate bool) {
	L := s.opt.Latency
	in.opMu.Lock()
	defer in.opMu.Unlock()
	if !s.sleep(L.Pending) {
		return
	}
	s.mu.Lock()
	state, m := in.State, in.machine
	s.mu.Unlock()
	if state != "pending" {
		return
	}
	if terminate {
		s.setTerminated(in, "Server.InternalError", "Server.InternalError: Internal error on launch")
		return
	}
	if m == nil {
		err := s.ensureContent(snap)
		if err == nil {
			m, err = s.hosts.Create(spec)
		}
		if err != nil {
			s.log.Error("ec2sim: create instance host", "instance", in.ID, "err", err)
			s.setTerminated(in, "Server.InternalError", "Server.InternalError: Internal error on launch")
			return
		}
		s.mu.Lock()
		in.machine = m
		s.mu.Unlock()
		s.watch(in, m)
		s.postConsole(in, m)
	}
	if L.SSHReady > 0 {
		s.mu.Lock()
		if in.State == "pending" {
			in.State = "running"
			s.eventLocked(in.ID, "running")
		}
		s.mu.Unlock()
		if !s.sleep(L.SSHReady) {
			return
		}
	}
	if err := m.Boot(s.ctx); err != nil {
		s.log.Error("ec2sim: boot instance", "instance", in.ID, "err", err)
		_ = m.Destroy()
		s.setTerminated(in, "Server.InternalError", "Server.InternalError: Internal error on boot")
		return
	}
	s.mu.Lock()
	if in.State == "pending" {
		in.State = "running"
		s.eventLocked(in.ID, "running")
	}
	s.eventLocked(in.ID, "ssh-ready")
	in.StateReasonCode, in.StateReasonMessage, in.TransitionReason = "", "", ""
	s.mu.Unlock()
}

// watch turns an instance's own `reboot` and `poweroff` into the API
// state changes AWS would show.
func (s *Server) watch(in *instance, m Machine) {
	rb, po := m.RebootRequested(), m.PowerOffRequested()
	if rb == nil && po == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-in.done:
				return
			case <-rb:
				in.opMu.Lock()
				s.mu.Lock()
				running := in.State == "running" && in.machine == m
				s.mu.Unlock()
				if running {
					if err := m.Reboot(s.ctx); err != nil {
						s.log.Error("ec2sim: reboot", "instance", in.ID, "err", err)
					}
				}
				in.opMu.Unlock()
			case <-po:
				s.mu.Lock()
				behavior := in.ShutdownBehavior
				ok := in.State == "running"
				if ok {
					if behavior == "terminate" {
						in.State = "shutting-down"
					} else {
						in.State = "stopping"
					}
					in.StateReasonCode, in.StateReasonMessage = "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
				}
				s.mu.Unlock()
				if !ok {
					continue
				}
				if behavior == "terminate" {
					s.finishTerminate(in)
				} else {
					s.finishStop(in)
				}
			}
		}
	}()
}

func (s *Server) setTerminated(in *instance, code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.terminatedLocked(in, code, msg)
}

func (s *Server) terminatedLocked(in *instance, code, msg string) {
	if in.State == "terminated" {
		return
	}
	in.State = "terminated"
	s.eventLocked(in.ID, "terminated")
	if in.machine != nil && s.opt.Latency.ConsolePost <= 0 {
		in.console, in.consoleAt = lastBytes(in.machine.ConsoleOutput(), consoleLimit), time.Now()
	}
	in.StateReasonCode, in.StateReasonMessage = code, msg
	in.TransitionReason = fmt.Sprintf("User initiated (%s)", time.Now().UTC().Format("2006-01-02 15:04:05 GMT"))
	in.machine = nil
	delete(s.ipInUse, in.PrivateIP)
	delete(s.ipInUse, in.PublicIP)
	in.PublicIP = ""
	r := s.regionOf(in)
	for _, d := range in.Devices {
		v := r.volumes[d.VolumeID]
		if v == nil {
			continue
		}
		if v.DeleteOnTermination {
			delete(r.volumes, v.ID)
			delete(r.tags, v.ID)
		} else {
			v.State, v.InstanceID, v.Device = "available", "", ""
		}
	}
	close(in.done)
}

func (s *Server) regionOf(in *instance) *region {
	for _, r := range s.regions {
		if r.instances[in.ID] == in {
			return r
		}
	}
	return nil
}

func (s *Server) finishStop(in *instance) {
	in.opMu.Lock()
	defer in.opMu.Unlock()
	s.mu.Lock()
	m := in.machine
	s.mu.Unlock()
	if m != nil {
		if err := m.Shutdown(s.ctx); err != nil {
			s.log.Error("ec2sim: stop instance", "instance", in.ID, "err", err)
		}
	}
	if !s.sleep(s.opt.Latency.Stopping) {
		return
	}
	s.mu.Lock()
	if in.State == "stopping" {
		in.State = "stopped"
		s.eventLocked(in.ID, "stopped")
		if in.StateReasonCode == "" {
			in.StateReasonCode, in.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
		}
		in.TransitionReason = fmt.Sprintf("User initiated (%s)", time.Now().UTC().Format("2006-01-02 15:04:05 GMT"))
	}
	s.mu.Unlock()
}

func (s *Server) finishTerminate(in *instance) {
	in.opMu.Lock()
	defer in.opMu.Unlock()
	s.mu.Lock()
	m := in.machine
	s.mu.Unlock()
	if m != nil {
		if err := m.Destroy(); err != nil {
			s.log.Error("ec2sim: terminate instance", "instance", in.ID, "err", err)
		}
	}
	if !s.sleep(s.opt.Latency.ShuttingDown) {
		return
	}
	s.setTerminated(in, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
}

func (s *Server) finishStart(in *instance) {
	in.opMu.Lock()
	defer in.opMu.Unlock()
	if !s.sleep(s.opt.Latency.Pending + s.opt.Latency.SSHReady) {
		return
	}
	s.mu.Lock()
	m := in.machine
	ok := in.State == "pending"
	s.mu.Unlock()
	if !ok || m == nil {
		return
	}
	booted := m.Boot(s.ctx)
	if booted != nil {
		s.log.Error("ec2sim: start instance", "instance", in.ID, "err", booted)
	}
	s.mu.Lock()
	if in.State == "pending" {
		in.State = "running"
		s.eventLocked(in.ID, "running")
		if booted == nil {
			s.eventLocked(in.ID, "ssh-ready")
		}
		in.StateReasonCode, in.StateReasonMessage, in.TransitionReason = "", "", ""
	}
	s.mu.Unlock()
}

func (c *call) writeStateChanges(ins []*instance, prev []string) {
	x := &c.x
	x.open("instancesSet")
	for i, in := range ins {
		x.open("item")
		x.leaf("instanceId", in.ID)
		writeState(x, "currentState", in.State)
		writeState(x, "previousState", prev[i])
		x.close("item")
	}
	x.close("instancesSet")
}

func writeState(x *xw, name, state string) {
	x.open(name)
	x.num("code", stateCodes[state])
	x.leaf("name", state)
	x.close(name)
}

// transition applies one state change to the instances a call names:
// check refuses the whole call before anything changes (EC2 changes all
// or none), change moves one instance; the answer lists each instance's
// previous and current state.
func (c *call) transition(check func(*instance) error, change func(*instance)) error {
	defer c.lock()()
	ins, err := c.instances(c.q.List("InstanceId"))
	if err != nil {
		return err
	}
	for _, in := range ins {
		if err := check(in); err != nil {
			return err
		}
	}
	prev := make([]string, len(ins))
	for i, in := range ins {
		prev[i] = in.State
		change(in)
	}
	c.writeStateChanges(ins, prev)
	return nil
}

func stopInstances(c *call) error {
	return c.transition(func(in *instance) error {
		switch in.State {
		case "terminated", "shutting-down":
			return apiErr("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", in.ID)
		case "pending":
			return apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be stopped.", in.ID)
		}
		if in.Spot {
			return apiErr("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request.", in.ID)
		}
		return nil
	}, func(in *instance) {
		if in.State == "running" {
			in.State = "stopping"
			in.StateReasonCode, in.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
			c.spawn(c.s.opt.Latency.Stopping > 0, func() { c.s.finishStop(in) })
		}
	})
}

func startInstances(c *call) error {
	L := c.s.opt.Latency
	return c.transition(func(in *instance) error {
		if in.State != "stopped" && in.State != "running" && in.State != "pending" {
			return apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", in.ID)
		}
		return nil
	}, func(in *instance) {
		if in.State == "stopped" {
			in.State = "pending"
			c.spawn(L.Pending+L.SSHReady > 0, func() { c.s.finishStart(in) })
		}
	})
}

func terminateInstances(c *call) error {
	return c.transition(func(in *instance) error {
		if in.DisableAPITermination {
			return apiErr("OperationNotPermitted", "The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", in.ID)
		}
		return nil
	}, func(in *instance) {
		if in.State != "terminated" && in.State != "shutting-down" {
			in.State = "shutting-down"
			c.spawn(c.s.opt.Latency.ShuttingDown > 0, func() { c.s.finishTerminate(in) })
		}
	})
}

func rebootInstances(c *call) error {
	defer c.lock()()
	ins, err := c.instances(c.q.List("InstanceId"))
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.State != "running" {
			return apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be rebooted.", in.ID)
		}
	}
	for _, in := range ins {
		c.spawn(c.s.opt.Latency.Pending > 0, func() {
			in.opMu.Lock()
			defer in.opMu.Unlock()
			c.s.mu.Lock()
			m := in.machine
			c.s.mu.Unlock()
			if m != nil {
				if err := m.Reboot(c.s.ctx); err != nil {
					c.s.log.Error("ec2sim: reboot", "instance", in.ID, "err", err)
				}
			}
		})
	}
	c.x.boolean("return", true)
	return nil
}

// getConsoleOutput answers with the posted (buffered) console output, or
// with Latest=true the live one, which EC2 supports only on Nitro
// instance types ("You can optionally retrieve the latest serial console
// output at any time during the instance lifecycle. This option is
// supported on instance types that use the Nitro hypervisor.";
// GetConsoleOutput, EC2 API reference). On Xen types (t2, m4, c4...) EC2
// answers UnsupportedOperation.
func getConsoleOutput(c *call) error {
	c.s.mu.Lock()
	in, err := c.instance(c.q.Str("InstanceId"))
	var m Machine
	var posted string
	var at time.Time
	var itype instanceType
	if err == nil {
		m, posted, at, itype = in.machine, in.console, in.consoleAt, instanceTypes[in.Type]
	}
	c.s.mu.Unlock()
	if err != nil {
		return err
	}
	if c.q.Bool("Latest") {
		if !itype.Nitro {
			return apiErr("UnsupportedOperation", "This instance type does not support retrieving the latest console logs.")
		}
		if m != nil {
			posted, at = lastBytes(m.ConsoleOutput(), consoleLimit), time.Now()
		}
	} else if c.s.opt.Latency.ConsolePost <= 0 && m != nil {
		posted, at = lastBytes(m.ConsoleOutput(), consoleLimit), time.Now()
	}
	c.x.leaf("instanceId", in.ID)
	if at.IsZero() {
		at = time.Now()
	}
	c.x.time("timestamp", at)
	if posted != "" {
		c.x.leaf("output", base64.StdEncoding.EncodeToString([]byte(posted)))
	}
	return nil
}

// consoleLimit: "Only the most recent 64 KB of console output is
// available."
const consoleLimit = 64 << 10

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// postConsole keeps an instance's posted console output ConsolePost
// behind its live one: whenever the live output has changed (the boot
// log, cloud-init's host keys, a reboot, a shutdown), it is posted one
// ConsolePost later. It runs until the instance is terminated, then
// keeps the last post (EC2 keeps it "for at least one hour").
func (s *Server) postConsole(in *instance, m Machine) {
	d := s.opt.Latency.ConsolePost
	if d <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		last := ""
		for {
			// Sample now, post what was sampled one delay later: a change
			// is seen between d and 2d after it happened.
			cur := lastBytes(m.ConsoleOutput(), consoleLimit)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(d):
			}
			if cur != last {
				s.mu.Lock()
				in.console, in.consoleAt = cur, time.Now()
				s.eventLocked(in.ID, "console-posted")
				s.mu.Unlock()
				last = cur
			}
			select {
			case <-in.done:
				// Terminated: post once more what the shutdown printed.
				if final := lastBytes(m.ConsoleOutput(), consoleLimit); final != last && s.sleep(d) {
					s.mu.Lock()
					in.console, in.consoleAt = final, time.Now()
					s.mu.Unlock()
				}
				return
			default:
			}
		}
	}()
}

func describeInstances(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, instanceFilters...); err != nil {
		return err
	}
	ids := q.List("InstanceId")
	var ins []*instance
	if len(ids) > 0 {
		if q.Has("MaxResults") {
			return apiErr("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		if ins, err = c.instances(ids); err != nil {
			return err
		}
	} else {
		ins = c.allInstances()
	}
	var kept []*instance
	for _, in := range ins {
		if matches(filters, c.r.tags[in.ID], func(n string) []string { return c.instanceField(in, n) }) {
			kept = append(kept, in)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	x.open("reservationSet")
	for i := 0; i < len(page); {
		j := i
		for j < len(page) && page[j].ReservationID == page[i].ReservationID {
			j++
		}
		x.open("item")
		c.writeReservationBody(page[i].ReservationID, page[i:j])
		x.close("item")
		i = j
	}
	x.close("reservationSet")
	c.nextToken(next)
	return nil
}

func (c *call) allInstances() []*instance {
	var ins []*instance
	for _, in := range c.r.instances {
		if c.visible(in.ID) {
			ins = append(ins, in)
		}
	}
	sort.Slice(ins, func(i, j int) bool {
		if !ins[i].Created.Equal(ins[j].Created) {
			return ins[i].Created.Before(ins[j].Created)
		}
		if ins[i].ReservationID != ins[j].ReservationID {
			return ins[i].ReservationID < ins[j].ReservationID
		}
		return ins[i].LaunchIndex < ins[j].LaunchIndex
	})
	return ins
}

var instanceFilters = []string{"architecture", "availability-zone", "client-token", "dns-name", "iam-instance-profile.arn",
	"image-id", "instance-id", "instance-lifecycle", "instance-state-code", "instance-state-name", "instance-type",
	"instance.group-id", "instance.group-name", "group-id", "group-name", "ip-address", "key-name", "launch-index", "launch-time",
	"owner-id", "placement-group-name", "private-dns-name", "private-ip-address", "reservation-id", "root-device-name",
	"root-device-type", "spot-instance-request-id", "subnet-id", "vpc-id", "network-interface.addresses.association.public-ip",
	"metadata-options.http-tokens", "platform-details", "virtualization-type", "hypervisor", "block-device-mapping.volume-id"}

func (c *call) instanceField(in *instance, name string) []string {
	one := func(s string) []string { return []string{s} }
	priv, pub := dnsNames(c.r.name, in.PrivateIP, in.PublicIP)
	switch name {
	case "architecture":
		return one(in.Arch)
	case "availability-zone":
		return one(in.AZ)
	case "client-token":
		return one(in.ClientToken)
	case "dns-name":
		return one(pub)
	case "iam-instance-profile.arn":
		return one(in.IamProfile)
	case "image-id":
		return one(in.ImageID)
	case "instance-id":
		return one(in.ID)
	case "instance-lifecycle":
		if in.Spot {
			return one("spot")
		}
		return nil
	case "instance-state-code":
		return one(strconv.Itoa(stateCodes[in.State]))
	case "instance-state-name":
		return one(in.State)
	case "instance-type":
		return one(in.Type)
	case "instance.group-id", "group-id":
		return in.Groups
	case "instance.group-name", "group-name":
		var out []string
		for _, g := range in.Groups {
			if gr := c.r.groups[g]; gr != nil {
				out = append(out, gr.Name)
			}
		}
		return out
	case "ip-address", "network-interface.addresses.association.public-ip":
		return one(in.PublicIP)
	case "key-name":
		return one(in.KeyName)
	case "launch-index":
		return one(strconv.Itoa(in.LaunchIndex))
	case "launch-time":
		return one(in.Launch.UTC().Format("2006-01-02T15:04:05.000Z"))
	case "owner-id":
		return one(c.s.opt.AccountID)
	case "private-dns-name":
		return one(priv)
	case "private-ip-address":
		return one(in.PrivateIP)
	case "reservation-id":
		return one(in.ReservationID)
	case "root-device-name":
		return one(in.RootDevice)
	case "root-device-type":
		return one("ebs")
	case "spot-instance-request-id":
		return one(in.SpotRequestID)
	case "subnet-id":
		return one(in.SubnetID)
	case "vpc-id":
		return one(in.VpcID)
	case "metadata-options.http-tokens":
		return one(in.HttpTokens)
	case "platform-details":
		return one("Linux/UNIX")
	case "virtualization-type":
		return one("hvm")
	case "hypervisor":
		return one("xen")
	case "block-device-mapping.volume-id":
		var out []string
		for _, d := range in.Devices {
			out = append(out, d.VolumeID)
		}
		return out
	}
	return nil
}

// writeReservationBody writes a reservation's members (RunInstances'
// whole answer, or one reservationSet item).
func (c *call) writeReservationBody(resID string, ins []*instance) {
	x := &c.x
	x.leaf("reservationId", resID)
	x.leaf("ownerId", c.s.opt.AccountID)
	x.open("groupSet")
	x.close("groupSet")
	list(x, "instancesSet", ins, func(in *instance) { c.writeInstance(in) })
}

func (c *call) writeGroupSet(x *xw, ids []string) {
	list(x, "groupSet", ids, func(id string) {
		x.leaf("groupId", id)
		if g := c.r.groups[id]; g != nil {
			x.leaf("groupName", g.Name)
		}
	})
}

func (c *call) writeInstance(in *instance) {
	x := &c.x
	priv, pub := dnsNames(c.r.name, in.PrivateIP, in.PublicIP)
	x.leaf("instanceId", in.ID)
	x.leaf("imageId", in.ImageID)
	writeState(x, "instanceState", in.State)
	x.leaf("privateDnsName", priv)
	x.leaf("dnsName", pub)
	x.leaf("reason", in.TransitionReason)
	x.opt("keyName", in.KeyName)
	x.num("amiLaunchIndex", in.LaunchIndex)
	x.open("productCodes")
	x.close("productCodes")
	x.leaf("instanceType", in.Type)
	x.time("launchTime", in.Launch)
	x.open("placement")
	x.leaf("availabilityZone", in.AZ)
	if sn := c.r.subnet(in.SubnetID); sn != nil {
		x.leaf("availabilityZoneId", sn.ZoneID)
	}
	x.leaf("groupName", in.Opts.PlacementGroup)
	x.leaf("tenancy", in.Opts.Tenancy)
	x.close("placement")
	x.open("monitoring")
	x.leaf("state", map[bool]string{true: "enabled", false: "disabled"}[in.Opts.Monitoring])
	x.close("monitoring")
	x.leaf("subnetId", in.SubnetID)
	x.leaf("vpcId", in.VpcID)
	x.leaf("privateIpAddress", in.PrivateIP)
	x.opt("ipAddress", in.PublicIP)
	x.boolean("sourceDestCheck", in.SourceDestCheck)
	c.writeGroupSet(x, in.Groups)
	if in.StateReasonCode != "" {
		x.open("stateReason")
		x.leaf("code", in.StateReasonCode)
		x.leaf("message", in.StateReasonMessage)
		x.close("stateReason")
	}
	x.leaf("architecture", in.Arch)
	x.leaf("rootDeviceType", "ebs")
	x.leaf("rootDeviceName", in.RootDevice)
	x.open("blockDeviceMapping")
	if in.State != "terminated" {
		for _, d := range in.Devices {
			v := c.r.volumes[d.VolumeID]
			if v == nil {
				continue
			}
			x.open("item")
			x.leaf("deviceName", d.Device)
			x.open("ebs")
			x.leaf("volumeId", v.ID)
			x.leaf("status", "attached")
			x.time("attachTime", v.AttachTime)
			x.boolean("deleteOnTermination", v.DeleteOnTermination)
			x.close("ebs")
			x.close("item")
		}
	}
	x.close("blockDeviceMapping")
	if in.Spot {
		x.leaf("instanceLifecycle", "spot")
		x.leaf("spotInstanceRequestId", in.SpotRequestID)
	}
	x.leaf("virtualizationType", "hvm")
	x.leaf("clientToken", in.ClientToken)
	if tags := c.r.tags[in.ID]; len(tags) > 0 {
		x.tags(tags)
	}
	// "The value xen is used for both Xen and Nitro hypervisors"
	// (Instance.Hypervisor, EC2 API reference): DescribeInstanceTypes tells
	// them apart.
	x.leaf("hypervisor", "xen")
	if in.State != "terminated" {
		x.open("networkInterfaceSet")
		x.open("item")
		x.leaf("networkInterfaceId", stableID("eni-", in.ID))
		x.leaf("macAddress", in.MAC)
		x.leaf("subnetId", in.SubnetID)
		x.leaf("vpcId", in.VpcID)
		x.leaf("ownerId", c.s.opt.AccountID)
		x.leaf("status", "in-use")
		x.leaf("privateIpAddress", in.PrivateIP)
		x.leaf("privateDnsName", priv)
		c.writeENIDetails(x, in, priv, pub, false)
		x.close("item")
		x.close("networkInterfaceSet")
	}
	if in.IamProfile != "" {
		x.open("iamInstanceProfile")
		x.leaf("arn", in.IamProfile)
		x.leaf("id", stableID("AIPA", in.IamProfile)[:21])
		x.close("iamInstanceProfile")
	}
	x.boolean("ebsOptimized", in.EbsOptimized)
	x.boolean("enaSupport", true)
	x.open("metadataOptions")
	x.leaf("state", "applied")
	x.leaf("httpTokens", in.HttpTokens)
	x.num("httpPutResponseHopLimit", in.HopLimit)
	x.leaf("httpEndpoint", in.HttpEndpoint)
	x.leaf("httpProtocolIpv6", in.Opts.IPv6Metadata)
	x.leaf("instanceMetadataTags", in.Opts.MetadataTags)
	x.close("metadataOptions")
	c.writeLaunchOptions(x, in)
	x.leaf("platformDetails", "Linux/UNIX")
	x.leaf("usageOperation", "RunInstances")
	x.leaf("bootMode", "uefi")
	x.leaf("currentInstanceBootMode", "uefi")
}

func describeInstanceStatus(c *call) error {
	defer c.lock()()
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "availability-zone", "instance-state-name", "instance-state-code", "instance-status.status",
		"instance-status.reachability", "system-status.status", "system-status.reachability"); err != nil {
		return err
	}
	ids := q.List("InstanceId")
	var ins []*instance
	if len(ids) > 0 {
		if ins, err = c.instances(ids); err != nil {
			return err
		}
	} else {
		ins = c.allInstances()
	}
	all := q.Bool("IncludeAllInstances")
	status := func(in *instance) string {
		if in.State != "running" {
			return "not-applicable"
		}
		return "ok"
	}
	var kept []*instance
	for _, in := range ins {
		if !all && in.State != "running" {
			continue
		}
		if matches(filters, nil, func(n string) []string {
			switch n {
			case "availability-zone":
				return []string{in.AZ}
			case "instance-state-name":
				return []string{in.State}
			case "instance-state-code":
				return []string{strconv.Itoa(stateCodes[in.State])}
			case "instance-status.status", "system-status.status":
				return []string{status(in)}
			default:
				return []string{"passed"}
			}
		}) {
			kept = append(kept, in)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "instanceStatusSet", page, func(in *instance) {
		x.leaf("instanceId", in.ID)
		x.leaf("availabilityZone", in.AZ)
		writeState(x, "instanceState", in.State)
		for _, name := range []string{"systemStatus", "instanceStatus"} {
			x.open(name)
			x.leaf("status", status(in))
			x.open("details")
			x.open("item")
			x.leaf("name", "reachability")
			if in.State == "running" {
				x.leaf("status", "passed")
			} else {
				x.leaf("status", "not-applicable")
			}
			x.close("item")
			x.close("details")
			x.close(name)
		}
	})
	c.nextToken(next)
	return nil
}

func modifyInstanceAttribute(c *call) error {
	defer c.lock()()
	q := c.q
	in, err := c.instance(q.Str("InstanceId"))
	if err != nil {
		return err
	}
	val := func(name string) (string, bool) {
		if q.Has(name + ".Value") {
			return q.Str(name + ".Value"), true
		}
		if strings.EqualFold(q.Str("Attribute"), name) && q.Has("Value") {
			return q.Str("Value"), true
		}
		return "", false
	}
	changed := false
	needStopped := func() error {
		if in.State != "stopped" {
			return apiErr("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", in.ID)
		}
		return nil
	}
	if v, ok := val("InstanceType"); ok {
		if err := needStopped(); err != nil {
			return err
		}
		im := c.r.images[in.ImageID]
		arch := in.Arch
		if im != nil {
			arch = im.Arch
		}
		if _, err := checkLaunchType(v, arch); err != nil {
			return err
		}
		in.Type, changed = v, true
	}
	if v, ok := val("UserData"); ok {
		if err := needStopped(); err != nil {
			return err
		}
		ud, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return apiErr("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		in.UserData, changed = ud, true
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"SourceDestCheck", &in.SourceDestCheck}, {"DisableApiTermination", &in.DisableAPITermination}, {"EbsOptimized", &in.EbsOptimized}, {"EnaSupport", new(bool)}} {
		if v, ok := val(b.name); ok {
			*b.dst, changed = strings.EqualFold(v, "true"), true
		}
	}
	if v, ok := val("SriovNetSupport"); ok {
		if v != "simple" {
			return apiErr("InvalidParameterValue", "Value (%s) for parameter sriovNetSupport is invalid.", v)
		}
		changed = true
	}
	if _, ok := val("Kernel"); ok {
		return apiErr("UnsupportedOperation", "Kernel ids are not supported for HVM instances")
	}
	if v, ok := val("InstanceInitiatedShutdownBehavior"); ok {
		if v != "stop" && v != "terminate" {
			return apiErr("InvalidParameterValue", "Value (%s) for parameter instanceInitiatedShutdownBehavior is invalid.", v)
		}
		in.ShutdownBehavior, changed = v, true
	}
	if gs := q.List("GroupId"); len(gs) > 0 {
		for _, g := range gs {
			if c.r.groups[g] == nil {
				return apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
			}
		}
		in.Groups, changed = gs, true
	}
	if !changed && q.Sub("BlockDeviceMapping") == nil {
		return apiErr("MissingParameter", "No attributes specified.")
	}
	for _, b := range q.Sub("BlockDeviceMapping") {
		for _, d := range in.Devices {
			if d.Device == b.Str("DeviceName") {
				if v := c.r.volumes[d.VolumeID]; v != nil && b.Has("Ebs.DeleteOnTermination") {
					v.DeleteOnTermination = b.Bool("Ebs.DeleteOnTermination")
				}
			}
		}
	}
	c.x.boolean("return", true)
	return nil
}

func describeInstanceAttribute(c *call) error {
	defer c.lock()()
	in, err := c.instance(c.q.Str("InstanceId"))
	if err != nil {
		return err
	}
	x := &c.x
	x.leaf("instanceId", in.ID)
	value := func(name, v string) {
		x.open(name)
		x.leaf("value", v)
		x.close(name)
	}
	switch a := c.q.Str("Attribute"); a {
	case "instanceType":
		value(a, in.Type)
	case "userData":
		x.open(a)
		if len(in.UserData) > 0 {
			x.leaf("value", base64.StdEncoding.EncodeToString(in.UserData))
		}
		x.close(a)
	case "disableApiTermination":
		value(a, boolStr(in.DisableAPITermination))
	case "instanceInitiatedShutdownBehavior":
		value(a, in.ShutdownBehavior)
	case "sourceDestCheck":
		value(a, boolStr(in.SourceDestCheck))
	case "ebsOptimized":
		value(a, boolStr(in.EbsOptimized))
	case "rootDeviceName":
		value(a, in.RootDevice)
	case "groupSet":
		c.writeGroupSet(x, in.Groups)
	case "enclaveOptions":
		x.open(a)
		x.boolean("enabled", in.Opts.Enclave)
		x.close(a)
	case "disableApiStop":
		value(a, boolStr(in.Opts.DisableAPIStop))
	case "enaSupport":
		value(a, boolStr(instanceTypes[in.Type].Nitro))
	case "sriovNetSupport":
		x.open(a)
		x.close(a)
	case "kernel", "ramdisk":
		x.open(a)
		x.close(a)
	case "productCodes":
		x.open(a)
		x.close(a)
	case "blockDeviceMapping":
		x.open(a)
		for _, d := range in.Devices {
			if v := c.r.volumes[d.VolumeID]; v != nil {
				x.open("item")
				x.leaf("deviceName", d.Device)
				x.open("ebs")
				x.leaf("volumeId", v.ID)
				x.leaf("status", "attached")
				x.time("attachTime", v.AttachTime)
				x.boolean("deleteOnTermination", v.DeleteOnTermination)
				x.close("ebs")
				x.close("item")
			}
		}
		x.close(a)
	default:
		return apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", a)
	}
	return nil
}
