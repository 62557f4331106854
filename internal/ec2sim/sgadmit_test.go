package ec2sim

import (
	"net/netip"
	"testing"
)

func TestAdmits(t *testing.T) {
	members := func(gid string) []string {
		if gid == "sg-web" {
			return []string{"127.31.0.7"}
		}
		return nil
	}
	ssh := permission{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"127.0.0.1/32"}}
	tests := []struct {
		name  string
		rules []permission
		src   string
		port  int
		want  bool
	}{
		{"no rules", nil, "127.0.0.1", 22, false},
		{"tcp 22 from the /32", []permission{ssh}, "127.0.0.1", 22, true},
		{"tcp 22 from another address", []permission{ssh}, "127.0.0.2", 22, false},
		{"other port", []permission{ssh}, "127.0.0.1", 2222, false},
		{"port range", []permission{{Protocol: "tcp", FromPort: 20, ToPort: 30, CIDRs: []string{"0.0.0.0/0"}}}, "127.9.9.9", 22, true},
		{"all protocols", []permission{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRs: []string{"127.0.0.0/8"}}}, "127.1.2.3", 22, true},
		{"udp does not admit tcp", []permission{{Protocol: "udp", FromPort: 22, ToPort: 22, CIDRs: []string{"0.0.0.0/0"}}}, "127.0.0.1", 22, false},
		{"icmp does not admit tcp", []permission{{Protocol: "icmp", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}, "127.0.0.1", 22, false},
		{"referenced group member", []permission{{Protocol: "-1", Groups: []string{"sg-web"}}}, "127.31.0.7", 22, true},
		{"referenced group non-member", []permission{{Protocol: "-1", Groups: []string{"sg-web"}}}, "127.0.0.1", 22, false},
		{"default group: self only", []permission{{Protocol: "-1", Groups: []string{"sg-default"}}}, "127.0.0.1", 22, false},
		{"second rule matches", []permission{{Protocol: "tcp", FromPort: 80, ToPort: 80, CIDRs: []string{"0.0.0.0/0"}}, ssh}, "127.0.0.1", 22, true},
	}
	for _, tt := range tests {
		if got := admits(tt.rules, netip.MustParseAddr(tt.src), tt.port, members); got != tt.want {
			t.Errorf("%s: admits = %v, want %v", tt.name, got, tt.want)
		}
	}
}
