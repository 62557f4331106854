// Package amazonebs is amibake's amazon-ebs builder: it launches an
// instance from a source AMI, provisions it over SSH, stops it and turns it
// into an AMI, the way Packer's amazon-ebs builder does, with the same
// options. Every option Packer documents is accepted by Config; the few that
// amibake does not implement yet are named by a warning and refused by
// `build` before anything is created.
package amazonebs

import (
	"time"

	"github.com/amibake/amibake/internal/awsclient"
)

// KeyValue is the HCL2 block form of one map entry: `tag { key = "Name" value = "x" }`.
type KeyValue struct {
	Key   string `hcl:"key"`
	Value string `hcl:"value"`
}

// NameValue is one filter in block form: `filter { name = "..." value = "..." }`.
type NameValue struct {
	Name  string `hcl:"name"`
	Value string `hcl:"value"`
}

// AssumeRole, VaultAWSEngine and Polling are blocks of the shared
// AccessConfig.
type (
	AssumeRole     = awsclient.AssumeRole
	VaultAWSEngine = awsclient.VaultAWSEngine
	Polling        = awsclient.Polling
)

// AMIFilter is source_ami_filter.
type AMIFilter struct {
	Filters           map[string]string `hcl:"filters,optional"`
	Filter            []NameValue       `hcl:"filter,block"`
	Owners            []string          `hcl:"owners,optional"`
	MostRecent        bool              `hcl:"most_recent,optional"`
	IncludeDeprecated bool              `hcl:"include_deprecated,optional"`
}

// SubnetFilter is subnet_filter.
type SubnetFilter struct {
	Filters  map[string]string `hcl:"filters,optional"`
	Filter   []NameValue       `hcl:"filter,block"`
	MostFree bool              `hcl:"most_free,optional"`
	Random   bool              `hcl:"random,optional"`
}

// Filter is vpc_filter and security_group_filter.
type Filter struct {
	Filters map[string]string `hcl:"filters,optional"`
	Filter  []NameValue       `hcl:"filter,block"`
}

// BlockDevice is one entry of launch_block_device_mappings or
// ami_block_device_mappings.
type BlockDevice struct {
	DeviceName          string `hcl:"device_name,optional"`
	DeleteOnTermination bool   `hcl:"delete_on_termination,optional"`
	Encrypted           *bool  `hcl:"encrypted,optional"`
	IOPS                *int32 `hcl:"iops,optional"`
	NoDevice            bool   `hcl:"no_device,optional"`
	SnapshotID          string `hcl:"snapshot_id,optional"`
	Throughput          *int32 `hcl:"throughput,optional"`
	VirtualName         string `hcl:"virtual_name,optional"`
	VolumeType          string `hcl:"volume_type,optional"`
	VolumeSize          int32  `hcl:"volume_size,optional"`
	KMSKeyID            string `hcl:"kms_key_id,optional"`
}

// MetadataOptions is metadata_options (IMDS settings of the build instance).
type MetadataOptions struct {
	HTTPEndpoint            string `hcl:"http_endpoint,optional"`
	HTTPTokens              string `hcl:"http_tokens,optional"`
	HTTPPutResponseHopLimit int32  `hcl:"http_put_response_hop_limit,optional"`
	InstanceMetadataTags    string `hcl:"instance_metadata_tags,optional"`
}

// Placement is the placement block.
type Placement struct {
	HostResourceGroupARN string `hcl:"host_resource_group_arn,optional"`
	HostID               string `hcl:"host_id,optional"`
	Tenancy              string `hcl:"tenancy,optional"`
}

// LicenseSpecification is one license_specifications block.
type LicenseSpecification struct {
	LicenseConfigurationRequest struct {
		LicenseConfigurationARN string `hcl:"license_configuration_arn,optional"`
	} `hcl:"license_configuration_request,block"`
}

// PolicyDocument is temporary_iam_instance_profile_policy_document.
type PolicyDocument struct {
	Version   string `hcl:"Version,optional"`
	Statement []struct {
		Effect   string   `hcl:"Effect,optional"`
		Action   []string `hcl:"Action,optional"`
		Resource []string `hcl:"Resource,optional"`
	} `hcl:"Statement,block"`
}

// DeregistrationProtection is deregistration_protection.
type DeregistrationProtection struct {
	Enabled      bool `hcl:"enabled,optional"`
	WithCooldown bool `hcl:"with_cooldown,optional"`
}

// FastLaunch is fast_launch (Windows only).
type FastLaunch struct {
	UseFastLaunch       bool   `hcl:"enable_fast_launch,optional"`
	TemplateID          string `hcl:"template_id,optional"`
	TemplateName        string `hcl:"template_name,optional"`
	TemplateVersion     int    `hcl:"template_version,optional"`
	MaxParallelLaunches int    `hcl:"max_parallel_launches,optional"`
	TargetResourceCount int    `hcl:"target_resource_count,optional"`
}

// Tunnel settings are plain strings ("port:host:port").

// Config is every amazon-ebs option of Packer's documentation (builder,
// access, run, AMI, block devices and the plugin SDK's communicator), in
// Packer's names. Durations are strings ("5m", "30s") parsed by NewConfig
// into the *Duration fields below.
type Config struct {
	// Access: region, credentials, endpoint, retries and polling, shared
	// with the amazon-ami data source and the amazon-ami-management
	// post-processor.
	awsclient.AccessConfig

	// Source AMI.
	SourceAMI       string     `hcl:"source_ami,optional"`
	SourceAMIFilter *AMIFilter `hcl:"source_ami_filter,block"`

	// Instance and network.
	InstanceType                  string                 `hcl:"instance_type,optional"`
	AvailabilityZone              string                 `hcl:"availability_zone,optional"`
	SubnetID                      string                 `hcl:"subnet_id,optional"`
	SubnetFilter                  *SubnetFilter          `hcl:"subnet_filter,block"`
	VPCID                         string                 `hcl:"vpc_id,optional"`
	VPCFilter                     *Filter                `hcl:"vpc_filter,block"`
	SecurityGroupID               string                 `hcl:"security_group_id,optional"`
	SecurityGroupIDs              []string               `hcl:"security_group_ids,optional"`
	SecurityGroupFilter           *Filter                `hcl:"security_group_filter,block"`
	AssociatePublicIPAddress      *bool                  `hcl:"associate_public_ip_address,optional"`
	IAMInstanceProfile            string                 `hcl:"iam_instance_profile,optional"`
	SkipProfileValidation         bool                   `hcl:"skip_profile_validation,optional"`
	TemporaryIAMPolicyDocument    *PolicyDocument        `hcl:"temporary_iam_instance_profile_policy_document,block"`
	UserData                      string                 `hcl:"user_data,optional"`
	UserDataFile                  string                 `hcl:"user_data_file,optional"`
	MetadataOptions               *MetadataOptions       `hcl:"metadata_options,block"`
	RunTags                       map[string]string      `hcl:"run_tags,optional"`
	RunTag                        []KeyValue             `hcl:"run_tag,block"`
	RunVolumeTags                 map[string]string      `hcl:"run_volume_tags,optional"`
	RunVolumeTag                  []KeyValue             `hcl:"run_volume_tag,block"`
	FleetTags                     map[string]string      `hcl:"fleet_tags,optional"`
	FleetTag                      []KeyValue             `hcl:"fleet_tag,block"`
	SpotTags                      map[string]string      `hcl:"spot_tags,optional"`
	SpotTag                       []KeyValue             `hcl:"spot_tag,block"`
	SpotPrice                     string                 `hcl:"spot_price,optional"`
	SpotPriceAutoProduct          string                 `hcl:"spot_price_auto_product,optional"`
	SpotInstanceTypes             []string               `hcl:"spot_instance_types,optional"`
	SpotAllocationStrategy        string                 `hcl:"spot_allocation_strategy,optional"`
	BlockDurationMinutes          int                    `hcl:"block_duration_minutes,optional"`
	EBSOptimized                  bool                   `hcl:"ebs_optimized,optional"`
	EnableUnlimitedCredits        bool                   `hcl:"enable_unlimited_credits,optional"`
	EnableT2Unlimited             bool                   `hcl:"enable_t2_unlimited,optional"`
	EnableNitroEnclave            bool                   `hcl:"enable_nitro_enclave,optional"`
	Placement                     *Placement             `hcl:"placement,block"`
	Tenancy                       string                 `hcl:"tenancy,optional"`
	CapacityReservationPreference string                 `hcl:"capacity_reservation_preference,optional"`
	CapacityReservationID         string                 `hcl:"capacity_reservation_id,optional"`
	CapacityReservationGroupARN   string                 `hcl:"capacity_reservation_group_arn,optional"`
	ShutdownBehavior              string                 `hcl:"shutdown_behavior,optional"`
	DisableStopInstance           bool                   `hcl:"disable_stop_instance,optional"`
	LicenseSpecifications         []LicenseSpecification `hcl:"license_specifications,block"`
	NoEphemeral                   bool                   `hcl:"no_ephemeral,optional"`
	WindowsPasswordTimeout        string                 `hcl:"windows_password_timeout,optional"`
	SSHInterface                  string                 `hcl:"ssh_interface,optional"`
	PauseBeforeSSM                string                 `hcl:"pause_before_ssm,optional"`
	SessionManagerPort            int                    `hcl:"session_manager_port,optional"`

	// Temporary access.
	TemporaryKeyPairName              string   `hcl:"temporary_key_pair_name,optional"`
	TemporaryKeyPairType              string   `hcl:"temporary_key_pair_type,optional"`
	TemporaryKeyPairBits              int      `hcl:"temporary_key_pair_bits,optional"`
	TemporarySecurityGroupSourceCIDRs []string `hcl:"temporary_security_group_source_cidrs,optional"`
	TemporarySecurityGroupSourcePubIP bool     `hcl:"temporary_security_group_source_public_ip,optional"`
	// TemporarySecurityGroupSourcePublicIPURL is amibake's: where the
	// caller's public IP is asked for (default https://checkip.amazonaws.com,
	// or $AMIBAKE_CHECKIP_URL).
	TemporarySecurityGroupSourcePublicIPURL string `hcl:"temporary_security_group_source_public_ip_url,optional"`

	// AMI output.
	AMIName                     string                    `hcl:"ami_name,optional"`
	AMIDescription              string                    `hcl:"ami_description,optional"`
	AMIVirtType                 string                    `hcl:"ami_virtualization_type,optional"`
	AMIUsers                    []string                  `hcl:"ami_users,optional"`
	AMIGroups                   []string                  `hcl:"ami_groups,optional"`
	AMIOrgARNs                  []string                  `hcl:"ami_org_arns,optional"`
	AMIOUARNs                   []string                  `hcl:"ami_ou_arns,optional"`
	AMIProductCodes             []string                  `hcl:"ami_product_codes,optional"`
	AMIRegions                  []string                  `hcl:"ami_regions,optional"`
	Tags                        map[string]string         `hcl:"tags,optional"`
	Tag                         []KeyValue                `hcl:"tag,block"`
	ENASupport                  *bool                     `hcl:"ena_support,optional"`
	SRIOVSupport                bool                      `hcl:"sriov_support,optional"`
	ForceDeregister             bool                      `hcl:"force_deregister,optional"`
	ForceDeleteSnapshot         bool                      `hcl:"force_delete_snapshot,optional"`
	EncryptBoot                 *bool                     `hcl:"encrypt_boot,optional"`
	KMSKeyID                    string                    `hcl:"kms_key_id,optional"`
	RegionKMSKeyIDs             map[string]string         `hcl:"region_kms_key_ids,optional"`
	SkipSaveBuildRegion         bool                      `hcl:"skip_save_build_region,optional"`
	SkipCreateAMI               bool                      `hcl:"skip_create_ami,optional"`
	SkipAMIRunTags              bool                      `hcl:"skip_ami_run_tags,optional"`
	SnapshotTags                map[string]string         `hcl:"snapshot_tags,optional"`
	SnapshotTag                 []KeyValue                `hcl:"snapshot_tag,block"`
	SnapshotUsers               []string                  `hcl:"snapshot_users,optional"`
	SnapshotGroups              []string                  `hcl:"snapshot_groups,optional"`
	SnapshotCopyDurationMinutes int                       `hcl:"snapshot_copy_duration_minutes,optional"`
	IMDSSupport                 string                    `hcl:"imds_support,optional"`
	DeprecateAt                 string                    `hcl:"deprecate_at,optional"`
	DeregistrationProtection    *DeregistrationProtection `hcl:"deregistration_protection,block"`
	FastLaunch                  *FastLaunch               `hcl:"fast_launch,block"`
	// AMIFromSnapshot is amibake's: snapshot the stopped instance's volumes
	// and register the AMI from them instead of calling CreateImage.
	AMIFromSnapshot bool `hcl:"ami_from_snapshot,optional"`

	LaunchBlockDevices []BlockDevice `hcl:"launch_block_device_mappings,block"`
	AMIBlockDevices    []BlockDevice `hcl:"ami_block_device_mappings,block"`

	// Communicator (packer-plugin-sdk communicator/config.go).
	Communicator              string   `hcl:"communicator,optional"`
	PauseBeforeConnecting     string   `hcl:"pause_before_connecting,optional"`
	SSHHost                   string   `hcl:"ssh_host,optional"`
	SSHPort                   int      `hcl:"ssh_port,optional"`
	SSHUsername               string   `hcl:"ssh_username,optional"`
	SSHPassword               string   `hcl:"ssh_password,optional"`
	SSHKeyPairName            string   `hcl:"ssh_keypair_name,optional"`
	SSHPrivateKeyFile         string   `hcl:"ssh_private_key_file,optional"`
	SSHCertificateFile        string   `hcl:"ssh_certificate_file,optional"`
	SSHAgentAuth              bool     `hcl:"ssh_agent_auth,optional"`
	SSHDisableAgentForwarding bool     `hcl:"ssh_disable_agent_forwarding,optional"`
	SSHPty                    bool     `hcl:"ssh_pty,optional"`
	SSHTimeout                string   `hcl:"ssh_timeout,optional"`
	SSHWaitTimeout            string   `hcl:"ssh_wait_timeout,optional"`
	SSHHandshakeAttempts      int      `hcl:"ssh_handshake_attempts,optional"`
	SSHKeepAliveInterval      string   `hcl:"ssh_keep_alive_interval,optional"`
	SSHReadWriteTimeout       string   `hcl:"ssh_read_write_timeout,optional"`
	SSHClearAuthorizedKeys    bool     `hcl:"ssh_clear_authorized_keys,optional"`
	SSHCiphers                []string `hcl:"ssh_ciphers,optional"`
	SSHKEXAlgos               []string `hcl:"ssh_key_exchange_algorithms,optional"`
	SSHFileTransferMethod     string   `hcl:"ssh_file_transfer_method,optional"`
	SSHBastionHost            string   `hcl:"ssh_bastion_host,optional"`
	SSHBastionPort            int      `hcl:"ssh_bastion_port,optional"`
	SSHBastionAgentAuth       bool     `hcl:"ssh_bastion_agent_auth,optional"`
	SSHBastionUsername        string   `hcl:"ssh_bastion_username,optional"`
	SSHBastionPassword        string   `hcl:"ssh_bastion_password,optional"`
	SSHBastionInteractive     bool     `hcl:"ssh_bastion_interactive,optional"`
	SSHBastionPrivateKeyFile  string   `hcl:"ssh_bastion_private_key_file,optional"`
	SSHBastionCertificateFile string   `hcl:"ssh_bastion_certificate_file,optional"`
	SSHProxyHost              string   `hcl:"ssh_proxy_host,optional"`
	SSHProxyPort              int      `hcl:"ssh_proxy_port,optional"`
	SSHProxyUsername          string   `hcl:"ssh_proxy_username,optional"`
	SSHProxyPassword          string   `hcl:"ssh_proxy_password,optional"`
	SSHLocalTunnels           []string `hcl:"ssh_local_tunnels,optional"`
	SSHRemoteTunnels          []string `hcl:"ssh_remote_tunnels,optional"`
	SSHPrivateIP              bool     `hcl:"ssh_private_ip,optional"`
	// SSHHostKeyChecking is amibake's: "pin" (default: the fingerprints in
	// the console output, else trust on first use with a warning),
	// "require" (the fingerprints or fail), "tofu" or "off" (hostkey.go).
	SSHHostKeyChecking   string `hcl:"ssh_host_key_checking,optional"`
	SSHHostKeyWaitTimout string `hcl:"ssh_host_key_wait_timeout,optional"`
	WinRMUsername        string `hcl:"winrm_username,optional"`
	WinRMPassword        string `hcl:"winrm_password,optional"`
	WinRMHost            string `hcl:"winrm_host,optional"`
	WinRMNoProxy         bool   `hcl:"winrm_no_proxy,optional"`
	WinRMPort            int    `hcl:"winrm_port,optional"`
	WinRMTimeout         string `hcl:"winrm_timeout,optional"`
	WinRMUseSSL          bool   `hcl:"winrm_use_ssl,optional"`
	WinRMInsecure        bool   `hcl:"winrm_insecure,optional"`
	WinRMUseNTLM         bool   `hcl:"winrm_use_ntlm,optional"`

	// Parsed values, set by NewConfig.
	Parsed Parsed
}

// Parsed holds the values NewConfig derives from the options as written:
// durations, the merged map and block forms of tags, and the source ranges
// of options for later diagnostics.
type Parsed struct {
	SSHTimeout            time.Duration
	SSHKeepAliveInterval  time.Duration
	SSHReadWriteTimeout   time.Duration
	PauseBeforeConnecting time.Duration
	HostKeyWait           time.Duration
	WinRMTimeout          time.Duration
	DeprecateAt           string // RFC 3339, validated

	RunTags       map[string]string
	RunVolumeTags map[string]string
	AMITags       map[string]string
	SnapshotTags  map[string]string
	FleetTags     map[string]string
	SpotTags      map[string]string

	AMIFilters    map[string]string
	SubnetFilters map[string]string
	VPCFilters    map[string]string
	SGFilters     map[string]string

	unimplemented []string
}
