package postgres_test

import (
	"context"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
	"github.com/vigilhq/vigil/internal/postgres/pgtest"
)

// open opens a store on a fresh schema, migrated, closed at the end.
func open(t *testing.T) *postgres.Store {
	t.Helper()
	url, schema := pgtest.Schema(t)
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenRefusesUnmigratedSchema(t *testing.T) {
	url, schema := pgtest.Schema(t)
	_, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema})
	if audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("open without migrate: %v, want EUNAVAILABLE naming vigil migrate", err)
	}
	s, err := postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = postgres.Open(t.Context(), postgres.Options{URL: url, Schema: schema})
	if err != nil {
		t.Fatalf("open after migrate: %v", err)
	}
	defer s.Close()
	pending, err := s.Pending(t.Context())
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	if err := s.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DiskBytes(); err != nil || n <= 0 {
		t.Fatalf("disk bytes = %d, %v", n, err)
	}
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	url, schema := pgtest.Schema(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := postgres.Open(context.Background(), postgres.Options{URL: url, Schema: schema, Migrate: true})
			if err == nil {
				_ = s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for name, o := range map[string]postgres.Options{
		"no url":     {},
		"mixed case": {URL: "host=/nowhere", Schema: "Vigil"},
		"quote":      {URL: "host=/nowhere", Schema: `a"b`},
		"one conn":   {URL: "host=/nowhere", MaxConns: 1},
		"bad url":    {URL: "postgres://user:secret@[::1"},
	} {
		_, err := postgres.Open(t.Context(), o)
		if audit.ErrorCode(err) != audit.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
		if err != nil && contains(err.Error(), "secret") {
			t.Errorf("%s: error quotes the password: %v", name, err)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
