package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The plain alternative: PostgreSQL 15, one table, COPY, hand-written SQL
// with an index per search. Everything goes over the local unix socket.
const (
	pgSocketDir = "/var/run/postgresql"
	pgDatabase  = "vigil_bench"
)

const pgSchema = `
CREATE TABLE events (
	tenant     text        NOT NULL,
	id         text        NOT NULL,
	time       timestamptz NOT NULL,
	action     text COLLATE "C" NOT NULL,
	actor_id   text,
	ip         inet,
	session_id text,
	target_id  text,
	outcome    text,
	body       jsonb       NOT NULL,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX ev_actor   ON events (tenant, actor_id, time DESC);
CREATE INDEX ev_ip      ON events (tenant, ip, time DESC);
CREATE INDEX ev_action  ON events (tenant, action, time DESC);
CREATE INDEX ev_time    ON events (tenant, time DESC);
CREATE INDEX ev_session ON events (tenant, session_id, time DESC) WHERE session_id IS NOT NULL;
CREATE INDEX ev_target  ON events (tenant, target_id, time DESC) WHERE target_id IS NOT NULL;
`

// pgSQL is the hand-written SQL per search shape.
var pgSQL = struct{ actor, ip, cidr, prefix, exact, agg string }{
	actor:  `SELECT body FROM events WHERE tenant = $1 AND actor_id = $2 ORDER BY time DESC LIMIT 100`,
	ip:     `SELECT body FROM events WHERE tenant = $1 AND ip = $2 ORDER BY time DESC LIMIT 100`,
	cidr:   `SELECT body FROM events WHERE tenant = $1 AND ip << $2 ORDER BY time DESC LIMIT 100`,
	prefix: `SELECT body FROM events WHERE tenant = $1 AND action LIKE $2 ORDER BY time DESC LIMIT 100`,
	exact:  `SELECT body FROM events WHERE tenant = $1 AND action = $2 ORDER BY time DESC LIMIT 100`,
	agg: `SELECT ip, count(DISTINCT actor_id) AS n FROM events
	      WHERE tenant = $1 AND action = 'auth.login.failure' AND time >= $2 AND time < $3
	      GROUP BY ip ORDER BY n DESC LIMIT 20`,
}

// PG is a prepared PostgreSQL comparison database.
type PG struct {
	connStr      string
	startedByUs  bool
	Version      string
	SharedBuffer string
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// setupPG starts the local cluster when it is down, makes sure the current
// (root) user has a role, and creates a fresh database.
func setupPG(ctx context.Context, logf func(string, ...any)) (*PG, error) {
	pg := &PG{}
	out, err := run("pg_lsclusters", "-h")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not installed here: %w", err)
	}
	if !strings.Contains(out, "15 main") {
		return nil, fmt.Errorf("no PostgreSQL 15 cluster 'main' (pg_lsclusters: %s)", strings.TrimSpace(out))
	}
	if strings.Contains(out, " down ") {
		logf("starting PostgreSQL: pg_ctlcluster 15 main start")
		if _, err := run("pg_ctlcluster", "15", "main", "start"); err != nil {
			return nil, err
		}
		pg.startedByUs = true
	}
	if os.Geteuid() == 0 {
		has, err := run("runuser", "-u", "postgres", "--", "psql", "-tAc", "SELECT 1 FROM pg_roles WHERE rolname = 'root'")
		if err != nil {
			return nil, pg.closeWith(err)
		}
		if strings.TrimSpace(has) != "1" {
			logf("creating PostgreSQL role root")
			if _, err := run("runuser", "-u", "postgres", "--", "psql", "-c", "CREATE ROLE root SUPERUSER LOGIN"); err != nil {
				return nil, pg.closeWith(err)
			}
		}
	}
	admin, err := pgx.Connect(ctx, "host="+pgSocketDir+" dbname=postgres")
	if err != nil {
		return nil, pg.closeWith(fmt.Errorf("connect to PostgreSQL over %s: %w", pgSocketDir, err))
	}
	defer admin.Close(ctx)
	for _, q := range []string{"DROP DATABASE IF EXISTS " + pgDatabase, "CREATE DATABASE " + pgDatabase} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return nil, pg.closeWith(fmt.Errorf("%s: %w", q, err))
		}
	}
	pg.connStr = "host=" + pgSocketDir + " dbname=" + pgDatabase
	c, err := pg.conn(ctx)
	if err != nil {
		return nil, pg.closeWith(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, pgSchema); err != nil {
		return nil, pg.closeWith(fmt.Errorf("create schema: %w", err))
	}
	_ = c.QueryRow(ctx, "SHOW server_version").Scan(&pg.Version)
	_ = c.QueryRow(ctx, "SHOW shared_buffers").Scan(&pg.SharedBuffer)
	return pg, nil
}

func (pg *PG) conn(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, pg.connStr)
}

func (pg *PG) closeWith(err error) error { return errors.Join(err, pg.Close()) }

// Close drops the database and stops the cluster if this run started it.
func (pg *PG) Close() error {
	var errs []error
	if pg.connStr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if admin, err := pgx.Connect(ctx, "host="+pgSocketDir+" dbname=postgres"); err == nil {
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgDatabase+" WITH (FORCE)"); err != nil {
				errs = append(errs, err)
			}
			admin.Close(ctx)
		} else {
			errs = append(errs, err)
		}
	}
	if pg.startedByUs {
		if _, err := run("pg_ctlcluster", "15", "main", "stop"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var pgColumns = []string{"tenant", "id", "time", "action", "actor_id", "ip", "session_id", "target_id", "outcome", "body"}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Load COPYs events [from, to) in batches of batch rows, one transaction
// (durable commit) per batch, from clients connections at once.
func (pg *PG) Load(ctx context.Context, g *Gen, from, to, batch, clients int, progress func(int64)) (LoadResult, error) {
	res := LoadResult{Clients: clients, Batch: batch, From: from, To: to}
	var next, done atomic.Int64
	next.Store(int64(from))
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if progress != nil {
					progress(done.Load())
				}
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pg.conn(ctx)
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
				return
			}
			defer c.Close(context.Background())
			rows := make([][]any, 0, batch)
			var lat []time.Duration
			for ctx.Err() == nil {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= to {
					break
				}
				hi := min(lo+batch, to)
				rows = rows[:0]
				for i := lo; i < hi; i++ {
					body, ev := g.AppendJSON(nil, i)
					rows = append(rows, []any{ev.Tenant, ev.ID, ev.Time, ev.Action, nullable(ev.Actor), ev.IP,
						nullable(ev.Session), nullable(ev.Target), nullable(ev.Outcome), body})
				}
				t0 := time.Now()
				n, err := c.CopyFrom(ctx, pgx.Identifier{"events"}, pgColumns, pgx.CopyFromRows(rows))
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("COPY events %d-%d: %w", lo, hi, err))
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t0))
				done.Add(n)
			}
			mu.Lock()
			res.Lat = append(res.Lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	res.Elapsed = time.Since(start)
	res.Events, res.Accepted, res.Requests = done.Load(), done.Load(), int64(len(res.Lat))
	return res, firstErr
}

// Analyze runs VACUUM ANALYZE so the planner has statistics, as an
// operator would after a bulk load.
func (pg *PG) Analyze(ctx context.Context) error {
	c, err := pg.conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "VACUUM ANALYZE events")
	return err
}

// Size returns the bytes of the events table with its indexes and TOAST.
func (pg *PG) Size(ctx context.Context) (int64, error) {
	c, err := pg.conn(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int64
	err = c.QueryRow(ctx, "SELECT pg_total_relation_size('events')").Scan(&n)
	return n, err
}

// Searcher returns a function running one search on one connection.
func (pg *PG) Searcher(ctx context.Context) (func(QueryParams) (Answer, error), func(), error) {
	c, err := pg.conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	runSQL := func(sql string, args ...any) (int, error) {
		rows, err := c.Query(ctx, sql, args...)
		if err != nil {
			return 0, err
		}
		n := 0
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return 0, err
			}
			n++
		}
		rows.Close()
		return n, rows.Err()
	}
	pgSearch := func(p QueryParams) (int, error) {
		switch {
		case p.Agg:
			rows, err := c.Query(ctx, pgSQL.agg, p.Tenant, p.Until.Add(-24*time.Hour), p.Until)
			if err != nil {
				return 0, err
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			return n, rows.Err()
		case p.Actor != "":
			return runSQL(pgSQL.actor, p.Tenant, p.Actor)
		case p.IP.IsValid():
			return runSQL(pgSQL.ip, p.Tenant, p.IP)
		case p.CIDR.IsValid():
			return runSQL(pgSQL.cidr, p.Tenant, p.CIDR)
		case strings.HasSuffix(p.Action, ".*"):
			return runSQL(pgSQL.prefix, p.Tenant, strings.TrimSuffix(p.Action, "*")+"%")
		default:
			return runSQL(pgSQL.exact, p.Tenant, p.Action)
		}
	}
	search := func(p QueryParams) (Answer, error) {
		n, err := pgSearch(p)
		return Answer{Rows: n}, err
	}
	return search, func() { c.Close(context.Background()) }, nil
}
