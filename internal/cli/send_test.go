package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func readAll(t testing.TB, in string) (ids []string, err error) {
	er, err := newEventReader(strings.NewReader(in))
	if err != nil {
		return nil, err
	}
	for range 10_000 {
		e, err := er.next()
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
		ids = append(ids, e.ID)
	}
	t.Fatal("the reader never ends")
	return nil, nil
}

func TestEventReader(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{`[{"id":"a"},{"id":"b"}]`, "a,b", ""},
		{" \n[ ]", "", ""},
		{"{\"id\":\"a\"}\n\n{\"id\":\"b\"}\n", "a,b", ""},
		{`[{"id":"a"},{"id":]`, "a", "array element 1"},
		{"{\"id\":\"a\"}\n{nope}\n", "a", "line 2"},
		{"", "", "no events"},
		{`[{"id":"a"}`, "a", "decode JSON array"},
	} {
		ids, err := readAll(t, tc.in)
		if got := strings.Join(ids, ","); got != tc.want {
			t.Errorf("%q: ids %q, want %q", tc.in, got, tc.want)
		}
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func FuzzEventReader(f *testing.F) {
	for _, s := range []string{`[{"id":"a"},{"id":"b"}]`, "{\"id\":\"a\"}\n{\"action\":1}\n", "[", "  \n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = readAll(t, in) // must end, without panicking
	})
}

func TestSendProgressLines(t *testing.T) {
	var b bytes.Buffer
	read := &countingReader{n: 50}
	p := &sendProgress{w: &b, every: time.Nanosecond, size: 200, read: read, start: time.Now().Add(-time.Second)}
	p.update(500, 0, false)
	read.n = 200
	p.update(1000, 2, true)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "sent 500 events (25%), ") || !strings.Contains(lines[0], " events/s") ||
		!strings.HasPrefix(lines[1], "sent 1000 events (100%), ") || !strings.Contains(lines[1], "2 rejected, in ") {
		t.Fatalf("non-terminal progress:\n%s", b.String())
	}
	// A terminal gets one redrawn line; unknown size, no percentage.
	b.Reset()
	p = &sendProgress{w: &b, tty: true, size: -1, read: read, start: time.Now()}
	p.update(10, 0, false)
	p.clear()
	p.update(20, 0, true)
	if s := b.String(); strings.Count(s, "\r\033[K") != 3 || strings.Contains(s, "%)") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("terminal progress: %q", s)
	}
	// Quiet prints nothing.
	b.Reset()
	p = &sendProgress{w: &b, quiet: true, read: read, start: time.Now()}
	p.update(20, 0, true)
	if b.Len() != 0 {
		t.Fatalf("quiet: %q", b.String())
	}
}
