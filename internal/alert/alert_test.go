package alert_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/alert"
)

func TestGuardRefusesNonPublicAddresses(t *testing.T) {
	g := alert.Guard{}
	for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "100.64.0.1", "::ffff:127.0.0.1", "fd00::1", "2002:7f00:1::"} {
		if err := g.Check(netip.MustParseAddr(a)); !errors.Is(err, alert.ErrBlockedAddress) {
			t.Errorf("%s: %v, want refused", a, err)
		}
	}
	for _, a := range []string{"93.184.216.34", "2606:4700::1111", "8.8.8.8"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s: %v, want allowed", a, err)
		}
	}
	allowed := alert.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	if err := allowed.Check(netip.MustParseAddr("10.20.3.4")); err != nil {
		t.Errorf("allowlisted network refused: %v", err)
	}
	if err := allowed.Check(netip.MustParseAddr("10.21.3.4")); err == nil {
		t.Error("a network outside the allowlist was allowed")
	}
	if err := (alert.Guard{AllowPrivate: true}).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("allow_private_networks: %v", err)
	}
	if err := g.Control("tcp4", "127.0.0.1:80", nil); !errors.Is(err, alert.ErrBlockedAddress) {
		t.Errorf("Control: %v", err)
	}
}

func TestSignatureHeader(t *testing.T) {
	body := []byte(`{"items":[]}`)
	// Known answer: printf '%s' '1700000000.{"items":[]}' | openssl dgst -sha256 -hmac whsec_test
	const want = "v1=41702adfc1361258ca3969e04b80eb324636f557a312743b6b6898053c9cb5b7"
	if got := alert.SignatureHeader([]string{"whsec_test"}, "1700000000", body); got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	two := alert.SignatureHeader([]string{"whsec_new", "whsec_old"}, "1700000000", body)
	parts := strings.Fields(two)
	if len(parts) != 2 || parts[0] != "v1="+alert.Sign("whsec_new", "1700000000", body) || parts[1] != "v1="+alert.Sign("whsec_old", "1700000000", body) {
		t.Fatalf("rotation header %q", two)
	}
	if alert.Sign("whsec_new", "1700000001", body) == alert.Sign("whsec_new", "1700000000", body) {
		t.Fatal("the timestamp is not signed")
	}
}

func TestKeyringDerivesStableDistinctSecrets(t *testing.T) {
	k, err := alert.NewKeyring([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	a1, a1again, a2, b1 := k.Secret("wh_a", 1), k.Secret("wh_a", 1), k.Secret("wh_a", 2), k.Secret("wh_b", 1)
	if a1 != a1again || a1 == a2 || a1 == b1 || !strings.HasPrefix(a1, alert.SecretPrefix) {
		t.Fatalf("secrets %q %q %q %q", a1, a1again, a2, b1)
	}
	if _, err := alert.NewKeyring([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}
