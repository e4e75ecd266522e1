// Package cli is the vigil command line: a table of subcommands, each with
// its own flag set. Main is the whole program below the process adapter:
// nothing here exits the process, reads os.Args or the real environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// Env is what a command may touch of the process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Command is one subcommand.
type Command struct {
	Name  string // "serve", or "keys create" for a nested command
	Usage string // arguments after the name
	Short string
	Long  string
	// Flags declares the command's flags on fs and returns the function
	// that runs it with the remaining arguments.
	Run func(ctx context.Context, env *Env, fs *flag.FlagSet) func(args []string) error
}

// usageError marks an error as a usage error (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func commands() []*Command {
	return []*Command{
		serveCommand(), demoCommand(), migrateCommand(), configCheckCommand(), clusterStatusCommand(),
		tenantsCreateCommand(), tenantsListCommand(),
		keysCreateCommand(), keysListCommand(), keysRevokeCommand(),
		eventsSendCommand(), importCommand(), eventsQueryCommand(), queryCommand(), exportCommand(),
		findingsListCommand(), findingsShowCommand(),
		findingsUpdateCommand("ack", "acknowledged", "acknowledge findings: someone is looking"),
		findingsUpdateCommand("resolve", "resolved", "resolve findings, with a --note on what was decided"),
		findingsUpdateCommand("reopen", "open", "reopen findings"),
		incidentsListCommand(), incidentsShowCommand(),
		incidentsUpdateCommand("ack", "acknowledged", "acknowledge incidents (and their open findings): someone is looking"),
		incidentsUpdateCommand("resolve", "resolved", "resolve incidents (and their open findings), with a --note on what was decided"),
		retentionRunCommand(), archiveListCommand(), archiveRestoreCommand(),
		verifyCommand(), verifyKeysCommand(), verifyProofCommand(), verifyExportCommand(), eraseCommand(),
		webhooksListCommand(), webhooksDeadLettersCommand(), webhooksReplayCommand(),
		allowlistListCommand(), allowlistAddCommand(), allowlistRemoveCommand(), egressesListCommand(),
		actionsRequestCommand(), actionsListCommand(),
		enrichCommand(), rulesListCommand(), rulesCheckCommand(), rulesTestCommand(), rulesBacktestCommand(), rulesSuggestCommand(), profilesRebuildCommand(),
		versionCommand(),
	}
}

// Main runs the vigil command line and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: getenv}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c, _ := find(cmds, args[1:]); c != nil {
				printCommandHelp(stdout, c, commandFlags(ctx, env, c))
				return ExitOK
			}
			if group := subcommands(cmds, args[1]); len(group) > 0 {
				printGroupHelp(stdout, args[1], group)
				return ExitOK
			}
			fmt.Fprintf(stderr, "vigil: unknown command %q\nRun 'vigil help' for the list.\n", strings.Join(args[1:min(3, len(args))], " "))
			return ExitUsage
		}
		printHelp(stdout, cmds)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	c, rest := find(cmds, args)
	if c == nil {
		// "vigil keys" names a group: list what it holds.
		if group := subcommands(cmds, args[0]); len(group) > 0 {
			w, code := stdout, ExitOK
			if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
				fmt.Fprintf(stderr, "vigil: unknown command %q\n\n", strings.Join(args[:2], " "))
				w, code = stderr, ExitUsage
			} else if len(args) == 1 {
				code = ExitUsage
			}
			printGroupHelp(w, args[0], group)
			return code
		}
		fmt.Fprintf(stderr, "vigil: unknown command %q\nRun 'vigil help' for the list.\n", strings.Join(args[:min(2, len(args))], " "))
		return ExitUsage
	}
	fs := flag.NewFlagSet("vigil "+c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printCommandHelp(stderr, c, fs) }
	run := c.Run(ctx, env, fs)
	positional, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if err := run(positional); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "vigil %s: %s\n", c.Name, ue.msg)
			return ExitUsage
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return ExitFail
		}
		fmt.Fprintf(stderr, "vigil %s: %v\n", c.Name, err)
		return ExitFail
	}
	return ExitOK
}

// commandFlags returns c's flag set with its flags declared, for help.
func commandFlags(ctx context.Context, env *Env, c *Command) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Run(ctx, env, fs)
	return fs
}

// subcommands returns the commands of a group ("keys" → keys create, …).
func subcommands(cmds []*Command, group string) []*Command {
	var out []*Command
	for _, c := range cmds {
		if strings.HasPrefix(c.Name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("tenants create acme --name Acme"); everything after a "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, tail = args[:i], args[i+1:]
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(positional, tail...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// find resolves the longest command name that prefixes args.
func find(cmds []*Command, args []string) (*Command, []string) {
	for n := min(2, len(args)); n >= 1; n-- {
		name := strings.Join(args[:n], " ")
		if i := slices.IndexFunc(cmds, func(c *Command) bool { return c.Name == name }); i >= 0 {
			return cmds[i], args[n:]
		}
	}
	return nil, nil
}

func printHelp(w io.Writer, cmds []*Command) {
	fmt.Fprintln(w, "vigil — audit log service that catches account takeover")
	fmt.Fprintln(w, "\nUsage: vigil <command> [flags] [arguments]\n\nCommands:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Short)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nRun 'vigil help <command>' or 'vigil <command> -h' for a command's flags.")
}

func printGroupHelp(w io.Writer, group string, cmds []*Command) {
	fmt.Fprintf(w, "Usage: vigil %s <command> [flags] [arguments]\n\nCommands:\n", group)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Short)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'vigil help %s <command>' for a command's flags.\n", group)
}

// printCommandHelp prints a command's usage, description and flags.
func printCommandHelp(w io.Writer, c *Command, fs *flag.FlagSet) {
	usage := "vigil " + c.Name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		usage += " [flags]"
	}
	if c.Usage != "" {
		usage += " " + c.Usage
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usage, c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs)
	}
}

// printFlags lists fs's flags in the "--name" form the docs use.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, strings.ReplaceAll(usage, "\n", "\n      "))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}

// stringList is a repeatable or comma-separated string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
