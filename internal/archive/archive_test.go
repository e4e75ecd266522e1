package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/vigilhq/vigil/internal/archive"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// stores returns a directory store and an S3 store served in process on
// 127.0.0.1 by gofakes3.
func stores(t *testing.T) map[string]archive.Store {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket("vigil-archive"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	s3, err := archive.NewS3(archive.S3Options{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "vigil-archive",
		Prefix: "prod/", Region: "us-east-1", AccessKey: "test", SecretKey: "test-secret", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]archive.Store{"dir": archive.Dir{Root: t.TempDir()}, "s3": s3}
}

func openDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), sqlite.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestArchiveAndRestoreADay(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			db := openDB(t)
			day1 := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
			var evs []audit.Event
			for i := range 30 {
				for _, tenant := range []string{"acme", "other"} {
					evs = append(evs, audit.Event{ID: fmt.Sprintf("e-%02d", i), Tenant: tenant, Action: audit.ActionLoginSuccess,
						Outcome: audit.OutcomeSuccess, Time: day1.Add(time.Duration(i) * 2 * time.Hour), ReceivedAt: day1,
						Actor:    audit.Actor{ID: "alice", Type: audit.ActorUser},
						Context:  audit.Context{IP: netip.MustParseAddr("192.0.2.7"), SessionID: "s", AuthMethod: "password"},
						Metadata: map[string]any{"n": float64(i)}})
				}
			}
			if err := db.Events().InsertEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
			cutoff := day1.AddDate(0, 0, 2) // days 10 and 11 go, day 12 stays
			a := &archive.Archiver{Store: st, Events: db.Events(), Now: func() time.Time { return day1.AddDate(0, 5, 0) }}
			rep, err := a.Archive(ctx, "acme", cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != 24 || len(rep.Parts) != 2 || rep.Parts[0].Day != "2026-01-11" || rep.Parts[1].Day != "2026-01-10" ||
				rep.Parts[0].Events != 12 || rep.Parts[1].Events != 12 {
				t.Fatalf("report %+v", rep)
			}
			days, err := archive.Days(ctx, st, "")
			if err != nil || fmt.Sprint(days) != "[acme/2026-01-10 acme/2026-01-11]" {
				t.Fatalf("days %v %v", days, err)
			}

			var out bytes.Buffer
			ms, err := archive.Restore(ctx, st, "acme", "2026-01-10", &out, "")
			if err != nil || len(ms) != 1 {
				t.Fatalf("restore: %v %+v", err, ms)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 12 {
				t.Fatalf("restored %d events, want 12", len(lines))
			}
			var got audit.Event
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
				t.Fatal(err)
			}
			want, _ := db.Events().GetEvent(ctx, "acme", "e-00")
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Fatalf("restored event differs:\n%s\n%s", gb, wb)
			}
			if _, err := archive.Restore(ctx, st, "acme", "2026-01-12", &out, ""); audit.ErrorCode(err) != audit.ENOTFOUND {
				t.Fatalf("a day never archived: %v", err)
			}
			if _, err := archive.Restore(ctx, st, "acme", "../x", &out, ""); audit.ErrorCode(err) != audit.EINVALID {
				t.Fatalf("a bad day: %v", err)
			}

			// A part altered in storage is refused before any of it is written.
			part := ms[0].Part
			var buf bytes.Buffer
			rc, err := st.Get(ctx, part)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			b := buf.Bytes()
			b[len(b)/2] ^= 0xff
			if err := st.Put(ctx, part, bytes.NewReader(b), int64(len(b))); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			if _, err := archive.Restore(ctx, st, "acme", "2026-01-10", &out, ""); !errors.Is(err, archive.ErrCorrupt) || out.Len() != 0 {
				t.Fatalf("a tampered part: %v, %d bytes written", err, out.Len())
			}
		})
	}
}

func TestDirStoreRefusesNamesOutsideItsRoot(t *testing.T) {
	d := archive.Dir{Root: t.TempDir()}
	for _, n := range []string{"../escape", "/abs", "a/../../b", ""} {
		if err := d.Put(context.Background(), n, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put %q accepted", n)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(d.Root), "escape")); err == nil {
		t.Fatal("a file was written outside the root")
	}
}
