package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func webhooksListCommand() *Command {
	return &Command{
		Name: "webhooks list", Short: "list webhooks (scope admin)",
		Long: `Lists the key's tenant's webhooks; an operator key lists every webhook, or
one tenant's with --tenant. URLs are shown as scheme and host only.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("webhooks list takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				ws, err := c.Webhooks(ctx, "")
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, ws)
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTENANT\tNAME\tFORMAT\tRECEIVER\tCHANGES\tDISABLED")
				for _, w := range ws {
					tenant := w.Tenant
					if tenant == "" {
						tenant = "(all)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", w.ID, tenant, w.Name, w.Format, receiverHost(w.URL),
						strings.Join(w.Changes, ","), w.Disabled)
				}
				return tw.Flush()
			}
		},
	}
}

// receiverHost shows a receiver URL without its path, which may carry a
// token (Slack's and Teams' URLs do).
func receiverHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func webhooksDeadLettersCommand() *Command {
	return &Command{
		Name: "webhooks deadletters", Usage: "WEBHOOK_ID", Short: "list a webhook's dead letters: deliveries given up after alerts.retry_for",
		Long: `Lists the deliveries of a webhook that failed for longer than alerts.retry_for
(or were dropped from a full outbox), newest first. Replay them with
vigil webhooks replay once the receiver works again.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			limit := fs.Int("limit", 100, "most dead letters to print (at most 1000)")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("webhooks deadletters takes one webhook ID")
				}
				if *limit < 1 || *limit > client.MaxPageSize {
					return usagef("--limit must be between 1 and %d", client.MaxPageSize)
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				ds, err := c.Deliveries(ctx, args[0], "dead", *limit)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, ds)
				}
				return printDeliveries(env.Stdout, ds)
			}
		},
	}
}

func printDeliveries(w io.Writer, ds []client.Delivery) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DELIVERY\tSTATUS\tITEMS\tATTEMPTS\tCREATED\tLAST STATUS\tLAST ERROR")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", d.ID, d.Status, d.Items, d.Attempts,
			d.CreatedAt.Format(time.RFC3339), d.LastStatus, d.LastError)
	}
	return tw.Flush()
}

func webhooksReplayCommand() *Command {
	return &Command{
		Name: "webhooks replay", Usage: "DELIVERY_ID...", Short: "send dead letters again (same delivery id and body)",
		Long: `Makes each dead delivery pending again: it is sent with the same
Vigil-Delivery id and body and retried for another alerts.retry_for.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			return func(args []string) error {
				if len(args) == 0 {
					return usagef("webhooks replay takes one or more delivery IDs")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				for _, id := range args {
					d, err := c.ReplayDelivery(ctx, id)
					if err != nil {
						return fmt.Errorf("replay %s: %w", id, err)
					}
					fmt.Fprintf(env.Stdout, "%s\t%s\n", d.ID, d.Status)
				}
				return nil
			}
		},
	}
}
