package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadResult is what one ingest phase measured.
type LoadResult struct {
	Clients, Batch                    int
	Events                            int64 // acknowledged (accepted or duplicate)
	Accepted                          int64
	Requests                          int64 // answered 202
	Status429, Status503, OtherErrors int64
	Elapsed                           time.Duration
	Lat                               []time.Duration // per 202 request
	From, To                          int             // generator index range sent
	// Reqs is every 202 request in the order answered, when
	// LoadOptions.Record is set: to cut a window out of a longer load.
	Reqs []Req
}

// Req is one acknowledged request: when its answer was read, how long it
// took and how many events it acknowledged.
type Req struct {
	End    time.Time
	Lat    time.Duration
	Events int
}

// Rate is acknowledged events per second.
func (r LoadResult) Rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// Pct returns the q-quantile of the request latencies.
func (r LoadResult) Pct(q float64) time.Duration { return pct(r.Lat, q) }

func pct(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// LoadOptions configures one ingest phase.
type LoadOptions struct {
	Clients int
	Batch   int // events per request; 1 sends a single JSON object
	From    int // first generator index
	To      int // stop before this index
	// Duration, when set, ends the phase early (the rest of the range is
	// left for the next phase).
	Duration time.Duration
	// Rate, when set, caps the events per second over all clients.
	Rate float64
	// Progress is called about once a second with events acknowledged so far.
	Progress func(acked int64)
	// Stop, when closed, ends the phase after each client's current
	// request (the rest of the range is left).
	Stop <-chan struct{}
	// Record keeps every acknowledged request in LoadResult.Reqs.
	Record bool
}

// sendEvents sends events [From, To) with Clients concurrent clients and
// retries 429/503 answers after their Retry-After, keeping the same ids.
func sendEvents(ctx context.Context, s *Server, g *Gen, o LoadOptions) LoadResult {
	res := LoadResult{Clients: o.Clients, Batch: o.Batch, From: o.From}
	var next atomic.Int64
	next.Store(int64(o.From))
	var acked, accepted, reqs, r429, r503, other atomic.Int64
	var mu sync.Mutex
	start := time.Now()
	deadline := time.Time{}
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	stop := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					o.Progress(acked.Load())
				case <-stop:
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			var lat []time.Duration
			var done []Req
			ct := "application/x-ndjson"
			if o.Batch == 1 {
				ct = "application/json"
			}
			for ctx.Err() == nil {
				if !deadline.IsZero() && time.Now().After(deadline) {
					break
				}
				if stopped(o.Stop) {
					break
				}
				if o.Rate > 0 {
					// Pace: the k-th event may leave at start + k/Rate.
					due := start.Add(time.Duration(float64(next.Load()-int64(o.From)) / o.Rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				lo := int(next.Add(int64(o.Batch))) - o.Batch
				if lo >= o.To {
					break
				}
				hi := min(lo+o.Batch, o.To)
				body = body[:0]
				for i := lo; i < hi; i++ {
					body, _ = g.AppendJSON(body, i)
					if o.Batch > 1 {
						body = append(body, '\n')
					}
				}
			send:
				for ctx.Err() == nil {
					t0 := time.Now()
					r, err := s.do(ctx, "POST", "/v1/events", ct, body)
					d := time.Since(t0)
					if err != nil {
						other.Add(1)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if r.Status == http.StatusAccepted {
						a, dup := ingestCounts(r.Body)
						acked.Add(int64(a + dup))
						accepted.Add(int64(a))
						reqs.Add(1)
						lat = append(lat, d)
						if o.Record {
							done = append(done, Req{End: t0.Add(d), Lat: d, Events: a + dup})
						}
						break
					}
					switch r.Status {
					case http.StatusTooManyRequests:
						r429.Add(1)
					case http.StatusServiceUnavailable:
						r503.Add(1)
					default:
						other.Add(1)
						if other.Load() < 5 {
							fmt.Printf("    unexpected answer %d: %.300s\n", r.Status, r.Body)
						}
						if r.Status < 500 {
							break send // not retryable: count it and move on
						}
					}
					wait := time.Second
					if n, err := strconv.Atoi(r.RetryAfter); err == nil {
						wait = time.Duration(n) * time.Second
					}
					time.Sleep(wait)
				}
			}
			mu.Lock()
			res.Lat = append(res.Lat, lat...)
			res.Reqs = append(res.Reqs, done...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	res.Elapsed = time.Since(start)
	res.Events, res.Accepted, res.Requests = acked.Load(), accepted.Load(), reqs.Load()
	res.Status429, res.Status503, res.OtherErrors = r429.Load(), r503.Load(), other.Load()
	res.To = min(int(next.Load()), o.To)
	slices.SortFunc(res.Reqs, func(a, b Req) int { return a.End.Compare(b.End) })
	return res
}

// stopped reports whether stop is closed (never, when nil).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// ingestCounts reads "accepted" and "duplicates" from the start of a 202
// body without decoding its per-event results.
func ingestCounts(b []byte) (accepted, duplicates int) {
	return jsonInt(b, `"accepted":`), jsonInt(b, `"duplicates":`)
}

func jsonInt(b []byte, key string) int {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range b[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// DrainResult is how the pipeline caught up.
type DrainResult struct {
	Stored  float64       // vigil_pipeline_events_total at the end
	Elapsed time.Duration // from the phase start until lag reached 0
	MaxLag  float64
}

// waitDrained polls /metrics until the pipeline has processed want events
// in total and its lag is 0. start is when the measured traffic began.
func waitDrained(ctx context.Context, s *Server, want float64, start time.Time, timeout time.Duration, progress func(stored, lag float64)) (DrainResult, error) {
	var res DrainResult
	deadline := time.Now().Add(timeout)
	last := time.Time{}
	for {
		m, err := s.scrape(ctx)
		if err != nil {
			return res, err
		}
		stored, lag := m["vigil_pipeline_events_total"], m["vigil_pipeline_lag_events"]
		res.Stored, res.MaxLag = stored, max(res.MaxLag, lag)
		if progress != nil && time.Since(last) >= 2*time.Second {
			progress(stored, lag)
			last = time.Now()
		}
		if stored >= want && lag == 0 {
			res.Elapsed = time.Since(start)
			return res, nil
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("pipeline stored %.0f of %.0f events (lag %.0f) after %s", stored, want, lag, timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
