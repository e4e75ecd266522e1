package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func runTenants(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.Tenants
	if s == nil {
		t.Skip("backend has no tenant store")
	}
	ctx := t.Context()
	noErr(t, s.CreateTenant(ctx, audit.Tenant{ID: "zeta", Name: "Zeta", RetentionDays: 30, CreatedAt: baseTime}))
	noErr(t, s.CreateTenant(ctx, audit.Tenant{ID: "acme", Name: "Acme", RetentionDays: 90, MaxEventAgeDays: 3650, CreatedAt: baseTime}))
	wantCode(t, s.CreateTenant(ctx, audit.Tenant{ID: "acme"}), audit.ECONFLICT)
	got, err := s.GetTenant(ctx, "acme")
	noErr(t, err)
	sameJSON(t, "tenant", *got, audit.Tenant{ID: "acme", Name: "Acme", RetentionDays: 90, MaxEventAgeDays: 3650, CreatedAt: baseTime})
	_, err = s.GetTenant(ctx, "nope")
	wantCode(t, err, audit.ENOTFOUND)
	list, err := s.ListTenants(ctx)
	noErr(t, err)
	if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "zeta" {
		t.Fatalf("ListTenants = %+v, want acme, zeta", list)
	}
	noErr(t, s.UpdateTenant(ctx, audit.Tenant{ID: "acme", Name: "Acme Inc", RetentionDays: 365}))
	got, err = s.GetTenant(ctx, "acme")
	noErr(t, err)
	if got.Name != "Acme Inc" || got.RetentionDays != 365 || got.MaxEventAgeDays != 0 || !got.CreatedAt.Equal(baseTime) {
		t.Fatalf("after update: %+v", got)
	}
	wantCode(t, s.UpdateTenant(ctx, audit.Tenant{ID: "nope"}), audit.ENOTFOUND)
}

func runKeys(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.Keys
	if s == nil {
		t.Skip("backend has no key store")
	}
	ctx := t.Context()
	op := audit.APIKey{ID: "k-op", Name: "ops", Scopes: []audit.Scope{audit.ScopeAdmin}, Hash: []byte("h0"), CreatedAt: baseTime}
	ka := audit.APIKey{ID: "k-a", Tenant: "a", Name: "ingest", Scopes: []audit.Scope{audit.ScopeEventsWrite, audit.ScopeEventsRead}, Hash: []byte("h1"), CreatedAt: baseTime}
	kb := audit.APIKey{ID: "k-b", Tenant: "b", Scopes: []audit.Scope{audit.ScopeEventsRead}, Hash: []byte("h2"), CreatedAt: baseTime}
	for _, k := range []audit.APIKey{op, ka, kb} {
		noErr(t, s.CreateKey(ctx, k))
	}
	wantCode(t, s.CreateKey(ctx, ka), audit.ECONFLICT)
	got, err := s.GetKey(ctx, "k-a")
	noErr(t, err)
	sameJSON(t, "key", *got, ka)
	if string(got.Hash) != "h1" {
		t.Fatalf("hash = %q", got.Hash)
	}
	_, err = s.GetKey(ctx, "nope")
	wantCode(t, err, audit.ENOTFOUND)

	list, err := s.ListKeys(ctx, "")
	noErr(t, err)
	if len(list) != 1 || list[0].ID != "k-op" {
		t.Fatalf(`ListKeys("") = %+v, want the operator key only`, list)
	}
	list, err = s.ListKeys(ctx, "a")
	noErr(t, err)
	if len(list) != 1 || list[0].ID != "k-a" {
		t.Fatalf(`ListKeys("a") = %+v`, list)
	}
	list, err = s.ListAllKeys(ctx)
	noErr(t, err)
	if len(list) != 3 || list[0].ID != "k-a" || list[2].ID != "k-op" {
		t.Fatalf("ListAllKeys = %+v, want ordered by id", list)
	}

	// Revocation: another tenant cannot; the owner and operators can; twice is fine.
	at := baseTime.Add(time.Hour)
	wantCode(t, s.RevokeKey(ctx, "b", "k-a", at), audit.ENOTFOUND)
	wantCode(t, s.RevokeKey(ctx, "a", "nope", at), audit.ENOTFOUND)
	noErr(t, s.RevokeKey(ctx, "a", "k-a", at))
	noErr(t, s.RevokeKey(ctx, "a", "k-a", at.Add(time.Hour)))
	noErr(t, s.RevokeKey(ctx, "", "k-b", at))
	got, err = s.GetKey(ctx, "k-a")
	noErr(t, err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
		t.Fatalf("revoked key: RevokedAt = %v, want %v", got.RevokedAt, at)
	}
	noErr(t, s.TouchKey(ctx, "k-op", at))
	got, err = s.GetKey(ctx, "k-op")
	noErr(t, err)
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
		t.Fatalf("LastUsedAt = %v", got.LastUsedAt)
	}
}

func finding(tenant, id string, lastSeen time.Time) audit.Finding {
	return audit.Finding{
		ID: id, Tenant: tenant, RuleID: "stuffing", RuleName: "Credential stuffing", Severity: audit.SeverityHigh, Score: 80,
		Status: audit.StatusOpen, GroupKey: "ip:203.0.113.7", ActorID: "alice", IP: "203.0.113.7",
		Explanation: "12 distinct accounts failed", Evidence: []string{"e1", "e2"}, Facts: map[string]any{"distinct": 12},
		Count: 12, FirstSeen: lastSeen.Add(-time.Minute), LastSeen: lastSeen, CreatedAt: lastSeen, UpdatedAt: lastSeen,
	}
}

func runFindings(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.Findings
	if s == nil {
		t.Skip("backend has no finding store")
	}
	ctx := t.Context()

	t.Run("UpsertKeepsTriage", func(t *testing.T) {
		f := finding("a", "f1", baseTime)
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{f}))
		got, err := s.GetFinding(ctx, "a", "f1")
		noErr(t, err)
		sameJSON(t, "finding", *got, f)
		_, err = s.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: "bogus"})
		wantCode(t, err, audit.EINVALID)
		upd, err := s.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: audit.StatusAcknowledged, Note: "looking", At: baseTime.Add(time.Hour)})
		noErr(t, err)
		if upd.Status != audit.StatusAcknowledged || upd.Note != "looking" {
			t.Fatalf("UpdateFinding returned %+v", upd)
		}
		later := finding("a", "f1", baseTime.Add(2*time.Hour))
		later.Count, later.CreatedAt = 40, baseTime.Add(2*time.Hour)
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{later}))
		got, err = s.GetFinding(ctx, "a", "f1")
		noErr(t, err)
		if got.Status != audit.StatusAcknowledged || got.Note != "looking" || got.Count != 40 || !got.CreatedAt.Equal(baseTime) {
			t.Fatalf("upsert after triage: status %s note %q count %d created %v", got.Status, got.Note, got.Count, got.CreatedAt)
		}
		// Reopened by a human: detection updates apply in full again.
		_, err = s.UpdateFinding(ctx, "a", "f1", audit.FindingUpdate{Status: audit.StatusOpen})
		noErr(t, err)
		later.Note = "auto"
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{later}))
		got, _ = s.GetFinding(ctx, "a", "f1")
		if got.Note != "auto" {
			t.Fatalf("open finding did not take the detection's note: %q", got.Note)
		}
	})

	t.Run("InstallationWide", func(t *testing.T) {
		// Tenant "" names the installation-wide findings: reachable with
		// it, from no tenant, and listed only by all-tenant searches.
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{finding("", "fi", baseTime)}))
		_, err := s.GetFinding(ctx, "a", "fi")
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.UpdateFinding(ctx, "a", "fi", audit.FindingUpdate{Status: audit.StatusAcknowledged})
		wantCode(t, err, audit.ENOTFOUND)
		upd, err := s.UpdateFinding(ctx, "", "fi", audit.FindingUpdate{Status: audit.StatusResolved, Note: "a test", Resolution: audit.ResolutionBenign})
		noErr(t, err)
		if upd.Tenant != "" || upd.Status != audit.StatusResolved {
			t.Fatalf("UpdateFinding returned %+v", upd)
		}
		got, err := s.GetFinding(ctx, "", "fi")
		noErr(t, err)
		if got.Status != audit.StatusResolved || got.Note != "a test" || got.Resolution != audit.ResolutionBenign {
			t.Fatalf("GetFinding returned %+v", got)
		}
		page, err := s.SearchFindings(ctx, audit.FindingFilter{Tenant: "a"})
		noErr(t, err)
		for _, f := range page.Findings {
			if f.ID == "fi" {
				t.Fatal("a tenant's search lists an installation-wide finding")
			}
		}
		page, err = s.SearchFindings(ctx, audit.FindingFilter{AllTenants: true, Limit: audit.MaxPageSize})
		noErr(t, err)
		if !slices.ContainsFunc(page.Findings, func(f audit.Finding) bool { return f.ID == "fi" }) {
			t.Fatal("an all-tenant search misses the installation-wide finding")
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{finding("b", "fb", baseTime)}))
		_, err := s.GetFinding(ctx, "a", "fb")
		wantCode(t, err, audit.ENOTFOUND)
		_, err = s.UpdateFinding(ctx, "a", "fb", audit.FindingUpdate{Status: audit.StatusResolved})
		wantCode(t, err, audit.ENOTFOUND)
		got, err := s.GetFinding(ctx, "b", "fb")
		noErr(t, err)
		if got.Status != audit.StatusOpen {
			t.Fatal("another tenant changed the finding")
		}
		page, err := s.SearchFindings(ctx, audit.FindingFilter{Tenant: "a"})
		noErr(t, err)
		for _, f := range page.Findings {
			if f.Tenant != "a" {
				t.Fatal("search leaked another tenant's finding")
			}
		}
		_, err = s.SearchFindings(ctx, audit.FindingFilter{})
		wantCode(t, err, audit.EINVALID)
		_, err = s.SearchFindings(ctx, audit.FindingFilter{Tenant: "a", Cursor: "!!"})
		wantCode(t, err, audit.EINVALID)
	})

	t.Run("SearchPaging", func(t *testing.T) {
		var fs []audit.Finding
		for i := range 25 {
			f := finding("p", fmt.Sprintf("f%02d", i), baseTime.Add(time.Duration(i/2)*time.Minute))
			if i%3 == 0 {
				f.Severity, f.RuleID = audit.SeverityLow, "travel"
			}
			fs = append(fs, f)
		}
		noErr(t, s.UpsertFindings(ctx, fs))
		var got []string
		f := audit.FindingFilter{Tenant: "p", Limit: 4}
		for {
			page, err := s.SearchFindings(ctx, f)
			noErr(t, err)
			for _, x := range page.Findings {
				got = append(got, x.ID)
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
		if len(got) != 25 || got[0] != "f24" || got[1] != "f23" || got[2] != "f22" || got[24] != "f00" {
			t.Fatalf("paged order = %v", got)
		}
		page, err := s.SearchFindings(ctx, audit.FindingFilter{Tenant: "p", Severity: audit.SeverityMedium, RuleID: "stuffing", Limit: 100})
		noErr(t, err)
		if len(page.Findings) != 16 {
			t.Fatalf("severity ≥ medium and rule: %d findings, want 16", len(page.Findings))
		}
		page, err = s.SearchFindings(ctx, audit.FindingFilter{Tenant: "p", Since: baseTime.Add(11 * time.Minute), Limit: 100})
		noErr(t, err)
		if len(page.Findings) != 3 {
			t.Fatalf("since: %d findings, want 3", len(page.Findings))
		}
	})

	// A search by address finds the findings about it: opened on it, keyed
	// on its /24 (IPv4) or /48 (IPv6), or on its autonomous system when the
	// caller knows it — not those of a neighbouring subnet, another network
	// or another tenant.
	t.Run("SearchByAddressFindsItsSubnetAndNetwork", func(t *testing.T) {
		keyed := func(tenant, id, groupKey, ip string) audit.Finding {
			f := finding(tenant, id, baseTime)
			f.GroupKey, f.IP, f.ActorID = groupKey, ip, ""
			return f
		}
		noErr(t, s.UpsertFindings(ctx, []audit.Finding{
			keyed("n", "addr", "ip=198.51.100.77", "198.51.100.77"),
			keyed("n", "sub", "ip24=198.51.100.0/24", ""),
			keyed("n", "sub6", "ip24=2001:db8:1::/48", ""),
			keyed("n", "as", "asn=AS64500", ""),
			keyed("n", "mixed", "actor=bob,ip24=198.51.100.0/24", ""),
			keyed("n", "othersub", "ip24=198.51.101.0/24", ""),
			keyed("n", "otheras", "asn=AS64501", ""),
			keyed("other", "sub", "ip24=198.51.100.0/24", ""),
		}))
		ids := func(f audit.FindingFilter) []string {
			t.Helper()
			f.Limit = 100
			page, err := s.SearchFindings(ctx, f)
			noErr(t, err)
			var out []string
			for _, x := range page.Findings {
				out = append(out, x.Tenant+"/"+x.ID)
			}
			slices.Sort(out)
			return out
		}
		for _, c := range []struct {
			f    audit.FindingFilter
			want []string
		}{
			{audit.FindingFilter{Tenant: "n", IP: "198.51.100.77"}, []string{"n/addr", "n/mixed", "n/sub"}},
			{audit.FindingFilter{Tenant: "n", IP: "198.51.100.77", ASN: 64500}, []string{"n/addr", "n/as", "n/mixed", "n/sub"}},
			{audit.FindingFilter{Tenant: "n", IP: "198.51.100.3"}, []string{"n/mixed", "n/sub"}},
			{audit.FindingFilter{Tenant: "n", IP: "2001:db8:1:ffff::9"}, []string{"n/sub6"}},
			{audit.FindingFilter{Tenant: "n", IP: "203.0.113.9", ASN: 64501}, []string{"n/otheras"}},
			{audit.FindingFilter{AllTenants: true, IP: "198.51.100.3"}, []string{"n/mixed", "n/sub", "other/sub"}},
		} {
			if got := ids(c.f); !slices.Equal(got, c.want) {
				t.Errorf("%+v: %v, want %v", c.f, got, c.want)
			}
		}
		// Triage keeps them findable: a human acknowledging or resolving
		// a finding about a network does not take it off that network.
		for _, id := range []string{"sub", "as", "mixed"} {
			_, err := s.UpdateFinding(ctx, "n", id, audit.FindingUpdate{Status: audit.StatusResolved, Resolution: audit.ResolutionMalicious, Note: "blocked"})
			noErr(t, err)
		}
		f := audit.FindingFilter{Tenant: "n", IP: "198.51.100.77", ASN: 64500, Status: audit.StatusResolved}
		if got, want := ids(f), []string{"n/as", "n/mixed", "n/sub"}; !slices.Equal(got, want) {
			t.Errorf("after triage, %+v: %v, want %v", f, got, want)
		}
	})
}

func runState(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.State
	if s == nil {
		t.Skip("backend has no state store")
	}
	ctx := t.Context()
	_, err := s.GetState(ctx, "profiles", "x")
	wantCode(t, err, audit.ENOTFOUND)
	noErr(t, s.SaveState(ctx, "profiles", map[string][]byte{"b": []byte("2"), "a": []byte("1"), "c": []byte("3")}, nil))
	noErr(t, s.SaveState(ctx, "other", map[string][]byte{"a": []byte("x")}, nil))
	noErr(t, s.SaveState(ctx, "profiles", map[string][]byte{"d": []byte("4"), "a": []byte("1b")}, []string{"c", "zz"}))
	v, err := s.GetState(ctx, "profiles", "a")
	noErr(t, err)
	if string(v) != "1b" {
		t.Fatalf("a = %q", v)
	}
	var keys []string
	noErr(t, s.ScanState(ctx, "profiles", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil }))
	if fmt.Sprint(keys) != "[a=1b b=2 d=4]" {
		t.Fatalf("scan = %v", keys)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ScanState(ctx, "profiles", func(string, []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("scan stopping: err %v after %d calls", err, n)
	}
	// Atomicity: a cancelled save applies nothing.
	cctx, cancel := contextCancelled(t)
	defer cancel()
	if err := s.SaveState(cctx, "profiles", map[string][]byte{"e": []byte("5")}, []string{"a"}); err == nil {
		t.Fatal("save with a cancelled context succeeded")
	}
	if _, err := s.GetState(ctx, "profiles", "a"); err != nil {
		t.Fatalf("a failed save deleted a key: %v", err)
	}
	_, err = s.GetState(ctx, "profiles", "e")
	wantCode(t, err, audit.ENOTFOUND)

	// A checkpoint's size: thousands of keys, more than one statement of
	// any backend writes, with deletes and a key both deleted and put.
	big := map[string][]byte{}
	for i := range 2600 {
		big[fmt.Sprintf("k%05d", i)] = []byte(fmt.Sprint(i))
	}
	noErr(t, s.SaveState(ctx, "big", big, nil))
	puts := map[string][]byte{"k00007": []byte("again"), "k09999": []byte("new")}
	var dels []string
	for i := 0; i < 2600; i += 2 {
		dels = append(dels, fmt.Sprintf("k%05d", i))
	}
	dels = append(dels, "k00007", "absent")
	noErr(t, s.SaveState(ctx, "big", puts, dels))
	got := map[string]string{}
	noErr(t, s.ScanState(ctx, "big", func(k string, v []byte) error { got[k] = string(v); return nil }))
	if len(got) != 1300+1 || got["k00007"] != "again" || got["k09999"] != "new" || got["k02599"] != "2599" || got["k00000"] != "" {
		t.Fatalf("after a checkpoint of 2,600 keys and 1,300 deletes: %d keys, k00007=%q k09999=%q k02599=%q",
			len(got), got["k00007"], got["k09999"], got["k02599"])
	}
	if _, ok := got["k00002"]; ok {
		t.Fatal("a deleted key is still there")
	}
}

func runRules(t *testing.T, open func(t *testing.T) Backend) {
	b := open(t)
	s := b.Rules
	if s == nil {
		t.Skip("backend has no rule store")
	}
	ctx := t.Context()
	noErr(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "a", RuleID: "travel", Disabled: true, UpdatedAt: baseTime}))
	noErr(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "a", RuleID: "stuffing", Params: map[string]any{"n": 20},
		Actions: []string{audit.RespLockAccount}, UpdatedAt: baseTime}))
	wantCode(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "a", RuleID: "x", Actions: []string{"nuke"}, UpdatedAt: baseTime}), audit.EINVALID)
	noErr(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "a", RuleID: "hijack", Actions: []string{audit.RespRevokeSessions, audit.RespRequireMFA}, UpdatedAt: baseTime}))
	noErr(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "b", RuleID: "stuffing", Disabled: true, UpdatedAt: baseTime}))
	noErr(t, s.PutRuleSetting(ctx, audit.RuleSetting{Tenant: "a", RuleID: "stuffing", Params: map[string]any{"n": 30}, UpdatedAt: baseTime}))
	list, err := s.ListRuleSettings(ctx, "a")
	noErr(t, err)
	sameJSON(t, "settings", list, []audit.RuleSetting{
		{Tenant: "a", RuleID: "hijack", Actions: []string{audit.RespRevokeSessions, audit.RespRequireMFA}, UpdatedAt: baseTime},
		{Tenant: "a", RuleID: "stuffing", Params: map[string]any{"n": 30}, UpdatedAt: baseTime},
		{Tenant: "a", RuleID: "travel", Disabled: true, UpdatedAt: baseTime},
	})
	noErr(t, s.DeleteRuleSetting(ctx, "a", "travel"))
	noErr(t, s.DeleteRuleSetting(ctx, "a", "travel"))
	noErr(t, s.DeleteRuleSetting(ctx, "a", "stuffing-b-does-not-have"))
	list, _ = s.ListRuleSettings(ctx, "b")
	if len(list) != 1 || !list[0].Disabled {
		t.Fatalf("tenant b's settings changed: %+v", list)
	}

	for _, e := range []audit.AllowEntry{
		{Tenant: "a", Kind: "cidr", Value: "198.51.100.0/24", Note: "office", CreatedAt: baseTime},
		{Tenant: "a", Kind: "asn", Value: "64500", Mode: audit.AllowEgress, CreatedAt: baseTime},
		{Tenant: "b", Kind: "ip", Value: "192.0.2.1", CreatedAt: baseTime},
	} {
		noErr(t, s.PutAllowEntry(ctx, e))
	}
	entries, err := s.ListAllowEntries(ctx, "a")
	noErr(t, err)
	if len(entries) != 2 || entries[0].Value != "198.51.100.0/24" || entries[1].Value != "64500" {
		t.Fatalf("allow entries = %+v, want ordered by value", entries)
	}
	if entries[0].Mode != audit.AllowTrust || entries[1].Mode != audit.AllowEgress {
		t.Fatalf("allow entry modes = %q, %q, want trust (the default) and egress", entries[0].Mode, entries[1].Mode)
	}
	if err := s.PutAllowEntry(ctx, audit.AllowEntry{Tenant: "a", Kind: "ip", Value: "192.0.2.9", Mode: "sometimes", CreatedAt: baseTime}); audit.ErrorCode(err) != audit.EINVALID {
		t.Fatalf("an unknown mode was stored: %v", err)
	}
	noErr(t, s.DeleteAllowEntry(ctx, "a", "asn", "64500"))
	noErr(t, s.DeleteAllowEntry(ctx, "a", "asn", "64500"))
	noErr(t, s.DeleteAllowEntry(ctx, "a", "ip", "192.0.2.1")) // tenant b's: untouched
	entries, _ = s.ListAllowEntries(ctx, "b")
	if len(entries) != 1 {
		t.Fatal("deleting in tenant a removed tenant b's entry")
	}
}

// runFindingResolution checks FindingUpdate.Resolution: kept with a
// resolved finding through later detection updates, cleared when the
// finding is reopened, refused on any other status or value.
func runFindingResolution(t *testing.T, open func(t *testing.T) Backend) {
	s := open(t).Findings
	if s == nil {
		t.Skip("backend has no finding store")
	}
	ctx := t.Context()
	f := finding("a", "r1", baseTime)
	noErr(t, s.UpsertFindings(ctx, []audit.Finding{f}))
	_, err := s.UpdateFinding(ctx, "a", "r1", audit.FindingUpdate{Status: audit.StatusResolved, Note: "x", Resolution: "maybe"})
	wantCode(t, err, audit.EINVALID)
	got, err := s.UpdateFinding(ctx, "a", "r1", audit.FindingUpdate{Status: audit.StatusAcknowledged, Resolution: audit.ResolutionBenign})
	noErr(t, err)
	if got.Resolution != "" {
		t.Fatalf("an acknowledged finding took a resolution: %q", got.Resolution)
	}
	_, err = s.UpdateFinding(ctx, "a", "r1", audit.FindingUpdate{Status: audit.StatusResolved, Note: "the office VPN", Resolution: audit.ResolutionBenign})
	noErr(t, err)
	later := finding("a", "r1", baseTime.Add(time.Hour))
	later.Count = 99
	noErr(t, s.UpsertFindings(ctx, []audit.Finding{later}))
	got, err = s.GetFinding(ctx, "a", "r1")
	noErr(t, err)
	if got.Resolution != audit.ResolutionBenign || got.Status != audit.StatusResolved || got.Count != 99 {
		t.Fatalf("after new evidence: resolution %q status %s count %d", got.Resolution, got.Status, got.Count)
	}
	got, err = s.UpdateFinding(ctx, "a", "r1", audit.FindingUpdate{Status: audit.StatusOpen})
	noErr(t, err)
	if got.Resolution != "" {
		t.Fatalf("a reopened finding kept its resolution %q", got.Resolution)
	}
}
