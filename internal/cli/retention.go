package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
)

func retentionRunCommand() *Command {
	return &Command{
		Name: "retention run", Short: "apply retention now, or show what it would delete (--dry-run)",
		Long: `Deletes each tenant's events, findings and incidents older than its
retention_days, as the server does on its own every retention.interval
(default 1h), through the HTTP API (scope admin). An operator key runs it
for every tenant, or one with --tenant; a tenant admin key for its own.
Each purge is recorded in the tenant's audit log (vigil.retention.purged).
Example:

  vigil retention run --dry-run`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			dry := fs.Bool("dry-run", false, "delete nothing; print what would be deleted")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("retention run takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				reports, err := c.RunRetention(ctx, fs.Lookup("tenant").Value.String(), *dry)
				if err != nil {
					return err
				}
				failed := 0
				for _, r := range reports {
					if r.Error != "" {
						failed++
					}
				}
				if *format == "json" {
					if err := writeJSON(env.Stdout, reports); err != nil {
						return err
					}
				} else {
					verb := "DELETED"
					if *dry {
						verb = "WOULD DELETE"
					}
					tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
					fmt.Fprintf(tw, "TENANT\tRETENTION\tBEFORE\t%s EVENTS\tFINDINGS\tINCIDENTS\tERROR\n", verb)
					for _, r := range reports {
						fmt.Fprintf(tw, "%s\t%dd\t%s\t%d\t%d\t%d\t%s\n", r.Tenant, r.RetentionDays, r.Before.Format("2006-01-02"),
							r.Events, r.Findings, r.Incidents, r.Error)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
					var archived int64
					for _, r := range reports {
						archived += r.Archived
					}
					if archived > 0 {
						fmt.Fprintf(env.Stdout, "%d events were archived before they were deleted (vigil archive list)\n", archived)
					}
				}
				if failed > 0 {
					return fmt.Errorf("retention failed for %d of %d tenants", failed, len(reports))
				}
				return nil
			}
		},
	}
}
