package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

// DefaultServer is where client commands connect when nothing names a server.
const DefaultServer = "http://127.0.0.1:8080"

// clientFlags adds the flags of commands that talk to a server through the
// SDK and returns a constructor for the client.
//
// The server is --server, else VIGIL_SERVER, else VIGIL_SERVER_ADDR (the
// variable the server itself listens on, so one export serves both), else
// DefaultServer. Each may be a URL or a bare host:port.
func clientFlags(env *Env, fs *flag.FlagSet) func() (*client.Client, error) {
	server := fs.String("server", "", "server: host:port or URL (env VIGIL_SERVER, else VIGIL_SERVER_ADDR; default 127.0.0.1:8080)")
	key := fs.String("api-key", "", "API key (env VIGIL_API_KEY; prefer the env var: flags show in ps)")
	tenant := fs.String("tenant", "", "tenant to act on (operator keys)")
	return func() (*client.Client, error) {
		base, err := serverURL(*server, env.Getenv)
		if err != nil {
			return nil, usagef("%v", err)
		}
		k := firstNonEmpty(*key, env.Getenv("VIGIL_API_KEY"))
		if k == "" {
			return nil, usagef("an API key is needed: set VIGIL_API_KEY or pass --api-key")
		}
		opts := []client.Option{client.WithAPIKey(k), client.WithUserAgent("vigil-cli")}
		if *tenant != "" {
			opts = append(opts, client.WithTenant(*tenant))
		}
		return client.New(base, opts...)
	}
}

// serverURL resolves the server a client command talks to (see clientFlags)
// into a base URL. A bare host:port gets http://; a wildcard listen address
// (":8080", "0.0.0.0:8080", "[::]:8080") means this machine's loopback.
func serverURL(flagValue string, getenv func(string) string) (string, error) {
	source, v := "--server", flagValue
	for _, name := range []string{"VIGIL_SERVER", "VIGIL_SERVER_ADDR"} {
		if v != "" {
			break
		}
		source, v = name, strings.TrimSpace(getenv(name))
	}
	if v == "" {
		return DefaultServer, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%s %q: %s; want host:port (127.0.0.1:8080) or a URL (https://vigil.example.com)", source, v, why)
	}
	raw := v
	if !strings.Contains(v, "://") {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return "", bad("no port")
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		raw = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("the scheme must be http or https")
	case u.Host == "":
		return "", bad("no host")
	case u.User != nil:
		return "", bad("credentials do not belong in the address; use VIGIL_API_KEY")
	case u.RawQuery != "" || u.Fragment != "":
		return "", bad("no query or fragment allowed")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("the port must be 1-65535")
		}
	}
	return raw, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func eventsQueryCommand() *Command {
	return &Command{
		Name: "events query", Short: "search events, newest first",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			var p client.SearchParams
			since := fs.String("since", "", "start: RFC 3339 time or a duration ago such as 24h")
			until := fs.String("until", "", "end: RFC 3339 time or a duration ago")
			fs.StringVar(&p.Action, "action", "", "action, or prefix such as auth.*")
			fs.StringVar(&p.Actor, "actor", "", "actor id")
			fs.StringVar(&p.Target, "target", "", "target id")
			fs.StringVar(&p.IP, "ip", "", "IP address or CIDR")
			fs.StringVar(&p.Session, "session", "", "session id")
			fs.StringVar(&p.Outcome, "outcome", "", "success or failure")
			fs.StringVar(&p.Country, "country", "", "country code (from enrichment)")
			fs.StringVar(&p.List, "list", "", "IP list name (from enrichment)")
			fs.StringVar(&p.UAClass, "ua-class", "", "user-agent class (from enrichment)")
			fs.StringVar(&p.Query, "q", "", "free text within metadata")
			limit := fs.Int("limit", 50, "most events to print")
			format := fs.String("format", "table", "output: table, json or ndjson")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("events query takes flags only")
				}
				var err error
				now := time.Now()
				if p.Since, err = parseWhen(*since, now); err != nil {
					return usagef("--since: %v", err)
				}
				if p.Until, err = parseWhen(*until, now); err != nil {
					return usagef("--until: %v", err)
				}
				if *limit < 1 {
					return usagef("--limit must be positive")
				}
				if *format != "table" && *format != "json" && *format != "ndjson" {
					return usagef("--format must be table, json or ndjson")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				p.Limit = min(*limit, client.MaxPageSize)
				var events []client.Event
				for e, err := range c.Events(ctx, p) {
					if err != nil {
						return err
					}
					events = append(events, e)
					if len(events) == *limit {
						break
					}
				}
				return printEvents(env.Stdout, events, *format)
			}
		},
	}
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 24h", s)
	}
	return t, nil
}

func printEvents(w io.Writer, events []client.Event, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if events == nil {
			events = []client.Event{}
		}
		return enc.Encode(events)
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tACTOR\tIP\tCOUNTRY\tOUTCOME\tID")
	for _, e := range events {
		country := ""
		if e.Enrichment.Geo != nil {
			country = e.Enrichment.Geo.Country
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Action, e.Actor.ID, e.Context.IP, country, e.Outcome, e.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(events) == 0 {
		fmt.Fprintln(w, "(no events)")
	}
	return nil
}
