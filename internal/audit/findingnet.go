package audit

import (
	"net/netip"
	"strconv"
	"strings"
)

// AddrSubnet is the network detection groups an address in when a rule is
// keyed on ip24: its /24 for IPv4, its /48 for IPv6 ("203.0.113.0/24").
func AddrSubnet(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// ASNKey is how a group key names an autonomous system: "AS64500".
func ASNKey(asn uint32) string { return "AS" + strconv.FormatUint(uint64(asn), 10) }

// FindingNetworks returns the subnet ("203.0.113.0/24") and the autonomous
// system ("AS64500") a finding's group key is keyed on ("ip24=…", "asn=…"),
// each "" when it is not. Stores index them so that a search by address
// finds the findings about its subnet and network too.
func FindingNetworks(groupKey string) (subnet, asn string) {
	for part := range strings.SplitSeq(groupKey, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "ip24":
			if p, err := netip.ParsePrefix(v); err == nil && p == p.Masked() {
				subnet = p.String()
			}
		case "asn":
			if n, err := strconv.ParseUint(strings.TrimPrefix(v, "AS"), 10, 32); err == nil && strings.HasPrefix(v, "AS") {
				asn = ASNKey(uint32(n))
			}
		}
	}
	return subnet, asn
}
