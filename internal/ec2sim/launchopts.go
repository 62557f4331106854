package ec2sim

import (
	"fmt"
	"slices"
)

func init() {
	actions["DescribeInstanceCreditSpecifications"] = describeInstanceCreditSpecifications
}

// launchOptions are RunInstances parameters EC2 keeps and reports back
// (DescribeInstances, DescribeInstanceAttribute,
// DescribeInstanceCreditSpecifications), so a client's tests can see what
// it sent.
type launchOptions struct {
	CPUCredits             string // standard | unlimited (burstable types only)
	CapacityPreference     string // open | none | capacity-reservations-only
	CapacityReservationID  string
	CapacityReservationARN string
	Enclave                bool
	Licenses               []string
	CoreCount, Threads     int
	IPv6Metadata           string // HttpProtocolIpv6
	MetadataTags           string // InstanceMetadataTags
	Tenancy                string
	PlacementGroup         string
	Hibernation            bool
	AutoRecovery           string
	DisableAPIStop         bool
	Monitoring             bool
	HostnameType           string
}

func oneOfValues(q *Query, key, def string, allowed ...string) (string, error) {
	v := q.Str(key)
	if v == "" {
		return def, nil
	}
	if !slices.Contains(allowed, v) {
		return "", apiErr("InvalidParameterValue", "Value (%s) for parameter %s is invalid.", v, key)
	}
	return v, nil
}

// readLaunchOptions reads and checks the launch options against the
// instance type, with the defaults the RunInstances reference gives.
func readLaunchOptions(q *Query, t instanceType) (launchOptions, error) {
	var o launchOptions
	var err error
	// CreditSpecification: T2 launches "standard", T3/T3a/T4g "unlimited"
	// by default (Burstable performance instances, user guide); other
	// types take none.
	def := ""
	if t.Burst {
		def = "unlimited"
		if !t.Nitro {
			def = "standard"
		}
	}
	if o.CPUCredits, err = oneOfValues(q, "CreditSpecification.CpuCredits", def, "standard", "unlimited"); err != nil {
		return o, err
	}
	if q.Has("CreditSpecification.CpuCredits") && !t.Burst {
		return o, apiErr("InvalidParameterCombination", "The parameter CreditSpecification is not supported for %s instance type.", t.Name)
	}
	if o.CapacityPreference, err = oneOfValues(q, "CapacityReservationSpecification.CapacityReservationPreference", "open", "open", "none", "capacity-reservations-only"); err != nil {
		return o, err
	}
	o.CapacityReservationID = q.Str("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId")
	o.CapacityReservationARN = q.Str("CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationResourceGroupArn")
	if o.CapacityReservationID != "" {
		// No capacity reservations exist in the simulator's account.
		return o, apiErr("InvalidCapacityReservationId.NotFound", "The capacity reservation ID '%s' does not exist", o.CapacityReservationID)
	}
	o.Enclave = q.Bool("EnclaveOptions.Enabled")
	if o.Enclave && (t.Burst || !t.Nitro || t.VCPUs < 2) {
		return o, apiErr("UnsupportedOperation", "The instance type '%s' does not support Nitro Enclaves.", t.Name)
	}
	for _, l := range q.Sub("LicenseSpecification") {
		arn := l.Str("LicenseConfigurationArn")
		if arn == "" {
			return o, apiErr("MissingParameter", "The request must contain the parameter LicenseConfigurationArn")
		}
		o.Licenses = append(o.Licenses, arn)
	}
	// CpuOptions: "The t2.micro instance type does not support specifying
	// CpuOptions" (UnsupportedOperation) on Xen types; defaults are the
	// type's cores and threads.
	threads := 2
	if !t.Nitro || slices.Contains(t.Arch, "arm64") {
		threads = 1
	}
	o.CoreCount, o.Threads = max(t.VCPUs/threads, 1), threads
	if q.Has("CpuOptions.CoreCount") || q.Has("CpuOptions.ThreadsPerCore") {
		if !t.Nitro || t.Burst {
			return o, apiErr("UnsupportedOperation", "The %s instance type does not support specifying CpuOptions.", t.Name)
		}
		if o.CoreCount, err = q.Int("CpuOptions.CoreCount", o.CoreCount); err != nil {
			return o, err
		}
		if o.Threads, err = q.Int("CpuOptions.ThreadsPerCore", o.Threads); err != nil {
			return o, err
		}
		if o.CoreCount < 1 || o.Threads < 1 || o.Threads > threads || o.CoreCount*o.Threads > t.VCPUs {
			return o, apiErr("InvalidCpuOptions.Malformed", "The CPU options (%d cores, %d threads per core) are not valid for %s.", o.CoreCount, o.Threads, t.Name)
		}
	}
	if o.IPv6Metadata, err = oneOfValues(q, "MetadataOptions.HttpProtocolIpv6", "disabled", "enabled", "disabled"); err != nil {
		return o, err
	}
	if o.MetadataTags, err = oneOfValues(q, "MetadataOptions.InstanceMetadataTags", "disabled", "enabled", "disabled"); err != nil {
		return o, err
	}
	if _, err := oneOfValues(q, "MetadataOptions.HttpTokens", "", "optional", "required"); err != nil {
		return o, err
	}
	if _, err := oneOfValues(q, "MetadataOptions.HttpEndpoint", "", "enabled", "disabled"); err != nil {
		return o, err
	}
	if n, err := q.Int("MetadataOptions.HttpPutResponseHopLimit", 2); err != nil || n < 1 || n > 64 {
		return o, apiErr("InvalidParameterValue", "Value (%s) for parameter HttpPutResponseHopLimit is invalid.", q.Str("MetadataOptions.HttpPutResponseHopLimit"))
	}
	if o.Tenancy, err = oneOfValues(q, "Placement.Tenancy", "default", "default", "dedicated", "host"); err != nil {
		return o, err
	}
	if o.PlacementGroup = q.Str("Placement.GroupName"); o.PlacementGroup != "" {
		return o, apiErr("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", o.PlacementGroup)
	}
	o.Hibernation = q.Bool("HibernationOptions.Configured")
	if o.AutoRecovery, err = oneOfValues(q, "MaintenanceOptions.AutoRecovery", "default", "default", "disabled"); err != nil {
		return o, err
	}
	o.DisableAPIStop = q.Bool("DisableApiStop")
	o.Monitoring = q.Bool("Monitoring.Enabled")
	if o.HostnameType, err = oneOfValues(q, "PrivateDnsNameOptions.HostnameType", "ip-name", "ip-name", "resource-name"); err != nil {
		return o, err
	}
	return o, nil
}

// macFor gives an instance's network interface a MAC address of EC2's
// shape (locally administered, 0a or 06 first octet... 12 hex digits).
func macFor(hex string) string {
	b := []byte(hex + "000000000000")[:10]
	return fmt.Sprintf("0a:%s:%s:%s:%s:%s", b[0:2], b[2:4], b[4:6], b[6:8], b[8:10])
}

// writeLaunchOptions writes the kept options into an Instance.
func (c *call) writeLaunchOptions(x *xw, in *instance) {
	o := in.Opts
	x.open("cpuOptions")
	x.num("coreCount", o.CoreCount)
	x.num("threadsPerCore", o.Threads)
	x.close("cpuOptions")
	x.open("capacityReservationSpecification")
	x.leaf("capacityReservationPreference", o.CapacityPreference)
	x.close("capacityReservationSpecification")
	x.open("hibernationOptions")
	x.boolean("configured", o.Hibernation)
	x.close("hibernationOptions")
	list(x, "licenseSet", o.Licenses, func(arn string) { x.leaf("licenseConfigurationArn", arn) })
	x.open("enclaveOptions")
	x.boolean("enabled", o.Enclave)
	x.close("enclaveOptions")
	x.open("maintenanceOptions")
	x.leaf("autoRecovery", o.AutoRecovery)
	x.close("maintenanceOptions")
	x.open("privateDnsNameOptions")
	x.leaf("hostnameType", o.HostnameType)
	x.boolean("enableResourceNameDnsARecord", false)
	x.boolean("enableResourceNameDnsAAAARecord", false)
	x.close("privateDnsNameOptions")
}

func describeInstanceCreditSpecifications(c *call) error {
	defer c.lock()()
	var ins []*instance
	var err error
	if ids := c.q.List("InstanceId"); len(ids) > 0 {
		if ins, err = c.instances(ids); err != nil {
			return err
		}
	} else {
		ins = c.allInstances()
	}
	var kept []*instance
	for _, in := range ins {
		if in.Opts.CPUCredits != "" && in.State != "terminated" {
			kept = append(kept, in)
		}
	}
	page, next, err := paginate(c.q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "instanceCreditSpecificationSet", page, func(in *instance) {
		x.leaf("instanceId", in.ID)
		x.leaf("cpuCredits", in.Opts.CPUCredits)
	})
	c.nextToken(next)
	return nil
}
