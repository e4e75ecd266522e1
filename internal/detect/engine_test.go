package detect_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/mock"
	"github.com/vigilhq/vigil/internal/rules"
)

func builtin(t testing.TB) []*rulelang.Rule {
	t.Helper()
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func newEngine(t testing.TB, opts detect.Options) *detect.Engine {
	t.Helper()
	if opts.Rules == nil {
		opts.Rules = builtin(t)
	}
	e, err := detect.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run processes recs in batches and returns the final findings as JSON.
func run(t testing.TB, e *detect.Engine, recs []*audit.Record, batch int) []audit.Finding {
	t.Helper()
	var all []audit.Finding
	for i := 0; i < len(recs); i += batch {
		fs, err := e.Process(t.Context(), recs[i:min(i+batch, len(recs))])
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, fs...)
	}
	fs, err := e.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return append(all, fs...)
}

func asJSON(t testing.TB, fs []audit.Finding) string {
	t.Helper()
	b, err := json.MarshalIndent(detect.Latest(fs), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReplayIsDeterministic(t *testing.T) {
	recs := genStream(20000, 500, 1)
	a := asJSON(t, run(t, newEngine(t, detect.Options{}), clone(recs), 500))
	b := asJSON(t, run(t, newEngine(t, detect.Options{}), clone(recs), 137))
	if a != b {
		t.Fatal("replaying the same stream gave different findings")
	}
	var fs []audit.Finding
	_ = json.Unmarshal([]byte(a), &fs)
	if len(fs) == 0 {
		t.Fatal("the generated stream with stuffing bursts produced no findings")
	}
	rules := map[string]int{}
	for _, f := range fs {
		rules[f.RuleID]++
	}
	t.Logf("%d findings: %v", len(fs), rules)
	if rules["credential-stuffing"] == 0 {
		t.Error("stuffing bursts were not detected")
	}
}

func TestRestartBetweenHalvesGivesSameFindings(t *testing.T) {
	recs := genStream(20000, 500, 2)
	want := asJSON(t, run(t, newEngine(t, detect.Options{}), clone(recs), 500))

	store := mock.NewStateStore()
	c := clone(recs)
	half := len(c) / 2
	e1 := newEngine(t, detect.Options{StateStore: store})
	got := run(t, e1, c[:half], 500)
	if err := e1.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The consumer may hand the last batch again after a crash: it is skipped.
	e2 := newEngine(t, detect.Options{StateStore: store})
	got = append(got, run(t, e2, c[half-100:], 500)...)
	if g := asJSON(t, got); g != want {
		t.Fatalf("findings differ after a restart between halves\nwant %d bytes, got %d bytes", len(want), len(g))
	}
	if e2.Position() != uint64(len(recs)) {
		t.Errorf("position %d, want %d", e2.Position(), len(recs))
	}
}

func TestRiskSetOnEveryLoginSuccess(t *testing.T) {
	recs := clone(genStream(3000, 100, 3))
	run(t, newEngine(t, detect.Options{}), recs, 1000)
	for _, r := range recs {
		ev := r.Event
		if (ev.Action == audit.ActionLoginSuccess) != (ev.Risk != nil) {
			t.Fatalf("event %s %s: risk %v", ev.ID, ev.Action, ev.Risk)
		}
		if ev.Risk != nil && (ev.Risk.Score < 0 || ev.Risk.Score > 100 || ev.Risk.Decision == "") {
			t.Fatalf("bad risk %+v", ev.Risk)
		}
	}
}

func TestScoreIsReadOnlyAndConcurrent(t *testing.T) {
	recs := genStream(4000, 50, 4)
	e := newEngine(t, detect.Options{})
	run(t, e, clone(recs[:2000]), 500)
	probe := recs[10].Event
	probe.Action = audit.ActionLoginSuccess
	before := e.Score(&probe)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				p := probe
				_ = e.Score(&p)
			}
		})
	}
	run(t, e, clone(recs[2000:]), 500)
	wg.Wait()
	e2 := newEngine(t, detect.Options{})
	run(t, e2, clone(recs[:2000]), 500)
	if got := e2.Score(&probe); !slices.Equal(got.Reasons, before.Reasons) || got.Score != before.Score {
		t.Fatalf("score changed: %+v vs %+v", got, before)
	}
}

func TestSetTenantConfig(t *testing.T) {
	e := newEngine(t, detect.Options{})
	tests := []struct {
		name  string
		set   []audit.RuleSetting
		allow []audit.AllowEntry
		field string
	}{
		{"ok", []audit.RuleSetting{{RuleID: "credential-stuffing", Params: map[string]any{"min_accounts": float64(20)}}}, []audit.AllowEntry{{Kind: "asn", Value: "AS64500"}, {Kind: "cidr", Value: "10.0.0.0/8"}, {Kind: "ip", Value: "192.0.2.1"}}, ""},
		{"unknown rule", []audit.RuleSetting{{RuleID: "nope"}}, nil, "rule_id"},
		{"unknown param", []audit.RuleSetting{{RuleID: "brute-force", Params: map[string]any{"min_fails": 3}}}, nil, "params.min_fails"},
		{"wrong type", []audit.RuleSetting{{RuleID: "brute-force", Params: map[string]any{"min_failures": "ten"}}}, nil, "params.min_failures"},
		{"below min", []audit.RuleSetting{{RuleID: "brute-force", Params: map[string]any{"min_failures": 1}}}, nil, "params.min_failures"},
		{"bad duration", []audit.RuleSetting{{RuleID: "brute-force", Params: map[string]any{"window": "soon"}}}, nil, "params.window"},
		{"bad cidr", nil, []audit.AllowEntry{{Kind: "cidr", Value: "10.0.0.0/99"}}, "value"},
		{"bad kind", nil, []audit.AllowEntry{{Kind: "country", Value: "FR"}}, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.SetTenantConfig("acme", tc.set, tc.allow)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if audit.ErrorCode(err) != audit.EINVALID || audit.ErrorField(err) != tc.field {
				t.Fatalf("err %v (field %q), want invalid %s", err, audit.ErrorField(err), tc.field)
			}
		})
	}
}

func TestTenantTuningChangesDetection(t *testing.T) {
	var recs []*audit.Record
	for i := range 12 {
		recs = append(recs, failure(i, fmt.Sprintf("u%d", i), "203.0.113.7"))
	}
	count := func(e *detect.Engine) int {
		n := 0
		for _, f := range detect.Latest(run(t, e, clone(recs), 100)) {
			if f.RuleID == "credential-stuffing" {
				n++
			}
		}
		return n
	}
	if n := count(newEngine(t, detect.Options{})); n != 1 {
		t.Fatalf("untuned: %d findings, want 1", n)
	}
	for name, tune := range map[string]func(e *detect.Engine) error{
		"disabled": func(e *detect.Engine) error {
			return e.SetTenantConfig("acme", []audit.RuleSetting{{RuleID: "credential-stuffing", Disabled: true}}, nil)
		},
		"raised": func(e *detect.Engine) error {
			return e.SetTenantConfig("acme", []audit.RuleSetting{{RuleID: "credential-stuffing", Params: map[string]any{"min_accounts": 50}}}, nil)
		},
		"allowlisted": func(e *detect.Engine) error {
			return e.SetTenantConfig("acme", nil, []audit.AllowEntry{{Kind: "cidr", Value: "203.0.113.0/24"}})
		},
	} {
		e := newEngine(t, detect.Options{})
		if err := tune(e); err != nil {
			t.Fatal(err)
		}
		if n := count(e); n != 0 {
			t.Errorf("%s: %d findings, want 0", name, n)
		}
	}
}

func failure(i int, actor, ip string) *audit.Record {
	ev := audit.Event{ID: fmt.Sprintf("f%d", i), Tenant: "acme", Action: audit.ActionLoginFailure, Reason: "invalid_password",
		Time: time.Date(2026, 3, 2, 9, 0, i*10, 0, time.UTC), Actor: audit.Actor{ID: actor}}
	ev.Context.IP = mustAddr(ip)
	ev.Normalize(ev.Time)
	return &audit.Record{Seq: uint64(i + 1), Event: ev}
}

func TestCheckpointError(t *testing.T) {
	store := mock.NewStateStore()
	e := newEngine(t, detect.Options{StateStore: store})
	run(t, e, clone(genStream(500, 20, 6)), 100)
	store.SaveErr = errors.New("disk full")
	if err := e.Checkpoint(t.Context()); err == nil {
		t.Fatal("checkpoint error was swallowed")
	}
	store.SaveErr = nil
	if err := e.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRebuildProfiles(t *testing.T) {
	recs := genStream(4000, 100, 7)
	store := mock.NewStateStore()
	e := newEngine(t, detect.Options{StateStore: store})
	run(t, e, clone(recs), 500)
	probe := recs[len(recs)-1].Event
	probe.Action = audit.ActionLoginSuccess
	want := e.Score(&probe)

	e2 := newEngine(t, detect.Options{StateStore: mock.NewStateStore()})
	i := 0
	err := e2.Rebuild(t.Context(), func() (*audit.Event, error) {
		if i == len(recs) {
			return nil, nil
		}
		i++
		ev := recs[i-1].Event
		return &ev, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := e2.Score(&probe); got.Score != want.Score || !slices.Equal(got.Reasons, want.Reasons) {
		t.Fatalf("rebuilt profile scores %+v, live %+v", got, want)
	}
}
