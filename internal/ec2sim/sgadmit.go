package ec2sim

import (
	"net/netip"
)

// Security groups are enforced where the simulator can see traffic: at
// each instance's SSH listener. Per accepted connection the vm package asks
// admitSSH, which evaluates the instance's groups as they stand now, so a
// rule added or revoked while the instance runs takes effect on the next
// connection, while established ones stay: "When you change a security
// group rule, its tracked connections are not immediately interrupted"
// (EC2 User Guide, "Amazon EC2 security group connection tracking",
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/security-group-connection-tracking.html).
//
// What EC2 documents and is modelled: security groups are allow-only; an
// inbound flow is admitted when any rule of any group of the instance's
// network interface matches it ("Security group rules", EC2 User Guide):
//   - the protocol is tcp (or 6) or all (-1);
//   - for tcp the destination port is within FromPort..ToPort;
//   - the source is inside one of the rule's IPv4 CIDR ranges, or is the
//     private IP address of an instance in a referenced group ("when you
//     specify a security group as the source ... the private IP addresses
//     of the network interfaces associated with the source security group").
// Connections not admitted are silently dropped by EC2 (no RST): the vm
// package holds them without a byte until the client gives up.
//
// Where the client is: every client here is the simulator's host, whose
// source address on loopback is 127.0.0.1. Reaching an instance's public
// address, that is the source the rules see (Packer's temporary group opens
// the address its what-is-my-IP service reports). Private addresses are
// reachable only from inside the VPC, so a client reaching one is modelled
// as a build host inside the VPC, at the VPC's address hostInVPC, as with
// ssh_interface = "private_ip", where Packer opens the VPC's CIDR.

// hostInVPC is the simulator's host as seen inside a region's default VPC:
// the last address of the VPC's /16, outside every subnet.
func hostInVPC(r *region) netip.Addr {
	pfx, err := netip.ParsePrefix(r.vpcCIDR)
	if err != nil {
		return netip.Addr{}
	}
	b := pfx.Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1], 255, 254})
}

// admitSSH reports whether src may reach port on instance id's address dst now.
func (s *Server) admitSSH(id, src, dst string, port int) bool {
	addr, err := netip.ParseAddr(src)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regions {
		in := r.instances[id]
		if in == nil {
			continue
		}
		if dst == in.PrivateIP {
			if vpc, err := netip.ParsePrefix(r.vpcCIDR); err == nil && !vpc.Contains(addr) {
				addr = hostInVPC(r)
			}
		}
		var rules []permission
		for _, gid := range in.Groups {
			if g := r.groups[gid]; g != nil {
				rules = append(rules, g.Ingress...)
			}
		}
		members := func(gid string) []string {
			var ips []string
			for _, o := range r.instances {
				for _, g := range o.Groups {
					if g == gid && o.PrivateIP != "" {
						ips = append(ips, o.PrivateIP)
					}
				}
			}
			return ips
		}
		return admits(rules, addr, port, members)
	}
	return false
}

// admits evaluates ingress rules for a TCP flow from src to port; members
// lists the private addresses of a referenced group's instances.
func admits(rules []permission, src netip.Addr, port int, members func(groupID string) []string) bool {
	for _, p := range rules {
		switch p.Protocol {
		case "-1", "all":
		case "tcp", "6":
			if port < p.FromPort || port > p.ToPort {
				continue
			}
		default:
			continue
		}
		for _, c := range p.CIDRs {
			if pfx, err := netip.ParsePrefix(c); err == nil && pfx.Contains(src) {
				return true
			}
		}
		for _, gid := range p.Groups {
			for _, ip := range members(gid) {
				if a, err := netip.ParseAddr(ip); err == nil && a == src {
					return true
				}
			}
		}
	}
	return false
}
