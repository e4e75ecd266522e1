package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/archive"
	"github.com/vigilhq/vigil/internal/config"
)

// archiveStore opens the configuration's archive destination.
func archiveStore(load func() (config.Config, error)) (archive.Store, error) {
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	if !cfg.Retention.Archive.Enabled() {
		return nil, errors.New("no archive is configured: set retention.archive.dir or retention.archive.s3 (docs/operations.md)")
	}
	return app.ArchiveStore(cfg.Retention.Archive)
}

func archiveListCommand() *Command {
	return &Command{
		Name: "archive list", Short: "list the days retention archived (retention.archive)",
		Long: `Lists the tenant days in the archive that retention.archive names (a directory
or an S3-compatible bucket), as tenant/YYYY-MM-DD. Reads the configuration
like vigil serve (--config, VIGIL_* variables); the server need not run.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			tenant := fs.String("tenant", "", "one tenant's days only")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("archive list takes flags only")
				}
				st, err := archiveStore(load)
				if err != nil {
					return err
				}
				days, err := archive.Days(ctx, st, *tenant)
				if err != nil {
					return err
				}
				if len(days) == 0 {
					fmt.Fprintln(env.Stdout, "(nothing archived)")
				}
				for _, d := range days {
					fmt.Fprintln(env.Stdout, d)
				}
				return nil
			}
		},
	}
}

func archiveRestoreCommand() *Command {
	return &Command{
		Name: "archive restore", Usage: "TENANT YYYY-MM-DD", Short: "bring an archived day back as NDJSON, verified against its manifest",
		Long: `Reads every archived part of one tenant's day, checks each part's size,
SHA-256 and event count against its manifest (a part that does not match is
refused before any of it is written), and writes the events as NDJSON to
--out or stdout, as stored (with the server's received_at and enrichment).
To search them, write them --as-input and send the file to a Vigil server
for investigation (vigil events send; that server's ingest.max_event_age or
the tenant's max_event_age_days must accept old events).`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			out := fs.String("out", "", "file to write (default stdout)")
			asInput := fs.Bool("as-input", false, "drop the fields the server added (received_at, enrichment…), so the file can be sent again with vigil events send")
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("archive restore takes a tenant and a day (YYYY-MM-DD)")
				}
				st, err := archiveStore(load)
				if err != nil {
					return err
				}
				var w io.Writer = env.Stdout
				var f *os.File
				if *out != "" {
					if f, err = os.Create(*out); err != nil {
						return err
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriterSize(w, 64<<10)
				var dst io.Writer = bw
				if *asInput {
					dst = archive.AsInput(bw)
				}
				ms, err := archive.Restore(ctx, st, args[0], args[1], dst, "")
				if err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
				if f != nil {
					if err := f.Close(); err != nil {
						return err
					}
				}
				var n int64
				for _, m := range ms {
					n += m.Events
				}
				fmt.Fprintf(env.Stderr, "restored %d events of %s on %s from %d verified part(s)\n", n, args[0], args[1], len(ms))
				return nil
			}
		},
	}
}
