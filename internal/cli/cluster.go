package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/internal/app"
)

// errNoActive is cluster status's failure when no node is active: the
// report is printed, and the exit code says something is wrong.
var errNoActive = errors.New("no active node: no node has reported itself active in the last 10s")

func clusterStatusCommand() *Command {
	return &Command{
		Name: "cluster status", Short: "show the nodes on the PostgreSQL schema and the NATS stream",
		Long: `Lists the nodes serving the configured PostgreSQL schema, from the heartbeats
they record every two seconds: which one is active (runs the pipeline, detection
and alerts), which are standbys, each one's epoch and backlog. With stream.driver
nats it also shows the JetStream stream: its leader and replicas, how many
records wait, and the pipeline's committed position. Exits 1 when no node is
active.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			load := configFlags(env, fs)
			asJSON := fs.Bool("json", false, "print JSON")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("cluster status takes no arguments")
				}
				cfg, err := load()
				if err != nil {
					return err
				}
				now := time.Now()
				st, err := app.Cluster(ctx, cfg, now)
				if err != nil {
					return err
				}
				if *asJSON {
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(st); err != nil {
						return err
					}
				} else {
					printCluster(env, st, now)
				}
				if st.Active == "" {
					return errNoActive
				}
				return nil
			}
		},
	}
}

func printCluster(env *Env, st *app.ClusterStatus, now time.Time) {
	fmt.Fprintf(env.Stdout, "Nodes on PostgreSQL schema %s:\n", st.Schema)
	if len(st.Nodes) == 0 {
		fmt.Fprintln(env.Stdout, "  (none has recorded a heartbeat)")
	} else {
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tADDRESS\tROLE\tEPOCH\tBACKLOG\tLAST SEEN\tUP SINCE\tVERSION")
		for _, n := range st.Nodes {
			role := n.Role
			switch {
			case n.Role == "active" && n.Name != st.Active:
				role = "was active" // superseded by a newer epoch, or silent
			case now.Sub(n.Seen) > app.StaleAfter:
				role += " (silent)"
			}
			epoch, lag := "-", "-"
			if n.Epoch > 0 {
				epoch = fmt.Sprint(n.Epoch)
			}
			if n.Lag >= 0 {
				lag = fmt.Sprint(n.Lag)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s ago\t%s\t%s\n", n.Name, n.Address, role, epoch, lag,
				now.Sub(n.Seen).Round(time.Second), n.Started.UTC().Format(time.RFC3339), n.Version)
		}
		_ = tw.Flush()
	}
	if len(st.Units) > 0 {
		printUnits(env, st)
	}
	if st.Stream == nil && st.StreamError == "" {
		fmt.Fprintln(env.Stdout, "\nIngest stream: embedded in the active node's data directory (stream.driver embedded).")
		return
	}
	if st.StreamError != "" {
		fmt.Fprintf(env.Stdout, "\nIngest stream: cannot be read: %s\n", st.StreamError)
		return
	}
	s := st.Stream
	fmt.Fprintf(env.Stdout, "\nIngest stream %s on NATS JetStream: %d replica(s)", s.Name, s.Replicas)
	if s.Leader != "" {
		fmt.Fprintf(env.Stdout, ", leader %s", s.Leader)
	}
	fmt.Fprintln(env.Stdout)
	for _, p := range s.Peers {
		state := "current"
		if !p.Current {
			state = "catching up"
		}
		if p.Offline {
			state = "offline"
		}
		fmt.Fprintf(env.Stdout, "  replica %s: %s, %d operations behind\n", p.Name, state, p.Lag)
	}
	fmt.Fprintf(env.Stdout, "  %d records held (%d bytes), last sequence %d\n", s.Msgs, s.Bytes, s.Last)
	if pos, ok := s.Positions["pipeline"]; ok {
		fmt.Fprintf(env.Stdout, "  pipeline committed through %d: %d waiting\n", pos, s.Last-min(pos, s.Last))
	} else if len(st.Units) == 0 {
		fmt.Fprintln(env.Stdout, "  the pipeline has committed no position yet")
	}
}

// printUnits lists partitioned detection's units by node.
func printUnits(env *Env, st *app.ClusterStatus) {
	byNode := map[string][]string{}
	var free []string
	for _, u := range st.Units {
		if !u.Held {
			free = append(free, u.Name)
			continue
		}
		byNode[u.Holder] = append(byNode[u.Holder], fmt.Sprintf("%s (epoch %d)", u.Name, u.Epoch))
	}
	fmt.Fprintln(env.Stdout, "\nDetection units (partitioned detection):")
	names := slices.Sorted(maps.Keys(byNode))
	for _, n := range names {
		fmt.Fprintf(env.Stdout, "  %s: %s\n", n, strings.Join(byNode[n], ", "))
	}
	if len(free) > 0 {
		fmt.Fprintf(env.Stdout, "  not running anywhere: %s\n", strings.Join(free, ", "))
	}
}
