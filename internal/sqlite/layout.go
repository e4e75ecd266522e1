package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Time-bucketed indexes.
//
// The partition's high-cardinality indexes (event id, actor, address,
// session and target) are keyed by hashes and addresses, so the events of
// one insert land on pages all over each index. Once a day holds hundreds
// of thousands of events, every batch rewrites most of those indexes'
// pages (each commit writes every page it dirtied to the WAL, and the pages
// no longer fit the cache), and the cost per event grows with the size of
// the day: the "cliff" docs/perf/storage.md measures.
//
// In a partition created by this version those indexes lead with the
// event's time bucket, ts / bucketNs, an eighth of the partition's period
// (3 hours of a day). Events arrive close to their time, so a batch
// touches one bucket's part of each index, whose size depends on the
// traffic of three hours, not of the whole day. A search names the
// buckets its time range covers (`ts / W IN (…)`, newest first) and orders
// by bucket, then time: SQLite then reads each bucket's matches in index
// order, newest first, and sorts nothing more than before. A point lookup
// by id probes each bucket (eight b-tree probes instead of one); the
// insert's duplicate probe knows the event's time and probes its bucket.
//
// Partitions written by earlier versions keep their indexes: the layout
// is decided when a partition file is created empty (layout table), and
// every query asks the partition which form to use.

// layoutBuckets is how many time buckets lead a partition's bucketed
// indexes.
const layoutBuckets = 8

// bucketedIndexes are the indexes that lead with the time bucket.
var bucketedIndexes = []string{"ev_id", "ev_actor", "ev_ip", "ev_sess", "ev_tgt"}

// bucketedDDL replaces the high-cardinality indexes of an empty
// partition with bucketed ones of width w nanoseconds.
func bucketedDDL(w int64) string {
	b := "ts / " + strconv.FormatInt(w, 10)
	var sb strings.Builder
	for _, ix := range bucketedIndexes {
		sb.WriteString("DROP INDEX IF EXISTS " + ix + ";\n")
	}
	sb.WriteString("CREATE INDEX ev_id    ON events (" + b + ", idh);\n")
	sb.WriteString("CREATE INDEX ev_actor ON events (" + b + ", ah, ts) WHERE ah IS NOT NULL;\n")
	sb.WriteString("CREATE INDEX ev_ip    ON events (" + b + ", t, ip, ts) WHERE ip IS NOT NULL;\n")
	sb.WriteString("CREATE INDEX ev_sess  ON events (" + b + ", sh, ts) WHERE sh IS NOT NULL;\n")
	sb.WriteString("CREATE INDEX ev_tgt   ON events (" + b + ", gh, ts) WHERE gh IS NOT NULL;\n")
	sb.WriteString("INSERT INTO layout (k, v) VALUES ('bucket_ns', " + strconv.FormatInt(w, 10) + ");\n")
	return sb.String()
}

// loadLayout reads the partition's layout; a partition file that has no
// event and no layout yet is given the bucketed indexes (unless legacy is
// set: tests of files written by earlier versions).
func (p *partition) loadLayout(ctx context.Context, legacy bool) error {
	var w int64
	err := p.f.w.QueryRowContext(ctx, `SELECT v FROM layout WHERE k = 'bucket_ns'`).Scan(&w)
	switch {
	case err == nil:
		if w <= 0 || w > p.period {
			return fmt.Errorf("sqlite: %s: bad time bucket width %d", p.f.path, w)
		}
		p.bucketNs = w
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return translate(err, "read partition layout")
	case legacy:
		return nil
	}
	tx, err := p.f.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "begin layout")
	}
	defer func() { _ = tx.Rollback() }()
	var empty bool
	if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM events)`).Scan(&empty); err != nil {
		return translate(err, "read partition layout")
	}
	if !empty {
		return nil // written by an earlier version: its indexes stay
	}
	w = p.period / layoutBuckets
	if _, err := tx.ExecContext(ctx, bucketedDDL(w)); err != nil {
		return translate(err, "create bucketed indexes")
	}
	if err := tx.Commit(); err != nil {
		return translate(err, "commit layout")
	}
	p.bucketNs = w
	return nil
}

// bucketed reports whether index leads with the time bucket in p.
func (p *partition) bucketed(index string) bool {
	if p.bucketNs == 0 {
		return false
	}
	for _, ix := range bucketedIndexes {
		if ix == index {
			return true
		}
	}
	return false
}

// bucketExpr is the bucket expression exactly as the indexes spell it
// (SQLite matches an expression index only on the same text); the width
// is the partition's own number, never outside input.
func (p *partition) bucketExpr() string {
	return "ts / " + strconv.FormatInt(p.bucketNs, 10)
}

// bucketCond is the condition on the buckets of the partition-relative
// times [from, to), newest bucket first, and its arguments.
func (p *partition) bucketCond(from, to int64) (string, []any) {
	from, to = max(from, 0), min(to, p.period)
	if from >= to {
		return "0", nil
	}
	lo, hi := from/p.bucketNs, (to-1)/p.bucketNs
	args := make([]any, 0, hi-lo+1)
	for b := hi; b >= lo; b-- {
		args = append(args, b)
	}
	return p.bucketExpr() + " IN " + placeholders(1, len(args)), args
}

// orderBy is the newest-first order of a search through index.
func (p *partition) orderBy(index string) string {
	if p.bucketed(index) {
		return " ORDER BY " + p.bucketExpr() + " DESC, ts DESC, id DESC"
	}
	return " ORDER BY ts DESC, id DESC"
}
