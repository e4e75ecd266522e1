package app_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// ndjsonCollector is an HTTPS SIEM collector on 127.0.0.1 that can refuse
// batches (503) for a while. It keeps each batch id's lines once and
// counts how often each id was accepted.
type ndjsonCollector struct {
	srv *httptest.Server
	ca  string // PEM file of its certificate

	mu      sync.Mutex
	refuse  bool
	refused int
	auth    []string
	batches map[string][]map[string]any
	seen    map[string]int
}

func newNDJSONCollector(t *testing.T) *ndjsonCollector {
	c := &ndjsonCollector{batches: map[string][]map[string]any{}, seen: map[string]int{}}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	c.ca = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(c.ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *ndjsonCollector) serve(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = z
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	if c.refuse {
		c.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil || r.Header.Get("Content-Type") != "application/x-ndjson" {
			http.Error(w, "bad line", http.StatusBadRequest)
			return
		}
		lines = append(lines, m)
	}
	id := r.Header.Get("Vigil-Delivery")
	if _, ok := c.batches[id]; !ok {
		c.batches[id] = lines
	}
	c.seen[id]++
	w.WriteHeader(http.StatusAccepted)
}

func (c *ndjsonCollector) setRefuse(v bool) {
	c.mu.Lock()
	c.refuse = v
	c.mu.Unlock()
}

// lines returns every line received, deduplicated by batch id.
func (c *ndjsonCollector) lines() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, ls := range c.batches {
		out = append(out, ls...)
	}
	return out
}

// syslogCollector is an RFC 5425 (syslog over TLS) listener on 127.0.0.1
// parsing octet-counted RFC 5424 frames; it can stop and start again on
// the same address.
type syslogCollector struct {
	t    *testing.T
	tls  *tls.Config
	addr string
	ln   net.Listener

	mu     sync.Mutex
	conns  []net.Conn
	active int // connections still being read
	msgs   []syslogMsg
	bad    []string
	wg     sync.WaitGroup
}

type syslogMsg struct {
	pri              int
	host, app, msgid string
	sd               map[string]string
	msg              map[string]any
}

var (
	syslogHeader = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[vigil@32473((?: [a-z]+="(?:[^"\\\]]|\\.)*")*)\] (.*)$`)
	sdParam      = regexp.MustCompile(`([a-z]+)="((?:[^"\\\]]|\\.)*)"`)
)

func newSyslogCollector(t *testing.T, tc *tls.Config) *syslogCollector {
	c := &syslogCollector{t: t, tls: tc}
	c.start("127.0.0.1:0")
	t.Cleanup(c.stop)
	return c
}

func (c *syslogCollector) start(addr string) {
	ln, err := tls.Listen("tcp", addr, c.tls)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ln, c.addr = ln, ln.Addr().String()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.active++
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.read(conn)
				c.mu.Lock()
				c.active--
				c.mu.Unlock()
			}()
		}
	}()
}

func (c *syslogCollector) stop() {
	if c.ln == nil {
		return
	}
	_ = c.ln.Close()
	c.mu.Lock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
	c.mu.Unlock()
	c.wg.Wait()
	c.ln = nil
}

// read parses "LEN SP MSG" frames until the connection ends.
func (c *syslogCollector) read(conn net.Conn) {
	r := bufio.NewReader(conn)
	for {
		n, err := r.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 || size > 1<<20 {
			c.mu.Lock()
			c.bad = append(c.bad, "bad frame length "+n)
			c.mu.Unlock()
			return
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(r, frame); err != nil {
			return
		}
		c.parse(string(frame))
	}
}

func (c *syslogCollector) parse(frame string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := syslogHeader.FindStringSubmatch(frame)
	if m == nil {
		c.bad = append(c.bad, frame)
		return
	}
	msg := syslogMsg{host: m[3], app: m[4], msgid: m[6], sd: map[string]string{}}
	msg.pri, _ = strconv.Atoi(m[1])
	if _, err := time.Parse(time.RFC3339Nano, m[2]); err != nil {
		c.bad = append(c.bad, "timestamp "+m[2])
	}
	for _, p := range sdParam.FindAllStringSubmatch(m[7], -1) {
		msg.sd[p[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\]`, `]`).Replace(p[2])
	}
	if err := json.Unmarshal([]byte(m[8]), &msg.msg); err != nil {
		c.bad = append(c.bad, "msg "+m[8])
		return
	}
	c.msgs = append(c.msgs, msg)
}

func (c *syslogCollector) messages() ([]syslogMsg, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]syslogMsg(nil), c.msgs...), append([]string(nil), c.bad...)
}

// deadAddr is a 127.0.0.1 port nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func ingestKey(t *testing.T, base, op, tenant string) string {
	t.Helper()
	status, b := raw(t, "POST", base+"/v1/keys", op, `{"tenant":"`+tenant+`","name":"ingest","scopes":["events:write"]}`)
	var out struct{ Secret string }
	if status != http.StatusCreated || json.Unmarshal(b, &out) != nil {
		t.Fatalf("create key: %d %s", status, b)
	}
	return out.Secret
}

// TestSIEMStreamsAcrossRestarts is the acceptance test of the SIEM stream:
// an HTTPS collector (trusted through ca_file) refuses for a while, the
// node and the syslog-over-TLS collector restart in between, and every
// finding change still arrives exactly once per batch id at both; the
// HTTPS sink is filtered to one tenant and never sees the other's data
// nor raw events (events: false), the syslog sink gets every raw event;
// a third sink whose collector is down holds back neither ingestion
// (more events than the backlog cap are accepted) nor webhooks.
func TestSIEMStreamsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := alertConfig(t, dir)
	cfg.Ingest.MaxBacklog = 1000 // the stream refuses appends 2,000 events behind its slowest counted consumer
	cfg.Limits.Tenant.BacklogSharePercent = 0
	https := newNDJSONCollector(t)
	https.setRefuse(true)
	sys := newSyslogCollector(t, https.srv.TLS.Clone())
	fast := func(k config.SIEMSink) config.SIEMSink {
		k.MinBackoff, k.MaxBackoff, k.Timeout = 20*time.Millisecond, 100*time.Millisecond, 5*time.Second
		return k
	}
	cfg.SIEM.Poll = 20 * time.Millisecond
	cfg.SIEM.Sinks = []config.SIEMSink{
		fast(config.SIEMSink{Name: "soc", Kind: "https", URL: https.srv.URL + "/ingest", Tenants: []string{"acme"}, Gzip: true,
			Headers: map[string]string{"Authorization": "Bearer s3cret"}, TLS: config.SIEMTLS{CAFile: https.ca}}),
		fast(config.SIEMSink{Name: "syslog", Kind: "syslog", URL: "tls://" + sys.addr, Events: true,
			TLS: config.SIEMTLS{CAFile: https.ca, ServerName: "example.com"}}),
		fast(config.SIEMSink{Name: "dead", Kind: "syslog", URL: "tcp://" + deadAddr(t), Events: true}),
	}
	hook := newReceiver(t)

	a, base, stop := runApp(t, cfg)
	op := a.BootstrapKey
	for _, tn := range []string{"acme", "other"} {
		if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"`+tn+`"}`); status != http.StatusCreated {
			t.Fatalf("create tenant: %d %s", status, b)
		}
	}
	createWebhook(t, base, op, `{"tenant":"acme","url":"`+hook.url()+`","kinds":["finding"]}`)
	ctx := t.Context()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	wave := func(st *app.Stores, from, to int) {
		var fs []audit.Finding
		for i := from; i < to; i++ {
			fs = append(fs, finding("acme", fmt.Sprintf("f-%03d", i), audit.SeverityMedium, at))
		}
		if err := st.Findings.UpsertFindings(ctx, fs); err != nil {
			t.Fatal(err)
		}
		if err := st.Findings.UpsertFindings(ctx, []audit.Finding{finding("other", fmt.Sprintf("o-%03d", from), audit.SeverityHigh, at)}); err != nil {
			t.Fatal(err)
		}
	}
	wave(a.Stores(), 0, 120)
	// 2,500 events, more than the stream takes behind a counted consumer
	// the dead sink would be: every batch is accepted.
	acmeKey, otherKey := ingestKey(t, base, op, "acme"), ingestKey(t, base, op, "other")
	events := 0
	for i := range 5 {
		key := acmeKey
		if i%2 == 1 {
			key = otherKey
		}
		if st, _, lim := postEvents(t, base, key, eventsBody(fmt.Sprintf("b%d", i), 500)); st != http.StatusAccepted {
			t.Fatalf("batch %d: ingest answered %d (%s) while a SIEM sink is down", i, st, lim)
		}
		events += 500
		// The pipeline catches up; the dead sink does not, and must not count.
		waitFor(t, "the pipeline to catch up", func() bool {
			last, committed, err := a.Stores().Stream.(audit.StreamStats).Backlog(ctx)
			return err == nil && last == committed
		})
	}
	waitFor(t, "refused batches", func() bool {
		https.mu.Lock()
		defer https.mu.Unlock()
		return https.refused >= 3
	})
	waitFor(t, "webhook deliveries despite the dead sink", func() bool { return len(hook.items(t)) >= 120 })

	// The node and the syslog collector go down; the node comes back
	// first, stores more, then the collectors recover. The collector
	// reads what the node wrote before it closed its connection: plain
	// syslog has no acknowledgement, so a collector dropping a connection
	// with unread bytes loses them (docs/siem.md says so).
	stop()
	waitFor(t, "the syslog collector to read to the end", func() bool {
		sys.mu.Lock()
		defer sys.mu.Unlock()
		return sys.active == 0
	})
	sysAddr := sys.addr
	sys.stop()
	a2, base2, _ := runApp(t, cfg)
	wave(a2.Stores(), 120, 150)
	if status, b := raw(t, "PATCH", base2+"/v1/findings/f-001?tenant=acme", op, `{"status":"resolved","note":"password reset"}`); status != http.StatusOK {
		t.Fatalf("resolve: %d %s", status, b)
	}
	if st, _, _ := postEvents(t, base2, acmeKey, eventsBody("after", 100)); st != http.StatusAccepted {
		t.Fatalf("ingest after restart: %d", st)
	}
	events += 100
	sys.start(sysAddr)
	https.setRefuse(false)

	want := map[string]bool{"f-001 resolved": true}
	for i := range 150 {
		want[fmt.Sprintf("f-%03d opened", i)] = true
	}
	waitFor(t, "every change at the https collector", func() bool { return len(https.lines()) >= len(want) })
	waitFor(t, "every change and event at the syslog collector", func() bool {
		msgs, bad := sys.messages()
		if len(bad) > 0 {
			t.Fatalf("unparsable syslog frames: %q", bad[:min(3, len(bad))])
		}
		return len(msgs) >= len(want)+2+events
	})
	time.Sleep(300 * time.Millisecond) // nothing more may arrive (a duplicate would)

	got := map[string]int{}
	for _, l := range https.lines() {
		if l["type"] != "finding" || l["tenant"] != "acme" || l["source"] != "vigil" || l["sink"] != "soc" {
			t.Errorf("https sink got %v", l)
			continue
		}
		doc, _ := l["finding"].(map[string]any)
		if doc["id"] != l["id"] {
			t.Errorf("line without its finding document: %v", l)
		}
		got[fmt.Sprintf("%s %s", l["id"], l["change"])]++
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("https: %s delivered %d times, want once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("https: %d distinct changes, want %d", len(got), len(want))
	}
	https.mu.Lock()
	for id, n := range https.seen {
		if n != 1 {
			t.Errorf("batch %s accepted %d times", id, n)
		}
	}
	for _, h := range https.auth {
		if h != "Bearer s3cret" {
			t.Errorf("request without the configured header: %q", h)
		}
	}
	https.mu.Unlock()

	msgs, bad := sys.messages()
	if len(bad) > 0 {
		t.Fatalf("unparsable syslog frames: %q", bad[:min(3, len(bad))])
	}
	sysGot := map[string]int{}
	for _, m := range msgs {
		if m.app != "vigil" || m.msgid != m.msg["type"] || m.sd["tenant"] != m.msg["tenant"] {
			t.Errorf("syslog header does not match its message: %+v", m)
		}
		switch m.msgid {
		case "finding":
			// PRI: facility 13 (log audit); medium is warning (4), high error (3).
			wantPri := map[string]int{"medium": 13*8 + 4, "high": 13*8 + 3}[m.sd["severity"]]
			if m.pri != wantPri || m.sd["rule"] != "brute-force" {
				t.Errorf("finding message PRI %d rule %q: %+v", m.pri, m.sd["rule"], m)
			}
			sysGot[fmt.Sprintf("%s %s %s", m.sd["tenant"], m.msg["id"], m.msg["change"])]++
		case "event":
			ev, _ := m.msg["event"].(map[string]any)
			sysGot[fmt.Sprintf("%s %s", m.sd["tenant"], ev["id"])]++
		default:
			t.Errorf("unexpected syslog message %+v", m)
		}
	}
	for k := range want {
		if n := sysGot["acme "+k]; n != 1 {
			t.Errorf("syslog: acme %s delivered %d times, want once", k, n)
		}
	}
	for _, id := range []string{"o-000", "o-120"} {
		if n := sysGot["other "+id+" opened"]; n != 1 {
			t.Errorf("syslog: other's %s delivered %d times, want once", id, n)
		}
	}
	nEvents := 0
	for k, n := range sysGot {
		if strings.Count(k, " ") == 1 {
			nEvents++
			if n != 1 {
				t.Errorf("syslog: event %s delivered %d times", k, n)
			}
		}
	}
	if nEvents != events {
		t.Errorf("syslog: %d distinct events, want %d", nEvents, events)
	}

	// The cursors survived the restart and the dead sink still holds its
	// place (nothing skipped: it is within its lag bound).
	st := a2.Stores().Alerts.(audit.SIEMStore)
	for _, sink := range []string{"soc", "syslog", "dead"} {
		cur, err := st.SIEMCursor(ctx, sink)
		if err != nil {
			t.Fatal(err)
		}
		if cur.ChangesDropped != 0 || cur.EventsDropped != 0 {
			t.Errorf("%s dropped: %+v", sink, cur)
		}
	}
}

// TestChangeLogIsPrunedWithoutReaders: with alerts off and no SIEM sink,
// nothing reads the change log that findings fill, so a running node must
// still empty it (it grew without bound before).
func TestChangeLogIsPrunedWithoutReaders(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var fs []audit.Finding
	for i := range 50 {
		fs = append(fs, finding("acme", fmt.Sprintf("f-%02d", i), audit.SeverityHigh, at))
	}
	if err := db.UpsertFindings(t.Context(), fs); err != nil {
		t.Fatal(err)
	}
	if ch, err := db.ChangesAfter(t.Context(), 0, 1000); err != nil || len(ch) != len(fs) {
		t.Fatalf("changes recorded before the start: %d, %v; want %d", len(ch), err, len(fs))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := alertConfig(t, dir)
	cfg.Alerts.Enabled = false
	_, _, stop := runApp(t, cfg)
	// Read the live node's meta database on a read-only connection of
	// our own (SQLite in WAL mode lets it read while the node writes).
	ro, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "meta.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	waitFor(t, "the change log to be pruned", func() bool {
		var n int
		if err := ro.QueryRowContext(t.Context(), `SELECT count(*) FROM alert_changes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	stop()
}
