// Package useragent parses user-agent strings into audit.UserAgent: browser,
// OS and device family from the ua-parser project's regexes.yaml (uap-core,
// Apache-2.0, embedded), and a class that account-takeover rules act on —
// browser, mobile_app, crawler, scripted, headless, empty or unknown.
//
// The regexes are compiled once, at New. Each regex is gated by sets of
// literals that every match must contain; one Aho–Corasick pass over the
// input finds the literals it has, so only a handful of regexes run, each
// on the part of the input where a match can lie (gate.go, window.go). The
// results are exactly those of trying every gated regex in order, which a
// differential test and fuzz target check. Results are cached per
// user-agent string in a bounded LRU.
package useragent

import (
	"context"
	_ "embed"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/lru"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

//go:embed uap/regexes.yaml
var embeddedRegexes []byte

// DefaultCacheSize is the number of distinct user agents cached when
// Options.CacheSize is 0.
const DefaultCacheSize = 1 << 14

// MaxLength is the longest user agent parsed; longer ones are cut, which
// bounds the regex work per event (Vigil's own limit is 1 KiB).
const MaxLength = 1024

// Options configures the user-agent enricher.
type Options struct {
	// Name is the enricher's name in metrics and Status; "useragent" when empty.
	Name string
	// Regexes is the content of a uap-core regexes.yaml; the embedded copy
	// when nil.
	Regexes []byte
	// CacheSize bounds the per-string result cache: DefaultCacheSize when 0;
	// a negative value disables the cache.
	CacheSize int
	// Registerer receives cache metrics; nil means none.
	Registerer prometheus.Registerer
	// Now is the clock used to time compilation for Status; time.Now when nil.
	Now func() time.Time
}

// Enricher is the user-agent enricher. It owns no goroutines.
type Enricher struct {
	name   string
	uap    *uap
	class  *classifier
	cache  *lru.Cache[string, audit.UserAgent]
	status watch.Status
}

// New compiles the regexes. It fails when they do not parse or compile.
func New(o Options) (*Enricher, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	u := &Enricher{name: o.Name}
	if u.name == "" {
		u.name = "useragent"
	}
	data, path := o.Regexes, "embedded:uap-core/regexes.yaml"
	if data == nil {
		data = embeddedRegexes
	} else {
		path = "configured:regexes.yaml"
	}
	start := o.Now()
	p, err := compileUAP(data)
	if err != nil {
		return nil, fmt.Errorf("useragent: %w", err)
	}
	u.uap = p
	u.class = newClassifier()
	took := o.Now().Sub(start)
	u.status = watch.Status{
		Source: u.name, Path: path, Kind: "uap-core", Loaded: true, Size: int64(len(data)),
		Entries: len(p.ua) + len(p.os) + len(p.device), LoadedAt: start.UTC(), LoadDuration: took,
	}
	size := o.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		seed := maphash.MakeSeed()
		u.cache = lru.New[string, audit.UserAgent](size, func(s string) uint64 { return maphash.String(seed, s) })
		if o.Registerer != nil {
			err := o.Registerer.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "vigil_enrich_cache_hits_total", Help: "Enrichment cache hits since the data was last loaded.",
				ConstLabels: prometheus.Labels{"enricher": u.name},
			}, func() float64 { h, _ := u.cache.Stats(); return float64(h) }))
			if err != nil {
				return nil, fmt.Errorf("useragent: register metrics: %w", err)
			}
		}
	}
	return u, nil
}

// Name implements audit.Enricher.
func (u *Enricher) Name() string { return u.name }

// Enrich sets e.Enrichment.UserAgent, with class "empty" when the event
// carries no user agent. It never returns an error.
func (u *Enricher) Enrich(_ context.Context, e *audit.Event) error {
	ua := u.Parse(e.Context.UserAgent)
	e.Enrichment.UserAgent = &ua
	return nil
}

// Parse returns the parsed user agent, from the cache when it can.
func (u *Enricher) Parse(s string) audit.UserAgent {
	if u.cache != nil {
		if v, ok := u.cache.Get(s); ok {
			return v
		}
	}
	v := u.parse(s)
	if u.cache != nil {
		// Key on a copy: s may be a slice of a larger decoded buffer.
		u.cache.Add(strings.Clone(s), v)
	}
	return v
}

func (u *Enricher) parse(s string) audit.UserAgent {
	s = strings.TrimSpace(s)
	if s == "" || s == "-" || s == "(null)" {
		return audit.UserAgent{Class: audit.UAClassEmpty}
	}
	if len(s) > MaxLength {
		s = s[:MaxLength]
	}
	r := u.uap.parse(s)
	out := audit.UserAgent{
		Browser:        other(r.Family),
		BrowserVersion: version(r.Major, r.Minor, r.Patch),
		OS:             other(r.OSFamily),
		OSVersion:      version(r.OSMajor, r.OSMinor, r.OSPatch),
		Device:         other(r.DeviceFamily),
	}
	out.Class = u.class.classify(s, r)
	return out
}

// Details returns the full uap-core result for s, uncached; the agreement
// tests and `vigil enrich` use it.
func (u *Enricher) Details(s string) Result { return u.uap.parse(s) }

// Status describes the loaded regexes: count and compile time.
func (u *Enricher) Status() []watch.Status { return []watch.Status{u.status} }

func other(s string) string {
	if s == "Other" {
		return ""
	}
	return s
}

func version(parts ...string) string {
	v := ""
	for _, p := range parts {
		if p == "" {
			break
		}
		if v != "" {
			v += "."
		}
		v += p
	}
	return v
}
