package config

import (
	"strings"
	"testing"
)

// TestSIEMValidate: every bad sink field is reported at once, named by
// its path; a good configuration passes; header values never reach a dump.
func TestSIEMValidate(t *testing.T) {
	c := Default()
	c.SIEM.Sinks = []SIEMSink{
		{Name: "ok", Kind: "https", URL: "https://collector.example.com/in", Headers: map[string]string{"Authorization": "Bearer s3cret"}},
		{Name: "sys", Kind: "syslog", URL: "tls://syslog.example.com:6514", Events: true, TLS: SIEMTLS{CAFile: "/ca.pem"}},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid sinks refused: %v", err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "<redacted>") {
		t.Fatalf("header value in the dump:\n%s", out)
	}
	if c.SIEM.Sinks[0].Headers["Authorization"] != "Bearer s3cret" {
		t.Fatal("redacting changed the configuration itself")
	}

	facility := 30
	c.SIEM.Sinks = []SIEMSink{
		{Name: "Bad Name", Kind: "https", URL: "http://collector.example.com"},
		{Name: "dup", Kind: "syslog", URL: "udp://x:514", Gzip: true, Facility: &facility},
		{Name: "dup", Kind: "kafka", URL: "https://x", MinSeverity: "urgent", Tenants: []string{""}},
		{Name: "plain", Kind: "syslog", URL: "tcp://x:514", TLS: SIEMTLS{CAFile: "/ca.pem"}, MinBackoff: 10, MaxBackoff: 5},
		{Name: "hdr", Kind: "https", URL: "https://u:p@x/", Headers: map[string]string{"X-A": "v\r\nInjected: 1"}},
	}
	c.SIEM.MaxEventLag = 10
	err = c.Validate()
	if err == nil {
		t.Fatal("bad sinks accepted")
	}
	for _, field := range []string{
		"siem.sinks[0].name", "siem.sinks[0].url", "siem.sinks[1].url", "siem.sinks[1].gzip", "siem.sinks[1].facility",
		"siem.sinks[2].name", "siem.sinks[2].kind", "siem.sinks[2].min_severity", "siem.sinks[2].tenants[0]",
		"siem.sinks[3].tls", "siem.sinks[3].max_backoff", "siem.sinks[4].url", "siem.sinks[4].headers", "siem.max_event_lag",
	} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("no error for %s in:\n%v", field, err)
		}
	}
}
