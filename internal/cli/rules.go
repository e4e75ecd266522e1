package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
)

func rulesCheckCommand() *Command {
	return &Command{
		Name: "rules check", Usage: "DIR", Short: "validate the rule files of a directory",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("rules check takes one directory")
				}
				rs, err := rulelang.ParseDir(args[0])
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tSEVERITY\tNAME")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.Severity, r.Name)
				}
				tw.Flush()
				fmt.Fprintf(env.Stderr, "%d rules are valid\n", len(rs))
				return nil
			}
		},
	}
}

func rulesTestCommand() *Command {
	return &Command{
		Name: "rules test", Usage: "DIR", Short: "run the fixture cases of a rule directory",
		Long: `Runs every case under DIR/testdata/<rule-id>/<case>/ — events.jsonl in,
want.json (the expected findings) out, optional tuning.json — against the
rules of DIR, the way the built-in pack is tested.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("rules test takes one directory")
				}
				passed, failed, err := detect.RunFixtures(ctx, args[0], env.Stdout)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%d passed, %d failed\n", passed, failed)
				if failed > 0 {
					return errors.New("some fixture cases failed")
				}
				if passed == 0 {
					return errors.New("no fixture cases found under " + args[0] + "/testdata")
				}
				return nil
			}
		},
	}
}

func profilesRebuildCommand() *Command {
	return &Command{
		Name: "profiles rebuild", Short: "recompute actor profiles from stored events (stop the server first)",
		Long: `Walks every tenant's stored events in time order, oldest first, and rebuilds
the actor profiles and tenant statistics that detection keeps. Run it with the
server stopped, after restoring a backup or losing the detection state. With
detection partitioned over a cluster's nodes (detect.partitioned), each
tenant's profiles are rebuilt in the state of its partition's detection unit.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("profiles rebuild takes flags only")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					engines, err := app.ProfileEngines(cfg, s.State, slog.New(slog.DiscardHandler))
					if err != nil {
						return err
					}
					all, err := s.Tenants.ListTenants(ctx)
					if err != nil {
						return err
					}
					n := 0
					for _, pe := range engines {
						// Each engine learns from its own tenants only (with
						// partitioned detection, its unit's).
						var tenants []audit.Tenant
						for _, t := range all {
							if pe.Owns(t.ID) {
								tenants = append(tenants, t)
							}
						}
						if pe.Unit != "" {
							fmt.Fprintf(env.Stderr, "detection unit %s: %d tenants\n", pe.Unit, len(tenants))
						}
						next := chronological(ctx, s.Events, tenants, time.Now().UTC(), func(t string, day time.Time) {
							fmt.Fprintf(env.Stderr, "\r  %s %s (%d events)   ", t, day.Format("2006-01-02"), n)
						})
						err = pe.Engine.Rebuild(ctx, func() (*audit.Event, error) {
							ev, err := next()
							if err == nil {
								n++
							}
							return ev, err
						})
						fmt.Fprintln(env.Stderr)
						if err != nil {
							return err
						}
					}
					fmt.Fprintf(env.Stdout, "rebuilt profiles from %d events in %d tenants\n", n, len(all))
					return nil
				})
			}
		},
	}
}

// chronological iterates every tenant's events oldest first, one UTC day
// at a time, so memory is bounded by one tenant-day.
func chronological(ctx context.Context, store audit.EventStore, tenants []audit.Tenant, now time.Time, progress func(string, time.Time)) func() (*audit.Event, error) {
	ti := 0
	var day time.Time
	var buf []audit.Event
	return func() (*audit.Event, error) {
		for len(buf) == 0 {
			if ti >= len(tenants) {
				return nil, io.EOF
			}
			t := tenants[ti]
			if day.IsZero() {
				day = now.AddDate(0, 0, -max(t.RetentionDays, 1)).Truncate(24 * time.Hour)
			}
			if day.After(now) {
				ti++
				day = time.Time{}
				continue
			}
			f := audit.EventFilter{Tenant: t.ID, Since: day, Until: day.Add(24 * time.Hour), Limit: audit.MaxPageSize}
			for {
				page, err := store.SearchEvents(ctx, f)
				if err != nil {
					return nil, fmt.Errorf("read %s events of %s: %w", t.ID, day.Format("2006-01-02"), err)
				}
				buf = append(buf, page.Events...)
				if page.Next == "" {
					break
				}
				f.Cursor = page.Next
			}
			slices.Reverse(buf) // pages are newest first
			progress(t.ID, day)
			day = day.Add(24 * time.Hour)
		}
		ev := buf[0]
		buf = buf[1:]
		return &ev, nil
	}
}

func rulesListCommand() *Command {
	return &Command{
		Name: "rules list", Short: "list the server's detection rules with their defaults and the tenant's tuning",
		Long: `Lists every rule the server runs (GET /v1/rules): whether it is enabled for
the tenant, and each parameter's value in effect; a parameter the tenant
overrides shows its default too. Tune with PUT /v1/rules/{rule}/settings
(docs/rules.md).`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("rules list takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				l, err := c.Rules(ctx)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, l)
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tFAMILY\tKIND\tSEVERITY\tENABLED\tPARAMETERS")
				for _, r := range l.Rules {
					var ps []string
					for _, p := range r.Params {
						s := p.Name + "=" + cellText(p.Value)
						if _, ok := r.Overrides[p.Name]; ok {
							s += " (default " + cellText(p.Default) + ")"
						}
						ps = append(ps, s)
					}
					enabled := "yes"
					if !r.Enabled {
						enabled = "no"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Family, r.Kind, r.Severity, enabled, strings.Join(ps, " "))
				}
				return tw.Flush()
			}
		},
	}
}
