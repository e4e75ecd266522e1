package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// FormatEmail sends a delivery as one e-mail through the server's SMTP
// relay to the addresses of the subscription's mailto: URL.
const FormatEmail = "email"

// SMTP is the relay e-mail deliveries go through.
type SMTP struct {
	// Addr is the relay's host:port.
	Addr string
	// From is the sender address.
	From string
	// Username and Password authenticate (PLAIN); no authentication when
	// Username is empty.
	Username, Password string
	// TLS is "starttls" (required: a relay that does not offer it is an
	// error), "implicit" (TLS from the first byte, port 465) or "none"
	// (plain; only sensible on a local relay).
	TLS string
	// RootCAs verifies the relay's certificate (the system's when nil).
	RootCAs *x509.CertPool
}

// maxRecipients caps the addresses of one e-mail subscription.
const maxRecipients = 20

// mailRecipients parses a mailto: URL's comma-separated addresses.
func mailRecipients(raw string) ([]string, error) {
	rest, ok := strings.CutPrefix(raw, "mailto:")
	if !ok {
		return nil, errors.New("url of an email webhook must be mailto:address[,address…]")
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		return nil, errors.New("url of an email webhook takes addresses only, no ?subject= or other fields")
	}
	var out []string
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		a, err := mail.ParseAddress(part)
		if err != nil || a.Name != "" || a.Address != part {
			return nil, fmt.Errorf("url: %q is not a plain e-mail address", part)
		}
		out = append(out, a.Address)
	}
	if len(out) > maxRecipients {
		return nil, fmt.Errorf("url names %d addresses; at most %d", len(out), maxRecipients)
	}
	return out, nil
}

// headerSafe removes what could end a header line (attacker-influenced
// text such as rule explanations reaches the subject).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// renderEmail builds a delivery's message (headers and a quoted-printable
// text body); the Message-ID carries the delivery id, so a mail system can
// drop a resent copy.
func renderEmail(from string, to []string, sub *audit.Subscription, deliveryID string, items []Item, at time.Time) ([]byte, error) {
	subject := fmt.Sprintf("[Vigil] %d alerts", len(items))
	if len(items) == 1 {
		subject = "[Vigil] " + summary(items[0])
	} else if len(items) > 1 {
		worst := items[0]
		for _, it := range items[1:] {
			if it.Severity.Rank() > worst.Severity.Rank() {
				worst = it
			}
		}
		subject = fmt.Sprintf("[Vigil] %d alerts, the worst: %s", len(items), summary(worst))
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", (&mail.Address{Address: from}).String())
	addrs := make([]string, len(to))
	for i, a := range to {
		addrs[i] = (&mail.Address{Address: a}).String()
	}
	hdr("To", strings.Join(addrs, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", headerSafe(truncateText(subject, 200))))
	hdr("Date", at.UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+deliveryID+"@vigil>")
	hdr("Auto-Submitted", "auto-generated")
	hdr("X-Vigil-Delivery", deliveryID)
	hdr("X-Vigil-Webhook", sub.ID)
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	var text strings.Builder
	for i, it := range items {
		if i == 100 {
			fmt.Fprintf(&text, "…and %d more; see the console.\n\n", len(items)-100)
			break
		}
		fmt.Fprintf(&text, "%s\n%s\n", summary(it), it.Explanation)
		ev := it.Evidence
		fmt.Fprintf(&text, "Evidence: %d events", ev.Events)
		if ev.Findings > 0 {
			fmt.Fprintf(&text, ", %d findings", ev.Findings)
		}
		if len(ev.Accounts) > 0 {
			fmt.Fprintf(&text, "; accounts: %s", strings.Join(ev.Accounts, ", "))
		}
		if len(ev.IPs) > 0 {
			fmt.Fprintf(&text, "; addresses: %s", strings.Join(ev.IPs, ", "))
			if ev.IPCount > len(ev.IPs) {
				fmt.Fprintf(&text, " (of %d)", ev.IPCount)
			}
		}
		fmt.Fprintf(&text, "\nSeen %s to %s\n", it.FirstSeen.UTC().Format(time.RFC3339), it.LastSeen.UTC().Format(time.RFC3339))
		if it.ConsoleURL != "" {
			fmt.Fprintf(&text, "Open in Vigil: %s\n", it.ConsoleURL)
		}
		text.WriteString("\n")
	}
	name := sub.Name
	if name == "" {
		name = sub.ID
	}
	fmt.Fprintf(&text, "--\nSent by Vigil for the webhook %q (delivery %s).\n", name, deliveryID)
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(strings.ReplaceAll(text.String(), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// sendMail hands one message to the relay. An error (refused connection,
// a 4xx or 5xx answer) is retried like a failed webhook request.
func (s *Service) sendMail(ctx context.Context, to []string, msg []byte) error {
	c := s.opts.SMTP
	if c == nil {
		return errors.New("e-mail is not configured on this server (alerts.smtp)")
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("alerts.smtp.addr: %w", err)
	}
	deadline := time.Now().Add(s.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := &net.Dialer{Deadline: deadline}
	tlsConf := &tls.Config{ServerName: host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	if c.TLS == "implicit" {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsConf}).DialContext(ctx, "tcp", c.Addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return fmt.Errorf("connect to the SMTP relay: %w", err)
	}
	_ = conn.SetDeadline(deadline)
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP relay: %w", err)
	}
	defer cl.Close()
	if err := cl.Hello("vigil"); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	if c.TLS == "starttls" || c.TLS == "" {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return errors.New("the SMTP relay does not offer STARTTLS (alerts.smtp.tls: none allows plain SMTP)")
		}
		if err := cl.StartTLS(tlsConf); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return fmt.Errorf("SMTP authentication: %w", err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, a := range to {
		if err := cl.Rcpt(a); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", a, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP message refused: %w", err)
	}
	return cl.Quit()
}
