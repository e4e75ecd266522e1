// Package demo is `vigil demo`: it starts a real Vigil server on an
// embedded store in a fresh directory, simulates a SaaS with a few tenants
// and thousands of users (internal/sim), replays weeks of their history,
// runs live account-takeover campaigns against them, and reports which
// campaigns were caught, by which rule, how fast, and how many false alarms
// the benign population raised.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/sim"
)

// Options configures a demo run.
type Options struct {
	// Dir holds the demo's data. When empty the demo uses a fresh
	// temporary directory and removes it when it returns, however it ends
	// (an error, --exit or a cancelled context); a given Dir is kept.
	Dir string
	// Addr is the listen address; 127.0.0.1:8080, or a free port when that is taken.
	Addr string
	// CityDB is an optional GeoIP city database; without it events carry
	// their location themselves (offline mode).
	CityDB string
	// Seed makes the simulation reproducible.
	Seed uint64
	// Tenants and UsersPerTenant size the simulated SaaS.
	Tenants        []string
	UsersPerTenant int
	// Days of history replayed before the attacks.
	Days int
	// Exit stops the server after the report instead of serving until ctx ends.
	Exit bool
	// Out receives the report and progress.
	Out io.Writer
	// Now is the wall clock (time.Now when nil). The simulated month lies
	// safely before it: see Anchor.
	Now func() time.Time
}

// Anchor is when a run's history ends and its attacks begin: the weekday
// and hour of day the seed picks, in the week before last relative to now.
// Every event a run sends is at least a week in the past, whatever the
// hour the demo starts (the server refuses events from the future), and
// what a run finds depends on the seed only: the habits the simulation and
// the rules know of (weekdays, hours of the day) are the seed's, never the
// clock's.
func Anchor(seed uint64, now time.Time) time.Time {
	now = now.UTC()
	monday := time.Date(now.Year(), now.Month(), now.Day()-(int(now.Weekday())+6)%7, 0, 0, 0, 0, time.UTC)
	z := seed + 0x9e3779b97f4a7c15 // splitmix64: neighbouring seeds land on unrelated hours
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return monday.AddDate(0, 0, -14).Add(time.Duration(z%(7*24)) * time.Hour)
}

// Report is what a run found.
type Report struct {
	Campaigns []CampaignResult
	// FalseAlarms counts, by rule, the findings none of whose evidence is
	// an attack event: alarms raised on the benign population alone.
	FalseAlarms map[string]int
	// OnAttacked counts the findings without an attack event as evidence
	// on an account an attacker tried or used, within two hours: the
	// owner's own activity set against the attacker's (impossible travel
	// between the owner's login and the attacker's), not false alarms.
	OnAttacked int
	// FalseBySeverity counts the same findings by severity.
	FalseBySeverity map[string]int
	// FalseSamples are a few false alarms' explanations, by rule.
	FalseSamples map[string]string
	// BenignUsers is the size of the benign population.
	BenignUsers  int
	HistoryCount int
	LiveCount    int
	// BenignEvents is how many of the events sent were benign (the history
	// and the live traffic that is no campaign's).
	BenignEvents int
	// Anchor is when the history ended and the campaigns began.
	Anchor time.Time
	// HardCases counts the benign users of each hard kind (VPN users,
	// travellers, night shifts, new hires…), all part of the benign
	// population the false alarms are counted on.
	HardCases map[string]int
}

// FalseAlarmsPer10k is the false alarms per 10,000 benign events.
func (r *Report) FalseAlarmsPer10k() float64 {
	n := 0
	for _, c := range r.FalseAlarms {
		n += c
	}
	return float64(n) * 10000 / float64(max(r.BenignEvents, 1))
}

// CampaignResult is one campaign's outcome.
type CampaignResult struct {
	Name, Description string
	Caught            bool
	// Caught means a finding of the campaign's own family (Expect) at
	// medium severity or above has an attack event of it as evidence.
	Rules       []string // rules of the campaign's own family that fired at medium or above
	Also        []string // other rules that fired on the campaign
	Latency     time.Duration
	Explanation string
	// Severity is the highest severity of the campaign's own findings.
	Severity string
}

// Run runs the demo. It returns after the report when o.Exit is set, else
// when ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Seed == 0 {
		o.Seed = 42
	}
	if len(o.Tenants) == 0 {
		o.Tenants = []string{"acme", "globex", "initech"}
	}
	if o.UsersPerTenant == 0 {
		o.UsersPerTenant = 1000
	}
	if o.Days == 0 {
		o.Days = 21
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "vigil-demo-")
		if err != nil {
			return nil, err
		}
		o.Dir = d
		// Registered first, so it runs last: after the server has stopped
		// and closed its files.
		defer os.RemoveAll(d)
	}
	hostingList := filepath.Join(o.Dir, "demo-hosting.txt")
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(hostingList, []byte("# the simulated attackers' hosting provider, listed as an operator would\n"+sim.Hosting.Block.String()+"\n"), 0o640); err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Server.Addr = pickAddr(o.Addr)
	cfg.Storage.SQLite.Dir = filepath.Join(o.Dir, "data")
	cfg.Enrich.CityDB = o.CityDB
	cfg.Enrich.Lists = []config.IPList{{Name: "demo-hosting", Kind: "datacenter", Path: hostingList}}
	cfg.Log.Level = "error"

	p := newProgress(o.Out)
	p.line("Starting Vigil (embedded store in %s)", cfg.Storage.SQLite.Dir)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	a, err := app.New(runCtx, cfg, app.Options{Stderr: io.Discard, Now: o.Now})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { stop(); <-done }()
	base := "http://" + a.Addr()
	op, err := client.New(base, client.WithAPIKey(a.BootstrapKey), client.WithUserAgent("vigil-demo"))
	if err != nil {
		return nil, err
	}
	for _, t := range o.Tenants {
		if _, err := op.CreateTenant(ctx, client.CreateTenantRequest{ID: t, Name: strings.ToUpper(t[:1]) + t[1:] + " Inc."}); err != nil {
			return nil, fmt.Errorf("create tenant %s: %w", t, err)
		}
	}

	world := sim.NewWorld(o.Seed, o.Tenants, o.UsersPerTenant)
	now := Anchor(o.Seed, o.Now())
	liveStart := now.Add(-30 * time.Minute)
	history := world.History(now.Add(-time.Hour), o.Days)
	campaigns := world.Campaigns(now)
	live := world.Live(now, 30)
	owner := map[string]int{} // event id → campaign index
	for i, c := range campaigns {
		for _, e := range c.Events {
			owner[e.ID] = i
			// A slow campaign's earlier events belong to the history,
			// in time order among the benign ones.
			if e.Time.Before(liveStart) {
				history = append(history, e)
			} else {
				live = append(live, e)
			}
		}
	}
	slices.SortStableFunc(history, func(a, b client.Event) int { return a.Time.Compare(b.Time) })
	slices.SortStableFunc(live, func(a, b client.Event) int { return a.Time.Compare(b.Time) })
	rep := &Report{BenignUsers: len(world.Users), HistoryCount: len(history), FalseAlarms: map[string]int{},
		FalseBySeverity: map[string]int{}, FalseSamples: map[string]string{}, Anchor: now}
	p.line("Replaying %d days of history: %d users in %d tenants, %d events", o.Days, len(world.Users), len(o.Tenants), len(history))
	if err := send(ctx, op, history, 5000, func(done int) { p.bar("history", done, len(history)) }); err != nil {
		return nil, err
	}
	if err := waitDrained(ctx, a, func(lag uint64) { p.status("processing history: %d events to go", lag) }); err != nil {
		return nil, err
	}
	p.done()

	rep.LiveCount = len(live)
	rep.HardCases = world.HardCases()
	rep.BenignEvents = len(history) + len(live) - len(owner)
	p.line("Running %d attack campaigns among %d live events", len(campaigns), len(live))

	// Poll findings while the live traffic flows, remembering when each
	// was first seen.
	watch := newWatcher(op)
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	since := now.Add(-time.Duration(o.Days+1) * 24 * time.Hour)
	go func() { defer wg.Done(); watch.run(pollCtx, since) }()

	lastAck := make([]time.Time, len(campaigns))
	err = send(ctx, op, live, 200, func(n int) { p.bar("live", n, len(live)) }, func(batch []client.Event) {
		t := time.Now()
		for _, e := range batch {
			if i, ok := owner[e.ID]; ok {
				lastAck[i] = t
			}
		}
	})
	if err != nil {
		stopPoll()
		wg.Wait()
		return nil, err
	}
	if err := waitDrained(ctx, a, func(lag uint64) { p.status("processing live traffic: %d events to go", lag) }); err != nil {
		stopPoll()
		wg.Wait()
		return nil, err
	}
	// The simulated traffic ends here: evaluate what detection still holds
	// for event-time order rather than wait the allowed lateness.
	if err := a.FlushDetection(ctx); err != nil {
		stopPoll()
		wg.Wait()
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // let the watcher see the last findings
	stopPoll()
	wg.Wait()
	p.done()

	findings := watch.all()
	if err := watch.err(); err != nil {
		return nil, err
	}
	for i, c := range campaigns {
		r := CampaignResult{Name: c.Name, Description: c.Description}
		ids := c.IDs()
		first := time.Time{}
		for _, f := range findings {
			if !touches(f.Finding, ids) {
				continue
			}
			if slices.Contains(c.Expect, f.RuleID) && severityRank(f.Severity) >= severityRank(client.SeverityMedium) {
				if severityRank(f.Severity) > severityRank(r.Severity) {
					r.Severity = f.Severity
				}
				r.Caught = true
				if !slices.Contains(r.Rules, f.RuleID) {
					r.Rules = append(r.Rules, f.RuleID)
				}
				if first.IsZero() || f.seen.Before(first) {
					first, r.Explanation = f.seen, f.Explanation
				}
			} else if !slices.Contains(r.Also, f.RuleID) {
				r.Also = append(r.Also, f.RuleID)
			}
		}
		if r.Caught && !lastAck[i].IsZero() {
			r.Latency = max(0, first.Sub(lastAck[i]))
		}
		sort.Strings(r.Rules)
		sort.Strings(r.Also)
		rep.Campaigns = append(rep.Campaigns, r)
	}
	// An account an attacker logged into stays part of the attack for a
	// while: its owner's next login, compared with the attacker's, is
	// evidence of the takeover, not a false alarm.
	type span struct{ from, to time.Time }
	taken := map[string]span{}
	for _, c := range campaigns {
		for _, e := range c.Events {
			if e.Action != "auth.login.success" && e.Action != "auth.login.failure" {
				continue
			}
			if e.Action == "auth.login.failure" && e.Reason != "invalid_password" {
				continue
			}
			k := e.Tenant + "|" + e.Actor.ID
			sp, ok := taken[k]
			if !ok || e.Time.Before(sp.from) {
				sp.from = e.Time
			}
			if end := e.Time.Add(2 * time.Hour); end.After(sp.to) {
				sp.to = end
			}
			taken[k] = sp
		}
	}
	for _, f := range findings {
		attack := false
		for _, id := range f.Evidence {
			if _, ok := owner[id]; ok {
				attack = true
				break
			}
		}
		if sp, ok := taken[f.Tenant+"|"+f.ActorID]; ok && f.ActorID != "" && !f.LastSeen.Before(sp.from) && !f.FirstSeen.After(sp.to) {
			rep.OnAttacked++
			attack = true
		}
		if !attack {
			rep.FalseAlarms[f.RuleID]++
			rep.FalseBySeverity[f.Severity]++
			if _, ok := rep.FalseSamples[f.RuleID]; !ok {
				rep.FalseSamples[f.RuleID] = f.Severity + ": " + f.Explanation
			}
		}
	}
	printReport(o.Out, rep)
	if o.Exit {
		return rep, nil
	}
	if err := printServing(ctx, o.Out, op, a, base, o.Tenants[0]); err != nil {
		return nil, err
	}
	fmt.Fprintln(o.Out, "Press Ctrl-C to stop (the demo's data is removed then, unless --dir was given).")
	<-ctx.Done()
	return rep, nil
}

// printServing tells how to look at what the demo found while it keeps
// serving: the console's address with a viewer link for one tenant (a
// viewer token minted through the API, as a tenant admin would), a read
// key and a first request. Everything a user is invited to open after the
// report belongs here, and only here: with --exit nothing is served, so
// nothing is shown.
func printServing(ctx context.Context, w io.Writer, op *client.Client, a *app.App, base, tenant string) error {
	link, err := op.CreateViewerToken(ctx, client.ViewerTokenRequest{Tenant: tenant, Name: "vigil demo", TTL: "8h"})
	if err != nil {
		return fmt.Errorf("mint the demo's viewer link: %w", err)
	}
	readKey, err := op.CreateKey(ctx, client.CreateKeyRequest{Tenant: tenant, Name: "demo read key", Scopes: []string{"events:read", "findings:read"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nVigil is serving at %s\n", base)
	fmt.Fprintf(w, "\nOpen the console to see the caught attacks of tenant %s (viewer link, valid 8 hours):\n", tenant)
	fmt.Fprintf(w, "  %s%s\n", base, link.Path)
	fmt.Fprintf(w, "  or sign in at %s/signin with the operator key to see every tenant.\n\n", base)
	fmt.Fprintf(w, "  read key for tenant %s:  %s\n", tenant, string(readKey.Secret))
	fmt.Fprintf(w, "  operator key:             %s\n", a.BootstrapKey)
	fmt.Fprintf(w, "  try: curl -s -H 'Authorization: Bearer %s' '%s/v1/incidents?severity=high' | head -c 600\n", string(readKey.Secret), base)
	return nil
}

// pickAddr uses the requested address, or 127.0.0.1:8080 when free, else a free port.
func pickAddr(addr string) string {
	if addr != "" {
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		return "127.0.0.1:0"
	}
	ln.Close()
	return "127.0.0.1:8080"
}

// send posts events in batches, reporting progress and each acknowledged batch.
func send(ctx context.Context, c *client.Client, events []client.Event, batch int, progress func(int), acked ...func([]client.Event)) error {
	for start := 0; start < len(events); start += batch {
		chunk := events[start:min(start+batch, len(events))]
		res, err := c.Send(ctx, chunk...)
		if err != nil {
			return fmt.Errorf("send events: %w", err)
		}
		if res.Rejected > 0 {
			for _, r := range res.Results {
				if r.Error != nil {
					return fmt.Errorf("the server rejected a simulated event (%s): %s", r.Error.Field, r.Error.Message)
				}
			}
		}
		for _, f := range acked {
			f(chunk)
		}
		progress(start + len(chunk))
	}
	return nil
}

// waitDrained waits until the pipeline has processed every accepted event.
func waitDrained(ctx context.Context, a *app.App, status func(uint64)) error {
	st, ok := a.Stores().Stream.(audit.StreamStats)
	if !ok {
		return errors.New("the stream reports no backlog")
	}
	for {
		last, committed, err := st.Backlog(ctx)
		if err != nil {
			return err
		}
		if committed >= last {
			return nil
		}
		status(last - committed)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// severityRank orders severities: low 1 … critical 4, unknown 0.
func severityRank(s string) int {
	return slices.Index([]string{client.SeverityLow, client.SeverityMedium, client.SeverityHigh, client.SeverityCritical}, s) + 1
}

// FalseAboveLow counts the false alarms above low severity.
func (r *Report) FalseAboveLow() int {
	n := 0
	for sev, c := range r.FalseBySeverity {
		if severityRank(sev) > severityRank(client.SeverityLow) {
			n += c
		}
	}
	return n
}

// CaughtShare is the share of campaigns caught.
func (r *Report) CaughtShare() float64 {
	n := 0
	for _, c := range r.Campaigns {
		if c.Caught {
			n++
		}
	}
	return float64(n) / float64(max(len(r.Campaigns), 1))
}

func touches(f client.Finding, ids map[string]bool) bool {
	for _, id := range f.Evidence {
		if ids[id] {
			return true
		}
	}
	return false
}

func printReport(w io.Writer, r *Report) {
	fmt.Fprintln(w, "\nCampaigns")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAMPAIGN\tCAUGHT\tBY RULE (MEDIUM+)\tDETECTED IN\tALSO FIRED")
	caught := 0
	for _, c := range r.Campaigns {
		mark, lat := "NO", "-"
		if c.Caught {
			mark, lat = "yes", c.Latency.Round(time.Millisecond).String()
			caught++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, mark, strings.Join(c.Rules, ", "), lat, strings.Join(c.Also, ", "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d of %d campaigns caught.\n", caught, len(r.Campaigns))
	total := 0
	var rules []string
	for rule, n := range r.FalseAlarms {
		total += n
		rules = append(rules, fmt.Sprintf("%s %d", rule, n))
	}
	sort.Strings(rules)
	fmt.Fprintf(w, "False alarms on the benign population (%d users, %d benign events): %d", r.BenignUsers, r.BenignEvents, total)
	if total > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(rules, ", "))
	}
	fmt.Fprintf(w, ", %.2f per 10,000 benign events; %d above low\n", r.FalseAlarmsPer10k(), r.FalseAboveLow())
	fmt.Fprintln(w, "  (a false alarm is a finding none of whose evidence is an attack event: every finding of any severity")
	fmt.Fprintln(w, "   raised on ordinary users' history and live traffic alone; the goal is at most 1 per 10,000 events)")
	var samples []string
	for rule, s := range r.FalseSamples {
		samples = append(samples, rule+" — "+s)
	}
	sort.Strings(samples)
	for _, s := range samples {
		fmt.Fprintf(w, "  false alarm: %s\n", s)
	}
	fmt.Fprintln(w, "How each campaign was caught:")
	for _, c := range r.Campaigns {
		if c.Explanation != "" {
			fmt.Fprintf(w, "  · %s: %s\n", c.Name, c.Explanation)
		}
	}
}
