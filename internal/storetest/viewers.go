package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// runViewers tests the ViewerTokenStore contract.
func runViewers(t *testing.T, open func(t *testing.T) Backend) {
	get := func(t *testing.T) audit.ViewerTokenStore {
		b := open(t)
		if b.Viewers == nil {
			t.Skip("backend has no viewer-token store")
		}
		return b.Viewers
	}
	token := func(tenant, id string, created time.Time) audit.ViewerToken {
		return audit.ViewerToken{ID: id, Tenant: tenant, Name: "token " + id, ReadOnly: true, Actions: []string{"auth.*"},
			Actor: "u1", FrameAncestors: []string{"https://app.example.com"}, CreatedBy: "k-admin",
			CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
	}

	t.Run("CreateGetConflict", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		v := token("a", "v1", baseTime)
		noErr(t, s.CreateViewerToken(ctx, v))
		got, err := s.GetViewerToken(ctx, "v1")
		noErr(t, err)
		sameJSON(t, "viewer token", *got, v)
		if got.RevokedAt != nil {
			t.Fatalf("a new token is revoked: %v", got.RevokedAt)
		}
		wantCode(t, s.CreateViewerToken(ctx, token("a", "v1", baseTime.Add(time.Hour))), audit.ECONFLICT)
		// The same id in another tenant is the same token: ids are global.
		wantCode(t, s.CreateViewerToken(ctx, token("b", "v1", baseTime)), audit.ECONFLICT)
		if got, _ := s.GetViewerToken(ctx, "v1"); got == nil || got.Tenant != "a" || !got.CreatedAt.Equal(baseTime) {
			t.Fatalf("a refused create changed the token: %+v", got)
		}
		_, err = s.GetViewerToken(ctx, "nope")
		wantCode(t, err, audit.ENOTFOUND)
	})

	t.Run("ListNewestFirstLimitedPerTenant", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		for i, id := range []string{"v1", "v3", "v2"} {
			noErr(t, s.CreateViewerToken(ctx, token("a", id, baseTime.Add(time.Duration(i)*time.Minute))))
		}
		noErr(t, s.CreateViewerToken(ctx, token("b", "vb", baseTime.Add(time.Hour))))
		ids := func(ts []audit.ViewerToken) string {
			var out []string
			for _, v := range ts {
				out = append(out, v.ID)
			}
			return fmt.Sprint(out)
		}
		list, err := s.ListViewerTokens(ctx, "a", 10)
		noErr(t, err)
		if got := ids(list); got != "[v2 v3 v1]" {
			t.Fatalf("tokens of a = %s, want newest first [v2 v3 v1]", got)
		}
		list, err = s.ListViewerTokens(ctx, "a", 2)
		noErr(t, err)
		if got := ids(list); got != "[v2 v3]" {
			t.Fatalf("tokens of a, limit 2 = %s, want [v2 v3]", got)
		}
		list, err = s.ListViewerTokens(ctx, "b", 10)
		noErr(t, err)
		if got := ids(list); got != "[vb]" {
			t.Fatalf("tokens of b = %s", got)
		}
		list, err = s.ListViewerTokens(ctx, "nobody", 10)
		noErr(t, err)
		if len(list) != 0 {
			t.Fatalf("tokens of a tenant without any: %+v", list)
		}
	})

	t.Run("RevokeIdempotentAndScoped", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.CreateViewerToken(ctx, token("a", "va", baseTime)))
		noErr(t, s.CreateViewerToken(ctx, token("b", "vb", baseTime)))
		at := baseTime.Add(time.Hour)
		wantCode(t, s.RevokeViewerToken(ctx, "b", "va", at), audit.ENOTFOUND)
		wantCode(t, s.RevokeViewerToken(ctx, "a", "nope", at), audit.ENOTFOUND)
		wantCode(t, s.RevokeViewerToken(ctx, "", "nope", at), audit.ENOTFOUND)
		if got, _ := s.GetViewerToken(ctx, "va"); got == nil || got.RevokedAt != nil {
			t.Fatalf("another tenant revoked the token: %+v", got)
		}
		noErr(t, s.RevokeViewerToken(ctx, "a", "va", at))
		noErr(t, s.RevokeViewerToken(ctx, "a", "va", at.Add(time.Hour)))
		got, err := s.GetViewerToken(ctx, "va")
		noErr(t, err)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
			t.Fatalf("revoked token: RevokedAt = %v, want the first revocation %v", got.RevokedAt, at)
		}
		// Tenant "" (an operator) matches any tenant.
		noErr(t, s.RevokeViewerToken(ctx, "", "vb", at))
		if got, _ := s.GetViewerToken(ctx, "vb"); got == nil || got.RevokedAt == nil {
			t.Fatalf("operator revocation: %+v", got)
		}
		// Listings show revocations too.
		list, err := s.ListViewerTokens(ctx, "a", 10)
		noErr(t, err)
		if len(list) != 1 || list[0].RevokedAt == nil || !list[0].RevokedAt.Equal(at) {
			t.Fatalf("listed revoked token: %+v", list)
		}
	})

	t.Run("PurgeExpiredBeforeCutoff", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		mk := func(tenant, id string, expires time.Time) {
			v := token(tenant, id, baseTime)
			v.ExpiresAt = expires
			noErr(t, s.CreateViewerToken(ctx, v))
		}
		cutoff := baseTime.Add(48 * time.Hour)
		mk("a", "old", cutoff.Add(-time.Hour))
		mk("b", "old-b", cutoff.Add(-time.Nanosecond))
		mk("a", "edge", cutoff)
		mk("a", "live", cutoff.Add(time.Hour))
		noErr(t, s.RevokeViewerToken(ctx, "a", "live", baseTime))
		n, err := s.PurgeViewerTokens(ctx, cutoff)
		noErr(t, err)
		if n != 2 {
			t.Fatalf("purged %d, want 2 (old, old-b)", n)
		}
		for _, id := range []string{"old", "old-b"} {
			_, err := s.GetViewerToken(ctx, id)
			wantCode(t, err, audit.ENOTFOUND)
		}
		for _, id := range []string{"edge", "live"} {
			if _, err := s.GetViewerToken(ctx, id); err != nil {
				t.Fatalf("token %s, not expired before the cutoff, was purged: %v", id, err)
			}
		}
		n, err = s.PurgeViewerTokens(ctx, cutoff)
		noErr(t, err)
		if n != 0 {
			t.Fatalf("a second purge removed %d", n)
		}
	})
}

// runSearches tests the SavedSearchStore contract.
func runSearches(t *testing.T, open func(t *testing.T) Backend) {
	get := func(t *testing.T) audit.SavedSearchStore {
		b := open(t)
		if b.Searches == nil {
			t.Skip("backend has no saved-search store")
		}
		return b.Searches
	}
	search := func(tenant, id, name string) audit.SavedSearch {
		return audit.SavedSearch{ID: id, Tenant: tenant, Name: name, Query: "action = 'auth.login' | " + id,
			CreatedBy: "k-" + tenant, CreatedAt: baseTime}
	}
	names := func(ss []audit.SavedSearch) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID+":"+s.Name)
		}
		return fmt.Sprint(out)
	}

	t.Run("SaveReplaceListByName", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.SaveSearch(ctx, search("a", "s1", "logins")))
		noErr(t, s.SaveSearch(ctx, search("a", "s2", "admins")))
		noErr(t, s.SaveSearch(ctx, search("a", "s3", "failures")))
		noErr(t, s.SaveSearch(ctx, search("b", "s1", "b's own")))
		list, err := s.ListSavedSearches(ctx, "a")
		noErr(t, err)
		if got := names(list); got != "[s2:admins s3:failures s1:logins]" {
			t.Fatalf("searches of a = %s, want ordered by name", got)
		}
		sameJSON(t, "saved search", list[0], search("a", "s2", "admins"))
		// Saving an existing (tenant, id) replaces it, in that tenant only.
		re := search("a", "s1", "zz logins")
		re.Query = "action = 'auth.failed'"
		noErr(t, s.SaveSearch(ctx, re))
		list, err = s.ListSavedSearches(ctx, "a")
		noErr(t, err)
		if got := names(list); got != "[s2:admins s3:failures s1:zz logins]" {
			t.Fatalf("searches of a after a replace = %s", got)
		}
		if list[2].Query != re.Query {
			t.Fatalf("replaced query = %q, want %q", list[2].Query, re.Query)
		}
		list, err = s.ListSavedSearches(ctx, "b")
		noErr(t, err)
		if got := names(list); got != "[s1:b's own]" {
			t.Fatalf("searches of b = %s", got)
		}
		list, err = s.ListSavedSearches(ctx, "nobody")
		noErr(t, err)
		if len(list) != 0 {
			t.Fatalf("searches of a tenant without any: %+v", list)
		}
	})

	t.Run("DeleteScoped", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		noErr(t, s.SaveSearch(ctx, search("a", "s1", "one")))
		noErr(t, s.SaveSearch(ctx, search("b", "s2", "two")))
		wantCode(t, s.DeleteSavedSearch(ctx, "a", "nope"), audit.ENOTFOUND)
		wantCode(t, s.DeleteSavedSearch(ctx, "a", "s2"), audit.ENOTFOUND)
		if list, _ := s.ListSavedSearches(ctx, "b"); len(list) != 1 {
			t.Fatalf("another tenant deleted b's search: %+v", list)
		}
		noErr(t, s.DeleteSavedSearch(ctx, "a", "s1"))
		wantCode(t, s.DeleteSavedSearch(ctx, "a", "s1"), audit.ENOTFOUND)
		if list, _ := s.ListSavedSearches(ctx, "a"); len(list) != 0 {
			t.Fatalf("searches of a after the delete: %+v", list)
		}
	})

	t.Run("AtMostMaxPerTenant", func(t *testing.T) {
		s, ctx := get(t), t.Context()
		for i := range audit.MaxSavedSearches {
			noErr(t, s.SaveSearch(ctx, search("a", fmt.Sprintf("s%03d", i), fmt.Sprintf("n%03d", i))))
		}
		wantCode(t, s.SaveSearch(ctx, search("a", "one-more", "one more")), audit.ETOOLARGE)
		// Replacing one of them is not one more.
		noErr(t, s.SaveSearch(ctx, search("a", "s000", "renamed")))
		// The cap is per tenant.
		noErr(t, s.SaveSearch(ctx, search("b", "s1", "b's")))
		list, err := s.ListSavedSearches(ctx, "a")
		noErr(t, err)
		if len(list) != audit.MaxSavedSearches {
			t.Fatalf("a holds %d searches, want %d", len(list), audit.MaxSavedSearches)
		}
		// Deleting one makes room again.
		noErr(t, s.DeleteSavedSearch(ctx, "a", "s001"))
		noErr(t, s.SaveSearch(ctx, search("a", "one-more", "one more")))
	})
}
