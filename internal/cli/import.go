package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/mapping"
)

// maxImportBody bounds one import request's body, below the server's
// default server.max_body_size of 16 MiB.
const maxImportBody = 8 << 20

func importCommand() *Command {
	return &Command{
		Name: "import", Usage: "FORMAT FILE|- [--mapping MAP.yaml]", Short: "import a vendor's log export (okta, auth0, gws, github, cloudtrail) or any CSV/NDJSON with a mapping",
		Long: `Imports history from an identity provider or cloud: FORMAT is okta (System
Log), auth0 (log events), gws (Google Workspace Reports API activities),
github (audit log) or cloudtrail (AWS CloudTrail). FILE is NDJSON or one JSON
array of the vendor's records; - reads stdin. docs/importers.md has each
vendor's mapping onto the event catalog.

FORMAT csv or ndjson imports a file of any other shape with a mapping file
(--mapping MAP.yaml, docs/importers.md "Any CSV or NDJSON file"): the mapping is
checked here, then sent with every batch and applied by the server. Event ids
derive from the mapping's id field or, without one, from a hash of the whole
record, so a re-import stores nothing twice either.

Records go to the server in batches (POST /v1/import/FORMAT), streamed: memory
holds one batch. Event ids derive from the vendor's event ids, so importing a
file twice stores each event once (the second run reports duplicates).

Progress goes to stderr as for events send (records sent, rate and, for a
file, the percentage read). Each rejected record is reported with its line in
FILE and the field at fault, and the import continues; a summary follows, and
the exit status is 1 if any record was rejected. Events older than the
tenant's max_event_age_days are rejected: an operator raises it for a
backfill (docs/operations.md).

An import is detected and alerted like live events. With --backfill the
records are marked as history (metadata.import.backfill): detection learns
from them (profiles, baselines, shared egresses) and stores the findings
they raise, flagged "backfill", but sends no webhook, e-mail, PagerDuty
alert or response action for them; --alert-past alerts them as well.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			batch := fs.Int("batch", 1000, "records per request (at most 10000)")
			every := fs.Duration("progress-every", 10*time.Second, "interval of progress lines when stderr is not a terminal")
			quiet := fs.Bool("quiet", false, "no progress on stderr")
			mapFile := fs.String("mapping", "", "mapping file (YAML) for the csv and ndjson formats")
			backfill := fs.Bool("backfill", false, "import history: detection learns from it, its findings are stored flagged and not alerted")
			alertPast := fs.Bool("alert-past", false, "with --backfill: alert the findings raised on the history too")
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("import takes a format (%s) and a file, or - for stdin", importFormats())
				}
				format := args[0]
				if !slices.Contains(client.ImportFormats, format) && !isMappedFormat(format) {
					return usagef("unknown format %q; the formats are %s", format, importFormats())
				}
				switch {
				case isMappedFormat(format) && *mapFile == "":
					return usagef("import %s needs --mapping MAP.yaml (docs/importers.md)", format)
				case !isMappedFormat(format) && *mapFile != "":
					return usagef("--mapping is for the csv and ndjson formats; %s has its own mapping", format)
				}
				if *alertPast && !*backfill {
					return usagef("--alert-past goes with --backfill (an import without it alerts as live events do)")
				}
				mark := ""
				if *backfill {
					mark = audit.BackfillSilent
					if *alertPast {
						mark = audit.BackfillAlert
					}
				}
				if *batch < 1 || *batch > client.MaxEventsPerBatch {
					return usagef("--batch must be between 1 and %d", client.MaxEventsPerBatch)
				}
				if *every <= 0 {
					return usagef("--progress-every must be positive")
				}
				var m *mapping.Mapping
				var mapFileBytes []byte
				if *mapFile != "" {
					var err error
					if m, mapFileBytes, err = loadMapping(*mapFile, format); err != nil {
						return err
					}
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				in, name := env.Stdin, "stdin"
				if args[1] != "-" {
					f, err := os.Open(args[1])
					if err != nil {
						return err
					}
					defer f.Close()
					in, name = f, args[1]
				}
				counted := &countingReader{r: in}
				p := &sendProgress{w: env.Stderr, tty: isTerminal(env.Stderr), every: *every, quiet: *quiet,
					size: inputSize(in), read: counted, start: time.Now(), noun: "records"}
				file := filepath.Base(name)
				if name == "stdin" {
					file = ""
				}
				run := &importRun{c: c, format: format, mapping: mapFileBytes, out: env.Stderr, p: p, opts: client.ImportOptions{File: file, Backfill: mark}}
				switch format {
				case client.ImportCSV:
					err = run.csv(ctx, m, counted, *batch)
				default:
					err = run.all(ctx, importer.NewReader(counted), *batch)
				}
				sent, acc, dup, rej := run.sent, run.acc, run.dup, run.rej
				if err != nil {
					p.clear()
					return fmt.Errorf("%s: %w (%d records sent before it)", name, err, sent)
				}
				if sent == 0 {
					return fmt.Errorf("%s: no records", name)
				}
				p.update(sent, rej, true)
				fmt.Fprintf(env.Stdout, "%d accepted, %d duplicates, %d rejected\n", acc, dup, rej)
				if rej > 0 {
					return errors.New("some records were rejected")
				}
				return nil
			}
		},
	}
}

// importRun sends one file's records in batches and tallies the answers:
// vendor records to POST /v1/import/{format}, or, with a mapping, CSV
// rows or NDJSON records to POST /v1/import/csv|ndjson, where the server
// applies the mapping.
type importRun struct {
	c                   *client.Client
	format              string
	opts                client.ImportOptions
	mapping             []byte // the mapping file, sent with every batch (csv and ndjson)
	header              []byte // csv: the header row, first in every batch
	out                 io.Writer
	p                   *sendProgress
	acc, dup, rej, sent int
	body                bytes.Buffer
	lines               []int // the file line of each record in body
}

// all sends the NDJSON (or JSON array) records of rd.
func (r *importRun) all(ctx context.Context, rd *importer.Reader, batch int) error {
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return r.flush(ctx)
		}
		if err != nil {
			return err
		}
		if rec.Err != nil {
			r.reject(rec.Line, "", audit.ErrorMessage(rec.Err))
			r.sent++
			continue
		}
		if err := r.add(ctx, rec.Line, rec.Raw, batch); err != nil {
			return err
		}
	}
}

// add queues one record, sending the batch first when the record would
// take the request over maxImportBody, and after it when the batch is full.
func (r *importRun) add(ctx context.Context, line int, rec []byte, batch int) error {
	// The mapping, the header and the multipart framing (well under
	// 1 KiB) travel with every batch.
	if r.body.Len()+len(rec)+1 > maxImportBody-len(r.mapping)-len(r.header)-1024 {
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	r.body.Write(rec)
	r.body.WriteByte('\n')
	r.lines = append(r.lines, line)
	if len(r.lines) == batch {
		return r.flush(ctx)
	}
	return nil
}

func (r *importRun) flush(ctx context.Context) error {
	if len(r.lines) == 0 {
		return nil
	}
	var res *client.ImportResult
	var err error
	if r.mapping != nil {
		data := r.body.Bytes()
		if r.header != nil {
			data = append(append(make([]byte, 0, len(r.header)+1+len(data)), r.header...), '\n')
			data = append(data, r.body.Bytes()...)
		}
		res, err = r.c.ImportMapped(ctx, r.format, r.mapping, data, r.opts)
	} else {
		res, err = r.c.Import(ctx, r.format, r.body.Bytes(), r.opts)
	}
	if res != nil {
		r.acc, r.dup = r.acc+res.Accepted, r.dup+res.Duplicates
		for _, x := range res.Results {
			if x.Status == client.StatusRejected && x.Error != nil && x.Index >= 0 && x.Index < len(r.lines) {
				r.reject(r.lines[x.Index], x.Error.Field, x.Error.Message)
			}
		}
	}
	// A batch rejected whole still carries every record's reason.
	var apiErr *client.Error
	if err != nil && (res == nil || !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalid) {
		return fmt.Errorf("import lines %d-%d: %w", r.lines[0], r.lines[len(r.lines)-1], err)
	}
	r.sent += len(r.lines)
	r.body.Reset()
	r.lines = r.lines[:0]
	r.p.update(r.sent, r.rej, false)
	return nil
}

func (r *importRun) reject(line int, field, msg string) {
	r.rej++
	if field != "" {
		field = " (" + field + ")"
	}
	r.p.clear()
	fmt.Fprintf(r.out, "line %d rejected%s: %s\n", line, field, msg)
}
