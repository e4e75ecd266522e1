package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// SIEM streams findings, incidents and optionally raw events to the
// operator's SIEM collectors (see docs/siem.md).
type SIEM struct {
	// Sinks are the collectors; none by default.
	Sinks []SIEMSink `yaml:"sinks"`
	// Poll is how often an idle sink looks for new records.
	Poll time.Duration `yaml:"poll"`
	// BatchMax is the most records in one request (https) or one flush
	// (syslog).
	BatchMax int `yaml:"batch_max"`
	// MaxChanges and MaxChangeAge bound the change log a lagging sink
	// holds: beyond them its oldest unsent changes are dropped (counted
	// and reported to the collector as a gap).
	MaxChanges   int           `yaml:"max_changes"`
	MaxChangeAge time.Duration `yaml:"max_change_age"`
	// MaxEventLag bounds the raw events a sink with events: true may fall
	// behind; beyond it the sink skips ahead, reporting the gap.
	MaxEventLag int `yaml:"max_event_lag"`
}

// SIEMSink is one collector.
type SIEMSink struct {
	// Name identifies the sink in metrics, logs and its durable cursor;
	// renaming a sink starts a new cursor.
	Name string `yaml:"name"`
	// Kind is https (NDJSON batches) or syslog (RFC 5424).
	Kind string `yaml:"kind"`
	// URL is the collector: https://... for https; tcp://host:port or
	// tls://host:port for syslog.
	URL string `yaml:"url"`
	// Events also streams every accepted raw event.
	Events bool `yaml:"events"`
	// Tenants limits the sink to these tenants; empty means all.
	Tenants []string `yaml:"tenants"`
	// MinSeverity drops findings and incidents below it ("" sends all).
	MinSeverity string `yaml:"min_severity"`
	// Headers are added to every https request (an authorization token,
	// say); never logged, redacted from config dumps.
	Headers map[string]string `yaml:"headers"`
	// Gzip compresses https request bodies.
	Gzip bool `yaml:"gzip"`
	// Facility is the syslog facility number (0-23); default 13 (log audit).
	Facility *int    `yaml:"facility"`
	TLS      SIEMTLS `yaml:"tls"`
	// Timeout bounds one request or one write; MinBackoff and MaxBackoff
	// bound the jittered exponential wait between failed attempts.
	Timeout    time.Duration `yaml:"timeout"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// SIEMTLS configures how a sink checks its collector's certificate.
type SIEMTLS struct {
	// CAFile is a PEM bundle trusted instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Sink kinds.
const (
	SIEMKindHTTPS  = "https"
	SIEMKindSyslog = "syslog"
)

// Defaults of a sink's timings.
const (
	DefaultSIEMTimeout    = 10 * time.Second
	DefaultSIEMMinBackoff = time.Second
	DefaultSIEMMaxBackoff = 5 * time.Minute
	DefaultSIEMFacility   = 13
)

func defaultSIEM() SIEM {
	return SIEM{Poll: time.Second, BatchMax: 500, MaxChanges: 100_000, MaxChangeAge: 7 * 24 * time.Hour, MaxEventLag: 200_000}
}

var (
	sinkName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

func (s SIEM) validate(bad func(path, format string, args ...any)) {
	if s.Poll <= 0 {
		bad("siem.poll", "must be a positive duration")
	}
	if s.BatchMax < 1 || s.BatchMax > 10_000 {
		bad("siem.batch_max", "must be between 1 and 10000")
	}
	if s.MaxChanges < 1000 || s.MaxChanges > 10_000_000 {
		bad("siem.max_changes", "must be between 1000 and 10000000")
	}
	if s.MaxChangeAge < time.Hour {
		bad("siem.max_change_age", "must be at least 1h")
	}
	if s.MaxEventLag < 1000 || s.MaxEventLag > 100_000_000 {
		bad("siem.max_event_lag", "must be between 1000 and 100000000")
	}
	if len(s.Sinks) > 16 {
		bad("siem.sinks", "at most 16 sinks")
	}
	seen := map[string]bool{}
	for i, k := range s.Sinks {
		p := fmt.Sprintf("siem.sinks[%d]", i)
		switch {
		case !sinkName.MatchString(k.Name):
			bad(p+".name", "must be 1-63 lower-case letters, digits, - or _")
		case seen[k.Name]:
			bad(p+".name", "%q names two sinks", k.Name)
		}
		seen[k.Name] = true
		u, err := url.Parse(k.URL)
		okURL := err == nil && u.Host != "" && u.User == nil
		switch k.Kind {
		case SIEMKindHTTPS:
			if !okURL || u.Scheme != "https" {
				bad(p+".url", "must be an https:// URL without credentials (put a token in headers)")
			}
		case SIEMKindSyslog:
			if !okURL || (u.Scheme != "tcp" && u.Scheme != "tls") || u.Port() == "" || (u.Path != "" && u.Path != "/") {
				bad(p+".url", "must be tcp://host:port or tls://host:port")
			}
			if len(k.Headers) > 0 {
				bad(p+".headers", "only https sinks send headers")
			}
			if k.Gzip {
				bad(p+".gzip", "only https sinks compress")
			}
		default:
			bad(p+".kind", "must be https or syslog")
		}
		if k.Kind == SIEMKindHTTPS && k.Facility != nil {
			bad(p+".facility", "only syslog sinks have a facility")
		}
		if k.Facility != nil && (*k.Facility < 0 || *k.Facility > 23) {
			bad(p+".facility", "must be between 0 and 23")
		}
		if okURL && u.Scheme == "tcp" && (k.TLS.CAFile != "" || k.TLS.ServerName != "" || k.TLS.InsecureSkipVerify) {
			bad(p+".tls", "tcp:// is plain TCP; use tls:// for TLS")
		}
		switch k.MinSeverity {
		case "", "low", "medium", "high", "critical":
		default:
			bad(p+".min_severity", "must be low, medium, high or critical")
		}
		for j, t := range k.Tenants {
			if strings.TrimSpace(t) == "" {
				bad(fmt.Sprintf("%s.tenants[%d]", p, j), "must not be empty")
			}
		}
		for h, v := range k.Headers {
			if !headerName.MatchString(h) || strings.ContainsAny(v, "\r\n") {
				bad(p+".headers", "%q is not a valid header (name or value)", h)
			}
		}
		for name, d := range map[string]time.Duration{"timeout": k.Timeout, "min_backoff": k.MinBackoff, "max_backoff": k.MaxBackoff} {
			if d < 0 {
				bad(p+"."+name, "must not be negative")
			}
		}
		if k.MaxBackoff > 0 && k.MinBackoff > k.MaxBackoff {
			bad(p+".max_backoff", "must be at least min_backoff")
		}
	}
}

// redactSIEM replaces header values in a configuration copy.
func redactSIEM(s *SIEM) {
	sinks := make([]SIEMSink, len(s.Sinks))
	for i, k := range s.Sinks {
		if len(k.Headers) > 0 {
			h := make(map[string]string, len(k.Headers))
			for name := range k.Headers {
				h[name] = "<redacted>"
			}
			k.Headers = h
		}
		sinks[i] = k
	}
	s.Sinks = sinks
}
