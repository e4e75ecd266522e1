package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func queryCommand() *Command {
	return &Command{
		Name: "query", Usage: "'QUERY'", Short: "run a query: filters, then | stats … | sort … | head N | fields …",
		Long: `Runs a query in Vigil's query language (docs/query-language.md) on the server
and prints the result as an aligned table (default), JSON or CSV. Examples:

  vigil query 'time:>=-10m action:auth.login.failure | stats count() dc(actor.id) as accounts by ip | sort -accounts | head 20'
  vigil query 'actor.id:u_42 | fields time, action, ip, geo.country'

The query runs on the key's tenant (operators: --tenant, or every tenant
without it) and is itself recorded in the log as a vigil.search event.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table, json or csv")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("query takes one argument, the query (quote it)")
				}
				if *format != "table" && *format != "json" && *format != "csv" {
					return usagef("--format must be table, json or csv")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				res, err := c.Query(ctx, args[0])
				if err != nil {
					return err
				}
				if err := printResult(env.Stdout, res, *format); err != nil {
					return err
				}
				st := res.Stats
				fmt.Fprintf(env.Stderr, "%d rows (%d partitions, %d scanned, %d matched, %s)\n", st.Rows, st.Partitions, st.Scanned,
					st.Matched, st.Elapsed.Round(time.Millisecond))
				if st.Truncated {
					fmt.Fprintln(env.Stderr, "the result was cut at 10000 rows; add a head, a stats stage or a narrower filter, or use vigil export")
				}
				return nil
			}
		},
	}
}

// cellText renders a decoded JSON value for a table or CSV cell.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cellText(e)
		}
		return strings.Join(parts, ";")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func printResult(w io.Writer, res *client.QueryResult, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "csv":
		cw := csv.NewWriter(w)
		rec := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			rec[i] = c.Name
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
		for _, row := range res.Rows {
			for i := range rec {
				rec[i] = cellText(row[i])
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, c := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, strings.ToUpper(c.Name))
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		for i := range res.Columns {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			s := cellText(row[i])
			if s == "" {
				s = "-"
			}
			// Tabs and newlines in values would break the alignment.
			fmt.Fprint(tw, strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Rows) == 0 {
		fmt.Fprintln(w, "(no rows)")
	}
	return nil
}

func exportCommand() *Command {
	return &Command{
		Name: "export", Usage: "'QUERY'", Short: "stream every row of a query as CSV, NDJSON or OCSF, with progress",
		Long: `Exports every row of a query (every matching event without a stats stage;
no 10000-row cap) as CSV, NDJSON or OCSF to stdout or --output, streamed with
constant memory on both ends. Progress goes to stderr. Examples:

  vigil export 'time:>=-30d action:auth.*' --format ndjson --output auth.ndjson
  vigil export 'time:>=-1d' --format ocsf --output events.ocsf.ndjson
  vigil export 'time:>=-7d | stats count() by actor.id, bin(time, 1d)' > daily.csv

The export is recorded in the log as a vigil.export event. It exits 1 when the
server ended the export early (the output then holds the rows received).`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "csv", "output: csv, ndjson, ocsf or ecs (NDJSON of OCSF 1.2.0 objects or ECS documents; events only)")
			output := fs.String("output", "", "file to write (default stdout)")
			quiet := fs.Bool("quiet", false, "no progress on stderr")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("export takes one argument, the query (quote it)")
				}
				if err := checkFormat(*format, client.FormatCSV, client.FormatNDJSON, client.FormatOCSF, client.FormatECS); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				out := env.Stdout
				if *output != "" && *output != "-" {
					f, err := os.Create(*output)
					if err != nil {
						return err
					}
					defer f.Close()
					out = f
				}
				p := &progress{w: env.Stderr, start: time.Now(), quiet: *quiet}
				cw := &lineCounter{w: out, p: p}
				rows, err := c.Export(ctx, args[0], cw, client.ExportOptions{Format: *format})
				p.done(rows, err)
				return err
			}
		},
	}
}

// lineCounter passes bytes through and counts lines, for progress.
type lineCounter struct {
	w io.Writer
	p *progress
}

func (l *lineCounter) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	l.p.add(int64(n), int64(bytes.Count(b[:n], []byte{'\n'})))
	return n, err
}

// progress prints "rows, MB, rate" to stderr at most twice a second.
type progress struct {
	mu          sync.Mutex
	w           io.Writer
	start, last time.Time
	bytes       int64
	lines       int64
	quiet       bool
}

func (p *progress) add(n, lines int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
	p.lines += lines
	if p.quiet || time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "\rexporting: %d lines, %.1f MB, %.0f lines/s ", p.lines, float64(p.bytes)/1e6, float64(p.lines)/max(el, 1e-3))
}

func (p *progress) done(rows int64, err error) {
	if p.quiet {
		return
	}
	el := time.Since(p.start)
	if err != nil {
		fmt.Fprintf(p.w, "\rexport failed after %d lines, %.1f MB, %s\n", p.lines, float64(p.bytes)/1e6, el.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(p.w, "\rexported %d rows, %.1f MB in %s                 \n", rows, float64(p.bytes)/1e6, el.Round(time.Millisecond))
}
