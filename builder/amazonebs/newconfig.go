package amazonebs

import (
	"fmt"
	"maps"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/template"
)

// Defaults amibake applies, Packer's unless said otherwise.
const (
	DefaultSSHPort           = 22
	DefaultSSHTimeout        = 5 * time.Minute
	DefaultHandshakeAttempts = 10
	DefaultKeepAlive         = 5 * time.Second
	// DefaultKeyPairType differs from Packer (rsa): ed25519 keys are
	// accepted by every OpenSSH, including those that refuse ssh-rsa.
	DefaultKeyPairType = "ed25519"
	DefaultRSABits     = 4096
	DefaultCheckIPURL  = "https://checkip.amazonaws.com"
	DefaultHostKeyWait = 30 * time.Second
	// DefaultSSHReadWriteTimeout differs from Packer (0, no limit): an SSH
	// connection on which nothing is read or written for this long fails,
	// so that a server that stops answering mid-upload cannot stall a
	// build for ever. Keep-alives (every 5s) keep a quiet command's
	// connection busy, so only a stalled link reaches it. "0s" disables
	// it; without keep-alives it is off unless set.
	DefaultSSHReadWriteTimeout = 5 * time.Minute
)

// unimplemented are options Packer documents that amibake accepts in a
// template but cannot honour yet: validate warns, build refuses.
var unimplemented = append(slices.Clone(awsclient.UnimplementedAccess),
	"temporary_iam_instance_profile_policy_document",
	"spot_price_auto_product", "block_duration_minutes",
	"windows_password_timeout",
	"pause_before_ssm", "session_manager_port", "ami_product_codes",
	"snapshot_copy_duration_minutes", "deregistration_protection", "fast_launch",
	"ssh_certificate_file", "ssh_bastion_interactive", "ssh_bastion_certificate_file",
	"ssh_proxy_host", "ssh_proxy_port", "ssh_proxy_username", "ssh_proxy_password",
	"ssh_local_tunnels", "ssh_remote_tunnels", "ssh_ciphers", "ssh_key_exchange_algorithms", "no_ephemeral",
	"winrm_username", "winrm_password", "winrm_host", "winrm_no_proxy", "winrm_port",
	"winrm_timeout", "winrm_use_ssl", "winrm_insecure", "winrm_use_ntlm",
)

// noEffect are Packer options amibake accepts but that change nothing
// in amibake, each with the reason; validate and build warn when one is
// set. (Options that do something, even differently from Packer, are
// not here; unimplemented ones are refused by build.)
var noEffect = map[string]string{
	"skip_profile_validation": "amibake does not check the instance profile before launch (Packer calls iam:GetInstanceProfile); EC2 checks it at RunInstances",
}

var (
	amiNameRe = regexp.MustCompile(`^[a-zA-Z0-9()\[\] ./\-'@_]+$`)
)

// NewConfig decodes an amazon-ebs block, applies the defaults and checks
// everything that can be checked offline. Warnings name options amibake
// does not implement; errors point at the offending option.
func NewConfig(b *template.Block) (*Config, hcl.Diagnostics) {
	c := &Config{}
	diags := b.Decode(c, nil)
	if diags.HasErrors() {
		return c, diags
	}
	v := &validator{body: b.Body, def: b.DefRange}
	c.prepare(v)
	return c, append(diags, v.diags...)
}

// Unimplemented returns the options set in this configuration that
// amibake cannot honour yet, sorted.
func (c *Config) Unimplemented() []string { return c.Parsed.unimplemented }

type validator struct {
	body  hcl.Body
	def   hcl.Range
	diags hcl.Diagnostics
}

// errorf reports an error on the option at path ("ami_name",
// "source_ami_filter.owners"), or on the block when it is not written.
func (v *validator) errorf(path, summary, format string, args ...any) {
	v.add(hcl.DiagError, path, summary, fmt.Sprintf(format, args...))
}

func (v *validator) add(sev hcl.DiagnosticSeverity, path, summary, detail string) {
	r := v.rangeOf(path)
	v.diags = append(v.diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: &r})
}

// rangeOf finds where an option is written; the block's header otherwise.
func (v *validator) rangeOf(path string) hcl.Range {
	body := v.body
	best := v.def
	parts := strings.Split(path, ".")
	for i, name := range parts {
		if body == nil {
			break
		}
		last := i == len(parts)-1
		if last {
			if r, ok := attrOrBlockRange(body, name); ok {
				return r
			}
			break
		}
		content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: name}}})
		if content == nil || len(content.Blocks) == 0 {
			if r, ok := attrOrBlockRange(body, name); ok {
				best = r
			}
			break
		}
		best = content.Blocks[0].DefRange
		body = content.Blocks[0].Body
	}
	return best
}

func attrOrBlockRange(body hcl.Body, name string) (r hcl.Range, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}}); content != nil {
		if a, found := content.Attributes[name]; found {
			return a.Range, true
		}
	}
	if content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: name}}}); content != nil && len(content.Blocks) > 0 {
		return content.Blocks[0].DefRange, true
	}
	return hcl.Range{}, false
}

func (c *Config) prepare(v *validator) {
	c.defaults()
	c.mergeForms()
	c.checkAccess(v)
	c.checkSource(v)
	c.checkRun(v)
	c.checkAMI(v)
	c.checkCommunicator(v)
	c.checkBlockDevices(v, "launch_block_device_mappings", c.LaunchBlockDevices)
	c.checkBlockDevices(v, "ami_block_device_mappings", c.AMIBlockDevices)

	c.Parsed.unimplemented = setOptions(c, unimplemented)
	if c.Communicator == "winrm" {
		c.Parsed.unimplemented = append(c.Parsed.unimplemented, `communicator = "winrm"`)
	}
	if c.SSHInterface == "session_manager" || c.SSHInterface == "ipv6" {
		c.Parsed.unimplemented = append(c.Parsed.unimplemented, fmt.Sprintf("ssh_interface = %q", c.SSHInterface))
	}
	for _, name := range setOptions(c, slices.Sorted(maps.Keys(noEffect))) {
		v.add(hcl.DiagWarning, name, "Option without effect in amibake", fmt.Sprintf("%s: %s", name, noEffect[name]))
	}
	for _, name := range c.Parsed.unimplemented {
		opt, _, _ := strings.Cut(name, " ")
		v.add(hcl.DiagWarning, opt, "Option not implemented by amibake",
			fmt.Sprintf("%s is a Packer amazon-ebs option that amibake does not implement yet; `amibake build` refuses this template until it is removed.", name))
	}
}

func (c *Config) defaults() {
	if c.Communicator == "" {
		c.Communicator = "ssh"
	}
	if c.SSHPort == 0 {
		c.SSHPort = DefaultSSHPort
	}
	if c.SSHHandshakeAttempts == 0 {
		c.SSHHandshakeAttempts = DefaultHandshakeAttempts
	}
	if c.TemporaryKeyPairType == "" {
		c.TemporaryKeyPairType = DefaultKeyPairType
	}
	if c.TemporaryKeyPairType == "rsa" && c.TemporaryKeyPairBits == 0 {
		c.TemporaryKeyPairBits = DefaultRSABits
	}
	if c.AMIVirtType == "" {
		c.AMIVirtType = "hvm"
	}
	if c.ShutdownBehavior == "" {
		c.ShutdownBehavior = "stop"
	}
	if c.SSHHostKeyChecking == "" {
		c.SSHHostKeyChecking = "pin"
	}
	if c.SecurityGroupID != "" {
		c.SecurityGroupIDs = append([]string{c.SecurityGroupID}, c.SecurityGroupIDs...)
	}
	c.AMIRegions = dedupe(c.AMIRegions)
}

// mergeForms merges the map and block forms of tags and filters.
func (c *Config) mergeForms() {
	p := &c.Parsed
	p.RunTags = mergeKV(c.RunTags, c.RunTag)
	p.RunVolumeTags = mergeKV(c.RunVolumeTags, c.RunVolumeTag)
	p.AMITags = mergeKV(c.Tags, c.Tag)
	p.SnapshotTags = mergeKV(c.SnapshotTags, c.SnapshotTag)
	p.FleetTags = mergeKV(c.FleetTags, c.FleetTag)
	p.SpotTags = mergeKV(c.SpotTags, c.SpotTag)
	if f := c.SourceAMIFilter; f != nil {
		p.AMIFilters = mergeNV(f.Filters, f.Filter)
	}
	if f := c.SubnetFilter; f != nil {
		p.SubnetFilters = mergeNV(f.Filters, f.Filter)
	}
	if f := c.VPCFilter; f != nil {
		p.VPCFilters = mergeNV(f.Filters, f.Filter)
	}
	if f := c.SecurityGroupFilter; f != nil {
		p.SGFilters = mergeNV(f.Filters, f.Filter)
	}
}

func mergeKV(m map[string]string, kvs []KeyValue) map[string]string {
	out := make(map[string]string, len(m)+len(kvs))
	for k, v := range m {
		out[k] = v
	}
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out
}

func mergeNV(m map[string]string, nvs []NameValue) map[string]string {
	out := make(map[string]string, len(m)+len(nvs))
	for k, v := range m {
		out[k] = v
	}
	for _, nv := range nvs {
		out[nv.Name] = nv.Value
	}
	return out
}

func (c *Config) checkAccess(v *validator) {
	for _, p := range c.AccessConfig.Check() {
		v.errorf(p.Option, p.Summary, "%s", p.Detail)
	}
	for i, r := range c.AMIRegions {
		if !c.SkipRegionValidation && !awsclient.IsRegionName(r) {
			v.errorf("ami_regions", "Invalid region in ami_regions", "ami_regions[%d] = %q is not an AWS region name.", i, r)
		}
	}
	for r := range c.RegionKMSKeyIDs {
		if c.Region != "" && r != c.Region && !contains(c.AMIRegions, r) {
			v.errorf("region_kms_key_ids", "Region not copied to", "region_kms_key_ids names %s, which is neither the build region nor in ami_regions.", r)
		}
	}
}

func (c *Config) checkSource(v *validator) {
	if c.SourceAMI == "" && c.SourceAMIFilter == nil {
		v.errorf("source_ami", "Missing source AMI", "Set source_ami, or a source_ami_filter that selects it.")
	}
	if f := c.SourceAMIFilter; f != nil {
		if len(f.Owners) == 0 && c.Parsed.AMIFilters["owner-id"] == "" && c.Parsed.AMIFilters["owner-alias"] == "" {
			v.errorf("source_ami_filter.owners", "Missing owners in source_ami_filter",
				"For security reasons, source_ami_filter must name the AMI's owner: set owners, or the owner-id or owner-alias filter.")
		}
		if len(c.Parsed.AMIFilters) == 0 && c.SourceAMI == "" {
			v.errorf("source_ami_filter.filters", "Empty source_ami_filter", "source_ami_filter needs at least one filter, such as name.")
		}
	}
}

func (c *Config) checkRun(v *validator) {
	switch {
	case c.InstanceType == "" && len(c.SpotInstanceTypes) == 0:
		v.errorf("instance_type", "Missing instance_type", "instance_type is required (or spot_instance_types for a spot fleet).")
	case c.InstanceType != "" && len(c.SpotInstanceTypes) > 0:
		v.errorf("spot_instance_types", "Conflicting instance types", "Set instance_type or spot_instance_types, not both.")
	}
	if c.SpotPrice != "" && c.SpotPrice != "auto" {
		var f float64
		if _, err := fmt.Sscanf(c.SpotPrice, "%g", &f); err != nil || f <= 0 {
			v.errorf("spot_price", "Invalid spot_price", `spot_price must be "auto" or a price in dollars, not %q.`, c.SpotPrice)
		}
	}
	if c.ShutdownBehavior != "stop" && c.ShutdownBehavior != "terminate" {
		v.errorf("shutdown_behavior", "Invalid shutdown_behavior", `shutdown_behavior must be "stop" or "terminate", not %q.`, c.ShutdownBehavior)
	}
	if c.UserData != "" && c.UserDataFile != "" {
		v.errorf("user_data_file", "Conflicting user data", "Set user_data or user_data_file, not both.")
	}
	if c.UserDataFile != "" {
		if _, err := os.Stat(c.UserDataFile); err != nil {
			v.errorf("user_data_file", "Unreadable user_data_file", "user_data_file: %v.", err)
		}
	}
	if f := c.SubnetFilter; f != nil && f.MostFree && f.Random {
		v.errorf("subnet_filter.random", "Conflicting subnet_filter options", "most_free and random cannot both be true.")
	}
	switch c.SSHInterface {
	case "", "public_ip", "private_ip", "public_dns", "private_dns", "ipv6", "session_manager":
	default:
		v.errorf("ssh_interface", "Invalid ssh_interface", "ssh_interface must be one of public_ip, private_ip, public_dns, private_dns, ipv6 or session_manager, not %q.", c.SSHInterface)
	}
	for i, cidr := range c.TemporarySecurityGroupSourceCIDRs {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			v.errorf("temporary_security_group_source_cidrs", "Invalid CIDR", "temporary_security_group_source_cidrs[%d] = %q is not a CIDR block such as 203.0.113.7/32.", i, cidr)
			continue
		}
		if ones, _ := n.Mask.Size(); ones == 0 {
			v.add(hcl.DiagWarning, "temporary_security_group_source_cidrs", "SSH open to the whole internet",
				fmt.Sprintf("temporary_security_group_source_cidrs[%d] = %q lets every address reach the build instance's SSH port while it runs. Leave the option out to open it to this machine's public IP only (or the VPC's CIDRs over a private IP), or list your CI's addresses.", i, cidr))
		}
	}
	if len(c.SecurityGroupIDs) > 0 || c.SecurityGroupFilter != nil {
		if len(c.TemporarySecurityGroupSourceCIDRs) > 0 || c.TemporarySecurityGroupSourcePubIP {
			v.errorf("temporary_security_group_source_cidrs", "Conflicting security group options",
				"temporary_security_group_source_cidrs and temporary_security_group_source_public_ip only apply to the temporary security group; remove them or remove security_group_id(s)/security_group_filter.")
		}
	}
	if m := c.MetadataOptions; m != nil {
		if !oneOf(m.HTTPEndpoint, "", "enabled", "disabled") {
			v.errorf("metadata_options.http_endpoint", "Invalid http_endpoint", `http_endpoint must be "enabled" or "disabled", not %q.`, m.HTTPEndpoint)
		}
		if !oneOf(m.HTTPTokens, "", "optional", "required") {
			v.errorf("metadata_options.http_tokens", "Invalid http_tokens", `http_tokens must be "optional" or "required", not %q.`, m.HTTPTokens)
		}
		if m.HTTPPutResponseHopLimit != 0 && (m.HTTPPutResponseHopLimit < 1 || m.HTTPPutResponseHopLimit > 64) {
			v.errorf("metadata_options.http_put_response_hop_limit", "Invalid http_put_response_hop_limit", "http_put_response_hop_limit must be between 1 and 64.")
		}
		if !oneOf(m.InstanceMetadataTags, "", "enabled", "disabled") {
			v.errorf("metadata_options.instance_metadata_tags", "Invalid instance_metadata_tags", `instance_metadata_tags must be "enabled" or "disabled", not %q.`, m.InstanceMetadataTags)
		}
	}
	if c.TemporarySecurityGroupSourcePublicIPURL != "" && !strings.HasPrefix(c.TemporarySecurityGroupSourcePublicIPURL, "http://") && !strings.HasPrefix(c.TemporarySecurityGroupSourcePublicIPURL, "https://") {
		v.errorf("temporary_security_group_source_public_ip_url", "Invalid URL", "temporary_security_group_source_public_ip_url must be an http(s) URL.")
	}
}

func (c *Config) checkAMI(v *validator) {
	if !c.SkipCreateAMI {
		switch n := c.AMIName; {
		case n == "":
			v.errorf("ami_name", "Missing ami_name", "ami_name is required: the name of the AMI to create, unique in the region.")
		case strings.Contains(n, "{{"):
			// Rendered at build time ({{ .SourceAMIName }}); checked then.
		default:
			if err := CheckAMIName(n); err != nil {
				v.errorf("ami_name", "Invalid ami_name", "%v", err)
			}
		}
	}
	if !oneOf(c.AMIVirtType, "hvm", "paravirtual") {
		v.errorf("ami_virtualization_type", "Invalid ami_virtualization_type", `ami_virtualization_type must be "hvm" or "paravirtual", not %q.`, c.AMIVirtType)
	}
	if !oneOf(c.IMDSSupport, "", "v2.0") {
		v.errorf("imds_support", "Invalid imds_support", `imds_support must be "v2.0" when set, not %q.`, c.IMDSSupport)
	}
	if c.KMSKeyID != "" && (c.EncryptBoot == nil || !*c.EncryptBoot) {
		v.errorf("kms_key_id", "kms_key_id without encrypt_boot", "kms_key_id only applies with encrypt_boot = true.")
	}
	if c.DeprecateAt != "" {
		t, err := time.Parse(time.RFC3339, c.DeprecateAt)
		switch {
		case err != nil:
			v.errorf("deprecate_at", "Invalid deprecate_at", "deprecate_at must be an RFC 3339 time such as 2030-01-02T15:04:05Z: %v.", err)
		case t.After(time.Now().AddDate(10, 0, 0)):
			v.errorf("deprecate_at", "Invalid deprecate_at", "deprecate_at can be at most 10 years in the future.")
		default:
			c.Parsed.DeprecateAt = t.UTC().Format(time.RFC3339)
		}
	}
	for i, g := range c.AMIGroups {
		if g != "all" {
			v.errorf("ami_groups", "Invalid ami_groups", `ami_groups[%d] = %q: the only group is "all" (public).`, i, g)
		}
	}
	for i, g := range c.SnapshotGroups {
		if g != "all" {
			v.errorf("snapshot_groups", "Invalid snapshot_groups", `snapshot_groups[%d] = %q: the only group is "all" (public).`, i, g)
		}
	}
	if c.SkipCreateAMI && c.AMIFromSnapshot {
		v.errorf("ami_from_snapshot", "Conflicting AMI options", "ami_from_snapshot has no effect with skip_create_ami.")
	}
}

// CheckAMIName applies AWS's rules for AMI names.
func CheckAMIName(n string) error {
	if len(n) < 3 || len(n) > 128 {
		return fmt.Errorf("AMI name %q must be between 3 and 128 characters long, not %d", clipName(n), len(n))
	}
	if !amiNameRe.MatchString(n) {
		return fmt.Errorf("AMI name %q may only contain letters, digits, spaces and ( ) [ ] . / - ' @ _ (clean_resource_name in JSON templates replaces the others)", clipName(n))
	}
	return nil
}

func (c *Config) checkCommunicator(v *validator) {
	if !oneOf(c.Communicator, "ssh", "none", "winrm") {
		v.errorf("communicator", "Invalid communicator", `communicator must be "ssh", "winrm" or "none", not %q.`, c.Communicator)
		return
	}
	durs := []struct {
		name string
		raw  string
		dst  *time.Duration
		def  time.Duration
	}{
		{"ssh_timeout", c.SSHTimeout, &c.Parsed.SSHTimeout, DefaultSSHTimeout},
		{"ssh_keep_alive_interval", c.SSHKeepAliveInterval, &c.Parsed.SSHKeepAliveInterval, DefaultKeepAlive},
		{"ssh_read_write_timeout", c.SSHReadWriteTimeout, &c.Parsed.SSHReadWriteTimeout, DefaultSSHReadWriteTimeout},
		{"pause_before_connecting", c.PauseBeforeConnecting, &c.Parsed.PauseBeforeConnecting, 0},
		{"ssh_host_key_wait_timeout", c.SSHHostKeyWaitTimout, &c.Parsed.HostKeyWait, DefaultHostKeyWait},
		{"winrm_timeout", c.WinRMTimeout, &c.Parsed.WinRMTimeout, 30 * time.Minute},
	}
	if c.SSHTimeout == "" && c.SSHWaitTimeout != "" {
		durs[0].name, durs[0].raw = "ssh_wait_timeout", c.SSHWaitTimeout
	}
	for _, d := range durs {
		*d.dst = d.def
		if d.raw == "" {
			continue
		}
		x, err := time.ParseDuration(d.raw)
		if err != nil || x < 0 {
			v.errorf(d.name, "Invalid duration", `%s = %q is not a duration: write a number with a unit, such as "30s", "5m" or "1h30m".`, d.name, d.raw)
			continue
		}
		*d.dst = x
	}
	if c.SSHReadWriteTimeout == "" && c.Parsed.SSHKeepAliveInterval < 0 {
		c.Parsed.SSHReadWriteTimeout = 0
	}
	if c.Communicator != "ssh" {
		return
	}
	if c.SSHUsername == "" {
		v.errorf("ssh_username", "Missing ssh_username", `ssh_username is required with the ssh communicator: the user to log in as, such as "ubuntu" or "ec2-user".`)
	}
	if c.SSHPort < 1 || c.SSHPort > 65535 {
		v.errorf("ssh_port", "Invalid ssh_port", "ssh_port must be between 1 and 65535, not %d.", c.SSHPort)
	}
	if c.SSHHandshakeAttempts < 1 {
		v.errorf("ssh_handshake_attempts", "Invalid ssh_handshake_attempts", "ssh_handshake_attempts must be at least 1.")
	}
	switch c.TemporaryKeyPairType {
	case "ed25519":
		if c.TemporaryKeyPairBits != 0 {
			v.errorf("temporary_key_pair_bits", "Bits with an ed25519 key", "temporary_key_pair_bits only applies to rsa keys; ed25519 keys have a fixed size.")
		}
	case "rsa":
		if c.TemporaryKeyPairBits < 2048 || c.TemporaryKeyPairBits > 16384 {
			v.errorf("temporary_key_pair_bits", "Invalid temporary_key_pair_bits", "An RSA key needs between 2048 and 16384 bits, not %d.", c.TemporaryKeyPairBits)
		}
	default:
		v.errorf("temporary_key_pair_type", "Invalid temporary_key_pair_type", `temporary_key_pair_type must be "ed25519" or "rsa" (the types EC2 imports), not %q.`, c.TemporaryKeyPairType)
	}
	if c.SSHKeyPairName != "" && c.SSHPrivateKeyFile == "" && !c.SSHAgentAuth {
		v.errorf("ssh_keypair_name", "Missing private key", "ssh_keypair_name needs ssh_private_key_file (or ssh_agent_auth) to log in with that key pair.")
	}
	if c.SSHPrivateKeyFile != "" {
		if _, err := os.Stat(c.SSHPrivateKeyFile); err != nil {
			v.errorf("ssh_private_key_file", "Unreadable ssh_private_key_file", "ssh_private_key_file: %v.", err)
		}
	}
	if !oneOf(c.SSHHostKeyChecking, "pin", "require", "tofu", "off") {
		v.errorf("ssh_host_key_checking", "Invalid ssh_host_key_checking", `ssh_host_key_checking must be "pin" (console fingerprints, else trust on first use), "require" (console fingerprints or fail), "tofu" or "off", not %q.`, c.SSHHostKeyChecking)
	}
	if !oneOf(c.SSHFileTransferMethod, "", "sftp", "scp") {
		v.errorf("ssh_file_transfer_method", "Invalid ssh_file_transfer_method", `ssh_file_transfer_method must be "sftp" or "scp", not %q.`, c.SSHFileTransferMethod)
	}
}

var volumeTypes = []string{"standard", "gp2", "gp3", "io1", "io2", "sc1", "st1"}

func (c *Config) checkBlockDevices(v *validator, name string, devs []BlockDevice) {
	for i, d := range devs {
		if d.DeviceName == "" {
			v.errorf(name, "Missing device_name", "%s[%d] needs a device_name such as /dev/sda1.", name, i)
		}
		if d.VolumeType != "" && !contains(volumeTypes, d.VolumeType) {
			v.errorf(name, "Invalid volume_type", "%s[%d].volume_type = %q: want one of %s.", name, i, d.VolumeType, strings.Join(volumeTypes, ", "))
		}
		if d.IOPS != nil && !oneOf(d.VolumeType, "io1", "io2", "gp3") {
			// Packer sends iops only for io1, io2 and gp3 and drops it
			// silently otherwise: accepted, and said so.
			v.add(hcl.DiagWarning, name, "iops has no effect on this volume type",
				fmt.Sprintf("%s[%d]: iops applies only to io1, io2 and gp3 volumes; on %s it is not sent (as Packer does).", name, i, volumeTypeName(d.VolumeType)))
			devs[i].IOPS = nil
		}
		if d.Throughput != nil && d.VolumeType != "gp3" {
			v.errorf(name, "throughput on a volume type without it", "%s[%d]: throughput applies only to gp3 volumes.", name, i)
		}
		if d.KMSKeyID != "" && (d.Encrypted == nil || !*d.Encrypted) {
			v.errorf(name, "kms_key_id without encrypted", "%s[%d]: kms_key_id needs encrypted = true.", name, i)
		}
		if d.VolumeSize < 0 {
			v.errorf(name, "Invalid volume_size", "%s[%d]: volume_size must be positive.", name, i)
		}
	}
}

// setOptions returns which of names are set (non-zero) in c, by hcl tag.
func setOptions(c *Config, names []string) []string {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var set []string
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		rt := rv.Type()
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("hcl"), ",")
			switch {
			case tag == "" && f.Anonymous && f.Type.Kind() == reflect.Struct:
				walk(rv.Field(i)) // the shared AccessConfig
			case want[tag] && !rv.Field(i).IsZero():
				set = append(set, tag)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem())
	sort.Strings(set)
	return set
}

func oneOf(s string, options ...string) bool { return contains(options, s) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	out := list[:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func volumeTypeName(t string) string {
	if t == "" {
		return "the default volume type"
	}
	return t
}

// clipName shortens a value quoted in an error: a 10 MB ami_name must not
// make a 10 MB message.
func clipName(s string) string {
	const n = 140
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
