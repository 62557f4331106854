package amazonebs

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"

	"github.com/amibake/amibake/internal/ledger"
)

// stepNetwork resolves vpc_id/vpc_filter, subnet_id/subnet_filter and the
// availability zone. With none of them set it makes no call: EC2 launches
// into the default VPC.
type stepNetwork struct{}

func (stepNetwork) Name() string { return "network" }

func (stepNetwork) Run(ctx context.Context, s *State) error {
	c := s.Config
	var client networkAPI = s.ec2("")
	s.VPCID, s.SubnetID, s.AZ = c.VPCID, c.SubnetID, c.AvailabilityZone
	if s.VPCID == "" && len(c.Parsed.VPCFilters) > 0 {
		out, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: ec2Filters(c.Parsed.VPCFilters)})
		if err != nil {
			return fmt.Errorf("find the VPC matching vpc_filter: %w", err)
		}
		if len(out.Vpcs) != 1 {
			return fmt.Errorf("vpc_filter %s matches %d VPCs; it must match exactly one", describeFilters(c.Parsed.VPCFilters, nil), len(out.Vpcs))
		}
		s.VPCID = aws.ToString(out.Vpcs[0].VpcId)
		s.UI.Message("Found VPC ID: " + s.VPCID)
	}
	// A subnet named by id is described only when its VPC or zone is
	// needed (a temporary security group lives in the subnet's VPC).
	needSubnet := len(c.Parsed.SubnetFilters) > 0 || (s.SubnetID != "" && (s.VPCID == "" || s.AZ == ""))
	if !needSubnet {
		return nil
	}
	in := describeSubnetsInput(c, s.SubnetID, s.VPCID, s.AZ)
	out, err := client.DescribeSubnets(ctx, in)
	if err != nil {
		return fmt.Errorf("describe subnets: %w", err)
	}
	subnets := out.Subnets
	if len(subnets) == 0 {
		return fmt.Errorf("no subnet matches subnet_filter %s", describeFilters(c.Parsed.SubnetFilters, nil))
	}
	sub := subnets[0]
	if len(subnets) > 1 {
		f := c.SubnetFilter
		switch {
		case f != nil && f.MostFree:
			for _, x := range subnets[1:] {
				if aws.ToInt32(x.AvailableIpAddressCount) > aws.ToInt32(sub.AvailableIpAddressCount) {
					sub = x
				}
			}
		case f != nil && f.Random:
			sub = subnets[rand.IntN(len(subnets))]
		default:
			return fmt.Errorf("subnet_filter %s matches %d subnets: make it match exactly one, or set most_free or random", describeFilters(c.Parsed.SubnetFilters, nil), len(subnets))
		}
	}
	if s.SubnetID == "" {
		s.UI.Message("Found Subnet ID: " + aws.ToString(sub.SubnetId))
	}
	s.SubnetID = aws.ToString(sub.SubnetId)
	s.VPCID = aws.ToString(sub.VpcId)
	s.AZ = aws.ToString(sub.AvailabilityZone)
	s.MapPublicIP = sub.MapPublicIpOnLaunch
	return nil
}

func (stepNetwork) Cleanup(context.Context, *State) error { return nil }

// stepSecurityGroup uses the template's security groups, or creates a
// temporary one that opens ssh_port to the narrowest sources it can
// justify: the template's CIDRs; else the caller's public IP when
// connecting over a public address; else the VPC's own CIDR blocks.
type stepSecurityGroup struct {
	created string
	entry   string
	// inflight is the name of a group whose create call may have gone
	// through without the build learning its id; cleanup looks it up.
	inflight string
	// HTTPClient asks for the public IP; nil uses a client with a timeout.
	HTTPClient *http.Client
}

func (*stepSecurityGroup) Name() string { return "security group" }

func (st *stepSecurityGroup) Run(ctx context.Context, s *State) error {
	c := s.Config
	var client securityGroupAPI = s.ec2("")
	switch {
	case len(c.SecurityGroupIDs) > 0:
		s.SecurityGroupIDs = c.SecurityGroupIDs
		return nil
	case len(c.Parsed.SGFilters) > 0:
		return findSecurityGroups(ctx, s, client)
	case c.Communicator == "none":
		return nil
	}
	return st.createTemporary(ctx, s, client)
}

// findSecurityGroups uses the groups security_group_filter matches.
func findSecurityGroups(ctx context.Context, s *State, api ec2.DescribeSecurityGroupsAPIClient) error {
	c := s.Config
	out, err := api.DescribeSecurityGroups(ctx, securityGroupFilterInput(c, s.VPCID))
	if err != nil {
		return fmt.Errorf("find security groups matching security_group_filter: %w", err)
	}
	if len(out.SecurityGroups) == 0 {
		return fmt.Errorf("no security group matches security_group_filter %s", describeFilters(c.Parsed.SGFilters, nil))
	}
	for _, g := range out.SecurityGroups {
		s.SecurityGroupIDs = append(s.SecurityGroupIDs, aws.ToString(g.GroupId))
	}
	s.UI.Message("Found Security Group(s): " + strings.Join(s.SecurityGroupIDs, ", "))
	return nil
}

// createTemporary creates the temporary security group and opens
// ssh_port in it to the narrowest sources (sources).
func (st *stepSecurityGroup) createTemporary(ctx context.Context, s *State, client securityGroupAPI) error {
	c := s.Config
	cidrs, err := st.sources(ctx, s)
	if err != nil {
		return err
	}
	runTags, err := s.renderTags("run_tags", c.Parsed.RunTags)
	if err != nil {
		return err
	}
	name := "amibake_" + uuid.NewString()
	s.UI.Say("Creating temporary security group for this instance: " + name)
	entry, err := s.intend(ledger.KindSecurityGroup, s.Region, name)
	if err != nil {
		return fmt.Errorf("record the temporary security group in the run journal: %w", err)
	}
	in := createSecurityGroupInput(name, s.BuildName, s.VPCID, s.tagSpec(types.ResourceTypeSecurityGroup, runTags))
	out, err := client.CreateSecurityGroup(ctx, in)
	if err != nil {
		if maybeCreated(ctx, err) {
			st.inflight, st.entry = name, entry
		}
		return fmt.Errorf("create temporary security group %s: %w", name, err)
	}
	st.created, st.entry = aws.ToString(out.GroupId), entry
	s.born(st.created)
	if err := s.created(entry, st.created); err != nil {
		return fmt.Errorf("record security group %s in the run journal: %w", st.created, err)
	}
	s.SecurityGroupIDs = []string{st.created}

	// Packer's wording (it prints the CIDR list as Go prints a slice).
	s.UI.Say(fmt.Sprintf("Authorizing access to port %d from [%s] in the temporary security groups...", c.SSHPort, strings.Join(cidrs, " ")))
	auth := authorizeIngressInput(st.created, c.SSHPort, cidrs)
	if err := s.retryNotFound(ctx, "temporary security group "+st.created+" to be visible", func(ctx context.Context) error {
		_, err := client.AuthorizeSecurityGroupIngress(ctx, auth)
		return err
	}); err != nil {
		return fmt.Errorf("authorize port %d in temporary security group %s: %w", c.SSHPort, st.created, err)
	}
	return nil
}

// SSHSource is where the temporary security group lets SSH in from.
type SSHSource int

const (
	// SSHFromCIDRs: temporary_security_group_source_cidrs, as written.
	SSHFromCIDRs SSHSource = iota
	// SSHFromPublicIP: this machine's public IP (/32 or /128), asked of a
	// what-is-my-IP service, because SSH goes to a public address (or
	// temporary_security_group_source_public_ip is set).
	SSHFromPublicIP
	// SSHFromVPC: the VPC's own CIDR blocks, because SSH goes to the
	// instance's private address.
	SSHFromVPC
)

// ChooseSSHSource decides what the temporary security group opens SSH to,
// given the subnet the build resolved ("" for the default VPC's) and that
// subnet's MapPublicIpOnLaunch. amibake plan shows the same choice.
func ChooseSSHSource(c *Config, subnetID string, mapPublicIP *bool) SSHSource {
	switch {
	case len(c.TemporarySecurityGroupSourceCIDRs) > 0:
		return SSHFromCIDRs
	case c.TemporarySecurityGroupSourcePubIP || ConnectsPublicly(c, subnetID, mapPublicIP):
		return SSHFromPublicIP
	}
	return SSHFromVPC
}

// ConnectsPublicly reports whether SSH will go to a public address.
func ConnectsPublicly(c *Config, subnetID string, mapPublicIP *bool) bool {
	switch c.SSHInterface {
	case "private_ip", "private_dns":
		return false
	case "public_ip", "public_dns":
		return true
	}
	if c.SSHPrivateIP {
		return false
	}
	if c.AssociatePublicIPAddress != nil {
		return *c.AssociatePublicIPAddress
	}
	if mapPublicIP != nil {
		return *mapPublicIP
	}
	return subnetID == "" // default subnets map public IPs
}

// CheckIPURL is the what-is-my-IP service a build asks for this machine's
// public address: temporary_security_group_source_public_ip_url, else
// $AMIBAKE_CHECKIP_URL, else DefaultCheckIPURL.
func CheckIPURL(c *Config, getenv func(string) string) string {
	url := c.TemporarySecurityGroupSourcePublicIPURL
	if url == "" && getenv != nil {
		url = getenv("AMIBAKE_CHECKIP_URL")
	}
	if url == "" {
		url = DefaultCheckIPURL
	}
	return url
}

// VPCCIDRs returns the CIDR blocks of VPC vpcID (the default VPC when ""),
// sorted, without repeats.
func VPCCIDRs(ctx context.Context, client ec2.DescribeVpcsAPIClient, vpcID string) ([]string, error) {
	in := &ec2.DescribeVpcsInput{}
	if vpcID != "" {
		in.VpcIds = []string{vpcID}
	} else {
		in.Filters = []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}
	}
	out, err := client.DescribeVpcs(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("find the VPC's CIDR blocks for the temporary security group: %w", err)
	}
	var cidrs []string
	for _, v := range out.Vpcs {
		for _, a := range v.CidrBlockAssociationSet {
			cidrs = append(cidrs, aws.ToString(a.CidrBlock))
		}
		if len(v.CidrBlockAssociationSet) == 0 && v.CidrBlock != nil {
			cidrs = append(cidrs, aws.ToString(v.CidrBlock))
		}
	}
	sort.Strings(cidrs)
	return slices.Compact(cidrs), nil
}

func (st *stepSecurityGroup) sources(ctx context.Context, s *State) ([]string, error) {
	c := s.Config
	switch ChooseSSHSource(c, s.SubnetID, s.MapPublicIP) {
	case SSHFromCIDRs:
		return c.TemporarySecurityGroupSourceCIDRs, nil
	case SSHFromPublicIP:
		ip, err := st.publicIP(ctx, s)
		if err != nil {
			return nil, err
		}
		if ip.To4() != nil {
			return []string{ip.String() + "/32"}, nil
		}
		return []string{ip.String() + "/128"}, nil
	}
	cidrs, err := VPCCIDRs(ctx, s.ec2(""), s.VPCID)
	if err != nil {
		return nil, err
	}
	if len(cidrs) == 0 {
		return nil, fmt.Errorf("the VPC has no CIDR block to open SSH to: set temporary_security_group_source_cidrs")
	}
	return cidrs, nil
}

// publicIP asks a what-is-my-IP service for the address AWS sees.
func (st *stepSecurityGroup) publicIP(ctx context.Context, s *State) (net.IP, error) {
	url := CheckIPURL(s.Config, s.getenv)
	hc := st.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	fail := func(err error) (net.IP, error) {
		return nil, fmt.Errorf("find this machine's public IP at %s to open SSH only to it (%w); set temporary_security_group_source_cidrs instead", url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("HTTP %s", resp.Status))
	}
	ip := net.ParseIP(strings.TrimSpace(string(body)))
	if ip == nil {
		return fail(fmt.Errorf("the answer %q is not an IP address", strings.TrimSpace(string(body))))
	}
	return ip, nil
}

func (st *stepSecurityGroup) Cleanup(ctx context.Context, s *State) error {
	if st.created == "" && st.inflight != "" {
		ids, err := s.groupsNamed(ctx, st.inflight)
		if err != nil {
			return fmt.Errorf("look for temporary security group %s, whose create call was cut short: %w", st.inflight, err)
		}
		st.inflight = ""
		if len(ids) > 0 {
			st.created = ids[0]
			_ = s.created(st.entry, st.created)
		}
	}
	if st.created == "" {
		return nil
	}
	s.UI.Say("Deleting temporary security group...")
	id := st.created
	if s.TerminateErr != nil {
		// Waiting would wait for what cannot happen: one try, then say why.
		_, err := s.ec2("").DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		if err != nil && apiCode(err) != "InvalidGroup.NotFound" {
			err = errNotTerminated(s, "delete temporary security group "+id)
			s.UI.Error(err.Error())
			return err
		}
		s.deleted(ledger.KindSecurityGroup, s.Region, id)
		st.created = ""
		return nil
	}
	// The group stays in use until the instance has terminated.
	err := s.Waits.withLimit(5*time.Minute).poll(ctx, "temporary security group "+id+" to be released by the instance", 0, func(ctx context.Context) (bool, error) {
		_, err := s.ec2("").DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		if err == nil {
			return true, nil
		}
		// A cancelled call has no API code: it is a failure, not a deletion.
		switch apiCode(err) {
		case "InvalidGroup.NotFound":
			return !s.recent(id), nil // not visible yet, or gone
		case "DependencyViolation", "InvalidGroup.InUse":
			return false, nil
		}
		return false, err
	})
	if err != nil {
		s.UI.Error(fmt.Sprintf("Error cleaning up security group %s: %v", id, err))
		return fmt.Errorf("delete temporary security group %s: %w", id, err)
	}
	s.deleted(ledger.KindSecurityGroup, s.Region, id)
	st.created = ""
	return nil
}
