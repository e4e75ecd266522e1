package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/config"
)

func TestDefaultIsValid(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Storage.SQLite.Dir != "./vigil-data" {
		t.Fatalf("default dir %q", c.Storage.SQLite.Dir)
	}
}

func TestGoodFile(t *testing.T) {
	c, err := config.Load("testdata/full.good.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != "0.0.0.0:9090" || c.Server.MaxBodySize != 32<<20 || c.Server.ShutdownTimeout != 45*time.Second {
		t.Fatalf("server = %+v", c.Server)
	}
	if c.Server.ReadHeaderTimeout != config.Default().Server.ReadHeaderTimeout {
		t.Fatal("unset keys must keep their defaults")
	}
	if len(c.Detect.Packs) != 1 || c.Detect.Packs[0] != "vendor-alerts" {
		t.Fatalf("packs = %v", c.Detect.Packs)
	}
	if len(c.Enrich.Lists) != 1 || c.Enrich.Lists[0].Kind != "tor" {
		t.Fatalf("lists = %+v", c.Enrich.Lists)
	}
}

// TestBadFiles maps each bad fixture to the error text it must produce,
// naming the offending key.
func TestBadFiles(t *testing.T) {
	tests := map[string][]string{
		"unknown-key.bad.yaml":  {"adress"},
		"bad-duration.bad.yaml": {"soon"},
		"bad-size.bad.yaml":     {"lots"},
		"invalid-values.bad.yaml": {"storage.driver", "log.level", "enrich.lists[0].kind", "enrich.lists[0].path",
			`detect.packs[0]: unknown rule pack "vendor-signal"; the packs are vendor-alerts`, `detect.packs[2]: pack "vendor-alerts" is named twice`,
			"server.advertise_url", "server.debug_addr: must be a loopback address"},
		"limits.bad.yaml": {"limits.tenant.event_burst", "limits.tenant.backlog_share_percent", "limits.concurrent_queries",
			"limits.export_write_timeout", "limits.tenants[0].request_burst", "limits.tenants[1].id", "limits.tenants[2].id"},
	}
	for file, wants := range tests {
		t.Run(file, func(t *testing.T) {
			c, err := config.Load("testdata/"+file, nil)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverridesFileAndFlagsOverrideEnv(t *testing.T) {
	env := map[string]string{
		"VIGIL_SERVER_ADDR":          "127.0.0.1:1234",
		"VIGIL_STORAGE_SQLITE_DIR":   "/tmp/x",
		"VIGIL_SERVER_MAX_BODY_SIZE": "1MiB",
		"VIGIL_DETECT_ENABLED":       "false",
		"VIGIL_INGEST_KEY_CACHE_TTL": "2s",
		"VIGIL_DETECT_PACKS":         "vendor-alerts",
	}
	c, err := config.Load("testdata/full.good.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != "127.0.0.1:1234" || c.Storage.SQLite.Dir != "/tmp/x" || c.Server.MaxBodySize != 1<<20 ||
		c.Detect.Enabled || c.Ingest.KeyCacheTTL != 2*time.Second || len(c.Detect.Packs) != 1 {
		t.Fatalf("env not applied: %+v", c)
	}
	if err := c.Set("server.addr", "127.0.0.1:0"); err != nil || c.Server.Addr != "127.0.0.1:0" {
		t.Fatalf("Set: %v", err)
	}
	if err := c.Set("server.nope", "1"); err == nil {
		t.Fatal("Set accepted an unknown key")
	}
	_, err = config.Load("", func(k string) string {
		return map[string]string{"VIGIL_SERVER_READ_TIMEOUT": "never"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "VIGIL_SERVER_READ_TIMEOUT") {
		t.Fatalf("bad env error = %v", err)
	}
}

func TestRedactedRoundTrips(t *testing.T) {
	c := config.Default()
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	var back config.Config
	if err := config.Decode(out, &back); err != nil {
		t.Fatalf("redacted output does not decode: %v\n%s", err, out)
	}
	if back.Server != c.Server || back.Storage != c.Storage {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]config.Size{"64MiB": 64 << 20, "512KiB": 512 << 10, "1GB": 1e9, "100": 100, "1.5KiB": 1536} {
		got, err := config.ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "ten"} {
		if _, err := config.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestPostgresStorage(t *testing.T) {
	env := map[string]string{
		"VIGIL_STORAGE_DRIVER":       "postgres",
		"VIGIL_STORAGE_POSTGRES_URL": "postgres://vigil:hunter2@db.internal:5432/vigil",
	}
	c, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Storage.Postgres.Schema != "vigil" || c.Storage.Postgres.MaxConns != 16 || c.Storage.Postgres.AutoMigrate {
		t.Fatalf("postgres defaults = %+v", c.Storage.Postgres)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Fatalf("the redacted configuration shows the database password:\n%s", out)
	}

	bad := c
	bad.Storage.Postgres = config.Postgres{Schema: "Vigil", MaxConns: 1}
	err = bad.Validate()
	for _, want := range []string{"storage.postgres.url", "storage.postgres.schema", "storage.postgres.max_conns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v, want it to name %s", err, want)
		}
	}
}

func TestNATSStream(t *testing.T) {
	env := map[string]string{
		"VIGIL_STORAGE_DRIVER":       "postgres",
		"VIGIL_STORAGE_POSTGRES_URL": "postgres://vigil:hunter2@db.internal:5432/vigil",
		"VIGIL_STREAM_DRIVER":        "nats",
		"VIGIL_STREAM_NATS_URL":      "nats://vigil:natspass@n1:4222,nats://vigil:natspass@n2:4222",
	}
	c, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	n := c.Stream.NATS
	if n.Name != "VIGIL_EVENTS" || n.Subject != "vigil.events" || n.Partitions != 16 || n.Replicas != 1 || n.DuplicateWindow != 2*time.Minute {
		t.Fatalf("nats stream defaults = %+v", n)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "natspass") {
		t.Fatalf("the redacted configuration shows the NATS password:\n%s", out)
	}

	bad := c
	bad.Storage.Driver = "sqlite"
	bad.Stream.NATS = config.StreamNATS{Name: "a.b", Subject: "vigil.*", Partitions: 0, Replicas: 7, DuplicateWindow: time.Millisecond}
	err = bad.Validate()
	for _, want := range []string{"stream.driver", "stream.nats.url", "stream.nats.name", "stream.nats.subject",
		"stream.nats.partitions", "stream.nats.replicas", "stream.nats.duplicate_window", "stream.nats.timeout", "stream.nats.max_bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate = %v, want it to name %s", err, want)
		}
	}
	bad = c
	bad.Stream.Driver = "kafka"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "stream.driver") {
		t.Errorf("an unknown stream driver: %v", err)
	}
}

func TestBatchLinger(t *testing.T) {
	if d := config.Default().Ingest.BatchLinger; d != 50*time.Millisecond {
		t.Fatalf("default batch_linger %v, want 50ms", d)
	}
	c, err := config.Load("", func(k string) string { return map[string]string{"VIGIL_INGEST_BATCH_LINGER": "0s"}[k] })
	if err != nil || c.Ingest.BatchLinger != 0 {
		t.Fatalf("VIGIL_INGEST_BATCH_LINGER=0s gave %v, %v", c.Ingest.BatchLinger, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a batch_linger of 0 (off) is refused: %v", err)
	}
	for _, d := range []time.Duration{-time.Millisecond, 11 * time.Second} {
		c.Ingest.BatchLinger = d
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ingest.batch_linger") {
			t.Errorf("batch_linger %v: validate = %v, want it refused by name", d, err)
		}
	}
}

// TestDebugAddrIsLoopbackOnly: the unauthenticated profiles listener takes
// a loopback address and nothing else.
func TestDebugAddrIsLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true, "127.0.0.1:0": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.5:6060": false, "[::]:6060": false, "example.com:6060": false, "127.0.0.1": false,
	} {
		c := config.Default()
		c.Server.DebugAddr = addr
		err := c.Validate()
		if ok != (err == nil) {
			t.Errorf("debug_addr %q: Validate = %v, want ok=%v", addr, err, ok)
		}
	}
}
