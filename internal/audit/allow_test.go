package audit_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
)

func TestCanonicalAllowValue(t *testing.T) {
	for _, c := range []struct{ kind, in, want, field string }{
		{"ip", "198.51.100.7", "198.51.100.7", ""},
		{"ip", " ::ffff:198.51.100.7 ", "198.51.100.7", ""},
		{"ip", "fe80::1%eth0", "fe80::1", ""},
		{"ip", "198.51.100.0/24", "", "value"},
		{"cidr", "198.51.100.77/24", "198.51.100.0/24", ""},
		{"cidr", "2001:db8::1/48", "2001:db8::/48", ""},
		{"cidr", "198.51.100.7", "", "value"},
		{"asn", "64500", "64500", ""},
		{"asn", "AS64500", "64500", ""},
		{"asn", "as064500", "64500", ""},
		{"asn", "0", "", "value"},
		{"asn", "AS", "", "value"},
		{"asn", "4294967296", "", "value"},
		{"country", "RU", "", "kind"},
	} {
		got, err := audit.CanonicalAllowValue(c.kind, c.in)
		if c.field != "" {
			if audit.ErrorField(err) != c.field {
				t.Errorf("%s %q: error %v, want one naming %s", c.kind, c.in, err, c.field)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q = %q, %v; want %q", c.kind, c.in, got, err, c.want)
		}
	}
}

// FuzzCanonicalAllowValue checks that a canonical value is its own
// canonical form, so storing and deleting by it always agree.
func FuzzCanonicalAllowValue(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "::ffff:1.2.3.4", "10.0.0.0/8", "2001:db8::/32", "AS64500", "64500", "x"} {
		f.Add("ip", s)
		f.Add("cidr", s)
		f.Add("asn", s)
	}
	f.Fuzz(func(t *testing.T, kind, value string) {
		if len(value) > 256 {
			return
		}
		got, err := audit.CanonicalAllowValue(kind, value)
		if err != nil {
			if audit.ErrorField(err) == "" {
				t.Fatalf("%s %q: error %v names no field", kind, value, err)
			}
			return
		}
		again, err := audit.CanonicalAllowValue(kind, got)
		if err != nil || again != got {
			t.Fatalf("%s %q -> %q -> %q, %v", kind, value, got, again, err)
		}
	})
}
