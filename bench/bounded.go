package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BoundedOptions shapes the bounded-resources scenario: what a hostile
// tenant sends, and the bounds the server must stay under meanwhile.
type BoundedOptions struct {
	// Days is how many distinct days of event time the backfill tenant
	// sends (each a partition file).
	Days int
	// Agents is how many distinct user agents (and client-supplied cities)
	// one tenant sends on one day.
	Agents int
	// UnknownKeys is how many events, each with its own unknown JSON key,
	// are sent (and rejected).
	UnknownKeys int
	// HugeArrays is how many concurrent requests each carry a body of a
	// few million empty objects (just under server.max_body_size).
	HugeArrays int
	// MaxOpenPartitions is storage.sqlite.max_open_partitions for the
	// server (0: its default, 64).
	MaxOpenPartitions int
	// FDLimit bounds the server's open descriptors at every check;
	// RestartFDLimit right after a restart on all those partitions.
	FDLimit, RestartFDLimit int
	// RSSLimit bounds the server's peak resident memory (VmHWM).
	RSSLimit int64
	// SeriesLimit bounds the number of metric series; SeriesGrowth how
	// many the unknown-key probe may add.
	SeriesLimit, SeriesGrowth int
}

// BoundedReport is what the bounded scenario measured.
type BoundedReport struct {
	MaxFDs, RestartFDs, PartitionFiles int
	HWM, RSSEnd                        int64
	Series, SeriesGrowth               int
	Restart                            time.Duration
}

// fdsPerPartition is the most descriptors one open partition holds (a writer and
// four reader connections with their WAL, plus the shared memory file).
const fdsPerPartition = 11

// DefaultBoundedOptions are the long form's sizes and bounds.
func DefaultBoundedOptions() BoundedOptions {
	o := BoundedOptions{Days: 3000, Agents: 50_000, UnknownKeys: 5_000, HugeArrays: 4,
		RSSLimit: 768 << 20, SeriesLimit: 2000, SeriesGrowth: 20}
	return o.withFDLimits()
}

// withFDLimits derives the descriptor bounds from the open-partition bound:
// every open partition's descriptors plus 200 for everything else (stream,
// meta, listeners, clients, Go runtime); right after a restart no partition
// may be open, so 200 alone.
func (o BoundedOptions) withFDLimits() BoundedOptions {
	open := o.MaxOpenPartitions
	if open == 0 {
		open = 64
	}
	if o.FDLimit == 0 {
		o.FDLimit = open*fdsPerPartition + 200
	}
	if o.RestartFDLimit == 0 {
		o.RestartFDLimit = 200
	}
	return o
}

func openFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// sendJSON posts events (JSON objects, already encoded) as one array,
// waiting out 429s as a client would.
func sendJSON(ctx context.Context, s *Server, events [][]byte) (Response, error) {
	body := append([]byte{'['}, bytes.Join(events, []byte{','})...)
	body = append(body, ']')
	for {
		r, err := s.do(ctx, "POST", "/v1/events", "application/json", body)
		if err != nil || r.Status != http.StatusTooManyRequests {
			return r, err
		}
		wait, _ := strconv.Atoi(r.RetryAfter)
		select {
		case <-time.After(time.Duration(max(wait, 1)) * time.Second):
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// countEvents pages through a tenant's events matching q and counts them.
// Every search is itself recorded in the tenant's log (a vigil.search
// event), so q should name the action it counts.
func countEvents(ctx context.Context, s *Server, query url.Values) (int, error) {
	// A copy: the caller polls with the same values, and a cursor left in
	// them would start the next count at the previous count's second page.
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Del("cursor")
	n, cursor := 0, ""
	q.Set("limit", "1000")
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := s.decode(ctx, "GET", "/v1/events?"+q.Encode(), nil, &page); err != nil {
			return n, err
		}
		n += len(page.Events)
		if page.NextCursor == "" {
			return n, nil
		}
		cursor = page.NextCursor
	}
}

// waitCount waits until countEvents reaches want.
func waitCount(ctx context.Context, s *Server, q url.Values, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := countEvents(ctx, s, q)
		if err != nil {
			return err
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d events (%s) searchable after %s", n, want, q.Encode(), timeout)
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ScenarioBounded attacks a real server as a tenant with a key could, and
// checks that descriptors, memory and metric series stay under stated
// bounds: events on thousands of distinct days (through a tenant an
// operator allowed to backfill; an ordinary tenant's old event is
// refused), tens of thousands of distinct user agents and cities, events
// with unknown keys, and huge arrays of empty objects. Then it restarts the
// server on all those partitions and checks that it starts with few
// descriptors and still finds every event.
func ScenarioBounded(ctx context.Context, env Env, o BoundedOptions) (BoundedReport, error) {
	var rep BoundedReport
	o = o.withFDLimits()
	var extra []string
	if o.MaxOpenPartitions > 0 {
		extra = append(extra, "VIGIL_STORAGE_SQLITE_MAX_OPEN_PARTITIONS="+strconv.Itoa(o.MaxOpenPartitions))
	}
	dir := filepath.Join(env.Work, "bounded-data")
	srv, err := StartServer(env.Bin, dir, extra...)
	if err != nil {
		return rep, err
	}
	defer func() { srv.Kill() }()
	for _, body := range []string{`{"id":"plain"}`, `{"id":"backfill","max_event_age_days":36500}`} {
		r, err := srv.do(ctx, "POST", "/v1/tenants", "application/json", []byte(body))
		if err != nil {
			return rep, err
		}
		if r.Status != http.StatusCreated {
			return rep, fmt.Errorf("create tenant %s: %d %.300s", body, r.Status, r.Body)
		}
	}
	var f failures
	check := func(stage string) {
		fds, err := openFDs(srv.Pid())
		if err != nil {
			f.add("%s: %v", stage, err)
			return
		}
		rss, _ := ProcStatus(srv.Pid(), "VmRSS")
		m, err := srv.scrape(ctx)
		if err != nil {
			f.add("%s: %v", stage, err)
			return
		}
		rep.MaxFDs, rep.RSSEnd, rep.Series = max(rep.MaxFDs, fds), rss, len(m)
		env.Logf("  %s: %d descriptors, RSS %d MiB, %d metric series", stage, fds, rss>>20, len(m))
		if fds > o.FDLimit {
			f.add("%s: %d open descriptors, bound %d", stage, fds, o.FDLimit)
		}
		if len(m) > o.SeriesLimit {
			f.add("%s: %d metric series, bound %d", stage, len(m), o.SeriesLimit)
		}
	}
	check("started")
	end := time.Now().Add(-time.Minute).UTC()

	// An ordinary tenant may not date an event a year back.
	old := fmt.Appendf(nil, `{"tenant":"plain","action":"app.record.imported","time":%q}`,
		end.Add(-400*24*time.Hour).Format(time.RFC3339))
	r, err := sendJSON(ctx, srv, [][]byte{old})
	if err != nil {
		return rep, err
	}
	if r.Status != http.StatusBadRequest || !bytes.Contains(r.Body, []byte("older than the tenant's allowed age")) {
		f.add("an ordinary tenant's event 400 days old: %d %.300s, want 400 naming the allowed age", r.Status, r.Body)
	}

	// Thousands of days through the backfill tenant, 1,000 per request.
	for lo := 0; lo < o.Days; lo += 1000 {
		var evs [][]byte
		for d := lo; d < min(lo+1000, o.Days); d++ {
			evs = append(evs, fmt.Appendf(nil, `{"tenant":"backfill","id":"day-%d","action":"app.record.imported","time":%q,"actor":{"id":"importer"}}`,
				d, end.Add(-time.Duration(d)*24*time.Hour).Format(time.RFC3339)))
		}
		r, err := sendJSON(ctx, srv, evs)
		if err != nil {
			return rep, err
		}
		if a, _ := ingestCounts(r.Body); r.Status != http.StatusAccepted || a != len(evs) {
			return rep, fmt.Errorf("backfill of %d days: %d %.300s", len(evs), r.Status, r.Body)
		}
	}
	if err := waitCount(ctx, srv, url.Values{"tenant": {"backfill"}, "action": {"app.record.imported"}}, o.Days, 5*time.Minute); err != nil {
		return rep, err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events", "*.db"))
	rep.PartitionFiles = len(files)
	if len(files) < o.Days {
		f.add("%d partition files for %d distinct days", len(files), o.Days)
	}
	check(fmt.Sprintf("%d days stored (%d partition files)", o.Days, len(files)))

	// Distinct user agents and client cities, all on one day.
	for lo := 0; lo < o.Agents; lo += 1000 {
		var evs [][]byte
		for i := lo; i < min(lo+1000, o.Agents); i++ {
			evs = append(evs, fmt.Appendf(nil, `{"tenant":"plain","id":"ua-%d","action":"app.page.viewed","time":%q,"actor":{"id":"u%d"},`+
				`"context":{"user_agent":"Mozilla/5.0 (X11; Linux x86_64) Probe/%d.%d","geo":{"country":"DE","city":"City %d"}}}`,
				i, end.Add(-time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i%500, i, i*7, i))
		}
		r, err := sendJSON(ctx, srv, evs)
		if err != nil {
			return rep, err
		}
		if a, _ := ingestCounts(r.Body); r.Status != http.StatusAccepted || a != len(evs) {
			return rep, fmt.Errorf("user agents %d–%d: %d %.300s", lo, lo+len(evs), r.Status, r.Body)
		}
	}
	if err := waitCount(ctx, srv, url.Values{"tenant": {"plain"}, "action": {"app.page.viewed"}}, o.Agents, 5*time.Minute); err != nil {
		return rep, err
	}
	check(fmt.Sprintf("%d distinct user agents stored", o.Agents))

	// Unknown keys: every event its own, all rejected; the rejection
	// metric must not grow a series per key. One first request creates the
	// series a rejection legitimately adds.
	unknown := func(i int) []byte {
		return fmt.Appendf(nil, `{"tenant":"plain","action":"app.page.viewed","k_%d_%s":1}`, i, strings.Repeat("x", 200))
	}
	if _, err := sendJSON(ctx, srv, [][]byte{unknown(-1)}); err != nil {
		return rep, err
	}
	before, err := srv.scrape(ctx)
	if err != nil {
		return rep, err
	}
	for lo := 0; lo < o.UnknownKeys; lo += 500 {
		var evs [][]byte
		for i := lo; i < min(lo+500, o.UnknownKeys); i++ {
			evs = append(evs, unknown(i))
		}
		r, err := sendJSON(ctx, srv, evs)
		if err != nil {
			return rep, err
		}
		if a, _ := ingestCounts(r.Body); a != 0 || r.Status >= 500 {
			f.add("events with unknown keys: %d %.300s, want every one rejected", r.Status, r.Body)
			break
		}
	}
	after, err := srv.scrape(ctx)
	if err != nil {
		return rep, err
	}
	rep.SeriesGrowth = len(after) - len(before)
	if rep.SeriesGrowth > o.SeriesGrowth {
		f.add("%d events with distinct unknown keys added %d metric series, bound %d", o.UnknownKeys, rep.SeriesGrowth, o.SeriesGrowth)
	}
	check(fmt.Sprintf("%d unknown keys rejected (+%d series)", o.UnknownKeys, rep.SeriesGrowth))

	// Huge arrays: millions of {} just under the body limit, concurrently.
	huge := append([]byte{'['}, bytes.Repeat([]byte("{},"), (15<<20)/3)...)
	huge[len(huge)-1] = ']'
	var wg sync.WaitGroup
	statuses := make([]int, o.HugeArrays)
	for i := range o.HugeArrays {
		wg.Go(func() {
			r, err := srv.do(ctx, "POST", "/v1/events", "application/json", huge)
			if err == nil {
				statuses[i] = r.Status
			}
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st < 400 || st >= 500 {
			f.add("huge array %d: status %d, want a 4xx refusal", i, st)
		}
	}
	check(fmt.Sprintf("%d concurrent arrays of %d empty objects refused %v", o.HugeArrays, (15<<20)/3, statuses))
	rep.HWM, _ = ProcStatus(srv.Pid(), "VmHWM")
	if rep.HWM > o.RSSLimit {
		f.add("peak RSS (VmHWM) %d MiB, bound %d MiB", rep.HWM>>20, o.RSSLimit>>20)
	}

	// Restart on every partition: nothing is opened at start.
	key := srv.Key
	if err := srv.Stop(time.Minute); err != nil {
		return rep, err
	}
	t0 := time.Now()
	if srv, err = StartServer(env.Bin, dir, extra...); err != nil {
		return rep, fmt.Errorf("restart on %d partitions: %w", len(files), err)
	}
	rep.Restart = time.Since(t0)
	srv.Key = key
	rep.RestartFDs, _ = openFDs(srv.Pid())
	env.Logf("  restart on %d partition files: listening after %s with %d descriptors", len(files), rep.Restart.Round(time.Millisecond), rep.RestartFDs)
	if rep.RestartFDs > o.RestartFDLimit {
		f.add("restart on %d partition files: %d descriptors, bound %d", len(files), rep.RestartFDs, o.RestartFDLimit)
	}
	if n, err := countEvents(ctx, srv, url.Values{"tenant": {"backfill"}, "action": {"app.record.imported"}}); err != nil || n != o.Days {
		f.add("after the restart the backfill tenant's search found %d of %d events (%v)", n, o.Days, err)
	}
	check("after restart, every day searched")
	hwm, _ := ProcStatus(srv.Pid(), "VmHWM")
	if hwm > o.RSSLimit {
		f.add("peak RSS after the restart %d MiB, bound %d MiB", hwm>>20, o.RSSLimit>>20)
	}
	return rep, f.err()
}
