package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// The query data set: qTenants tenants, qActors users (user a belongs to
// tenant a mod qTenants) with a home address drawn from qIPs addresses
// (16 used addresses per /24: offices, carrier NAT), and qStuffIPs
// credential-stuffing sources: one block of 1,000 events in eight is a
// wave in which 40 % of the events are failed logins from one of them
// against the accounts of one tenant, half of them existing ones.
const (
	qTenants  = 10
	qActors   = 20_000
	qIPs      = 5_000
	qStuffIPs = 12
	qSpan     = 7 * 24 * time.Hour
)

// qEvent is what the benchmark keeps of each loaded event, to draw query
// parameters that match.
type qEvent struct {
	tenant uint8
	actor  string
	ip     netip.Addr
}

// qData is the loaded data set of one deployment.
type qData struct {
	events []qEvent
	// perTenant counts each tenant's events.
	perTenant [qTenants]int
	start     time.Time
	end       time.Time
	// read[t] is an events:read key of tenant t, write[t] an
	// events:write one.
	read, write [qTenants]string
}

func qTenant(t int) string { return fmt.Sprintf("q%02d", t) }

func qActor(a int) string { return fmt.Sprintf("u%05d", a) }

func qHomeIP(a int) netip.Addr { return qPoolIP(int(mix64(uint64(a)^0x1b) % qIPs)) }

func qPoolIP(p int) netip.Addr {
	h := mix64(uint64(p/16) ^ 0xb10c)
	firsts := [...]byte{24, 31, 37, 46, 62, 66, 71, 77, 81, 86, 89, 92, 94, 98, 104, 109, 151, 176, 188, 193, 212, 213, 217}
	return netip.AddrFrom4([4]byte{firsts[h%uint64(len(firsts))], byte(h >> 8), byte(h >> 16), byte(1 + (p%16)*13)})
}

func qStuffIP(s int) netip.Addr { return netip.AddrFrom4([4]byte{45, 134, byte(20 + s), 7}) }

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var qUserAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
}

var qBotAgents = [...]string{"python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"}

// qActions is the everyday mix of actions, by cumulative percentage.
var qActions = [...]struct {
	upTo   uint64
	action string
}{
	{50, "auth.login.success"}, {62, "auth.login.failure"}, {72, "session.created"}, {82, "auth.logout"},
	{89, "data.exported"}, {93, "data.downloaded"}, {95, "auth.mfa.enrolled"}, {96, "auth.password.changed"},
	{97, "user.role.changed"}, {98, "api_key.created"}, {100, "auth.password.reset"},
}

// qFull is one generated event.
type qFull struct {
	qEvent
	i                  int
	at                 time.Time
	action, reason, ua string
	h                  uint64
}

// qEventAt is event i of n, dated in [start, start+qSpan) in index order.
func qEventAt(i, n int, start time.Time) qFull {
	h := mix64(uint64(i)*0x9e3779b97f4a7c15 + 1)
	ev := qFull{i: i, h: h, at: start.Add(time.Duration(float64(qSpan) * float64(i) / float64(n))).Truncate(time.Millisecond)}
	block := uint64(i / 1000)
	if hb := mix64(block ^ 0x57f); hb%8 == 0 && mix64(uint64(i)^0xa77)%100 < 40 {
		// A stuffing wave: one source, one tenant's accounts.
		t := int(mix64(block^0x7e2) % qTenants)
		ev.tenant, ev.ip = uint8(t), qStuffIP(int(hb>>8%qStuffIPs))
		ev.actor, ev.reason = qActor(int(h>>20%(qActors/qTenants))*qTenants+t), "invalid_password"
		if h%2 == 0 {
			ev.actor, ev.reason = "x"+strconv.FormatUint(h>>40, 36), "unknown_user"
		}
		ev.action, ev.ua = "auth.login.failure", qBotAgents[h>>8%uint64(len(qBotAgents))]
		return ev
	}
	a := int(h % qActors)
	ev.tenant, ev.actor, ev.ip = uint8(a%qTenants), qActor(a), qHomeIP(a)
	if h>>56 < 20 { // ~8 % from a second address (mobile, travel)
		ev.ip = qPoolIP(int(mix64(uint64(a)^0xac7) % qIPs))
	}
	ev.ua = qUserAgents[mix64(uint64(a))%uint64(len(qUserAgents))]
	pick := h >> 8 % 100
	for _, qa := range qActions {
		if pick < qa.upTo {
			ev.action = qa.action
			break
		}
	}
	switch ev.action {
	case "auth.login.failure":
		ev.reason = "invalid_password"
	case "auth.logout":
		ev.reason = "user"
	}
	return ev
}

// write appends the event as one NDJSON line (about 400 bytes) with the
// fields its action requires (docs/catalog.md).
func (ev *qFull) write(buf *bytes.Buffer) {
	fmt.Fprintf(buf, `{"action":%q,"time":%q,"actor":{"id":%q,"type":"user"},`, ev.action, ev.at.Format(time.RFC3339Nano), ev.actor)
	if ev.reason != "" {
		fmt.Fprintf(buf, `"reason":%q,`, ev.reason)
	}
	meta := `"app":"web"`
	switch ev.action {
	case "user.role.changed":
		fmt.Fprintf(buf, `"target":{"type":"user","id":%q},`, qActor(int(ev.h>>24%qActors)))
		meta += `,"new_role":"admin","old_role":"member"`
	case "api_key.created":
		fmt.Fprintf(buf, `"target":{"type":"api_key","id":"key_%x"},`, ev.h>>24)
	case "auth.mfa.enrolled":
		meta += `,"factor":"totp"`
	case "auth.password.reset":
		meta += `,"stage":"requested"`
	}
	method := ""
	if ev.action == "auth.login.success" {
		method = `,"auth_method":"password"`
	}
	fmt.Fprintf(buf, `"context":{"ip":%q,"user_agent":%q,"session_id":"s%x","request_id":"req-%d"%s},"metadata":{%s}}`+"\n",
		ev.ip, ev.ua, ev.h>>28, ev.i, method, meta)
}

// qEventCount is the data set's size: VIGIL_BENCH_QUERY_EVENTS, 200,000 by
// default.
func qEventCount(b *testing.B) int {
	s := os.Getenv("VIGIL_BENCH_QUERY_EVENTS")
	if s == "" {
		return 200_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10_000 {
		b.Fatalf("VIGIL_BENCH_QUERY_EVENTS=%q: want a number of events ≥ 10000", s)
	}
	return n
}

// qLoad creates the tenants and their keys on n and loads the data set
// through POST /v1/events at base (NDJSON batches of 1,000 events of one
// tenant, 4 clients), then waits until the pipeline has stored every event
// and checks each tenant's count through POST /v1/query.
func qLoad(b *testing.B, n *node, base string, hc *http.Client) *qData {
	b.Helper()
	ctx := context.Background()
	st := n.app.Stores()
	d := &qData{end: time.Now().Add(-2 * time.Minute).Truncate(time.Second)}
	d.start = d.end.Add(-qSpan)
	for t := range qTenants {
		if err := st.Tenants.CreateTenant(ctx, audit.Tenant{ID: qTenant(t), RetentionDays: 400, CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		for _, k := range []struct {
			to    *string
			scope audit.Scope
		}{{&d.write[t], audit.ScopeEventsWrite}, {&d.read[t], audit.ScopeEventsRead}} {
			_, key, err := audit.MintKey(ctx, st.Keys, qTenant(t), "bench "+string(k.scope), []audit.Scope{k.scope}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			*k.to = key
		}
	}
	total := qEventCount(b)
	d.events = make([]qEvent, total)
	type batch struct {
		tenant int
		body   []byte
	}
	batches := make(chan batch, 8)
	go func() {
		defer close(batches)
		var bufs [qTenants]bytes.Buffer
		var counts [qTenants]int
		for i := range total {
			ev := qEventAt(i, total, d.start)
			t := int(ev.tenant)
			d.events[i] = ev.qEvent
			d.perTenant[t]++
			ev.write(&bufs[t])
			if counts[t]++; counts[t] == 1000 {
				batches <- batch{t, bytes.Clone(bufs[t].Bytes())}
				bufs[t].Reset()
				counts[t] = 0
			}
		}
		for t := range qTenants {
			if counts[t] > 0 {
				batches <- batch{t, bytes.Clone(bufs[t].Bytes())}
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for range 4 {
		wg.Go(func() {
			for bt := range batches {
				mu.Lock()
				stop := failed != nil
				mu.Unlock()
				if stop {
					continue
				}
				if err := qPostEvents(hc, base, d.write[bt.tenant], bt.body); err != nil {
					mu.Lock()
					failed = fmt.Errorf("load tenant %s: %w", qTenant(bt.tenant), err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	stream := st.Stream.(audit.StreamStats)
	for {
		last, committed, err := stream.Backlog(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if committed >= last {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Logf("loaded %d events in %s", total, time.Since(start).Round(time.Millisecond))
	for t := range qTenants {
		src := fmt.Sprintf("time:>=%s NOT action:vigil.* | stats count() as n", d.start.UTC().Format(time.RFC3339))
		rows, err := qPost(hc, base, d.read[t], src)
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) != 1 || len(rows[0]) != 1 || fmt.Sprint(rows[0][0]) != strconv.Itoa(d.perTenant[t]) {
			b.Fatalf("tenant %s holds %v events, want %d", qTenant(t), rows, d.perTenant[t])
		}
	}
	return d
}

// qPostEvents sends one NDJSON batch and fails unless every event in it
// was accepted.
func qPostEvents(hc *http.Client, base, key string, body []byte) error {
	req, _ := http.NewRequest("POST", base+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Accepted, Duplicates, Rejected int
		Results                        []struct {
			Index  int
			Status string
			Error  json.RawMessage
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d (%v)", resp.StatusCode, err)
	}
	if want := bytes.Count(body, []byte("\n")); res.Accepted != want {
		for _, r := range res.Results {
			if r.Status != "accepted" {
				return fmt.Errorf("%d of %d events accepted (%d duplicates, %d rejected); event %d: %s %s",
					res.Accepted, want, res.Duplicates, res.Rejected, r.Index, r.Status, r.Error)
			}
		}
		return fmt.Errorf("%d of %d events accepted", res.Accepted, want)
	}
	return nil
}

// qGet runs GET /v1/events?query and returns how many events it answered.
func qGet(hc *http.Client, base, key string, query url.Values) (int, error) {
	var page struct {
		Events []json.RawMessage `json:"events"`
	}
	err := qDo(hc, "GET", base+"/v1/events?"+query.Encode(), key, nil, &page)
	return len(page.Events), err
}

// qPost runs POST /v1/query and returns its rows.
func qPost(hc *http.Client, base, key, src string) ([][]any, error) {
	body, _ := json.Marshal(map[string]string{"q": src})
	var res struct {
		Rows [][]any `json:"rows"`
	}
	err := qDo(hc, "POST", base+"/v1/query", key, body, &res)
	return res.Rows, err
}

func qDo(hc *http.Client, method, url, key string, body []byte, out any) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// qShape is one search: run draws its parameters and returns how many
// events or rows it answered, and what it asked.
type qShape struct {
	name string
	run  func(r *rand.Rand, d *qData, hc *http.Client, base string) (rows int, asked string, err error)
}

// qAggQuery is the aggregation of make bench (bench/query.go,
// vigilAggQuery): distinct failed accounts per IP over the 24 hours ending
// at until, top 20.
func qAggQuery(until time.Time) string {
	return fmt.Sprintf("action:auth.login.failure time:>=%s time:<%s | stats dc(actor.id) as accounts by ip | sort -accounts | head 20",
		until.Add(-24*time.Hour).UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
}

func qSearch(param func(ev qEvent) (string, string)) func(*rand.Rand, *qData, *http.Client, string) (int, string, error) {
	return func(r *rand.Rand, d *qData, hc *http.Client, base string) (int, string, error) {
		ev := d.events[r.IntN(len(d.events))]
		k, v := param(ev)
		q := url.Values{k: {v}, "limit": {"100"}}
		n, err := qGet(hc, base, d.read[ev.tenant], q)
		return n, qTenant(int(ev.tenant)) + " " + q.Encode(), err
	}
}

var qShapes = []qShape{
	{"actor", qSearch(func(ev qEvent) (string, string) { return "actor", ev.actor })},
	{"ip", qSearch(func(ev qEvent) (string, string) { return "ip", ev.ip.String() })},
	{"ip24", qSearch(func(ev qEvent) (string, string) { return "ip", netip.PrefixFrom(ev.ip, 24).Masked().String() })},
	{"action-prefix", func(r *rand.Rand, d *qData, hc *http.Client, base string) (int, string, error) {
		t := r.IntN(qTenants)
		q := url.Values{"action": {"auth.*"}, "limit": {"100"}}
		n, err := qGet(hc, base, d.read[t], q)
		return n, qTenant(t) + " " + q.Encode(), err
	}},
	{"failed-per-ip-24h", func(r *rand.Rand, d *qData, hc *http.Client, base string) (int, string, error) {
		t := r.IntN(qTenants)
		src := qAggQuery(d.end)
		rows, err := qPost(hc, base, d.read[t], src)
		return len(rows), qTenant(t) + " " + src, err
	}},
}

// BenchmarkQueryHTTP measures searches and one aggregation through the HTTP
// API of three deployments, each loaded once with the same data set (see
// qEventAt; VIGIL_BENCH_QUERY_EVENTS events over 7 days, 200,000 by
// default): the embedded store; one node on PostgreSQL; and three nodes
// (the active one and two standbys that forward to it) on PostgreSQL and a
// three-server JetStream cluster, with the queries spread round-robin over
// the three. One client asks one query at a time, with a tenant's
// events:read key; each sub-benchmark reports the p50 and p99 latency of
// its b.N requests (until the answer is decoded) and the rows it got per
// request. Every query matches something: an empty answer fails the
// benchmark.
func BenchmarkQueryHTTP(b *testing.B) {
	b.Run("deploy=embedded", func(b *testing.B) {
		n, _ := benchNode(b)
		benchQueries(b, n, []string{n.url})
	})
	b.Run("deploy=postgres", func(b *testing.B) {
		n, _ := benchNode(b, onPostgres(b))
		benchQueries(b, n, []string{n.url})
	})
	b.Run("deploy=three-nodes", func(b *testing.B) {
		edit := onNATSCluster(b)
		active, key := benchNode(b, edit)
		benchQueries(b, active, []string{active.url, benchStandby(b, key, edit), benchStandby(b, key, edit)})
	})
}

// benchQueries loads the data set into n (the node that stores it, urls[0])
// and runs every shape against urls in turn.
func benchQueries(b *testing.B, n *node, urls []string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(hc.CloseIdleConnections)
	d := qLoad(b, n, urls[0], hc)
	for _, s := range qShapes {
		b.Run("shape="+s.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, uint64(len(s.name))))
			for i := range 5 { // warm up every node's connection and key cache
				if _, _, err := s.run(r, d, hc, urls[i%len(urls)]); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 0, b.N)
			rows := 0
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				got, asked, err := s.run(r, d, hc, urls[i%len(urls)])
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if got == 0 {
					b.Fatalf("%s: nothing found for %s", s.name, asked)
				}
				rows += got
			}
			b.StopTimer()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
		})
	}
}
