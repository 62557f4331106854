package plan

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amibake/amibake/builder/amazonebs"
	"github.com/amibake/amibake/internal/awsclient"
	"github.com/amibake/amibake/internal/digest"
	"github.com/amibake/amibake/internal/plugins"
	"github.com/amibake/amibake/internal/template"
)

// Document is the plan of a template's selected builds.
type Document struct {
	FormatVersion int      `json:"format_version"`
	DigestVersion string   `json:"digest_version"`
	Template      string   `json:"template"`
	Builds        []*Build `json:"builds"`
	// Skipped are selected builds amibake cannot run (other builder types).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a build plan cannot say anything about.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Build is one build's plan.
type Build struct {
	Name         string    `json:"name"`
	SourceAMI    SourceAMI `json:"source_ami"`
	AMIName      string    `json:"ami_name"`
	SkipCreate   bool      `json:"skip_create_ami,omitempty"`
	InstanceType string    `json:"instance_type"`
	BuildRegion  string    `json:"build_region"`
	// Regions are every target region, build region first, with what the
	// build would do there.
	Regions      []RegionPlan        `json:"regions"`
	Temporary    Temporary           `json:"temporary_resources"`
	Provisioners []ProvisionerInputs `json:"provisioners"`
	// Volatile options are left out of the digest (their values change
	// every run).
	Volatile    []string      `json:"volatile"`
	InputDigest string        `json:"input_digest"`
	DigestParts []digest.Part `json:"digest_parts"`
	// Action is reuse, copy or bake: what `amibake build` with the same
	// flags would do.
	Action string `json:"action"`
	// Why says why: whether reuse is on, and what was found.
	Why string `json:"why"`
}

// SourceAMI is the resolved source image.
type SourceAMI struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Owner        string `json:"owner"`
	OwnerAlias   string `json:"owner_alias,omitempty"`
	CreationDate string `json:"creation_date"`
}

// RegionPlan is one target region: the AMI with the digest found there, if
// any, and the action.
type RegionPlan struct {
	Region string `json:"region"`
	AMI    string `json:"existing_ami,omitempty"`
	// Action is "reuse" (an AMI is there), "copy" (from another region) or
	// "bake" (the build region bakes; others get copies of the new AMI).
	Action string `json:"action"`
}

// Temporary describes the temporary resources a bake would create.
type Temporary struct {
	Instance      string        `json:"instance"`
	KeyPair       string        `json:"key_pair"`
	SecurityGroup SecurityGroup `json:"security_group"`
}

// SecurityGroup is the security group the instance would get.
type SecurityGroup struct {
	// Temporary is true when the build creates one.
	Temporary bool     `json:"temporary"`
	IDs       []string `json:"ids,omitempty"`
	Port      int      `json:"port,omitempty"`
	// CIDRs the temporary group opens Port to; "<public IP of this
	// machine>/32" when it is asked for at build time.
	CIDRs []string `json:"cidrs,omitempty"`
	// Why says where the CIDRs come from.
	Why string `json:"why,omitempty"`
}

// Options configure Make.
type Options struct {
	// Shared is the AWS state shared by the builds; nil makes one.
	Shared *awsclient.Shared
	// Getenv reads AMIBAKE_CHECKIP_URL for the description; nil reads nothing.
	Getenv func(string) string
	// Reuse and Rebuild are build's --reuse and --rebuild: plan says what
	// a build with the same flags would do.
	Reuse, Rebuild bool
}

// Make plans every build of t.
func Make(ctx context.Context, t *template.Template, opts Options) (*Document, error) {
	if opts.Shared == nil {
		opts.Shared = awsclient.NewShared()
	}
	doc := &Document{FormatVersion: FormatVersion, DigestVersion: digest.Version, Template: t.Path, Builds: []*Build{}}
	for _, b := range t.Builds {
		if b.Source == nil || b.Source.Type != plugins.BuilderAmazonEBS {
			typ := "<none>"
			if b.Source != nil {
				typ = b.Source.Type
			}
			doc.Skipped = append(doc.Skipped, Skipped{Name: b.Name, Reason: fmt.Sprintf("builder type %q: amibake only runs amazon-ebs", typ)})
			continue
		}
		bp, err := planBuild(ctx, t, b, opts)
		if err != nil {
			return nil, fmt.Errorf("plan build %s: %w", b.Name, err)
		}
		doc.Builds = append(doc.Builds, bp)
	}
	return doc, nil
}

func planBuild(ctx context.Context, t *template.Template, b *template.Build, opts Options) (*Build, error) {
	c, diags := decodeConfig(b)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s", diags.Error())
	}
	sess, err := Session(ctx, opts.Shared, c)
	if err != nil {
		return nil, err
	}
	dec, err := Decide(ctx, DecideInput{
		Input: Input{Build: b, Config: c, Sensitive: t.Sensitive},
		EC2:   sess.EC2, BuildRegion: sess.Region(),
	})
	if err != nil {
		return nil, err
	}
	im := dec.SourceImage
	bp := &Build{
		Name: b.Name, InstanceType: c.InstanceType, BuildRegion: dec.BuildRegion, SkipCreate: c.SkipCreateAMI,
		SourceAMI: SourceAMI{
			ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name), Owner: aws.ToString(im.OwnerId),
			OwnerAlias: aws.ToString(im.ImageOwnerAlias), CreationDate: aws.ToString(im.CreationDate),
		},
		Provisioners: dec.Digest.Provisioners, Volatile: dec.Digest.Volatile,
		InputDigest: dec.Digest.Sum, DigestParts: dec.Digest.Parts,
	}
	reuseOn := ReuseOn(opts.Reuse, b.Reuse, opts.Rebuild) && !c.SkipCreateAMI
	bp.Action, bp.Why = Explain(reuseOn, opts.Rebuild, c.SkipCreateAMI, dec.Action, dec.Found)
	if bp.Provisioners == nil {
		bp.Provisioners = []ProvisionerInputs{}
	}
	if bp.Volatile == nil {
		bp.Volatile = []string{}
	}
	bt := dec.BuildTime()
	if bp.AMIName, err = template.RenderBuildTime(c.AMIName, bt); err != nil {
		return nil, fmt.Errorf("render ami_name %q: %w", c.AMIName, err)
	}
	for _, r := range dec.Regions {
		rp := RegionPlan{Region: r, AMI: dec.Found[r]}
		switch {
		case rp.AMI != "" && bp.Action != ActionBake:
			rp.Action = ActionReuse
		case bp.Action == ActionCopy || r != dec.BuildRegion:
			rp.Action = ActionCopy
		default:
			rp.Action = ActionBake
		}
		bp.Regions = append(bp.Regions, rp)
	}
	if bp.Temporary, err = temporary(ctx, sess.EC2(""), c, opts); err != nil {
		return nil, err
	}
	return bp, nil
}

// temporary describes the key pair, security group and instance a bake
// would use, following the builder's rules, with Describe calls only; the
// caller's public IP is not asked for.
func temporary(ctx context.Context, client *ec2.Client, c *amazonebs.Config, opts Options) (Temporary, error) {
	tr := Temporary{Instance: c.InstanceType + " instance"}
	if c.AssociatePublicIPAddress != nil && *c.AssociatePublicIPAddress {
		tr.Instance += " with a public IP"
	}
	none := c.Communicator == "none"
	switch {
	case none:
		tr.KeyPair = "none (communicator = \"none\")"
	case c.SSHPrivateKeyFile != "" && c.SSHKeyPairName != "":
		tr.KeyPair = fmt.Sprintf("existing key pair %s with ssh_private_key_file", c.SSHKeyPairName)
	case c.SSHPrivateKeyFile != "":
		tr.KeyPair = "none: ssh_private_key_file authenticates"
	case c.SSHKeyPairName != "":
		tr.KeyPair = "existing key pair " + c.SSHKeyPairName
	case c.SSHAgentAuth:
		tr.KeyPair = "none: the SSH agent authenticates"
	case c.SSHPassword != "":
		tr.KeyPair = "none: ssh_password authenticates"
	default:
		kind := c.TemporaryKeyPairType
		if kind == "rsa" {
			kind = fmt.Sprintf("rsa %d-bit", c.TemporaryKeyPairBits)
		}
		name := c.TemporaryKeyPairName
		if name == "" {
			name = "amibake_<uuid>"
		}
		tr.KeyPair = fmt.Sprintf("temporary %s key pair %s (generated locally, public key imported)", kind, name)
	}

	sg := &tr.SecurityGroup
	switch {
	case len(c.SecurityGroupIDs) > 0:
		sg.IDs = c.SecurityGroupIDs
		sg.Why = "security_group_ids"
		return tr, nil
	case none:
		sg.Why = "communicator = \"none\": no security group is created"
		return tr, nil
	}
	vpc, subnet, mapPublic, err := network(ctx, client, c)
	if err != nil {
		return tr, err
	}
	if len(c.Parsed.SGFilters) > 0 {
		in := &ec2.DescribeSecurityGroupsInput{Filters: amazonebs.EC2Filters(c.Parsed.SGFilters)}
		if vpc != "" {
			in.Filters = append(in.Filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpc}})
		}
		out, err := client.DescribeSecurityGroups(ctx, in)
		if err != nil {
			return tr, fmt.Errorf("find security groups matching security_group_filter: %w", err)
		}
		for _, g := range out.SecurityGroups {
			sg.IDs = append(sg.IDs, aws.ToString(g.GroupId))
		}
		sg.Why = "security_group_filter " + amazonebs.DescribeFilters(c.Parsed.SGFilters, nil)
		if len(sg.IDs) == 0 {
			return tr, fmt.Errorf("no security group matches security_group_filter %s", amazonebs.DescribeFilters(c.Parsed.SGFilters, nil))
		}
		return tr, nil
	}
	sg.Temporary, sg.Port = true, c.SSHPort
	switch amazonebs.ChooseSSHSource(c, subnet, mapPublic) {
	case amazonebs.SSHFromCIDRs:
		sg.CIDRs = c.TemporarySecurityGroupSourceCIDRs
		sg.Why = "temporary_security_group_source_cidrs"
	case amazonebs.SSHFromPublicIP:
		url := amazonebs.CheckIPURL(c, opts.Getenv)
		sg.CIDRs = []string{"<public IP of this machine>/32"}
		sg.Why = "SSH goes to the instance's public address; the build asks " + url + " for this machine's address"
	default:
		if sg.CIDRs, err = amazonebs.VPCCIDRs(ctx, client, vpc); err != nil {
			return tr, err
		}
		sg.Why = "SSH goes to the instance's private address: the VPC's own CIDR blocks"
	}
	return tr, nil
}

// network resolves the VPC and subnet as the builder's network step does,
// for the security group's rules.
func network(ctx context.Context, client *ec2.Client, c *amazonebs.Config) (vpc, subnet string, mapPublic *bool, err error) {
	vpc, subnet = c.VPCID, c.SubnetID
	if vpc == "" && len(c.Parsed.VPCFilters) > 0 {
		out, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: amazonebs.EC2Filters(c.Parsed.VPCFilters)})
		if err != nil {
			return "", "", nil, fmt.Errorf("find the VPC matching vpc_filter: %w", err)
		}
		if len(out.Vpcs) != 1 {
			return "", "", nil, fmt.Errorf("vpc_filter %s matches %d VPCs; it must match exactly one", amazonebs.DescribeFilters(c.Parsed.VPCFilters, nil), len(out.Vpcs))
		}
		vpc = aws.ToString(out.Vpcs[0].VpcId)
	}
	if len(c.Parsed.SubnetFilters) == 0 && subnet == "" {
		return vpc, subnet, nil, nil
	}
	in := &ec2.DescribeSubnetsInput{}
	if subnet != "" {
		in.SubnetIds = []string{subnet}
	} else {
		in.Filters = amazonebs.EC2Filters(c.Parsed.SubnetFilters)
		if vpc != "" {
			in.Filters = append(in.Filters, types.Filter{Name: aws.String("vpc-id"), Values: []string{vpc}})
		}
		if c.AvailabilityZone != "" {
			in.Filters = append(in.Filters, types.Filter{Name: aws.String("availability-zone"), Values: []string{c.AvailabilityZone}})
		}
	}
	out, err := client.DescribeSubnets(ctx, in)
	if err != nil {
		return "", "", nil, fmt.Errorf("describe subnets: %w", err)
	}
	if len(out.Subnets) == 0 {
		return "", "", nil, fmt.Errorf("no subnet matches subnet_filter %s", amazonebs.DescribeFilters(c.Parsed.SubnetFilters, nil))
	}
	// With most_free or random the build picks among them; they share the
	// VPC that decides the rule.
	sub := out.Subnets[0]
	return aws.ToString(sub.VpcId), aws.ToString(sub.SubnetId), sub.MapPublicIpOnLaunch, nil
}

// text helpers shared by the renderers.
func joinOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	return strings.Join(s, ", ")
}

// ReuseOn is the rule `amibake build` and `amibake plan` share: reuse is
// on with --reuse or reuse = true in the HCL2 build block, and --rebuild
// turns it off.
func ReuseOn(flag, block, rebuild bool) bool { return (flag || block) && !rebuild }

// Explain turns what was found (found: region to an AMI carrying the input
// digest; found is the lookup's action) into what a build does and why.
func Explain(reuseOn, rebuild, skipCreate bool, found string, amis map[string]string) (action, why string) {
	where := foundText(amis)
	switch {
	case skipCreate:
		return ActionBake, "skip_create_ami: the build provisions an instance and creates no AMI, so there is nothing to reuse"
	case rebuild && where != "":
		return ActionBake, "--rebuild bakes regardless; an AMI with this input digest exists (" + where + ")"
	case rebuild:
		return ActionBake, "--rebuild bakes regardless; no AMI with this input digest exists"
	case !reuseOn && where != "":
		return ActionBake, "reuse is off, so the build bakes; an AMI with this input digest exists (" + where + "): `amibake build --reuse` (or reuse = true in the build block) would reuse it"
	case !reuseOn:
		return ActionBake, "reuse is off (it is on with --reuse or reuse = true in the build block); no AMI with this input digest exists either"
	case found == ActionReuse:
		return ActionReuse, "reuse is on and every target region has an AMI with this input digest (" + where + ")"
	case found == ActionCopy:
		return ActionCopy, "reuse is on and an AMI with this input digest exists in some regions (" + where + "); the others get copies"
	}
	return ActionBake, "reuse is on, but no AMI with this input digest exists"
}

func foundText(amis map[string]string) string {
	regions := make([]string, 0, len(amis))
	for r := range amis {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	parts := make([]string, len(regions))
	for i, r := range regions {
		parts[i] = r + " " + amis[r]
	}
	return strings.Join(parts, ", ")
}
