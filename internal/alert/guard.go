package alert

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrBlockedAddress is returned when a receiver's address is on a network
// webhooks may not reach.
var ErrBlockedAddress = errors.New("receiver address is on a private, loopback, link-local or multicast network")

// Guard decides which addresses receivers may have. It is applied when a
// connection is made (net.Dialer.Control), after DNS resolution, so a name
// that resolves to 127.0.0.1 — or starts resolving to it later — is refused
// as surely as the literal address.
type Guard struct {
	// AllowPrivate lets receivers sit on any network.
	AllowPrivate bool
	// Allow are networks allowed even when AllowPrivate is off.
	Allow []netip.Prefix
}

// blocked are the networks refused besides loopback, private, link-local,
// multicast and unspecified addresses.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("::ffff:0:0/96"),  // checked as IPv4 after Unmap
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001::/23"),      // IETF protocol assignments
	netip.MustParsePrefix("2002::/16"),      // 6to4 can embed private IPv4
}

// Check returns ErrBlockedAddress (wrapped, naming the address) when a
// receiver may not be at addr.
func (g Guard) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, p := range g.Allow {
		if p.Contains(addr) {
			return nil
		}
	}
	if g.AllowPrivate {
		return nil
	}
	bad := !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified()
	for _, p := range blocked {
		if p.Contains(addr) && !(p.Bits() == 96 && addr.Is4()) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, addr)
	}
	return nil
}

// Control is a net.Dialer.Control that refuses blocked addresses at
// connect time.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("receiver address %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("receiver address %q: %w", address, err)
	}
	return g.Check(ip)
}
