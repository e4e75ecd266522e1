package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vigilhq/vigil/internal/audit"
)

// evArgs collects the parameters of one statement; add returns the
// placeholder of a value. Every value reaches SQL as a parameter.
type evArgs struct{ args []any }

func (a *evArgs) add(v any) string {
	a.args = append(a.args, v)
	return "$" + strconv.Itoa(len(a.args))
}

// likeEscape escapes LIKE's metacharacters (the default escape is '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// evFetch is how many rows one FETCH of a partition cursor reads after the
// first.
const evFetch = 1000

// streamPart runs stmt (a SELECT over one partition) through a server-side
// cursor in a read-only transaction, fetching first rows, then evFetch at a
// time, and calls each for every row until it stops, fails or the rows
// end. A partition dropped meanwhile reads as empty.
func (s *Store) streamPart(ctx context.Context, stmt string, args []any, first int, each func(rows pgx.Rows) (stop bool, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return translate(err, "begin read")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `DECLARE evcur NO SCROLL CURSOR FOR `+stmt, args...); err != nil {
		if sqlState(err) == "42P01" {
			return nil
		}
		return translate(err, "read events")
	}
	n := max(first, 1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The statement's columns differ from cursor to cursor: describe it
		// every time instead of caching it.
		rows, err := tx.Query(ctx, `FETCH `+strconv.Itoa(n)+` FROM evcur`, pgx.QueryExecModeDescribeExec)
		if err != nil {
			return translate(err, "read events")
		}
		got := 0
		for rows.Next() {
			got++
			stop, err := each(rows)
			if stop || err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return translate(err, "read events")
		}
		if got < n {
			return nil
		}
		n = evFetch
	}
}

// eventPageLimit is a search's page size.
func eventPageLimit(n int) int {
	switch {
	case n <= 0:
		return audit.DefaultPageSize
	case n > audit.MaxPageSize:
		return audit.MaxPageSize
	}
	return n
}

// SearchEvents returns events newest first, ordered by (Time, ID)
// descending (then tenant, for all-tenant searches), with keyset paging in
// audit.Cursor. It walks the day partitions newest first, each through one
// statement over its own table with the column filters (tenant, time,
// action, actor, session, target, IP, outcome) and the cursor; enrichment
// and free text are checked on the decoded event. It stops at a full page.
func (s *Store) SearchEvents(ctx context.Context, f audit.EventFilter) (*audit.EventPage, error) {
	if f.Tenant == "" && !f.AllTenants {
		return nil, invalid("tenant", "an event search needs a tenant")
	}
	var cur *audit.Cursor
	if f.Cursor != "" {
		c, err := audit.ParseCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		cur = &c
	}
	if f.IP.IsValid() {
		f.IP = unmapEventPrefix(f.IP)
	}
	limit := eventPageLimit(f.Limit)
	var from, to int64
	if !f.Since.IsZero() {
		from = clampNanos(f.Since)
	}
	if !f.Until.IsZero() {
		to = clampNanos(f.Until)
	}
	if cur != nil && (to == 0 || cur.Nanos+1 < to) {
		to = cur.Nanos + 1
	}
	for _, v := range []string{f.Tenant, f.Action, string(f.Outcome)} {
		if !safeText(v) {
			return &audit.EventPage{}, nil // nothing stored can match
		}
	}
	var a evArgs
	var where []string
	if f.Tenant != "" {
		where = append(where, "tenant = "+a.add(f.Tenant))
	}
	if from != 0 {
		where = append(where, "time_ns >= "+a.add(from))
	}
	if to != 0 {
		where = append(where, "time_ns < "+a.add(to))
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
			where = append(where, "action LIKE "+a.add(likeEscape(prefix+".")+"%"))
		} else {
			where = append(where, "action = "+a.add(f.Action))
		}
	}
	if f.ActorID != "" {
		where = append(where, "actor_id = "+a.add([]byte(f.ActorID)))
	}
	if f.SessionID != "" {
		where = append(where, "session_id = "+a.add([]byte(f.SessionID)))
	}
	if f.TargetID != "" {
		where = append(where, "target_id = "+a.add([]byte(f.TargetID)))
	}
	if f.IP.IsValid() {
		where = append(where, "ip <<= "+a.add(f.IP))
	}
	if f.Outcome != "" {
		where = append(where, "outcome = "+a.add(string(f.Outcome)))
	}
	order := " ORDER BY time_ns DESC, id DESC"
	if cur != nil {
		if f.Tenant != "" {
			// Rows at the cursor's time come next when their id is smaller
			// or, after an all-tenant cursor, equal with a smaller tenant.
			op := "<"
			if cur.Tenant != "" && f.Tenant < cur.Tenant {
				op = "<="
			}
			where = append(where, "(time_ns, id) "+op+" ("+a.add(cur.Nanos)+"::bigint, "+a.add(cur.ID)+"::text)")
		} else {
			where = append(where, "time_ns <= "+a.add(cur.Nanos),
				"(time_ns, id, tenant) < ("+a.add(cur.Nanos)+"::bigint, "+a.add(cur.ID)+"::text, "+a.add(cur.Tenant)+"::text)")
		}
	}
	if f.Tenant == "" {
		order += ", tenant DESC"
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	days, err := s.eventParts(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Event, 0, limit+1)
	for _, day := range days {
		stmt := `SELECT time_ns, body FROM ` + pgx.Identifier{partName(day)}.Sanitize() + cond + order
		err := s.streamPart(ctx, stmt, a.args, limit+1-len(out), func(rows pgx.Rows) (bool, error) {
			var ns int64
			var body []byte
			if err := rows.Scan(&ns, &body); err != nil {
				return true, translate(err, "search events")
			}
			out = append(out, audit.Event{})
			ev := &out[len(out)-1]
			if err := decodeBody(body, ns, ev, nil); err != nil {
				return true, err
			}
			if !f.Matches(ev) {
				out = out[:len(out)-1]
			}
			return len(out) > limit, nil
		})
		if err != nil {
			return nil, err
		}
		if len(out) > limit {
			break
		}
	}
	page := &audit.EventPage{Events: out}
	if len(out) > limit {
		page.Events = out[:limit]
		last := out[limit-1]
		c := audit.Cursor{Nanos: last.Time.UnixNano(), ID: last.ID}
		if f.AllTenants && f.Tenant == "" {
			c.Tenant = last.Tenant
		}
		page.Next = c.String()
	}
	return page, nil
}
