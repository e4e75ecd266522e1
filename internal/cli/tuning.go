package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func allowlistListCommand() *Command {
	return &Command{
		Name: "allowlist list", Short: "list the tenant's allowlisted networks and their modes",
		Long: `Lists the IPs, CIDRs and AS numbers of the key's tenant (operators: --tenant)
that detection treats specially: mode trust (rules that say so ignore them),
egress (a shared egress such as a corporate VPN gateway) or not_egress (never
learned as one).`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("allowlist list takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				es, err := c.Allowlist(ctx)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, es)
				}
				if len(es) == 0 {
					fmt.Fprintln(env.Stdout, "(no allowlist entries)")
					return nil
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KIND\tVALUE\tMODE\tADDED\tNOTE")
				for _, e := range es {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, e.Value, e.Mode, e.CreatedAt.Format(time.DateOnly), oneLine(e.Note))
				}
				return tw.Flush()
			}
		},
	}
}

func allowlistAddCommand() *Command {
	return &Command{
		Name: "allowlist add", Usage: "ip|cidr|asn VALUE", Short: "allowlist a network, or pin or forbid it as a shared egress (scope rules:write)",
		Long: `Adds (or replaces) an allowlist entry of the key's tenant. --mode trust (the
default) makes rules that say so ignore the network; egress declares it a
shared egress (a corporate VPN or SASE gateway: no impossible travel,
concurrent sessions or new location through it, other rules still apply);
not_egress keeps Vigil from learning it as one.

  vigil allowlist add cidr 198.51.100.0/24 --note office
  vigil allowlist add asn AS64500 --mode egress --note "corporate SASE"
  vigil allowlist add cidr 203.0.113.0/24 --mode not_egress --note "a hosting range, not ours"`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			mode := fs.String("mode", client.AllowTrust, "trust, egress or not_egress")
			note := fs.String("note", "", "why (shown in listings)")
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("allowlist add takes a kind (ip, cidr or asn) and a value")
				}
				switch *mode {
				case client.AllowTrust, client.AllowEgress, client.AllowNotEgress:
				default:
					return usagef("--mode must be trust, egress or not_egress")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				e, err := c.AddAllow(ctx, client.AllowEntry{Kind: args[0], Value: args[1], Mode: *mode, Note: *note})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "added %s %s (mode %s); detection applies it to events processed from now on\n", e.Kind, e.Value, e.Mode)
				return nil
			}
		},
	}
}

func allowlistRemoveCommand() *Command {
	return &Command{
		Name: "allowlist remove", Usage: "ip|cidr|asn VALUE", Short: "remove an allowlist entry (scope rules:write)",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("allowlist remove takes a kind (ip, cidr or asn) and a value")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				if err := c.RemoveAllow(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "removed %s %s\n", args[0], args[1])
				return nil
			}
		},
	}
}

func egressesListCommand() *Command {
	return &Command{
		Name: "egresses list", Short: "list the shared egresses detection learned for the tenant",
		Long: `Lists the addresses, /24s and networks through which many of the tenant's
actors log in from far from their usual places (a corporate VPN or SASE
gateway). A learned egress is a relay: it moves no one for impossible-travel
or concurrent-sessions and is no new location. RELAY says whether detection
treats it so now; TUNING shows an allowlist entry that pins it (mode egress)
or forbids it (mode not_egress). --all adds the candidates not yet learned.

Tune with: vigil allowlist add ip|cidr|asn VALUE --mode egress|not_egress`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			all := fs.Bool("all", false, "also list candidates not (yet) learned")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("egresses list takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				gs, err := c.Egresses(ctx, *all)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, gs)
				}
				if len(gs) == 0 {
					fmt.Fprintln(env.Stdout, "(no shared egresses learned)")
					return nil
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KIND\tVALUE\tFAR ACTORS\tNEAR ACTORS\tLOGINS OK/FAILED\tLEARNED SINCE\tLAST SEEN\tRELAY\tTUNING")
				for _, g := range gs {
					since := "-"
					if !g.LearnedSince.IsZero() {
						since = g.LearnedSince.Format(time.DateOnly)
					} else if g.Learned {
						since = "yes"
					}
					tuning := g.Tuning
					if tuning == "" {
						tuning = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d/%d\t%s\t%s\t%v\t%s\n", g.Kind, g.Value, g.FarActors, g.NearActors,
						g.Successes, g.Failures, since, g.LastSeen.Format(time.DateOnly), g.Relay, tuning)
				}
				return tw.Flush()
			}
		},
	}
}

func actionsRequestCommand() *Command {
	return &Command{
		Name: "actions request", Usage: "TYPE ACTOR", Short: "ask the SaaS to act on an account (scope findings:write)",
		Long: `Asks the SaaS to act on one of its accounts: TYPE is revoke_sessions,
force_password_reset, require_mfa or lock_account. The request is written
to the tenant's audit log and delivered, signed, to the tenant's webhooks
whose kinds include "action"; the SaaS reports back what it did.

With --idempotency-key, running the command again with the same key asks
once and prints the action the first run made (a script that may run
twice should pass one, e.g. the finding id and the action type).

  vigil actions request revoke_sessions alice@example.com --finding fnd_0a1b… --reason "session cookie replayed"`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			finding := fs.String("finding", "", "the finding that prompted it")
			reason := fs.String("reason", "", "why (sent to the SaaS and kept in the audit log)")
			key := fs.String("idempotency-key", "", "a key naming this request, so that running the command again asks once (default: a new key)")
			return func(args []string) error {
				if len(args) != 2 {
					return usagef("actions request takes an action type and an account id")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				a, err := c.RequestAction(ctx, client.ActionRequest{Type: args[0], Actor: args[1], FindingID: *finding, Reason: *reason,
					IdempotencyKey: *key})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s requested: %s for %s\n", a.ID, a.Type, a.ActorID)
				return nil
			}
		},
	}
}

func actionsListCommand() *Command {
	return &Command{
		Name: "actions list", Short: "list the tenant's response actions and what the SaaS reported",
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			limit := fs.Int("limit", 50, "most actions to print")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("actions list takes flags only")
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
				as, err := c.Actions(ctx, *limit)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, as)
				}
				if len(as) == 0 {
					fmt.Fprintln(env.Stdout, "(no response actions)")
					return nil
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTYPE\tACCOUNT\tSTATUS\tREQUESTED BY\tFINDING\tCREATED\tMESSAGE")
				for _, a := range as {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Type, a.ActorID, a.Status, a.RequestedBy, a.FindingID,
						a.CreatedAt.Format(time.RFC3339), oneLine(a.Message))
				}
				return tw.Flush()
			}
		},
	}
}
