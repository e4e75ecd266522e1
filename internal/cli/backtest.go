package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/client"
)

func rulesBacktestCommand() *Command {
	return &Command{
		Name: "rules backtest", Usage: "RULE", Short: "what a rule would have raised over stored history with changed tuning",
		Long: `Replays the tenant's stored events through RULE as the tenant runs it now
and as proposed, and prints per day how many findings each raises, with
examples of what the proposal raises and of what it no longer raises.
Nothing is stored. Through the HTTP API (scope findings:read).

Propose with --set (a parameter, repeatable), --allow (an allowlist entry to
try, repeatable) or --rule-file (a whole definition in the rule language,
for a new rule or a changed one; its id must be RULE). Examples:

  vigil rules backtest brute-force --set min_failures=15
  vigil rules backtest impossible-travel --allow asn:AS64500 --since 14d
  vigil rules backtest my-rule --rule-file my-rule.yaml`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			var sets, allows stringList
			fs.Var(&sets, "set", "NAME=VALUE: a parameter of the proposal (repeatable)")
			fs.Var(&allows, "allow", "KIND:VALUE: an allowlist entry to try, kind ip, cidr or asn (repeatable)")
			ruleFile := fs.String("rule-file", "", "a rule definition (YAML) to try instead of the server's")
			since := fs.String("since", "7d", "first day reported: RFC 3339 time or a duration ago such as 7d or 72h")
			until := fs.String("until", "", "end: RFC 3339 time or a duration ago (default now)")
			warmup := fs.Duration("warmup", 0, "history replayed before --since to build profiles (default 336h)")
			samples := fs.Int("samples", 3, "examples per day")
			format := fs.String("format", "table", "output: table or json")
			quiet := fs.Bool("quiet", false, "no progress on stderr")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("rules backtest takes one rule id")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				req := client.BacktestRequest{Samples: *samples, Warmup: *warmup}
				now := time.Now()
				var err error
				if req.Since, err = parseWhen(days(*since), now); err != nil {
					return usagef("--since: %v", err)
				}
				if req.Until, err = parseWhen(days(*until), now); err != nil {
					return usagef("--until: %v", err)
				}
				for _, s := range sets {
					name, value, ok := strings.Cut(s, "=")
					if !ok || name == "" {
						return usagef("--set %q: want NAME=VALUE", s)
					}
					if req.Params == nil {
						req.Params = map[string]any{}
					}
					req.Params[name] = paramValue(value)
				}
				for _, a := range allows {
					kind, value, ok := strings.Cut(a, ":")
					if !ok || value == "" {
						return usagef("--allow %q: want KIND:VALUE such as ip:203.0.113.7, cidr:203.0.113.0/24 or asn:AS64500", a)
					}
					req.Allow = append(req.Allow, client.BacktestAllow{Kind: kind, Value: value})
				}
				if *ruleFile != "" {
					b, err := os.ReadFile(*ruleFile)
					if err != nil {
						return err
					}
					req.Rule = string(b)
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				progress := func(p client.BacktestProgress) {
					if !*quiet {
						fmt.Fprintf(env.Stderr, "replaying: %3.0f%%, %d events, reached %s\n", p.Fraction*100, p.Events, p.Reached.Format(time.RFC3339))
					}
				}
				res, err := c.Backtest(ctx, args[0], req, progress)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, res)
				}
				return printBacktest(env, res)
			}
		},
	}
}

// days lets durations be written in days ("7d").
func days(s string) string {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil {
			return strconv.Itoa(d*24) + "h"
		}
	}
	return s
}

// paramValue reads a --set value as a number or boolean when it is one,
// else as text (durations such as 15m stay text).
func paramValue(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return s
}

func printBacktest(env *Env, res *client.BacktestResult) error {
	w := env.Stdout
	fmt.Fprintf(w, "%s on %s, %s to %s: %d events replayed\n", res.RuleID, res.Tenant,
		res.Since.Format("2006-01-02 15:04"), res.Until.Format("2006-01-02 15:04"), res.Events)
	if res.Truncated {
		fmt.Fprintf(w, "TRUNCATED at the server's event bound: days after %s are not counted\n", res.Reached.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tCURRENT\tPROPOSED")
	for _, d := range res.Days {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", d.Day.Format("2006-01-02"), d.Current, d.Proposed)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\n", res.Current, res.Proposed)
	if err := tw.Flush(); err != nil {
		return err
	}
	printSamples := func(title string, pick func(client.BacktestDay) []client.BacktestSample) {
		first := true
		for _, d := range res.Days {
			for _, s := range pick(d) {
				if first {
					fmt.Fprintf(w, "\n%s:\n", title)
					first = false
				}
				fmt.Fprintf(w, "  %s  %-8s %s\n", s.FirstSeen.Format("2006-01-02 15:04"), s.Severity, s.Explanation)
			}
		}
	}
	printSamples("examples the proposal raises", func(d client.BacktestDay) []client.BacktestSample { return d.Samples })
	printSamples("examples the proposal no longer raises", func(d client.BacktestDay) []client.BacktestSample { return d.Removed })
	if len(res.Params) > 0 {
		fmt.Fprintf(w, "\nproposal's parameters: %v\n", res.Params)
	}
	return nil
}

func rulesSuggestCommand() *Command {
	return &Command{
		Name: "rules suggest", Short: "tuning changes drawn from findings resolved as benign, each backtested",
		Long: `Proposes up to three changes from the findings resolved in the last 30 days
with --benign or --malicious (vigil findings resolve): trusting a network that
several benign findings of several accounts came from, or raising a rule's
count threshold above its benign findings. Each is backtested over the last
7 days. Through the HTTP API (scope findings:read). Example:

  vigil rules suggest --tenant acme`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("rules suggest takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				ss, err := c.Suggestions(ctx)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, ss)
				}
				if len(ss) == 0 {
					fmt.Fprintln(env.Stdout, "no suggestions: resolve findings with --benign (or --malicious) to give the tuner something to learn from")
					return nil
				}
				for i, s := range ss {
					change := ""
					switch {
					case s.Allow != nil:
						change = fmt.Sprintf("allowlist %s %s", s.Allow.Kind, s.Allow.Value)
					default:
						var parts []string
						for k, v := range s.Params {
							parts = append(parts, fmt.Sprintf("%s=%v", k, v))
						}
						change = "set " + strings.Join(parts, " ")
					}
					fmt.Fprintf(env.Stdout, "%d. %s: %s\n   why: %s\n   last 7 days: %d findings now, %d with the change\n",
						i+1, s.RuleID, change, s.Reason, s.Effect.Current, s.Effect.Proposed)
				}
				return nil
			}
		},
	}
}
