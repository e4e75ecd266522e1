package app

import "testing"

func TestAdvertiseURL(t *testing.T) {
	for _, c := range []struct{ configured, addr, want string }{
		{"", "127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"", "[::1]:8080", "http://[::1]:8080"},
		{"", "vigil-2.internal:8080", "http://vigil-2.internal:8080"},
		{"", ":8080", ""},
		{"", "0.0.0.0:8080", ""},
		{"", "[::]:8080", ""},
		{"https://vigil-2.example.com/", "0.0.0.0:8080", "https://vigil-2.example.com"},
	} {
		if got := advertiseURL(c.configured, c.addr); got != c.want {
			t.Errorf("advertiseURL(%q, %q) = %q, want %q", c.configured, c.addr, got, c.want)
		}
	}
}
