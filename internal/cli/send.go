package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigilhq/vigil/client"
)

func eventsSendCommand() *Command {
	return &Command{
		Name: "events send", Usage: "[FILE]", Short: "send events from a JSON array or NDJSON file (or stdin)",
		Long: `Sends events in batches through the SDK, with retries that never duplicate
(each event gets an idempotency id before its first attempt). The input is
streamed: memory holds one batch, whatever the file's size.

Progress goes to stderr: on a terminal a status line (events sent, rate and,
when the input's size is known, the percentage read); otherwise a line every
--progress-every. Prints a summary and each rejected event's reason; exits 1
if any event was rejected.`,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) func([]string) error {
			newClient := clientFlags(env, fs)
			batch := fs.Int("batch", 1000, "events per request (at most 10000)")
			every := fs.Duration("progress-every", 10*time.Second, "interval of progress lines when stderr is not a terminal")
			quiet := fs.Bool("quiet", false, "no progress on stderr")
			return func(args []string) error {
				if len(args) > 1 {
					return usagef("events send takes at most one file")
				}
				if *batch < 1 || *batch > client.MaxEventsPerBatch {
					return usagef("--batch must be between 1 and %d", client.MaxEventsPerBatch)
				}
				if *every <= 0 {
					return usagef("--progress-every must be positive")
				}
				c, err := newClient()
				if err != nil {
					return err
				}
				in, name := env.Stdin, "stdin"
				if len(args) == 1 && args[0] != "-" {
					f, err := os.Open(args[0])
					if err != nil {
						return err
					}
					defer f.Close()
					in, name = f, args[0]
				}
				counted := &countingReader{r: in}
				src, err := newEventReader(counted)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				p := &sendProgress{w: env.Stderr, tty: isTerminal(env.Stderr), every: *every, quiet: *quiet,
					size: inputSize(in), read: counted, start: time.Now()}
				var acc, dup, rej, sent int
				chunk := make([]client.Event, 0, *batch)
				flush := func() error {
					if len(chunk) == 0 {
						return nil
					}
					res, err := c.Send(ctx, chunk...)
					if res != nil {
						acc, dup, rej = acc+res.Accepted, dup+res.Duplicates, rej+res.Rejected
						for _, r := range res.Results {
							if r.Status == client.StatusRejected && r.Error != nil {
								field := ""
								if r.Error.Field != "" {
									field = " (" + r.Error.Field + ")"
								}
								p.clear()
								fmt.Fprintf(env.Stderr, "event %d rejected%s: %s\n", sent+r.Index, field, r.Error.Message)
							}
						}
					}
					// A batch rejected whole still carries every event's reason.
					var apiErr *client.Error
					if err != nil && (res == nil || !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalid) {
						p.clear()
						return fmt.Errorf("send events %d-%d: %w", sent, sent+len(chunk)-1, err)
					}
					sent += len(chunk)
					chunk = chunk[:0]
					p.update(sent, rej, false)
					return nil
				}
				for {
					e, err := src.next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						p.clear()
						return fmt.Errorf("%s: %w (%d events sent before it)", name, err, sent)
					}
					chunk = append(chunk, e)
					if len(chunk) == *batch {
						if err := flush(); err != nil {
							return err
						}
					}
				}
				if err := flush(); err != nil {
					return err
				}
				if sent == 0 {
					return fmt.Errorf("%s: no events", name)
				}
				p.update(sent, rej, true)
				fmt.Fprintf(env.Stdout, "%d accepted, %d duplicates, %d rejected\n", acc, dup, rej)
				if rej > 0 {
					return errors.New("some events were rejected")
				}
				return nil
			}
		},
	}
}

// countingReader counts the bytes read through it, for the percentage.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// inputSize returns the size of a regular file, or -1 when unknown (a
// pipe, a terminal).
func inputSize(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return -1
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	return st.Size()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sendProgress reports events sent, the rate and, when the input size is
// known, the share of it read: a status line redrawn at most five times a
// second on a terminal, else one line per interval, and a last line at the
// end.
type sendProgress struct {
	w           io.Writer
	tty, quiet  bool
	every       time.Duration
	size        int64
	read        *countingReader
	start, last time.Time
	drawn       bool
	noun        string // what is counted; "events" when empty
}

func (p *sendProgress) update(sent, rejected int, final bool) {
	if p.quiet {
		return
	}
	now := time.Now()
	interval := p.every
	if p.tty {
		interval = 200 * time.Millisecond
	}
	if !final && now.Sub(p.last) < interval {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	noun := p.noun
	if noun == "" {
		noun = "events"
	}
	line := fmt.Sprintf("sent %d %s", sent, noun)
	if p.size > 0 {
		line += fmt.Sprintf(" (%.0f%%)", 100*float64(min(p.read.n, p.size))/float64(p.size))
	}
	rate := float64(sent) / max(el.Seconds(), 1e-3)
	line += fmt.Sprintf(", %.0f %s/s", rate, noun)
	if p.size > 0 && p.read.n > 0 && p.read.n < p.size && !final {
		// The rest of the input at the rate it has been read so far.
		left := time.Duration(float64(el) * float64(p.size-p.read.n) / float64(p.read.n))
		line += fmt.Sprintf(", ETA %s", left.Round(time.Second))
	}
	if rejected > 0 {
		line += fmt.Sprintf(", %d rejected", rejected)
	}
	if final {
		line += fmt.Sprintf(", in %s", el.Round(time.Millisecond))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		if final {
			fmt.Fprintln(p.w)
			p.drawn = false
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// clear removes the status line before another message is printed.
func (p *sendProgress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// eventReader streams events from a JSON array or NDJSON.
type eventReader struct {
	dec  *json.Decoder  // JSON array
	sc   *bufio.Scanner // NDJSON
	line int
	idx  int
}

func newEventReader(r io.Reader) (*eventReader, error) {
	br := bufio.NewReader(r)
	first, err := peekNonSpace(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no events")
		}
		return nil, err
	}
	if first == '[' {
		dec := json.NewDecoder(br)
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("decode JSON array: %w", err)
		}
		return &eventReader{dec: dec}, nil
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), client.MaxEventBytes*4)
	return &eventReader{sc: sc}, nil
}

// next returns the next event, io.EOF at the end.
func (er *eventReader) next() (client.Event, error) {
	var e client.Event
	if er.dec != nil {
		if !er.dec.More() {
			if _, err := er.dec.Token(); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF // the array never closed; not the reader's clean end
				}
				return e, fmt.Errorf("decode JSON array: %w", err)
			}
			return e, io.EOF
		}
		if err := er.dec.Decode(&e); err != nil {
			return e, fmt.Errorf("array element %d: %w", er.idx, err)
		}
		er.idx++
		return e, nil
	}
	for er.sc.Scan() {
		er.line++
		b := bytes.TrimSpace(er.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return e, fmt.Errorf("line %d: %w", er.line, err)
		}
		return e, nil
	}
	if err := er.sc.Err(); err != nil {
		return e, fmt.Errorf("line %d: %w", er.line+1, err)
	}
	return e, io.EOF
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		if !strings.ContainsRune(" \t\r\n", rune(b[0])) {
			return b[0], nil
		}
		_, _ = br.ReadByte()
	}
}
