package siem

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// enterpriseID is the private enterprise number in structured-data ids:
// 32473, the one RFC 5612 reserves for documentation and examples.
const enterpriseID = "32473"

// syslogSink writes RFC 5424 messages with octet-counting framing
// (RFC 6587) over TCP, or TLS (RFC 5425).
type syslogSink struct {
	addr     string
	tls      *tls.Config // nil for plain TCP
	facility int
	hostname string
	timeout  time.Duration

	mu   sync.Mutex
	conn net.Conn
	w    *bufio.Writer
}

func newSyslog(s Sink, tc *tls.Config, hostname string) (*syslogSink, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	out := &syslogSink{addr: u.Host, facility: s.Facility, hostname: syslogName(hostname, 255), timeout: s.Timeout}
	if u.Scheme == "tls" {
		out.tls = tc
	}
	return out, nil
}

// syslogName keeps a header field to printable US-ASCII, "-" when empty.
func syslogName(s string, max int) string {
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		if s[i] >= 33 && s[i] <= 126 {
			b = append(b, s[i])
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// severityCode maps a line to a syslog severity.
func severityCode(l *Line) int {
	switch l.Severity {
	case audit.SeverityCritical:
		return 2
	case audit.SeverityHigh:
		return 3
	case audit.SeverityMedium:
		return 4
	case audit.SeverityLow:
		return 5
	}
	if l.Type == TypeGap {
		return 4
	}
	return 6 // informational: raw events, severity-less changes
}

// sdEscape escapes a structured-data parameter value (RFC 5424 6.3.3).
var sdEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// message renders one RFC 5424 message (without framing).
func (s *syslogSink) message(l *Line, msg []byte) []byte {
	var b strings.Builder
	pri := s.facility*8 + severityCode(l)
	fmt.Fprintf(&b, "<%d>1 %s %s vigil - %s [vigil@%s", pri, l.At.UTC().Format("2006-01-02T15:04:05.000000Z"), s.hostname, l.Type, enterpriseID)
	param := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + `="` + sdEscape.Replace(v) + `"`)
		}
	}
	param("tenant", l.Tenant)
	param("rule", l.Rule)
	param("severity", string(l.Severity))
	param("change", string(l.Change))
	param("id", l.ID)
	if l.Seq > 0 {
		param("seq", strconv.FormatInt(l.Seq, 10))
	}
	param("stream", l.Stream)
	b.WriteString("] ")
	b.Write(msg)
	return []byte(b.String())
}

func (s *syslogSink) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: s.timeout}
	var conn net.Conn
	var err error
	if s.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		conn, err = td.DialContext(ctx, "tcp", s.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return err
	}
	s.conn, s.w = conn, bufio.NewWriterSize(conn, 64<<10)
	return nil
}

// alive reports whether the collector still holds the connection open: a
// collector never writes, so a read that does not time out means it
// closed (or reset) the connection.
func (s *syslogSink) alive() bool {
	_ = s.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := s.conn.Read(one[:])
	_ = s.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *syslogSink) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.w = nil, nil
}

func (s *syslogSink) deliver(ctx context.Context, _, _ string, lines []Line) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && !s.alive() {
		s.drop()
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	for i := range lines {
		msg, err := ndjson(lines[i : i+1])
		if err != nil {
			return err
		}
		m := s.message(&lines[i], msg[:len(msg)-1])
		if _, err := s.w.WriteString(strconv.Itoa(len(m)) + " "); err != nil {
			s.drop()
			return fmt.Errorf("write: %w", err)
		}
		if _, err := s.w.Write(m); err != nil {
			s.drop()
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		s.drop()
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (s *syslogSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop()
}
