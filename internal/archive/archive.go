// Package archive keeps a tenant's events before retention deletes them:
// per tenant and UTC day, gzip-compressed NDJSON parts with a manifest that
// records each part's event count and SHA-256, in a directory or an
// S3-compatible bucket. Restore reads a day back, verifying every part.
//
// Layout (names relative to the store's root or prefix):
//
//	<tenant>/<YYYY-MM-DD>/<stamp>.ndjson.gz        the events, newest first
//	<tenant>/<YYYY-MM-DD>/<stamp>.manifest.json    what the part holds
//
// A day may have several parts: events that arrive late for a day already
// archived go into a new part at the next purge.
package archive

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Store is where archives go.
type Store interface {
	// Put stores size bytes from r under name, replacing any object there.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Get opens the object name; ENOTFOUND when there is none.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// FormatV1 names the manifest format.
const FormatV1 = "vigil-archive/1"

// Manifest describes one part.
type Manifest struct {
	Format string `json:"format"`
	Tenant string `json:"tenant"`
	Day    string `json:"day"`
	// Part is the NDJSON.gz object's name; Events how many events it
	// holds; Bytes and SHA256 its size and digest.
	Part      string    `json:"part"`
	Events    int64     `json:"events"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
	First     time.Time `json:"first_event"`
	Last      time.Time `json:"last_event"`
	CreatedAt time.Time `json:"created_at"`
}

// Archiver writes a tenant's events to a Store.
type Archiver struct {
	Store  Store
	Events audit.EventStore
	// TempDir holds a part while it is written (the system's when "").
	TempDir string
	Now     func() time.Time
}

// Report is what one Archive call wrote.
type Report struct {
	Events int64
	Parts  []Manifest
}

// Archive writes every event of tenant dated before the cutoff, one part
// per UTC day, and returns only once every part and its manifest are
// stored: the caller may then delete the events. An error leaves the parts
// already written (a later run writes new parts for the same events; the
// manifest of each says what it holds).
func (a *Archiver) Archive(ctx context.Context, tenant string, before time.Time) (Report, error) {
	var rep Report
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	stamp := now().UTC().Format("20060102T150405.000000000Z")
	var cur *partWriter
	flush := func() error {
		if cur == nil {
			return nil
		}
		m, err := cur.finish(ctx, a.Store, stamp, now().UTC())
		cur = nil
		if err != nil {
			return err
		}
		rep.Parts = append(rep.Parts, m)
		rep.Events += m.Events
		return nil
	}
	defer func() {
		if cur != nil {
			cur.abort()
		}
	}()
	f := audit.EventFilter{Tenant: tenant, Until: before, Limit: audit.MaxPageSize}
	for {
		page, err := a.Events.SearchEvents(ctx, f)
		if err != nil {
			return rep, fmt.Errorf("read events to archive: %w", err)
		}
		for i := range page.Events {
			ev := &page.Events[i]
			day := ev.Time.UTC().Format(time.DateOnly)
			if cur != nil && cur.day != day {
				if err := flush(); err != nil {
					return rep, err
				}
			}
			if cur == nil {
				if cur, err = newPartWriter(a.TempDir, tenant, day); err != nil {
					return rep, err
				}
			}
			if err := cur.add(ev); err != nil {
				return rep, err
			}
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	return rep, flush()
}

// partWriter writes one day's part to a temporary file.
type partWriter struct {
	tenant, day string
	f           *os.File
	zw          *gzip.Writer
	bw          *bufio.Writer
	n           int64
	first, last time.Time
}

func newPartWriter(dir, tenant, day string) (*partWriter, error) {
	f, err := os.CreateTemp(dir, "vigil-archive-*.ndjson.gz")
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	zw := gzip.NewWriter(f)
	return &partWriter{tenant: tenant, day: day, f: f, zw: zw, bw: bufio.NewWriterSize(zw, 64<<10)}, nil
}

func (p *partWriter) add(ev *audit.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("archive: encode event %s: %w", ev.ID, err)
	}
	if _, err := p.bw.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if p.n == 0 || ev.Time.Before(p.first) {
		p.first = ev.Time
	}
	if p.n == 0 || ev.Time.After(p.last) {
		p.last = ev.Time
	}
	p.n++
	return nil
}

func (p *partWriter) abort() {
	p.f.Close()
	os.Remove(p.f.Name())
}

func (p *partWriter) finish(ctx context.Context, st Store, stamp string, now time.Time) (Manifest, error) {
	defer p.abort()
	if err := p.bw.Flush(); err != nil {
		return Manifest{}, fmt.Errorf("archive: %w", err)
	}
	if err := p.zw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("archive: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return Manifest{}, err
	}
	h := sha256.New()
	size, err := io.Copy(h, p.f)
	if err != nil {
		return Manifest{}, fmt.Errorf("archive: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return Manifest{}, err
	}
	base := p.tenant + "/" + p.day + "/" + stamp
	m := Manifest{Format: FormatV1, Tenant: p.tenant, Day: p.day, Part: base + ".ndjson.gz", Events: p.n, Bytes: size,
		SHA256: hex.EncodeToString(h.Sum(nil)), First: p.first.UTC(), Last: p.last.UTC(), CreatedAt: now}
	if err := st.Put(ctx, m.Part, p.f, size); err != nil {
		return Manifest{}, fmt.Errorf("archive: store %s: %w", m.Part, err)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	// The manifest goes last: a part without one was never finished.
	if err := st.Put(ctx, base+".manifest.json", strings.NewReader(string(mb)+"\n"), int64(len(mb)+1)); err != nil {
		return Manifest{}, fmt.Errorf("archive: store the manifest of %s: %w", m.Part, err)
	}
	return m, nil
}

// Days lists the archived days of tenant (every tenant's when ""), as
// "tenant/YYYY-MM-DD", sorted.
func Days(ctx context.Context, st Store, tenant string) ([]string, error) {
	prefix := ""
	if tenant != "" {
		prefix = tenant + "/"
	}
	names, err := st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if !strings.HasSuffix(n, ".manifest.json") {
			continue
		}
		if d := path.Dir(n); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ErrCorrupt reports a part that does not match its manifest.
var ErrCorrupt = errors.New("archive: a part does not match its manifest")

// Restore writes the events of tenant's day (YYYY-MM-DD) to w as NDJSON,
// one event (line) per Write call, part by part, after checking each part's size, SHA-256 and event count
// against its manifest; it returns the manifests read. A mismatch is
// ErrCorrupt, naming the part, and stops before any of that part is
// written.
func Restore(ctx context.Context, st Store, tenant, day string, w io.Writer, tempDir string) ([]Manifest, error) {
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return nil, audit.FieldErrorf("day", "day must be a date like 2026-01-31")
	}
	names, err := st.List(ctx, tenant+"/"+day+"/")
	if err != nil {
		return nil, err
	}
	var ms []Manifest
	for _, n := range names {
		if !strings.HasSuffix(n, ".manifest.json") {
			continue
		}
		m, err := readManifest(ctx, st, n)
		if err != nil {
			return ms, err
		}
		if err := restorePart(ctx, st, m, w, tempDir); err != nil {
			return ms, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, audit.Errorf(audit.ENOTFOUND, "no archive of tenant %q for %s", tenant, day)
	}
	return ms, nil
}

func readManifest(ctx context.Context, st Store, name string) (Manifest, error) {
	rc, err := st.Get(ctx, name)
	if err != nil {
		return Manifest{}, err
	}
	defer rc.Close()
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, name, err)
	}
	if m.Format != FormatV1 || m.Part == "" {
		return m, fmt.Errorf("%w: manifest %s has format %q", ErrCorrupt, name, m.Format)
	}
	return m, nil
}

// restorePart copies a part to a temporary file while hashing it, checks
// it, then decompresses it to w counting the events.
func restorePart(ctx context.Context, st Store, m Manifest, w io.Writer, tempDir string) error {
	rc, err := st.Get(ctx, m.Part)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(tempDir, "vigil-restore-*.ndjson.gz")
	if err != nil {
		return err
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(rc, m.Bytes+1))
	if err != nil {
		return fmt.Errorf("archive: read %s: %w", m.Part, err)
	}
	if size != m.Bytes || hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return fmt.Errorf("%w: %s is %d bytes with SHA-256 %x, the manifest says %d bytes, %s", ErrCorrupt, m.Part, size, h.Sum(nil), m.Bytes, m.SHA256)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	zr, err := gzip.NewReader(tmp)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, m.Part, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), audit.MaxEventBytes*2)
	var n int64
	for sc.Scan() {
		if _, err := w.Write(append(sc.Bytes(), '\n')); err != nil {
			return err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, m.Part, err)
	}
	if n != m.Events {
		return fmt.Errorf("%w: %s holds %d events, the manifest says %d", ErrCorrupt, m.Part, n, m.Events)
	}
	return nil
}

// inputFields are the fields of an event as a client sends it.
var inputFields = map[string]bool{"id": true, "tenant": true, "time": true, "action": true, "outcome": true, "reason": true,
	"actor": true, "target": true, "context": true, "metadata": true}

// AsInput wraps w so that each event line Restore writes loses the fields
// the server adds (received_at, enrichment, risk…): what is left can be sent
// to a server again (POST /v1/events, vigil events send).
func AsInput(w io.Writer) io.Writer { return inputWriter{w} }

type inputWriter struct{ w io.Writer }

func (iw inputWriter) Write(line []byte) (int, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return 0, fmt.Errorf("archive: %w", err)
	}
	for k := range m {
		if !inputFields[k] {
			delete(m, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	if _, err := iw.w.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	return len(line), nil
}
