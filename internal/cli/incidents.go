package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func incidentsListCommand() *Command {
	return &Command{
		Name: "incidents list", Short: "list incidents (findings grouped per attack), most recently seen first",
		Long: `Lists the incidents of the key's tenant (operators: --tenant) through the
HTTP API (scope findings:read). Filters combine; --severity is a minimum.
Example:

  vigil incidents list --status open --severity high --since 24h`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			var p client.IncidentParams
			fs.StringVar(&p.Severity, "severity", "", "minimum severity: low, medium, high or critical")
			fs.StringVar(&p.Status, "status", "", "open, acknowledged or resolved")
			fs.StringVar(&p.Family, "family", "", "the headline's family, e.g. distributed-credential-stuffing")
			since := fs.String("since", "", "seen since: RFC 3339 time or a duration ago such as 24h")
			until := fs.String("until", "", "seen until: RFC 3339 time or a duration ago")
			limit := fs.Int("limit", 50, "most incidents to print")
			format := fs.String("format", "table", "output: table, json, ndjson, ocsf (OCSF Detection Findings, one a line) or ecs (ECS alert documents, one a line)")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("incidents list takes flags only")
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
				if err := checkFormat(*format, "table", "json", "ndjson", client.FormatOCSF, client.FormatECS); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				p.Limit = min(*limit, client.MaxPageSize)
				if *format == client.FormatOCSF || *format == client.FormatECS {
					_, err := c.ExportIncidents(ctx, p, *format, env.Stdout, *limit)
					return err
				}
				var is []client.Incident
				for inc, err := range c.Incidents(ctx, p) {
					if err != nil {
						return err
					}
					is = append(is, inc)
					if len(is) == *limit {
						break
					}
				}
				return printIncidents(env.Stdout, is, *format)
			}
		},
	}
}

func printIncidents(w io.Writer, is []client.Incident, format string) error {
	switch format {
	case "json":
		if is == nil {
			is = []client.Incident{}
		}
		return writeJSON(w, is)
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, inc := range is {
			if err := enc.Encode(inc); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tSEVERITY\tSTATUS\tHEADLINE\tFINDINGS\tADDRESSES\tACCOUNTS\tID")
	for _, inc := range is {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", inc.LastSeen.Format(time.RFC3339), inc.Severity, inc.Status,
			oneLine(inc.Headline), inc.FindingCount, inc.IPCount, len(inc.Accounts), inc.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(is) == 0 {
		fmt.Fprintln(w, "(no incidents)")
	}
	return nil
}

func incidentsShowCommand() *Command {
	return &Command{
		Name: "incidents show", Usage: "ID", Short: "show an incident: headline, accounts at risk, sources, timeline, findings",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "text", "output: text or json")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("incidents show takes one incident ID")
				}
				if err := checkFormat(*format, "text", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				d, err := c.GetIncident(ctx, args[0])
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, d)
				}
				return printIncident(env.Stdout, d)
			}
		},
	}
}

func printIncident(w io.Writer, d *client.IncidentDetail) error {
	inc := d.Incident
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	nets := strings.Join(inc.Networks[:min(len(inc.Networks), 10)], ", ")
	if len(inc.Networks) > 10 {
		nets += fmt.Sprintf(" and %d more", len(inc.Networks)-10)
	}
	ips := strings.Join(inc.IPs[:min(len(inc.IPs), 10)], ", ")
	if inc.IPCount > 10 {
		ips += fmt.Sprintf(" and %d more", inc.IPCount-min(len(inc.IPs), 10))
	}
	rows := [][2]string{
		{"id", inc.ID}, {"tenant", inc.Tenant}, {"headline", fmt.Sprintf("%s (%s)", inc.Headline, inc.Family)},
		{"summary", inc.Summary}, {"severity", fmt.Sprintf("%s, score %d", inc.Severity, inc.Score)},
		{"status", inc.Status}, {"note", inc.Note},
		{"seen", fmt.Sprintf("%s to %s", inc.FirstSeen.Format(time.RFC3339), inc.LastSeen.Format(time.RFC3339))},
		{"findings", fmt.Sprintf("%d (%s)", inc.FindingCount, strings.Join(inc.Rules, ", "))},
		{"addresses", ips}, {"networks", nets},
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", r[0], oneLine(r[1]))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(inc.Accounts) > 0 {
		fmt.Fprintf(w, "\naccounts at risk (%d):\n", len(inc.Accounts))
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTOR\tREASON\tSEVERITY\tLAST SEEN")
		for _, a := range inc.Accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", oneLine(a.Actor), a.Reason, a.Severity, a.LastSeen.Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\ntimeline (%d entries):\n", len(inc.Timeline))
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, t := range inc.Timeline {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Time.Format(time.RFC3339), t.Severity, t.RuleID, oneLine(t.Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nfindings (%d of %d):\n", len(d.Findings), inc.FindingCount)
	return printFindings(w, d.Findings, "table")
}

// incidentsUpdateCommand builds "incidents ack" and "incidents resolve".
func incidentsUpdateCommand(verb, status, short string) *Command {
	return &Command{
		Name: "incidents " + verb, Usage: "ID [ID…]", Short: short,
		Long: `Sets the status of one or more incidents (scope findings:write). By
default the incident's findings that are still open take the same status and
note; --no-cascade changes the incident alone. Resolving needs a --note.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			note := fs.String("note", "", "a note kept with the incident (and its findings)")
			noCascade := fs.Bool("no-cascade", false, "leave the incident's findings as they are")
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("incidents %s takes one or more incident IDs", verb)
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				cascade := !*noCascade
				for _, id := range args {
					inc, err := c.UpdateIncident(ctx, id, client.IncidentUpdate{Status: status, Note: *note, Cascade: &cascade})
					if err != nil {
						return fmt.Errorf("incident %s: %w", id, err)
					}
					fmt.Fprintf(env.Stdout, "incident %s (%s, %d findings) is now %s\n", inc.ID, oneLine(inc.Headline), inc.FindingCount, inc.Status)
				}
				return nil
			}
		},
	}
}
