package audit

import (
	"net/netip"
	"strconv"
	"strings"
)

// Allowlist entry kinds.
const (
	AllowIP   = "ip"
	AllowCIDR = "cidr"
	AllowASN  = "asn"
)

// CanonicalAllowValue validates an allowlist entry's value for its kind
// and returns its one stored spelling: an address unmapped from IPv4-in-
// IPv6, a prefix masked to its network, an AS number in decimal without
// the "AS" prefix a person may type. Errors name the field (kind or
// value). The API and the console both store entries through it, so an
// entry added through one is found, and deleted, through the other.
func CanonicalAllowValue(kind, value string) (string, error) {
	value = strings.TrimSpace(value)
	switch kind {
	case AllowIP:
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return "", FieldErrorf("value", "value must be an IP address for kind ip")
		}
		return ip.Unmap().WithZone("").String(), nil
	case AllowCIDR:
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return "", FieldErrorf("value", "value must be a CIDR such as 198.51.100.0/24 for kind cidr")
		}
		return p.Masked().String(), nil
	case AllowASN:
		digits := value
		if len(digits) > 2 && strings.EqualFold(digits[:2], "AS") {
			digits = digits[2:]
		}
		n, err := strconv.ParseUint(digits, 10, 32)
		if err != nil || n == 0 {
			return "", FieldErrorf("value", "value must be an AS number such as 64500 for kind asn")
		}
		return strconv.FormatUint(n, 10), nil
	}
	return "", FieldErrorf("kind", "kind must be ip, cidr or asn")
}
