// Package config is Vigil's configuration: one struct with a complete
// single-node default, layered as defaults < YAML file < VIGIL_* environment
// < flags, validated as a whole, and printable with secrets redacted.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration.
type Config struct {
	Server    Server    `yaml:"server"`
	Storage   Storage   `yaml:"storage"`
	Stream    Stream    `yaml:"stream"`
	Ingest    Ingest    `yaml:"ingest"`
	Enrich    Enrich    `yaml:"enrich"`
	Detect    Detect    `yaml:"detect"`
	Limits    Limits    `yaml:"limits"`
	Console   Console   `yaml:"console"`
	Retention Retention `yaml:"retention"`
	Integrity Integrity `yaml:"integrity"`
	Alerts    Alerts    `yaml:"alerts"`
	SIEM      SIEM      `yaml:"siem"`
	Log       Log       `yaml:"log"`
}

// Integrity is tamper evidence: each tenant's events form signed hash
// chains (docs/integrity.md).
type Integrity struct {
	// CheckpointInterval is how often the head of every chain that moved
	// is signed (and once more at shutdown); links after the last
	// checkpoint are reported as an unsigned tail. Default 1m.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// Retention is the background job that deletes each tenant's data older
// than its retention_days.
type Retention struct {
	// Interval is the time between runs over every tenant; 0 turns the
	// schedule off (vigil retention run still works).
	Interval time.Duration `yaml:"interval"`
	// TenantMinDays and TenantMaxDays bound the retention a tenant admin
	// key may set for its own tenant; operator keys may set any (1–36500).
	TenantMinDays int `yaml:"tenant_min_days"`
	TenantMaxDays int `yaml:"tenant_max_days"`
	// Archive, when it names a directory or a bucket, keeps every event
	// before retention deletes it.
	Archive Archive `yaml:"archive"`
}

// Archive is where retention archives events (gzip NDJSON per tenant and
// day, with a manifest): a directory, or an S3-compatible bucket.
type Archive struct {
	Dir string    `yaml:"dir"`
	S3  ArchiveS3 `yaml:"s3"`
}

// ArchiveS3 is an S3-compatible bucket.
type ArchiveS3 struct {
	Endpoint string `yaml:"endpoint"` // host[:port]
	Bucket   string `yaml:"bucket"`
	Prefix   string `yaml:"prefix"`
	Region   string `yaml:"region"`
	// AccessKey and SecretKey; set the secret through
	// VIGIL_RETENTION_ARCHIVE_S3_SECRET_KEY rather than the file.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key" secret:"true"`
	// Insecure uses http:// (a local test server only).
	Insecure bool `yaml:"insecure"`
}

// Enabled says an archive destination is configured.
func (a Archive) Enabled() bool { return a.Dir != "" || a.S3.Bucket != "" }

// Alerts configures webhook delivery of findings and incidents.
type Alerts struct {
	// Enabled runs the webhook worker and serves /v1/webhooks.
	Enabled bool `yaml:"enabled"`
	// AllowPrivateNetworks lets receivers sit on loopback, private,
	// link-local and other non-public networks (checked when connecting).
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// AllowCIDRs are networks receivers may sit on even when
	// AllowPrivateNetworks is off (an internal chat relay, say).
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// AllowHTTP accepts http:// receiver URLs; https only otherwise.
	AllowHTTP bool `yaml:"allow_http"`
	// MaxWebhooksPerTenant caps one tenant's webhooks (and the
	// installation-wide ones).
	MaxWebhooksPerTenant int `yaml:"max_webhooks_per_tenant"`
	// BatchWindow is how long changes gather into one request; BatchMax the
	// most changes in one request.
	BatchWindow time.Duration `yaml:"batch_window"`
	BatchMax    int           `yaml:"batch_max"`
	// MaxQueued caps the changes waiting for one webhook; beyond it the
	// oldest waiting requests become dead letters.
	MaxQueued int `yaml:"max_queued"`
	// RatePerMinute caps the requests to one webhook.
	RatePerMinute int `yaml:"rate_per_minute"`
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts; RetryFor is how long a request is retried before it is a
	// dead letter.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	RetryFor   time.Duration `yaml:"retry_for"`
	// Timeout bounds one request.
	Timeout time.Duration `yaml:"timeout"`
	// SecretOverlap is how long a rotated-out signing secret stays valid.
	SecretOverlap time.Duration `yaml:"secret_overlap"`
	// Poll is how often the worker looks for work.
	Poll time.Duration `yaml:"poll"`
	// SMTP is the relay e-mail webhooks (format email) go through.
	SMTP SMTP `yaml:"smtp"`
}

// SMTP configures the relay for e-mail alerts; e-mail webhooks are refused
// while Addr is empty.
type SMTP struct {
	// Addr is the relay's host:port (587 for STARTTLS, 465 for implicit TLS).
	Addr string `yaml:"addr"`
	// From is the sender address of alert e-mails.
	From string `yaml:"from"`
	// Username and Password authenticate with PLAIN; set the password
	// through VIGIL_ALERTS_SMTP_PASSWORD rather than the file.
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// TLS is starttls (required), implicit or none (a local relay only).
	TLS string `yaml:"tls"`
	// CAFile, when set, holds the PEM certificates the relay's certificate
	// must chain to (a private relay); the system's roots otherwise.
	CAFile string `yaml:"ca_file"`
}

// Console is the web console served at / by vigil serve.
type Console struct {
	// Enabled serves the console; the API is served either way.
	Enabled bool `yaml:"enabled"`
	// PublicURL is the address people open the console at (for printed
	// links); an https URL also marks cookies Secure behind a TLS proxy.
	PublicURL string `yaml:"public_url"`
	// FrameAncestors are the origins allowed to embed the console in a
	// frame (CSP frame-ancestors); empty means no site may.
	FrameAncestors []string `yaml:"frame_ancestors"`
	// SessionTTL is how long an API-key sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Server is the HTTP listener.
type Server struct {
	// Addr is the listen address.
	Addr              string        `yaml:"addr"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the graceful drain of in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxBodySize caps an ingest request body.
	MaxBodySize Size `yaml:"max_body_size"`
	// MaxInflightIngest caps concurrent ingest requests (then 429).
	MaxInflightIngest int `yaml:"max_inflight_ingest"`
	// MaxInflightIngestBytes caps the request-body bytes of all in-flight
	// ingest requests together (then 429); decoded events cost about twice
	// their body, so this bounds ingest memory at about twice its value.
	MaxInflightIngestBytes Size `yaml:"max_inflight_ingest_bytes"`
	// ReadyInterval is how often the readiness checks run in the
	// background; /readyz answers from the last result.
	ReadyInterval time.Duration `yaml:"ready_interval"`
	// NodeName names this node in `vigil cluster status` (nodes on
	// PostgreSQL with stream.driver nats); default the host name and the
	// listen address.
	NodeName string `yaml:"node_name"`
	// AdvertiseURL is how the other nodes of a cluster reach this one
	// (http://10.0.0.5:8080): a standby forwards the requests it gets to
	// the active node there. Default: http:// and the listen address when
	// it names one host; with an unspecified host (":8080", "0.0.0.0")
	// and no advertise_url, standbys refuse requests instead.
	AdvertiseURL string `yaml:"advertise_url"`
	// DebugAddr, when set, serves Go's runtime profiles (net/http/pprof:
	// CPU, heap, goroutines, execution traces) on a second listener, for
	// diagnosing a slow or growing server. The profiles are not
	// authenticated, so it must be a loopback address (127.0.0.1:6060).
	DebugAddr string `yaml:"debug_addr"`
}

// Storage selects and configures the store.
type Storage struct {
	// Driver is the backend: "sqlite" (embedded, the default) or
	// "postgres" (events, findings, keys and settings in PostgreSQL; the
	// ingest stream and node-local files stay in storage.sqlite.dir).
	Driver   string   `yaml:"driver"`
	SQLite   SQLite   `yaml:"sqlite"`
	Postgres Postgres `yaml:"postgres"`
}

// Postgres is the PostgreSQL store.
type Postgres struct {
	// URL is the connection string (postgres://user:pass@host:5432/db or
	// key=value form). It carries the password: set it through
	// VIGIL_STORAGE_POSTGRES_URL or VIGIL_STORAGE_POSTGRES_URL_FILE rather
	// than the file.
	URL string `yaml:"url" secret:"true"`
	// Schema holds Vigil's tables; a lower-case identifier.
	Schema string `yaml:"schema"`
	// MaxConns caps the connection pool.
	MaxConns int `yaml:"max_conns"`
	// AutoMigrate applies pending schema migrations when a node starts;
	// without it a node refuses a schema that is behind and `vigil migrate`
	// applies them (the production procedure).
	AutoMigrate bool `yaml:"auto_migrate"`
}

// SQLite is the embedded store.
type SQLite struct {
	// Dir holds every file of the embedded store. With storage.driver
	// postgres it still holds the node's own files: the ingest stream
	// (accepted events not yet stored), the webhook and integrity signing
	// keys and the bootstrap key file.
	Dir string `yaml:"dir"`
	// MaxOpenPartitions is how many event partition files (one per day of
	// event time) are kept open; the least recently used idle one is
	// closed beyond it.
	MaxOpenPartitions int `yaml:"max_open_partitions"`
	// SealAfter is how long after a day partition's day ends its events
	// are sealed (their bodies compressed together); 0 means 6h, a
	// negative value never.
	SealAfter time.Duration `yaml:"seal_after"`
}

// Stream selects the ingest stream: the durable log of accepted events
// between the ingest API and the pipeline.
type Stream struct {
	// Driver is "embedded" (a file in storage.sqlite.dir, the default) or
	// "nats" (a NATS JetStream stream, which outlives the node; it needs
	// storage.driver postgres).
	Driver string     `yaml:"driver"`
	NATS   StreamNATS `yaml:"nats"`
}

// StreamNATS is the ingest stream on NATS JetStream.
type StreamNATS struct {
	// URL is the server URL, or a comma-separated list of a cluster's
	// servers. It may carry credentials: set it through
	// VIGIL_STREAM_NATS_URL rather than the file.
	URL string `yaml:"url" secret:"true"`
	// CredsFile is a NATS credentials file (JWT and NKey seed), optional.
	CredsFile string `yaml:"creds_file"`
	// Name is the JetStream stream; its consumer positions live in the
	// key-value bucket NAME_offsets.
	Name string `yaml:"name"`
	// Subject is the prefix of the stream's subjects (PREFIX.0 …).
	Subject string `yaml:"subject"`
	// Partitions is how many tenant-hash subjects the stream has. Keep it
	// fixed for a stream: it decides where each tenant's events go.
	Partitions int `yaml:"partitions"`
	// Replicas is the stream's replication: 1, or 3 (or 5) on a cluster.
	Replicas int `yaml:"replicas"`
	// DuplicateWindow is how long JetStream answers a retried event as a
	// duplicate; later copies are dropped by the pipeline against the
	// store.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Timeout bounds each JetStream request, append acknowledgements
	// included.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes caps the stream's size (JetStream reserves it on the
	// servers); past it, and past 2 × ingest.max_backlog records, ingest
	// answers 503.
	MaxBytes Size `yaml:"max_bytes"`
}

// pgSchemaName is what storage.postgres.schema must look like: an unquoted
// lower-case identifier, the same in search_path, SQL and the catalog.
var pgSchemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

var (
	natsStreamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	natsSubject    = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func (s Stream) validate(storage string, bad func(field, format string, args ...any)) {
	switch s.Driver {
	case "embedded":
	case "nats":
		n := s.NATS
		if storage != "postgres" {
			bad("stream.driver", "nats needs storage.driver postgres: the pipeline drops late duplicates against PostgreSQL's record of stored events")
		}
		if n.URL == "" {
			bad("stream.nats.url", "is required with stream.driver nats (set VIGIL_STREAM_NATS_URL)")
		}
		if !natsStreamName.MatchString(n.Name) {
			bad("stream.nats.name", "must be 1-64 letters, digits, _ or -, not %q", n.Name)
		}
		if !natsSubject.MatchString(n.Subject) || len(n.Subject) > 200 {
			bad("stream.nats.subject", "must be dot-separated tokens of letters, digits, _ or - (no wildcards), not %q", n.Subject)
		}
		if n.Partitions < 1 || n.Partitions > 1024 {
			bad("stream.nats.partitions", "must be between 1 and 1024, not %d", n.Partitions)
		}
		if n.Replicas < 1 || n.Replicas > 5 {
			bad("stream.nats.replicas", "must be between 1 and 5, not %d", n.Replicas)
		}
		if n.DuplicateWindow < time.Second {
			bad("stream.nats.duplicate_window", "must be at least 1s")
		}
		if n.Timeout < 100*time.Millisecond {
			bad("stream.nats.timeout", "must be at least 100ms")
		}
		if n.MaxBytes < 1<<20 {
			bad("stream.nats.max_bytes", "must be at least 1MiB")
		}
	default:
		bad("stream.driver", "must be embedded or nats, not %q", s.Driver)
	}
}

// Ingest is the ingestion path.
type Ingest struct {
	// MaxBacklog is how many accepted events may wait for processing before
	// ingestion answers 429.
	MaxBacklog int `yaml:"max_backlog"`
	// KeyCacheTTL is how long a verified API key is trusted without a store
	// lookup, and so the longest a revoked key keeps working on a node.
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
	// MaxEventAge is how long before its receive time an event may be
	// dated; older events are rejected. A tenant's max_event_age_days
	// overrides it (for a deliberate backfill).
	MaxEventAge time.Duration `yaml:"max_event_age"`
	// BatchLinger is how long the pipeline, once it has caught up, lets
	// accepted events gather before it enriches, evaluates and indexes them
	// as one batch: events become searchable up to this much later, and a
	// trickle of small requests costs far less CPU. 0 handles each arrival
	// at once. Default 50ms.
	BatchLinger time.Duration `yaml:"batch_linger"`
}

// Enrich configures enrichment databases and lists.
type Enrich struct {
	// CityDB is a GeoIP2/GeoLite2 City (or Country) or DB-IP city .mmdb
	// file. It is kept for existing configurations; CityDBs takes several.
	CityDB string `yaml:"city_db"`
	// CityDBs are city databases asked in order after CityDB; the first
	// that knows an address answers, and an IPv4-only file is skipped for
	// IPv6 addresses. DB-IP ships IPv4 and IPv6 as two files: list both.
	// From the environment: comma-separated.
	CityDBs []string `yaml:"city_dbs"`
	// ASNDB is a GeoLite2-ASN .mmdb file.
	ASNDB string `yaml:"asn_db"`
	// ASNCSV is an ASN range CSV (start,end,asn,org), such as @ip-location-db/asn.
	ASNCSV string `yaml:"asn_csv"`
	// ASNCSVs are further ASN range CSVs (@ip-location-db/asn ships IPv4
	// and IPv6 as two files). From the environment: comma-separated.
	ASNCSVs []string `yaml:"asn_csvs"`
	// Lists are named IP lists (IPs, CIDRs or ranges, one per line, # comments).
	Lists []IPList `yaml:"lists"`
	// ReloadInterval is how often files are checked for changes.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// CacheSize is the number of IPs and of user agents kept in each LRU.
	CacheSize int `yaml:"cache_size"`
	// Budget is how long one event's enrichment is expected to take at
	// most; slower events are counted (vigil_enrich_slow_total), never cut
	// short, so enrichment does not depend on machine load.
	Budget time.Duration `yaml:"budget"`
}

// CityDatabases returns every configured city database, CityDB first,
// without repeats.
func (e Enrich) CityDatabases() []string {
	var out []string
	for _, p := range append([]string{e.CityDB}, e.CityDBs...) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// ASNDatabases returns every configured ASN source, ASNDB first, without
// repeats.
func (e Enrich) ASNDatabases() []string {
	var out []string
	for _, p := range append([]string{e.ASNDB, e.ASNCSV}, e.ASNCSVs...) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// IPList is one named IP list file.
type IPList struct {
	Name string `yaml:"name"`
	// Kind is tor, datacenter, vpn or custom.
	Kind string `yaml:"kind"`
	Path string `yaml:"path"`
}

// Detect configures detection.
type Detect struct {
	// Enabled turns the detection engine on.
	Enabled bool `yaml:"enabled"`
	// RulesDir is a directory of operator rule files added to the built-ins.
	RulesDir string `yaml:"rules_dir"`
	// Packs names the opt-in rule packs run beside the built-ins
	// (RulePacks lists them); none by default.
	Packs []string `yaml:"packs"`
	// MaxKeys caps the keyed detection states (windows, sequences, open
	// findings per address, actor, session…) of the whole installation;
	// beyond it the least recently used keys of the tenant holding the
	// most are evicted (vigil_detect_keys_evicted_total).
	MaxKeys int `yaml:"max_keys"`
	// MaxTenantKeys caps the keyed states of one tenant (at most MaxKeys);
	// beyond it that tenant's own least recently used keys are evicted and
	// its findings say its detection was degraded.
	MaxTenantKeys int `yaml:"max_tenant_keys"`
	// AllowedLateness is how long events are held to be evaluated in
	// event-time order: an event arriving up to this much after its
	// tenant's later events (or its own timestamp, by the server clock) is
	// evaluated in order; a later one is evaluated late, counted and noted.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// Egress tunes the learning of shared egresses (corporate VPN or SASE
	// gateways that detection then treats as relays).
	Egress DetectEgress `yaml:"egress"`
	// Partitioned spreads detection over the nodes of a cluster
	// (stream.driver nats): each partition of the stream, and the
	// installation-wide rules, is processed by one node at a time, each
	// node taking its share. Off, the active node processes everything.
	// A node with the embedded stream ignores it.
	Partitioned bool `yaml:"partitioned"`
}

// RulePacks names the opt-in rule packs the binary embeds
// (internal/rules/packs; a test in internal/app keeps the two lists equal).
func RulePacks() []string { return []string{"vendor-alerts"} }

// DetectEgress tunes the learning of shared egresses.
type DetectEgress struct {
	// Learn turns learning on (the default). Off, only enrichment's
	// VPN/relay flags and the tenants' allowlist entries of mode egress
	// count.
	Learn bool `yaml:"learn"`
	// MinActors is how many of a tenant's actors must log in through a
	// network from far from their usual places before it is learned.
	MinActors int `yaml:"min_actors"`
	// Deny lists addresses and CIDRs never learned as egresses, in any
	// tenant (a hosting range known to be hostile).
	Deny []string `yaml:"deny"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json, text, or auto (text on a terminal, else json).
	Format string `yaml:"format"`
}

// Default returns a complete single-node configuration.
func Default() Config {
	return Config{
		Server: Server{
			Addr: "127.0.0.1:8080", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 60 * time.Second,
			WriteTimeout: 120 * time.Second, IdleTimeout: 120 * time.Second, ShutdownTimeout: 20 * time.Second,
			MaxBodySize: 16 << 20, MaxInflightIngest: 512, MaxInflightIngestBytes: 128 << 20, ReadyInterval: 2 * time.Second,
		},
		Storage: Storage{Driver: "sqlite", SQLite: SQLite{Dir: "./vigil-data", MaxOpenPartitions: 64},
			Postgres: Postgres{Schema: "vigil", MaxConns: 16}},
		Stream: Stream{Driver: "embedded", NATS: StreamNATS{Name: "VIGIL_EVENTS", Subject: "vigil.events", Partitions: 16,
			Replicas: 1, DuplicateWindow: 2 * time.Minute, Timeout: 10 * time.Second, MaxBytes: 8 << 30}},
		Ingest: Ingest{MaxBacklog: 2_000_000, KeyCacheTTL: 5 * time.Second, MaxEventAge: 90 * 24 * time.Hour, BatchLinger: 50 * time.Millisecond},
		Enrich: Enrich{ReloadInterval: 30 * time.Second, CacheSize: 65536, Budget: 5 * time.Millisecond},
		Detect: Detect{Enabled: true, Partitioned: true, MaxKeys: 1_000_000, MaxTenantKeys: 250_000, AllowedLateness: 2 * time.Minute,
			Egress: DetectEgress{Learn: true, MinActors: 5}},
		Limits:    defaultLimits(),
		Console:   Console{Enabled: true, SessionTTL: 12 * time.Hour},
		Retention: Retention{Interval: time.Hour, TenantMinDays: 30, TenantMaxDays: 400},
		Integrity: Integrity{CheckpointInterval: time.Minute},
		Alerts: Alerts{Enabled: true, MaxWebhooksPerTenant: 25, BatchWindow: 5 * time.Second, BatchMax: 200, MaxQueued: 10_000,
			RatePerMinute: 60, MinBackoff: 10 * time.Second, MaxBackoff: time.Hour, RetryFor: 24 * time.Hour,
			Timeout: 10 * time.Second, SecretOverlap: 24 * time.Hour, Poll: time.Second, SMTP: SMTP{TLS: "starttls"}},
		SIEM: defaultSIEM(),
		Log:  Log{Level: "info", Format: "auto"},
	}
}

// Load layers a YAML file (if path is non-empty) and the environment over
// the defaults. Unknown keys in the file are errors.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		if err := Decode(b, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, getenv); err != nil {
		return c, err
	}
	return c, nil
}

// Decode decodes YAML over c strictly.
func Decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// EnvName returns the environment variable for a dotted config path
// ("server.addr" → VIGIL_SERVER_ADDR).
func EnvName(path string) string {
	return "VIGIL_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets every scalar field whose VIGIL_* variable is set.
func applyEnv(c *Config, getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value, f reflect.StructField) {
		s := getenv(EnvName(path))
		if s == "" && f.Tag.Get("secret") == "true" {
			if file := getenv(EnvName(path) + "_FILE"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_FILE: %w", EnvName(path), err))
					return
				}
				s = strings.TrimSpace(string(b))
			}
		}
		if s == "" {
			return
		}
		if err := setScalar(v, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvName(path), err))
		}
	})
	return errors.Join(errs...)
}

// Set sets one scalar field by dotted path (for flags).
func (c *Config) Set(path, value string) error {
	var err error
	found := false
	walk(reflect.ValueOf(c).Elem(), "", func(p string, v reflect.Value, _ reflect.StructField) {
		if p == path {
			found = true
			err = setScalar(v, value)
		}
	})
	if !found {
		return fmt.Errorf("unknown config key %q", path)
	}
	return err
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
)

func walk(v reflect.Value, prefix string, fn func(path string, v reflect.Value, f reflect.StructField)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct:
			walk(fv, path, fn)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() != reflect.String:
			// lists of structures are file-only
		default:
			fn(path, fv, f)
		}
	}
}

func setScalar(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 90s", s)
		}
		v.SetInt(int64(d))
	case v.Type() == sizeType:
		n, err := ParseSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(v.Type()))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	default:
		return fmt.Errorf("cannot be set from text")
	}
	return nil
}

// Validate reports every problem, each naming its dotted path.
// loopbackAddr reports whether addr is host:port with a loopback host
// (an IP address or "localhost").
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.Server.Addr == "" {
		bad("server.addr", "is required")
	}
	if u := c.Server.AdvertiseURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || (pu.Path != "" && pu.Path != "/") ||
			pu.RawQuery != "" || pu.User != nil {
			bad("server.advertise_url", "must be an http or https URL of a host and port, without a path (http://10.0.0.5:8080)")
		}
	}
	if a := c.Server.DebugAddr; a != "" && !loopbackAddr(a) {
		bad("server.debug_addr", "must be a loopback address and port such as 127.0.0.1:6060: the profiles it serves are not authenticated")
	}
	for path, d := range map[string]time.Duration{
		"server.read_header_timeout": c.Server.ReadHeaderTimeout, "server.read_timeout": c.Server.ReadTimeout,
		"server.write_timeout": c.Server.WriteTimeout, "server.idle_timeout": c.Server.IdleTimeout,
		"server.shutdown_timeout": c.Server.ShutdownTimeout, "server.ready_interval": c.Server.ReadyInterval, "ingest.key_cache_ttl": c.Ingest.KeyCacheTTL,
		"enrich.reload_interval": c.Enrich.ReloadInterval, "enrich.budget": c.Enrich.Budget,
		"ingest.max_event_age": c.Ingest.MaxEventAge,
	} {
		if d <= 0 {
			bad(path, "must be a positive duration")
		}
	}
	if c.Ingest.BatchLinger < 0 || c.Ingest.BatchLinger > 10*time.Second {
		bad("ingest.batch_linger", "must be between 0 and 10s")
	}
	if c.Server.MaxBodySize < 64<<10 || c.Server.MaxBodySize > 1<<30 {
		bad("server.max_body_size", "must be between 64KiB and 1GiB")
	}
	if c.Server.MaxInflightIngest < 1 {
		bad("server.max_inflight_ingest", "must be at least 1")
	}
	if c.Server.MaxInflightIngestBytes < c.Server.MaxBodySize {
		bad("server.max_inflight_ingest_bytes", "must be at least server.max_body_size, or no body of the largest allowed size could be read")
	}
	switch c.Storage.Driver {
	case "sqlite":
		if c.Storage.SQLite.Dir == "" {
			bad("storage.sqlite.dir", "is required")
		}
		if n := c.Storage.SQLite.MaxOpenPartitions; n < 2 || n > 10_000 {
			bad("storage.sqlite.max_open_partitions", "must be between 2 and 10000, not %d", n)
		}
	case "postgres":
		pg := c.Storage.Postgres
		if pg.URL == "" {
			bad("storage.postgres.url", "is required with storage.driver postgres (set VIGIL_STORAGE_POSTGRES_URL)")
		}
		if !pgSchemaName.MatchString(pg.Schema) {
			bad("storage.postgres.schema", "must be a lower-case identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit), not %q", pg.Schema)
		}
		if pg.MaxConns < 2 || pg.MaxConns > 1000 {
			bad("storage.postgres.max_conns", "must be between 2 and 1000, not %d", pg.MaxConns)
		}
		if c.Storage.SQLite.Dir == "" {
			bad("storage.sqlite.dir", "is required: it holds the node's ingest stream and keys even with storage.driver postgres")
		}
	default:
		bad("storage.driver", "must be sqlite or postgres, not %q", c.Storage.Driver)
	}
	c.Stream.validate(c.Storage.Driver, bad)
	c.Limits.validate(bad)
	if c.Integrity.CheckpointInterval < time.Second {
		bad("integrity.checkpoint_interval", "must be at least 1s")
	}
	if c.Retention.Interval < 0 {
		bad("retention.interval", "must be 0 (no scheduled runs) or a positive duration")
	}
	if c.Retention.TenantMinDays < 1 || c.Retention.TenantMaxDays > 36500 || c.Retention.TenantMinDays > c.Retention.TenantMaxDays {
		bad("retention.tenant_min_days", "tenant_min_days %d and tenant_max_days %d must satisfy 1 <= min <= max <= 36500",
			c.Retention.TenantMinDays, c.Retention.TenantMaxDays)
	}
	if c.Ingest.MaxBacklog < 1000 {
		bad("ingest.max_backlog", "must be at least 1000")
	}
	if c.Enrich.CacheSize < 0 {
		bad("enrich.cache_size", "must not be negative")
	}
	for i, p := range c.Enrich.CityDBs {
		if strings.TrimSpace(p) == "" {
			bad(fmt.Sprintf("enrich.city_dbs[%d]", i), "is empty; give the path of an .mmdb file")
		}
	}
	for i, p := range c.Enrich.ASNCSVs {
		if strings.TrimSpace(p) == "" {
			bad(fmt.Sprintf("enrich.asn_csvs[%d]", i), "is empty; give the path of a CSV file")
		}
	}
	for i, l := range c.Enrich.Lists {
		p := fmt.Sprintf("enrich.lists[%d]", i)
		if l.Name == "" {
			bad(p+".name", "is required")
		}
		if l.Path == "" {
			bad(p+".path", "is required")
		}
		switch l.Kind {
		case "tor", "datacenter", "vpn", "custom":
		default:
			bad(p+".kind", "must be tor, datacenter, vpn or custom")
		}
	}
	if a := c.Retention.Archive; a.Dir != "" && a.S3.Bucket != "" {
		bad("retention.archive", "name a dir or an s3 bucket, not both")
	} else if a.S3.Bucket != "" && a.S3.Endpoint == "" {
		bad("retention.archive.s3.endpoint", "is required with a bucket (s3.amazonaws.com for AWS)")
	} else if a.S3.Endpoint != "" && a.S3.Bucket == "" {
		bad("retention.archive.s3.bucket", "is required with an endpoint")
	}
	if c.Detect.MaxKeys < 1000 {
		bad("detect.max_keys", "must be at least 1000")
	}
	if c.Detect.MaxTenantKeys < 100 {
		bad("detect.max_tenant_keys", "must be at least 100")
	}
	if c.Detect.Egress.MinActors < 2 || c.Detect.Egress.MinActors > 64 {
		bad("detect.egress.min_actors", "must be between 2 and 64")
	}
	for i, p := range c.Detect.Packs {
		switch {
		case !slices.Contains(RulePacks(), p):
			bad(fmt.Sprintf("detect.packs[%d]", i), "unknown rule pack %q; the packs are %s", p, strings.Join(RulePacks(), ", "))
		case slices.Index(c.Detect.Packs, p) < i:
			bad(fmt.Sprintf("detect.packs[%d]", i), "pack %q is named twice", p)
		}
	}
	for i, d := range c.Detect.Egress.Deny {
		if _, err := ParsePrefix(d); err != nil {
			bad(fmt.Sprintf("detect.egress.deny[%d]", i), "must be an IP address or a CIDR like 203.0.113.0/24")
		}
	}
	if c.Console.SessionTTL < time.Minute || c.Console.SessionTTL > 30*24*time.Hour {
		bad("console.session_ttl", "must be between 1m and 720h")
	}
	if u := c.Console.PublicURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		bad("console.public_url", "must be an http:// or https:// URL")
	}
	for i, o := range c.Console.FrameAncestors {
		if !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://localhost") && !strings.HasPrefix(o, "http://127.0.0.1") ||
			strings.ContainsAny(o, "*; '\"") || strings.Count(o, "/") > 3 || strings.Count(o, "/") == 3 && !strings.HasSuffix(o, "/") {
			bad(fmt.Sprintf("console.frame_ancestors[%d]", i), "must be an origin such as https://admin.example.com")
		}
	}
	c.Alerts.validate(bad)
	c.SIEM.validate(bad)
	if c.Detect.AllowedLateness < 0 {
		bad("detect.allowed_lateness", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error")
	}
	switch c.Log.Format {
	case "json", "text", "auto":
	default:
		bad("log.format", "must be json, text or auto")
	}
	return errors.Join(errs...)
}

func (a Alerts) validate(bad func(path, format string, args ...any)) {
	for path, d := range map[string]time.Duration{
		"alerts.batch_window": a.BatchWindow, "alerts.min_backoff": a.MinBackoff, "alerts.max_backoff": a.MaxBackoff,
		"alerts.retry_for": a.RetryFor, "alerts.timeout": a.Timeout, "alerts.poll": a.Poll,
	} {
		if d <= 0 {
			bad(path, "must be a positive duration")
		}
	}
	if a.MaxBackoff < a.MinBackoff {
		bad("alerts.max_backoff", "must be at least alerts.min_backoff")
	}
	if a.SecretOverlap < 0 || a.SecretOverlap > 7*24*time.Hour {
		bad("alerts.secret_overlap", "must be between 0s and 168h")
	}
	for path, n := range map[string][2]int{
		"alerts.max_webhooks_per_tenant": {a.MaxWebhooksPerTenant, 1000}, "alerts.batch_max": {a.BatchMax, 1000},
		"alerts.max_queued": {a.MaxQueued, 10_000_000}, "alerts.rate_per_minute": {a.RatePerMinute, 60_000},
	} {
		if n[0] < 1 || n[0] > n[1] {
			bad(path, "must be between 1 and %d", n[1])
		}
	}
	if a.MaxQueued < a.BatchMax {
		bad("alerts.max_queued", "must be at least alerts.batch_max")
	}
	for i, c := range a.AllowCIDRs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			bad(fmt.Sprintf("alerts.allow_cidrs[%d]", i), "%q is not a network such as 10.20.0.0/16", c)
		}
	}
	if m := a.SMTP; m.Addr != "" {
		host, port, err := net.SplitHostPort(m.Addr)
		if err != nil || host == "" || port == "" {
			bad("alerts.smtp.addr", "must be host:port, such as smtp.example.com:587")
		}
		if addr, err := mail.ParseAddress(m.From); err != nil || addr.Name != "" {
			bad("alerts.smtp.from", "must be a plain e-mail address such as vigil@example.com")
		}
		switch m.TLS {
		case "starttls", "implicit":
		case "none":
			if ip, err := netip.ParseAddr(host); m.Password != "" && (err != nil || !ip.IsLoopback()) && host != "localhost" {
				bad("alerts.smtp.tls", "none would send the password in clear to a relay that is not on this machine")
			}
		default:
			bad("alerts.smtp.tls", "must be starttls, implicit or none")
		}
		if m.Password != "" && m.Username == "" {
			bad("alerts.smtp.username", "is required with a password")
		}
	}
}

// Redacted returns the effective configuration as YAML with every field
// tagged secret replaced by "<redacted>".
func (c Config) Redacted() ([]byte, error) {
	cp := c
	redactSIEM(&cp.SIEM)
	walk(reflect.ValueOf(&cp).Elem(), "", func(_ string, v reflect.Value, f reflect.StructField) {
		if f.Tag.Get("secret") == "true" && v.Kind() == reflect.String && v.String() != "" {
			v.SetString("<redacted>")
		}
	})
	return yaml.Marshal(cp)
}

// ParsePrefix reads an address (as a single-address prefix) or a CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
