package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func findingsListCommand() *Command {
	return &Command{
		Name: "findings list", Short: "list findings, most recently seen first",
		Long: `Lists the findings of the key's tenant (operators: --tenant) through the
HTTP API. Filters combine; --severity is a minimum (high matches high and
critical). Example:

  vigil findings list --status open --severity high --since 24h`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			var p client.FindingParams
			fs.StringVar(&p.Rule, "rule", "", "rule id")
			fs.StringVar(&p.Severity, "severity", "", "minimum severity: low, medium, high or critical")
			fs.StringVar(&p.Status, "status", "", "open, acknowledged or resolved")
			fs.StringVar(&p.Actor, "actor", "", "actor id")
			fs.StringVar(&p.IP, "ip", "", "IP address (also finds findings keyed on its /24 or network)")
			since := fs.String("since", "", "seen since: RFC 3339 time or a duration ago such as 24h")
			until := fs.String("until", "", "seen until: RFC 3339 time or a duration ago")
			limit := fs.Int("limit", 50, "most findings to print")
			format := fs.String("format", "table", "output: table, json, ndjson, ocsf (OCSF Detection Findings, one a line) or ecs (ECS alert documents, one a line)")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("findings list takes flags only")
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
					_, err := c.ExportFindings(ctx, p, *format, env.Stdout, *limit)
					return err
				}
				var fs []client.Finding
				for f, err := range c.Findings(ctx, p) {
					if err != nil {
						return err
					}
					fs = append(fs, f)
					if len(fs) == *limit {
						break
					}
				}
				return printFindings(env.Stdout, fs, *format)
			}
		},
	}
}

func checkFormat(got string, allowed ...string) error {
	if slices.Contains(allowed, got) {
		return nil
	}
	return usagef("--format must be %s or %s", strings.Join(allowed[:len(allowed)-1], ", "), allowed[len(allowed)-1])
}

// findingKey names what a finding is about: the actor, else the address,
// else the rule's group key (a /24, an ASN, a session, a tenant).
func findingKey(f client.Finding) string {
	switch {
	case f.ActorID != "":
		return f.ActorID
	case f.IP != "":
		return f.IP
	}
	return f.GroupKey
}

func printFindings(w io.Writer, fs []client.Finding, format string) error {
	switch format {
	case "json":
		if fs == nil {
			fs = []client.Finding{}
		}
		return writeJSON(w, fs)
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, f := range fs {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tSEVERITY\tSTATUS\tRULE\tABOUT\tCOUNT\tID")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f.LastSeen.Format(time.RFC3339), f.Severity, f.Status, f.RuleID,
			oneLine(findingKey(f)), f.Count, f.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(fs) == 0 {
		fmt.Fprintln(w, "(no findings)")
	}
	return nil
}

// oneLine keeps a value from breaking a table row.
func oneLine(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func findingsShowCommand() *Command {
	return &Command{
		Name: "findings show", Usage: "ID", Short: "show a finding with its explanation, facts and evidence events",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "text", "output: text or json")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("findings show takes one finding ID")
				}
				if err := checkFormat(*format, "text", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				d, err := c.GetFinding(ctx, args[0])
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, d)
				}
				return printFinding(env.Stdout, d)
			}
		},
	}
}

func printFinding(w io.Writer, d *client.FindingDetail) error {
	f := d.Finding
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	rule := f.RuleID
	if f.RuleName != "" {
		rule += " (" + f.RuleName + ")"
	}
	tenant := f.Tenant
	if tenant == "" {
		tenant = "(installation-wide: evidence ids read tenant/id)"
	}
	rows := [][2]string{
		{"id", f.ID}, {"tenant", tenant}, {"rule", rule}, {"severity", fmt.Sprintf("%s, score %d", f.Severity, f.Score)},
		{"status", f.Status}, {"note", f.Note}, {"about", f.GroupKey}, {"actor", f.ActorID}, {"ip", f.IP}, {"session", f.SessionID},
		{"seen", fmt.Sprintf("%s to %s (%d events)", f.FirstSeen.Format(time.RFC3339), f.LastSeen.Format(time.RFC3339), f.Count)},
		{"explanation", f.Explanation},
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", r[0], oneLine(r[1]))
		}
	}
	keys := make([]string, 0, len(f.Facts))
	for k := range f.Facts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "fact %s\t%s\n", k, oneLine(cellText(f.Facts[k])))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nevidence (%d of %d events):\n", len(d.Evidence), len(f.Evidence))
	return printEvents(w, d.Evidence, "table")
}

// findingsUpdateCommand builds "findings ack" and "findings resolve".
func findingsUpdateCommand(verb, status, short string) *Command {
	return &Command{
		Name: "findings " + verb, Usage: "ID [ID…]", Short: short,
		Long: `Sets the status of one or more findings (scope findings:write). The note,
when given, is kept with the finding: say what was checked and decided.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			note := fs.String("note", "", "a note kept with the finding (at most 1024 bytes)")
			var benign, malicious *bool
			if status == "resolved" {
				benign = fs.Bool("benign", false, "it was normal activity (such findings feed tuning suggestions: vigil rules suggest)")
				malicious = fs.Bool("malicious", false, "it was an attack")
			}
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("findings %s takes one or more finding IDs", verb)
				}
				resolution := ""
				if benign != nil {
					switch {
					case *benign && *malicious:
						return usagef("--benign and --malicious exclude each other")
					case *benign:
						resolution = "benign"
					case *malicious:
						resolution = "malicious"
					}
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				for _, id := range args {
					f, err := c.UpdateFinding(ctx, id, client.FindingUpdate{Status: status, Note: *note, Resolution: resolution})
					if err != nil {
						return fmt.Errorf("finding %s: %w", id, err)
					}
					fmt.Fprintf(env.Stdout, "finding %s (%s, %s) is now %s\n", f.ID, f.RuleID, oneLine(findingKey(*f)), f.Status)
				}
				return nil
			}
		},
	}
}
