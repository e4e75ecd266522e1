package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/demo"
)

// configFlags adds --config and the overrides every server-side command
// shares, and returns a loader for the effective configuration.
func configFlags(env *Env, fs *flag.FlagSet) func() (config.Config, error) {
	path := fs.String("config", "", "YAML config file (env VIGIL_CONFIG)")
	dataDir := fs.String("data-dir", "", "data directory of the embedded store (storage.sqlite.dir)")
	return func() (config.Config, error) {
		p := *path
		if p == "" {
			p = env.Getenv("VIGIL_CONFIG")
		}
		cfg, err := config.Load(p, env.Getenv)
		if err != nil {
			return cfg, err
		}
		if *dataDir != "" {
			cfg.Storage.SQLite.Dir = *dataDir
		}
		return cfg, nil
	}
}

func serveCommand() *Command {
	return &Command{
		Name: "serve", Short: "run the Vigil server",
		Long: `Starts the HTTP API, the ingest stream and the enrich → detect → store pipeline.
With no configuration everything lives in ./vigil-data. On first start, when no
operator key exists, one is created and written to operator-key (mode 0600) in the
data directory, and printed on stderr when it is a terminal; the log names the file.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			addr := fs.String("addr", "", "listen address (server.addr), e.g. 127.0.0.1:8080")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("serve takes no arguments")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				if *addr != "" {
					cfg.Server.Addr = *addr
				}
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("invalid configuration:\n%w", err)
				}
				a, err := app.New(ctx, cfg, app.Options{Stderr: env.Stderr})
				if err != nil {
					if ctx.Err() != nil {
						return nil // stopped while it waited as a standby
					}
					return err
				}
				return a.Run(ctx)
			}
		},
	}
}

func migrateCommand() *Command {
	return &Command{
		Name: "migrate", Short: "apply pending storage migrations and exit",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			return func(args []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				if err := cfg.Validate(); err != nil {
					return fmt.Errorf("invalid configuration:\n%w", err)
				}
				done, err := app.Migrate(ctx, cfg)
				if err != nil {
					return err
				}
				fmt.Fprintln(env.Stdout, done)
				return nil
			}
		},
	}
}

func configCheckCommand() *Command {
	return &Command{
		Name: "config check", Short: "validate the configuration and print it, secrets redacted",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			return func(args []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				verr := cfg.Validate()
				out, err := cfg.Redacted()
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "# effective configuration\n%s", out)
				for _, line := range app.DescribeEnrichment(cfg) {
					fmt.Fprintf(env.Stdout, "# %s\n", line)
				}
				if verr != nil {
					return fmt.Errorf("invalid configuration:\n%w", verr)
				}
				fmt.Fprintln(env.Stderr, "configuration is valid")
				return nil
			}
		},
	}
}

func tenantsCreateCommand() *Command {
	return &Command{
		Name: "tenants create", Usage: "ID", Short: "create a tenant in the local data directory",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			name := fs.String("name", "", "display name")
			retention := fs.Int("retention-days", audit.DefaultRetentionDays, "days events are kept")
			maxAge := fs.Int("max-event-age-days", 0, "days back an event may be dated, for a backfill (0: ingest.max_event_age)")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("tenants create takes one tenant ID")
				}
				if !audit.ValidTenantID(args[0]) {
					return usagef("tenant ID must be 1-64 letters, digits, '-', '_' or '.'")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					if *maxAge < 0 || *maxAge > 36500 {
						return usagef("--max-event-age-days must be between 0 and 36500")
					}
					t := audit.Tenant{ID: args[0], Name: *name, RetentionDays: *retention, MaxEventAgeDays: *maxAge, CreatedAt: time.Now().UTC()}
					if err := s.Tenants.CreateTenant(ctx, t); err != nil {
						return err
					}
					fmt.Fprintf(env.Stdout, "created tenant %s\n", t.ID)
					return nil
				})
			}
		},
	}
}

func tenantsListCommand() *Command {
	return &Command{
		Name: "tenants list", Short: "list tenants in the local data directory",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			return func(args []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					ts, err := s.Tenants.ListTenants(ctx)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tRETENTION\tCREATED")
					for _, t := range ts {
						fmt.Fprintf(tw, "%s\t%s\t%dd\t%s\n", t.ID, t.Name, t.RetentionDays, t.CreatedAt.Format(time.RFC3339))
					}
					return tw.Flush()
				})
			}
		},
	}
}

func keysCreateCommand() *Command {
	return &Command{
		Name: "keys create", Short: "create an API key in the local data directory; prints the secret once",
		Long: `Operator keys (--operator) act on every tenant; tenant keys (--tenant) on one.
A key carries the scopes given with --scopes: events:write, events:read,
findings:read, findings:write, rules:write, admin. A tenant key needs
--scopes; an operator key without --scopes gets admin.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			operator := fs.Bool("operator", false, "create an operator key (all tenants; admin unless --scopes says otherwise)")
			tenant := fs.String("tenant", "", "tenant of the key")
			name := fs.String("name", "", "a label for the key")
			var scopes stringList
			fs.Var(&scopes, "scopes", "comma-separated scopes of the key (required for a tenant key)")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("keys create takes flags only")
				}
				if *operator == (*tenant != "") {
					return usagef("give exactly one of --operator or --tenant")
				}
				var sc []audit.Scope
				for _, s := range scopes {
					if !audit.ValidScope(audit.Scope(s)) {
						return usagef("unknown scope %q", s)
					}
					sc = append(sc, audit.Scope(s))
				}
				if len(sc) == 0 {
					if !*operator {
						return usagef("a tenant key needs --scopes")
					}
					sc = []audit.Scope{audit.ScopeAdmin}
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					if *tenant != "" {
						if _, err := s.Tenants.GetTenant(ctx, *tenant); err != nil {
							return fmt.Errorf("tenant %s: %w", *tenant, err)
						}
					}
					k, full, err := audit.MintKey(ctx, s.Keys, *tenant, *name, sc, time.Now().UTC())
					if err != nil {
						return err
					}
					fmt.Fprintf(env.Stderr, "created key %s; the secret below is shown only now:\n", k.ID)
					fmt.Fprintln(env.Stdout, full)
					return nil
				})
			}
		},
	}
}

func keysListCommand() *Command {
	return &Command{
		Name: "keys list", Short: "list API keys (never their secrets)",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			tenant := fs.String("tenant", "", "only this tenant's keys")
			return func(args []string) error {
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					var ks []audit.APIKey
					if *tenant != "" {
						ks, err = s.Keys.ListKeys(ctx, *tenant)
					} else {
						ks, err = s.Keys.ListAllKeys(ctx)
					}
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tTENANT\tNAME\tSCOPES\tCREATED\tSTATE")
					for _, k := range ks {
						t := k.Tenant
						if t == "" {
							t = "(operator)"
						}
						state := "active"
						if k.RevokedAt != nil {
							state = "revoked " + k.RevokedAt.Format(time.RFC3339)
						}
						sc := make([]string, len(k.Scopes))
						for i, s := range k.Scopes {
							sc[i] = string(s)
						}
						slices.Sort(sc)
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, t, k.Name, strings.Join(sc, ","), k.CreatedAt.Format(time.RFC3339), state)
					}
					return tw.Flush()
				})
			}
		},
	}
}

func keysRevokeCommand() *Command {
	return &Command{
		Name: "keys revoke", Usage: "KEY-ID", Short: "revoke an API key",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("keys revoke takes one key ID")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				return app.WithStores(ctx, cfg, func(s *app.Stores) error {
					if err := s.Keys.RevokeKey(ctx, "", args[0], time.Now().UTC()); err != nil {
						return err
					}
					fmt.Fprintf(env.Stdout, "revoked key %s (running servers stop accepting it within their key cache TTL)\n", args[0])
					return nil
				})
			}
		},
	}
}

func versionCommand() *Command {
	return &Command{
		Name: "version", Short: "print the version, the source revision and the Go version",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("version takes no arguments")
				}
				bi, _ := debug.ReadBuildInfo()
				fmt.Fprintln(env.Stdout, versionLine(bi))
				return nil
			}
		},
	}
}

// versionLine describes a build: the module version when it has one (a
// tagged release, or a pseudo-version of a VCS build), else "devel"; the
// VCS revision, its commit time and whether the tree was modified; and the
// Go version. go run and -buildvcs=false leave no VCS information, and the
// line says so.
func versionLine(bi *debug.BuildInfo) string {
	if bi == nil {
		return "vigil devel (no build information)"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vigil %s", v)
	switch {
	case rev != "":
		fmt.Fprintf(&b, " revision %s", rev[:min(12, len(rev))])
		if at != "" {
			fmt.Fprintf(&b, " (%s)", at)
		}
		if modified {
			b.WriteString(" with local changes")
		}
	case v == "devel":
		b.WriteString(" (no VCS information: built by go run or with -buildvcs=false)")
	}
	fmt.Fprintf(&b, ", %s", bi.GoVersion)
	return b.String()
}

func enrichCommand() *Command {
	return &Command{
		Name: "enrich", Usage: "IP [--ua USER-AGENT]", Short: "print what Vigil would attach to an event from IP and user agent",
		Long: `Loads the enrichment databases and lists of the configuration (the same
ones the server would) and prints the enrichment of one address and user
agent, followed by the state of every data file. For operators checking
their databases.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			ua := fs.String("ua", "", "user-agent string")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("enrich takes one IP address")
				}
				ip, err := netip.ParseAddr(args[0])
				if err != nil {
					return usagef("%q is not an IP address", args[0])
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				e, err := app.BuildEnrichment(cfg.Enrich, slog.New(slog.DiscardHandler), nil)
				if err != nil {
					return err
				}
				defer e.Close()
				out := e.Pipeline.Lookup(ctx, ip, *ua)
				var loadedGeo, loadedASN int
				for _, s := range e.Pipeline.Status() {
					switch {
					case !s.Loaded:
					case s.Source == "geoip":
						loadedGeo++
					case strings.HasSuffix(s.Source, "-asn"):
						loadedASN++
					}
				}
				gaps := enrichmentGaps(cfg.Enrich, loadedGeo, loadedASN)
				if *format == "json" {
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					if gaps == nil {
						gaps = []string{}
					}
					return enc.Encode(map[string]any{"ip": ip.String(), "enrichment": out, "sources": e.Pipeline.Status(), "warnings": gaps})
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "ip\t%s\n", ip)
				if g := out.Geo; g != nil {
					fmt.Fprintf(tw, "geo\t%s / %s / %s", g.Country, g.Region, g.City)
					if g.HasLocation {
						fmt.Fprintf(tw, " (%.4f, %.4f ±%d km)", g.Latitude, g.Longitude, g.AccuracyKM)
					}
					fmt.Fprintf(tw, " [%s]\n", g.Source)
				} else {
					fmt.Fprintln(tw, "geo\t(none)")
				}
				if n := out.Network; n != nil {
					fmt.Fprintf(tw, "network\tscope=%s asn=%d org=%q tor=%v datacenter=%v vpn=%v lists=%s\n",
						n.Scope, n.ASN, n.ASOrg, n.Tor, n.Datacenter, n.VPN, strings.Join(n.Lists, ","))
				}
				if u := out.UserAgent; u != nil {
					fmt.Fprintf(tw, "user agent\tclass=%s browser=%s %s os=%s %s device=%s\n", u.Class, u.Browser, u.BrowserVersion, u.OS, u.OSVersion, u.Device)
				}
				for _, note := range gaps {
					fmt.Fprintf(tw, "warning\t%s\n", note)
				}
				for _, s := range e.Pipeline.Status() {
					if s.Loaded {
						fmt.Fprintf(tw, "source\t%s %s: loaded %s, %d entries", s.Source, s.Path, s.Kind, s.Entries)
					} else {
						fmt.Fprintf(tw, "source\t%s %s: NOT LOADED", s.Source, s.Path)
					}
					if s.LastError != "" {
						fmt.Fprintf(tw, " (%s)", s.LastError)
					}
					fmt.Fprintln(tw)
				}
				return tw.Flush()
			}
		},
	}
}

// enrichmentGaps says which kinds of enrichment data are missing, so an
// empty geo or ASN is never a mystery.
func enrichmentGaps(c config.Enrich, loadedGeo, loadedASN int) []string {
	var out []string
	switch n := len(c.CityDatabases()); {
	case n == 0:
		out = append(out, "no city database is configured (enrich.city_db, enrich.city_dbs): no address is located; "+
			"events keep only the location they carry in context.geo (scripts/fetch-geodata.sh fetches free DB-IP files)")
	case loadedGeo == 0:
		out = append(out, fmt.Sprintf("none of the %d configured city databases is loaded (see the source lines): no address is located", n))
	}
	switch n := len(c.ASNDatabases()); {
	case n == 0:
		out = append(out, "no ASN database is configured (enrich.asn_db, enrich.asn_csv, enrich.asn_csvs): asn and network owner stay empty")
	case loadedASN == 0:
		out = append(out, fmt.Sprintf("none of the %d configured ASN databases is loaded (see the source lines): asn and network owner stay empty", n))
	}
	return out
}

func demoCommand() *Command {
	return &Command{
		Name: "demo", Short: "start a server, simulate a SaaS under attack, and show what was caught",
		Long: `Starts a real server on an embedded store in a fresh directory, simulates a
SaaS with a few tenants and thousands of users with realistic habits, replays
weeks of their history, then runs live account-takeover campaigns. It ends with
a table of the campaigns (caught or not, by which rule, how fast) and the false
alarms on the benign population (findings none of whose evidence is an
attack event, also given per 10,000 benign events). Then it prints the web
console's address with a viewer link for the first tenant (a viewer token
minted through the API, valid 8 hours) and keeps serving until Ctrl-C or
SIGTERM; --exit stops right after the report instead (for CI and scripts). The simulated month ends at a weekday and hour
chosen by --seed, a week or two before now, so a run works at any hour and
its outcome depends on the seed alone. Without --dir its data lives in a
temporary directory that is removed when the demo ends, however it ends.
With --city-db it uses a real GeoIP database; without one the simulated
events carry their own location, so it works offline.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			o := demo.Options{Out: env.Stdout}
			fs.StringVar(&o.Dir, "dir", "", "data directory (default: a fresh temporary directory)")
			fs.StringVar(&o.Addr, "addr", "", "listen address (default 127.0.0.1:8080, or a free port)")
			fs.StringVar(&o.CityDB, "city-db", "", "GeoIP city database (.mmdb)")
			fs.IntVar(&o.UsersPerTenant, "users", 1000, "users per tenant")
			fs.IntVar(&o.Days, "days", 21, "days of history to replay")
			seed := fs.Uint64("seed", 42, "simulation seed")
			fs.BoolVar(&o.Exit, "exit", false, "stop after the report instead of serving the console (for CI)")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("demo takes flags only")
				}
				if o.UsersPerTenant < 10 || o.Days < 8 {
					return usagef("--users must be at least 10 and --days at least 8 (profiles need a week of history)")
				}
				o.Seed = *seed
				_, err := demo.Run(ctx, o)
				return err
			}
		},
	}
}
