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
	"strings"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// maxImportBody bounds one import request's body, below the server's
// default server.max_body_size of 16 MiB.
const maxImportBody = 8 << 20

func importCommand() *Command {
	return &Command{
		Name: "import", Usage: "FORMAT FILE|-", Short: "import a vendor's log export (okta, auth0, gws, github, cloudtrail)",
		Long: `Imports history from an identity provider or cloud: FORMAT is okta (System
Log), auth0 (log events), gws (Google Workspace Reports API activities),
github (audit log) or cloudtrail (AWS CloudTrail). FILE is NDJSON or one JSON
array of the vendor's records; - reads stdin. docs/importers.md has each
vendor's mapping onto the event catalog.

Records go to the server in batches (POST /v1/import/FORMAT), streamed: memory
holds one batch. Event ids derive from the vendor's event ids, so importing a
file twice stores each event once (the second run reports duplicates).

Progress goes to stderr as for events send (records sent, rate and, for a
file, the percentage read). Each rejected record is reported with its line in
FILE and the field at fault, and the import continues; a summary follows, and
the exit status is 1 if any record was rejected. Events older than the
tenant's max_event_age_days are rejected: an operator raises it for a
backfill (docs/operations.md).`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			batch := fs.Int("batch", 1000, "records per request (at most 10000)")
			every := fs.Duration("progress-every", 10*time.Second, "interval of progress lines when stderr is not a terminal")
			quiet := fs.Bool("quiet", false, "no progress on stderr")
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("import takes a format (%s) and a file, or - for stdin", strings.Join(client.ImportFormats, ", "))
				}
				format := args[0]
				if !slices.Contains(client.ImportFormats, format) {
					return usagef("unknown format %q; the formats are %s", format, strings.Join(client.ImportFormats, ", "))
				}
				if *batch < 1 || *batch > client.MaxEventsPerBatch {
					return usagef("--batch must be between 1 and %d", client.MaxEventsPerBatch)
				}
				if *every <= 0 {
					return usagef("--progress-every must be positive")
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
				run := &importRun{c: c, format: format, out: env.Stderr, p: p, opts: client.ImportOptions{File: filepath.Base(name)}}
				if name == "stdin" {
					run.opts.File = ""
				}
				if err := run.all(ctx, importer.NewReader(counted), *batch); err != nil {
					p.clear()
					return fmt.Errorf("%s: %w (%d records sent before it)", name, err, run.sent)
				}
				if run.sent == 0 {
					return fmt.Errorf("%s: no records", name)
				}
				p.update(run.sent, run.rej, true)
				fmt.Fprintf(env.Stdout, "%d accepted, %d duplicates, %d rejected\n", run.acc, run.dup, run.rej)
				if run.rej > 0 {
					return errors.New("some records were rejected")
				}
				return nil
			}
		},
	}
}

// importRun sends one file's records in batches and tallies the answers.
type importRun struct {
	c                   *client.Client
	format              string
	opts                client.ImportOptions
	out                 io.Writer
	p                   *sendProgress
	acc, dup, rej, sent int
	body                bytes.Buffer
	lines               []int // the file line of each record in body
}

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
		if r.body.Len()+len(rec.Raw)+1 > maxImportBody {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
		r.body.Write(rec.Raw)
		r.body.WriteByte('\n')
		r.lines = append(r.lines, rec.Line)
		if len(r.lines) == batch {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
	}
}

func (r *importRun) flush(ctx context.Context) error {
	if len(r.lines) == 0 {
		return nil
	}
	res, err := r.c.Import(ctx, r.format, r.body.Bytes(), r.opts)
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
