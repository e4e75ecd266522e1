package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/integrity"
)

// errBroken is the failure of a verification that found a broken link
// (already printed).
var errBroken = errors.New("verification failed: the chain is broken")

func verifyCommand() *Command {
	return &Command{
		Name: "verify", Short: "verify the tamper-evident hash chains of stored events",
		Long: `Asks the server to recompute every (tenant, day) hash chain from the stored
events and check it against the signed checkpoints, tombstones and erasure
records (scope events:read). A tenant key verifies its own tenant; an
operator key one tenant (--tenant) or every tenant. --from and --to limit
the days (YYYY-MM-DD, inclusive). Exits 1 and names the first broken link
(altered, deleted or inserted event, broken link, checkpoint mismatch, bad
signature) when there is one; links after the last checkpoint are listed
as unsigned, which is not a failure. Example:

  vigil verify --tenant acme --from 2026-11-01`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			from := fs.String("from", "", "first day to verify, YYYY-MM-DD")
			to := fs.String("to", "", "last day to verify, YYYY-MM-DD")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("verify takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				rep, err := c.VerifyIntegrity(ctx, "", *from, *to)
				if err != nil {
					return err
				}
				if *format == "json" {
					if err := writeJSON(env.Stdout, rep); err != nil {
						return err
					}
				} else {
					printReport(env.Stdout, rep)
				}
				if !rep.OK {
					return errBroken
				}
				return nil
			}
		},
	}
}

func printReport(w io.Writer, rep *client.IntegrityReport) {
	if rep.Broken != nil {
		b := rep.Broken
		fmt.Fprintf(w, "BROKEN %s: tenant %s", b.Reason, b.Tenant)
		if b.Day != "" {
			fmt.Fprintf(w, ", day %s", b.Day)
		}
		if b.Seq != 0 {
			fmt.Fprintf(w, ", link %d", b.Seq)
		}
		if b.EventID != "" {
			fmt.Fprintf(w, ", event %s", b.EventID)
		}
		fmt.Fprintf(w, ": %s\n", b.Detail)
		fmt.Fprintf(w, "checked before the break: %d days, %d events\n", rep.Days, rep.Events)
		return
	}
	fmt.Fprintf(w, "OK: %d days, %d events, %d tombstones, %d erasure records verified\n", rep.Days, rep.Events, rep.Tombstones, rep.Erasures)
	if len(rep.Unsigned) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNSIGNED TAIL\tDAY\tSIGNED\tLINKS")
		for _, u := range rep.Unsigned {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", u.Tenant, u.Day, u.Signed, u.Links)
		}
		tw.Flush()
	}
}

func verifyKeysCommand() *Command {
	return &Command{
		Name: "verify keys", Short: "list the public keys integrity statements are signed with",
		Long: `Lists the Ed25519 public keys (base64) of the server's checkpoints,
tombstones and erasure records: the current key and every key retired by a
rotation. Publish them; 'vigil verify export --key' takes them.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("verify keys takes flags only")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				keys, err := c.IntegrityKeys(ctx)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, keys)
				}
				tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPUBLIC KEY\tCURRENT")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%v\n", k.ID, k.Key, k.Current)
				}
				return tw.Flush()
			}
		},
	}
}

func verifyProofCommand() *Command {
	return &Command{
		Name: "verify proof", Usage: "DAY", Short: "print the proof of one day's chain (for verify export)",
		Long: `Prints, as JSON, what checking an export of one tenant-day needs besides the
events and a public key: the signed checkpoint (and tombstone), the chain
order of the day's event ids, and the kept hashes of erased values with
their signed erasure records. Example:

  vigil verify proof 2026-11-30 --tenant acme > proof.json`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("verify proof takes one day, YYYY-MM-DD")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				p, err := c.DayProof(ctx, "", args[0])
				if err != nil {
					return err
				}
				return writeJSON(env.Stdout, p)
			}
		},
	}
}

func verifyExportCommand() *Command {
	return &Command{
		Name: "verify export", Usage: "EVENTS.ndjson", Short: "check an NDJSON export of one day against its proof, offline",
		Long: `Recomputes, without a server, the hash chain of one tenant-day from an
NDJSON export of its events (vigil export --format ndjson, any order) and
the day's proof (vigil verify proof), and checks the head against the
checkpoint signed by one of the given public keys (vigil verify keys).
Exits 1 when an event was altered, left out or added. Example:

  vigil export --tenant acme --format ndjson 'since:2026-11-30 until:2026-12-01' > day.ndjson
  vigil verify export --proof proof.json --key BASE64KEY day.ndjson`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			proofPath := fs.String("proof", "", "the day's proof (JSON from vigil verify proof); required")
			var keys stringList
			fs.Var(&keys, "key", "a published Ed25519 public key, base64 (repeatable)")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("verify export takes one NDJSON file (- for stdin)")
				}
				if *proofPath == "" || len(keys) == 0 {
					return usagef("verify export needs --proof and at least one --key")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				ring := integrity.Keyring{}
				for _, k := range keys {
					pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
					if err != nil || len(pub) != ed25519.PublicKeySize {
						return usagef("--key %q is not a base64 Ed25519 public key", k)
					}
					ring[integrity.KeyID(pub)] = pub
				}
				b, err := os.ReadFile(*proofPath)
				if err != nil {
					return err
				}
				proof, err := integrity.ParseProof(b)
				if err != nil {
					return fmt.Errorf("%s: %w", *proofPath, err)
				}
				events, err := readNDJSONEvents(env, args[0])
				if err != nil {
					return err
				}
				rep, err := integrity.VerifyExport(events, proof, ring)
				if err != nil {
					return err
				}
				if *format == "json" {
					if err := writeJSON(env.Stdout, rep); err != nil {
						return err
					}
				} else {
					var out client.IntegrityReport
					if err := roundTrip(rep, &out); err != nil {
						return err
					}
					printReport(env.Stdout, &out)
				}
				if !rep.OK {
					return errBroken
				}
				return nil
			}
		},
	}
}

func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// readNDJSONEvents reads exported events, one JSON object a line.
func readNDJSONEvents(env *Env, path string) ([]audit.Event, error) {
	var r io.Reader = env.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []audit.Event
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s line %d: not an exported event: %w", path, line, err)
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

func eraseCommand() *Command {
	return &Command{
		Name: "erase", Short: "erase fields of one actor's stored events (right to erasure)",
		Long: `Redacts the named fields in every stored event of one actor (scope admin; an
operator names --tenant), keeping verification intact: the original value
hashes are kept in a signed erasure record. Erasable fields: ` + strings.Join(integrity.Erasable, ", ") + `.
The erasure is recorded in the tenant's log (vigil.erasure.completed).
Example:

  vigil erase --tenant acme --actor alice --fields context.ip,context.user_agent,actor.email,enrichment`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			actor := fs.String("actor", "", "the actor id whose events are redacted; required")
			fields := fs.String("fields", "", "comma-separated fields to erase; required")
			format := fs.String("format", "table", "output: table or json")
			return func(args []string) error {
				if len(args) > 0 {
					return usagef("erase takes flags only")
				}
				if *actor == "" || *fields == "" {
					return usagef("erase needs --actor and --fields")
				}
				if err := checkFormat(*format, "table", "json"); err != nil {
					return err
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				var names []string
				for f := range strings.SplitSeq(*fields, ",") {
					if f = strings.TrimSpace(f); f != "" {
						names = append(names, f)
					}
				}
				rep, err := c.Erase(ctx, client.ErasureRequest{Actor: *actor, Fields: names})
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(env.Stdout, rep)
				}
				fmt.Fprintf(env.Stdout, "erasure %s: %d values erased in %d events of tenant %s (%s)\n",
					rep.ID, rep.Values, rep.Events, rep.Tenant, strings.Join(rep.Fields, ", "))
				return nil
			}
		},
	}
}
