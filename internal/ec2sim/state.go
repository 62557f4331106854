package ec2sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

type bdm struct {
	DeviceName          string
	SnapshotID          string
	VolumeSize          int
	VolumeType          string
	DeleteOnTermination bool
	Encrypted           bool
	KmsKeyID            string
	Iops                int
	Throughput          int
	NoDevice            bool
	VirtualName         string
}

type image struct {
	ID, Name, Description, OwnerID, OwnerAlias string
	Arch, RootDevice, State, StateReason       string
	ImageLocation, BootMode                    string
	Public                                     bool
	Created, Deprecation                       time.Time
	BDMs                                       []bdm
	Flavor                                     Flavor
	LaunchUsers, LaunchOrgs, LaunchOUs         []string
	SourceImageID, SourceRegion                string
	clientToken                                string
}

func (im *image) rootSnapshot() string {
	for _, b := range im.BDMs {
		if b.DeviceName == im.RootDevice {
			return b.SnapshotID
		}
	}
	return ""
}

type snapshot struct {
	ID, VolumeID, OwnerID, Description, State string
	KmsKeyID                                  string
	Encrypted                                 bool
	Size                                      int
	Start                                     time.Time
	Duration                                  time.Duration // pending time, for Progress
	Flavor                                    Flavor
	CreateVolumeUsers                         []string
	CreateVolumeAll                           bool
	public                                    bool // catalogue snapshot, not the account's
	content                                   bool // the host backend holds a filesystem for it
	seedOnce                                  sync.Once
	seedErr                                   error
}

type volume struct {
	ID, Type, AZ, State, SnapshotID string
	Size, Iops, Throughput          int
	Encrypted                       bool
	KmsKeyID                        string
	Created                         time.Time
	InstanceID, Device              string
	AttachTime                      time.Time
	DeleteOnTermination             bool
}

type keyPair struct {
	ID, Name, Type, Fingerprint, PublicKey string
	Created                                time.Time
}

type permission struct {
	Protocol         string
	FromPort, ToPort int
	CIDRs, CIDRv6    []string
	Groups           []string
	RuleIDs          []string
	// Rules and Descs map each source (a CIDR or group id) to its
	// security group rule id and description (IpRange.Description).
	Rules, Descs map[string]string
}

// ruleOf returns the rule id of one source, creating it (and recording
// its description) on first use.
func (p *permission) ruleOf(src string, newID func() string) string {
	if p.Rules == nil {
		p.Rules = map[string]string{}
	}
	id, ok := p.Rules[src]
	if !ok {
		id = newID()
		if i := len(p.Rules); i < len(p.RuleIDs) {
			id = p.RuleIDs[i]
		}
		p.Rules[src] = id
	}
	return id
}

type group struct {
	ID, Name, Description, VpcID string
	Ingress, Egress              []permission
	Created                      time.Time
}

type subnet struct {
	ID, AZ, ZoneID, CIDR string
	base                 [4]byte
	next                 int
}

type instance struct {
	ID, ReservationID, ImageID, Type, KeyName  string
	SubnetID, VpcID, AZ, PrivateIP, PublicIP   string
	State, StateReasonCode, StateReasonMessage string
	TransitionReason                           string
	Launch                                     time.Time
	Groups                                     []string
	RootDevice, Arch                           string
	Devices                                    []instDevice
	ClientToken, IamProfile                    string
	UserData                                   []byte
	Spot                                       bool
	SpotRequestID                              string
	HttpTokens, HttpEndpoint                   string
	HopLimit                                   int
	LaunchIndex                                int
	ShutdownBehavior                           string
	DisableAPITermination, EbsOptimized        bool
	SourceDestCheck                            bool
	Flavor                                     Flavor
	Created                                    time.Time
	MAC                                        string
	Opts                                       launchOptions
	// console is the posted console output and when it was posted.
	console   string
	consoleAt time.Time

	gen     int // bumps on every state change so stale transitions give up
	opMu    sync.Mutex
	machine Machine
	done    chan struct{}
}

type instDevice struct {
	Device, VolumeID string
}

type launchTemplate struct {
	ID, Name string
	Data     *Query // the default version's LaunchTemplateData, as RunInstances-style parameters
	Created  time.Time

	versions       []*ltVersion // see ltversions.go; empty means version 1 is Data
	defaultVersion int
}

// region is the state of one region; every field is guarded by Server.mu.
type region struct {
	name      string
	index     int
	zones     []string
	vpcID     string
	vpcCIDR   string
	subnets   []*subnet
	images    map[string]*image
	snapshots map[string]*snapshot
	volumes   map[string]*volume
	instances map[string]*instance
	keys      map[string]*keyPair // by name
	groups    map[string]*group
	templates map[string]*launchTemplate
	tags      map[string][]Tag
	tokens    map[string]string // "Action/token" → id
	created   map[string]hidden // new resources seen late (eventual consistency)
	publicIP  int
}

func (s *Server) newRegion(name string, index int) *region {
	r := &region{
		name: name, index: index,
		images: map[string]*image{}, snapshots: map[string]*snapshot{}, volumes: map[string]*volume{},
		instances: map[string]*instance{}, keys: map[string]*keyPair{}, groups: map[string]*group{},
		templates: map[string]*launchTemplate{}, tags: map[string][]Tag{}, tokens: map[string]string{},
		created: map[string]hidden{},
	}
	// Default VPC in 127.0.0.0/8 so every address the API reports is
	// loopback; regions get distinct /16s so their instances never clash.
	second := 31 + index
	r.vpcID = stableID("vpc-", name, "default-vpc")
	r.vpcCIDR = fmt.Sprintf("127.%d.0.0/16", second)
	for i, z := range []string{"a", "b", "c"} {
		az := name + z
		r.zones = append(r.zones, az)
		r.subnets = append(r.subnets, &subnet{
			ID: stableID("subnet-", name, az), AZ: az, ZoneID: fmt.Sprintf("%s-az%d", zoneIDPrefix(name), i+1),
			CIDR: fmt.Sprintf("127.%d.%d.0/20", second, 16*i),
			base: [4]byte{127, byte(second), byte(16 * i), 0},
			next: 10 + s.rand.IntN(2000),
		})
	}
	// r.publicIP starts at a random offset so two simulators on one host
	// rarely collide (allocation also probes the address).
	r.publicIP = s.rand.IntN(30000)
	g := &group{ID: stableID("sg-", name, "default"), Name: "default", Description: "default VPC security group", VpcID: r.vpcID}
	g.Egress = []permission{{Protocol: "-1", CIDRs: []string{"0.0.0.0/0"}, RuleIDs: []string{stableID("sgr-", name, "default-egress")}}}
	g.Ingress = []permission{{Protocol: "-1", Groups: []string{g.ID}, RuleIDs: []string{stableID("sgr-", name, "default-ingress")}}}
	r.groups[g.ID] = g
	seedCatalogue(r)
	return r
}

func zoneIDPrefix(region string) string {
	// us-east-1 → use1, ap-northeast-1 → apne1: the shape of real zone ids.
	out := []byte{}
	parts := splitDash(region)
	if len(parts) != 3 {
		return region
	}
	out = append(out, parts[0]...)
	for _, w := range splitCompass(parts[1]) {
		out = append(out, w[0])
	}
	out = append(out, parts[2]...)
	return string(out)
}

func splitDash(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func splitCompass(s string) []string {
	var out []string
	for _, w := range []string{"north", "south", "east", "west", "central"} {
		if len(s) >= len(w) && s[:len(w)] == w {
			out = append(out, w)
			s = s[len(w):]
		}
	}
	for _, w := range []string{"east", "west"} {
		if s == w {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		out = []string{"x"}
	}
	return out
}

// stableID derives an id from names, for seeded resources whose ids must
// not change between runs.
func stableID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:17]
}

// newID returns a fresh id with EC2's 17-hex-digit shape.
func (s *Server) newID(prefix string) string {
	var b [9]byte
	for i := range b {
		b[i] = byte(s.rand.IntN(256))
	}
	return prefix + hex.EncodeToString(b[:])[:17]
}

func (r *region) subnet(id string) *subnet {
	for _, sn := range r.subnets {
		if sn.ID == id {
			return sn
		}
	}
	return nil
}

func (r *region) zoneSubnet(az string) *subnet {
	for _, sn := range r.subnets {
		if sn.AZ == az {
			return sn
		}
	}
	return nil
}

func (r *region) setTags(id string, tags []Tag) {
	cur := r.tags[id]
	for _, t := range tags {
		replaced := false
		for i := range cur {
			if cur[i].Key == t.Key {
				cur[i].Value = t.Value
				replaced = true
			}
		}
		if !replaced {
			cur = append(cur, t)
		}
	}
	r.tags[id] = cur
}

func (r *region) groupByName(name string) *group {
	for _, g := range r.groups {
		if g.Name == name && g.VpcID == r.vpcID {
			return g
		}
	}
	return nil
}
