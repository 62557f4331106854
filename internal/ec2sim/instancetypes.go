package ec2sim

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

func init() {
	actions["DescribeInstanceTypes"] = describeInstanceTypes
	actions["DescribeInstanceTypeOfferings"] = describeInstanceTypeOfferings
}

// instanceType is one row of the catalogue: what DescribeInstanceTypes
// reports and what launches check (architecture, hypervisor). Figures
// are those of the EC2 instance types reference (instance-types.html,
// "Amazon EC2 instance type specifications"); the Xen ones (t2, m4, c4,
// r4) are the previous generation the user guide lists as not built on
// the Nitro System.
type instanceType struct {
	Name    string
	Arch    []string // supported architectures
	Nitro   bool     // hypervisor nitro, else xen
	VCPUs   int
	MemMiB  int
	Burst   bool // T family: CPU credits (CreditSpecification applies)
	EBSOnly bool
}

var instanceTypes = func() map[string]instanceType {
	m := map[string]instanceType{}
	add := func(family string, arch []string, nitro, burst bool, sizes ...any) {
		for i := 0; i < len(sizes); i += 3 {
			n := family + "." + sizes[i].(string)
			m[n] = instanceType{Name: n, Arch: arch, Nitro: nitro, VCPUs: sizes[i+1].(int), MemMiB: sizes[i+2].(int), Burst: burst, EBSOnly: true}
		}
	}
	x86 := []string{"x86_64"}
	x86i386 := []string{"i386", "x86_64"}
	arm := []string{"arm64"}
	add("t2", x86i386, false, true, "nano", 1, 512, "micro", 1, 1024, "small", 1, 2048, "medium", 2, 4096, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("t3", x86, true, true, "nano", 2, 512, "micro", 2, 1024, "small", 2, 2048, "medium", 2, 4096, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("t3a", x86, true, true, "nano", 2, 512, "micro", 2, 1024, "small", 2, 2048, "medium", 2, 4096, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("t4g", arm, true, true, "nano", 2, 512, "micro", 2, 1024, "small", 2, 2048, "medium", 2, 4096, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("m4", x86, false, false, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("c4", x86, false, false, "large", 2, 3840, "xlarge", 4, 7680, "2xlarge", 8, 15360)
	add("r4", x86, false, false, "large", 2, 15616, "xlarge", 4, 31232)
	add("m5", x86, true, false, "large", 2, 8192, "xlarge", 4, 16384, "2xlarge", 8, 32768)
	add("c5", x86, true, false, "large", 2, 4096, "xlarge", 4, 8192, "2xlarge", 8, 16384)
	add("m6i", x86, true, false, "large", 2, 8192, "xlarge", 4, 16384)
	add("c6i", x86, true, false, "large", 2, 4096, "xlarge", 4, 8192)
	add("m6g", arm, true, false, "medium", 1, 4096, "large", 2, 8192, "xlarge", 4, 16384)
	add("c6g", arm, true, false, "medium", 1, 2048, "large", 2, 4096, "xlarge", 4, 8192)
	add("m7g", arm, true, false, "medium", 1, 4096, "large", 2, 8192, "xlarge", 4, 16384)
	add("c7g", arm, true, false, "medium", 1, 2048, "large", 2, 4096, "xlarge", 4, 8192)
	add("m7i", x86, true, false, "large", 2, 8192, "xlarge", 4, 16384)
	// m1.small: RunInstances' documented default instance type.
	m["m1.small"] = instanceType{Name: "m1.small", Arch: x86i386, VCPUs: 1, MemMiB: 1740}
	return m
}()

func (t instanceType) hypervisor() string {
	if t.Nitro {
		return "nitro"
	}
	return "xen"
}

// checkLaunchType validates a launch's instance type against the image,
// with the codes EC2 answers: an unknown type is InvalidParameterValue
// ("Invalid value 'x' for InstanceType."); an image whose architecture
// the type does not support is InvalidParameterValue too ("The
// architecture 'arm64' of the specified instance type does not match the
// architecture 'x86_64' of the specified AMI...").
func checkLaunchType(name, imageArch string) (instanceType, error) {
	t, ok := instanceTypes[name]
	if !ok {
		return t, apiErr("InvalidParameterValue", "Invalid value '%s' for InstanceType.", name)
	}
	if imageArch != "" && !slices.Contains(t.Arch, imageArch) {
		return t, apiErr("InvalidParameterValue", "The architecture '%s' of the specified instance type does not match the architecture '%s' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI.", t.Arch[len(t.Arch)-1], imageArch)
	}
	return t, nil
}

func sortedTypes() []instanceType {
	var out []instanceType
	for _, t := range instanceTypes {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func describeInstanceTypes(c *call) error {
	q := c.q
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "instance-type", "processor-info.supported-architecture", "hypervisor",
		"vcpu-info.default-vcpus", "memory-info.size-in-mib", "current-generation", "burstable-performance-supported",
		"free-tier-eligible", "supported-virtualization-type", "supported-usage-class"); err != nil {
		return err
	}
	types := sortedTypes()
	if names := q.List("InstanceType"); len(names) > 0 {
		types = nil
		var bad []string
		for _, n := range names {
			t, ok := instanceTypes[n]
			if !ok {
				bad = append(bad, n)
				continue
			}
			types = append(types, t)
		}
		if len(bad) > 0 {
			return apiErr("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(bad, ", "))
		}
	}
	var kept []instanceType
	for _, t := range types {
		if matches(filters, nil, func(n string) []string {
			switch n {
			case "instance-type":
				return []string{t.Name}
			case "processor-info.supported-architecture":
				return t.Arch
			case "hypervisor":
				return []string{t.hypervisor()}
			case "vcpu-info.default-vcpus":
				return []string{strconv.Itoa(t.VCPUs)}
			case "memory-info.size-in-mib":
				return []string{strconv.Itoa(t.MemMiB)}
			case "current-generation":
				return []string{strconv.FormatBool(t.Nitro)}
			case "burstable-performance-supported":
				return []string{strconv.FormatBool(t.Burst)}
			case "free-tier-eligible":
				return []string{strconv.FormatBool(t.Name == "t2.micro" || t.Name == "t3.micro")}
			case "supported-virtualization-type":
				return []string{"hvm"}
			case "supported-usage-class":
				return []string{"on-demand", "spot"}
			}
			return nil
		}) {
			kept = append(kept, t)
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "instanceTypeSet", page, func(t instanceType) {
		x.leaf("instanceType", t.Name)
		x.boolean("currentGeneration", t.Nitro)
		x.boolean("freeTierEligible", t.Name == "t2.micro" || t.Name == "t3.micro")
		x.strs("supportedUsageClasses", []string{"on-demand", "spot"})
		x.strs("supportedRootDeviceTypes", []string{"ebs"})
		x.strs("supportedVirtualizationTypes", []string{"hvm"})
		x.boolean("bareMetal", false)
		x.leaf("hypervisor", t.hypervisor())
		x.open("processorInfo")
		x.strs("supportedArchitectures", t.Arch)
		x.close("processorInfo")
		x.open("vCpuInfo")
		x.num("defaultVCpus", t.VCPUs)
		x.close("vCpuInfo")
		x.open("memoryInfo")
		x.num("sizeInMiB", t.MemMiB)
		x.close("memoryInfo")
		x.boolean("instanceStorageSupported", false)
		x.open("ebsInfo")
		x.leaf("ebsOptimizedSupport", map[bool]string{true: "default", false: "supported"}[t.Nitro])
		x.leaf("encryptionSupport", "supported")
		x.leaf("nvmeSupport", map[bool]string{true: "required", false: "unsupported"}[t.Nitro])
		x.close("ebsInfo")
		x.open("networkInfo")
		x.leaf("enaSupport", map[bool]string{true: "required", false: "unsupported"}[t.Nitro])
		x.num("maximumNetworkInterfaces", 2)
		x.close("networkInfo")
		x.boolean("burstablePerformanceSupported", t.Burst)
		x.boolean("hibernationSupported", false)
		x.boolean("dedicatedHostsSupported", !t.Burst)
		x.boolean("autoRecoverySupported", true)
		x.strs("supportedBootModes", bootModes(t))
	})
	c.nextToken(next)
	return nil
}

func bootModes(t instanceType) []string {
	if t.Nitro {
		return []string{"legacy-bios", "uefi"}
	}
	return []string{"legacy-bios"}
}

// describeInstanceTypeOfferings offers every catalogue type in every
// region and zone the simulator serves.
func describeInstanceTypeOfferings(c *call) error {
	defer c.lock()()
	q := c.q
	lt := q.Str("LocationType")
	if lt == "" {
		lt = "region"
	}
	if lt != "region" && lt != "availability-zone" && lt != "availability-zone-id" {
		return apiErr("InvalidParameterValue", "Value (%s) for parameter locationType is invalid.", lt)
	}
	filters, err := q.Filters()
	if err != nil {
		return err
	}
	if err := checkFilters(filters, "instance-type", "location"); err != nil {
		return err
	}
	var locs []string
	switch lt {
	case "region":
		locs = []string{c.r.name}
	case "availability-zone":
		locs = slices.Clone(c.r.zones)
	default:
		for _, sn := range c.r.subnets {
			locs = append(locs, sn.ZoneID)
		}
	}
	type offering struct{ t, loc string }
	var kept []offering
	for _, t := range sortedTypes() {
		for _, l := range locs {
			if matches(filters, nil, func(n string) []string {
				if n == "location" {
					return []string{l}
				}
				return []string{t.Name}
			}) {
				kept = append(kept, offering{t.Name, l})
			}
		}
	}
	page, next, err := paginate(q, kept, 5)
	if err != nil {
		return err
	}
	x := &c.x
	list(x, "instanceTypeOfferingSet", page, func(o offering) {
		x.leaf("instanceType", o.t)
		x.leaf("locationType", lt)
		x.leaf("location", o.loc)
	})
	c.nextToken(next)
	return nil
}
