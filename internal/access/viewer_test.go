package access_test

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/access"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

func newViewers(t *testing.T, now *time.Time) (*access.Viewers, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	v, err := access.NewViewers([]byte(strings.Repeat("k", 32)), db, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return v, db
}

func TestViewerTokenLifecycle(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	v, db := newViewers(t, &now)
	ctx := t.Context()
	rec, tok, err := v.Mint(ctx, access.ViewerSpec{Tenant: "acme", TTL: time.Hour, ReadOnly: true, Actor: "alice@example.com", CreatedBy: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, access.ViewerPrefix) {
		t.Fatalf("token %q lacks its prefix", tok)
	}
	got, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if got.Tenant != "acme" || !got.ReadOnly || got.Actor != "alice@example.com" || got.ID != rec.ID {
		t.Fatalf("verified record %+v", got)
	}
	p := access.Principal(got)
	if p.Tenant != "acme" || p.Has(audit.ScopeFindingsWrite) || !p.Has(audit.ScopeEventsRead) {
		t.Fatalf("read-only principal %+v", p)
	}

	// Tampering with any part fails as invalid.
	for i := len(access.ViewerPrefix); i < len(tok); i += 7 {
		b := []byte(tok)
		b[i] ^= 1
		if _, err := v.Verify(ctx, string(b)); err != access.ErrTokenInvalid {
			t.Errorf("tampered at %d: %v, want invalid", i, err)
		}
	}
	// A token signed with another secret is invalid.
	other, err := access.NewViewers([]byte(strings.Repeat("x", 32)), db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify(ctx, tok); err != access.ErrTokenInvalid {
		t.Errorf("foreign secret: %v, want invalid", err)
	}

	now = now.Add(time.Hour)
	if _, err := v.Verify(ctx, tok); err != access.ErrTokenExpired {
		t.Errorf("expired: %v", err)
	}
	if _, err := v.Check(ctx, rec.ID); err != access.ErrTokenExpired {
		t.Errorf("check expired: %v", err)
	}

	now = now.Add(-30 * time.Minute)
	if err := v.Revoke(ctx, "globex", rec.ID); audit.ErrorCode(err) != audit.ENOTFOUND {
		t.Errorf("another tenant revoked the token: %v", err)
	}
	if err := v.Revoke(ctx, "acme", rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok); err != access.ErrTokenRevoked {
		t.Errorf("revoked: %v", err)
	}
	if _, err := v.Check(ctx, rec.ID); err != access.ErrTokenRevoked {
		t.Errorf("check revoked: %v", err)
	}
	list, err := v.List(ctx, "acme")
	if err != nil || len(list) != 1 || list[0].RevokedAt == nil {
		t.Fatalf("list: %v %+v", err, list)
	}
}

func TestViewerSpecValidate(t *testing.T) {
	s := access.ViewerSpec{Tenant: "bad tenant", TTL: time.Second, Actions: []string{"auth.*", "NOPE"},
		FrameAncestors: []string{"https://admin.example.com", "http://evil.example.com", "https://*.example.com", "https://a.example.com/path"}}
	err := s.Validate()
	if err == nil {
		t.Fatal("invalid spec accepted")
	}
	for _, want := range []string{"tenant", "ttl", `"NOPE"`, "http://evil.example.com", "https://*.example.com", "/path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"auth.*"`) || strings.Contains(err.Error(), `"https://admin.example.com"`) {
		t.Errorf("valid values reported: %v", err)
	}
}

func FuzzParseViewerToken(f *testing.F) {
	f.Add("vgv_0123456789abcdef01234567_1a2b3c_" + strings.Repeat("A", 43))
	f.Add("vgv_")
	f.Add("vgv_x_y_z")
	f.Add("vgl_0123456789abcdef_secret")
	f.Add("vgv_0123456789abcdef01234567_1a2b3c_" + strings.Repeat("A", 20) + "\n" + strings.Repeat("A", 23))
	f.Fuzz(func(t *testing.T, s string) {
		id, exp, sig, err := access.ParseViewerToken(s)
		if err != nil {
			return
		}
		if len(id) != 24 || exp <= 0 || len(sig) != 32 {
			t.Fatalf("accepted %q as id=%q exp=%d sig=%d bytes", s, id, exp, len(sig))
		}
		// An accepted token has exactly one spelling: the one Mint writes.
		if again := access.ViewerPrefix + id + "_" + strconv.FormatInt(exp, 36) + "_" + base64.RawURLEncoding.EncodeToString(sig); again != s {
			t.Fatalf("accepted %q, which Mint would write as %q", s, again)
		}
	})
}
