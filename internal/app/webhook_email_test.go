package app_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// smtpRelay is a small SMTP server on 127.0.0.1 with STARTTLS and AUTH
// PLAIN, enough for net/smtp: it records the messages it accepts and can
// refuse recipients with a temporary error for a while.
type smtpRelay struct {
	t      *testing.T
	addr   string
	tlsCfg *tls.Config
	caFile string

	mu       sync.Mutex
	refuse   bool
	refused  int
	plainAut bool // an AUTH arrived before STARTTLS
	msgs     []relayed
}

type relayed struct {
	from string
	to   []string
	data []byte
}

func newSMTPRelay(t *testing.T) *smtpRelay {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	r := &smtpRelay{t: t, caFile: filepath.Join(t.TempDir(), "relay-ca.pem")}
	if err := os.WriteFile(r.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	r.tlsCfg = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *smtpRelay) setRefuse(v bool) {
	r.mu.Lock()
	r.refuse = v
	r.mu.Unlock()
}

func (r *smtpRelay) messages() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayed(nil), r.msgs...)
}

func (r *smtpRelay) serve(c net.Conn) {
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	say("220 relay.test ESMTP")
	secure := false
	var cur relayed
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			if secure {
				say("250-relay.test")
				say("250 AUTH PLAIN")
			} else {
				say("250-relay.test")
				say("250 STARTTLS")
			}
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, r.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, br, secure = tc, bufio.NewReader(tc), true
		case "AUTH":
			r.mu.Lock()
			if !secure {
				r.plainAut = true
			}
			r.mu.Unlock()
			f := strings.Fields(line)
			b, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
			if len(f) == 3 && string(b) == "\x00vigil\x00s3cret" {
				say("235 2.7.0 authenticated")
			} else {
				say("535 5.7.8 bad credentials")
			}
		case "MAIL":
			cur = relayed{from: line}
			say("250 ok")
		case "RCPT":
			r.mu.Lock()
			refuse := r.refuse
			if refuse {
				r.refused++
			}
			r.mu.Unlock()
			if refuse {
				say("451 4.3.0 try again later")
				continue
			}
			cur.to = append(cur.to, line)
			say("250 ok")
		case "DATA":
			say("354 end with .")
			var data strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.data = []byte(data.String())
			r.mu.Lock()
			r.msgs = append(r.msgs, cur)
			r.mu.Unlock()
			say("250 2.0.0 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// TestWebhookEmail: an email webhook sends its batch as one e-mail through
// the configured relay (STARTTLS, then AUTH PLAIN), retries while the relay
// answers 4xx, and the message names every change with its explanation and
// console link.
func TestWebhookEmail(t *testing.T) {
	relay := newSMTPRelay(t)
	relay.setRefuse(true)
	cfg := alertConfig(t, t.TempDir())
	cfg.Alerts.SMTP.Addr, cfg.Alerts.SMTP.From = relay.addr, "vigil@example.com"
	cfg.Alerts.SMTP.Username, cfg.Alerts.SMTP.Password, cfg.Alerts.SMTP.CAFile = "vigil", "s3cret", relay.caFile
	a, base, _ := runApp(t, cfg)
	op := a.BootstrapKey
	if status, b := raw(t, "POST", base+"/v1/tenants", op, `{"id":"acme"}`); status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", status, b)
	}
	for _, bad := range []string{`"url":"mailto:not an address"`, `"url":"https://example.com/x"`, `"url":"mailto:a@example.com?subject=x"`} {
		if status, b := raw(t, "POST", base+"/v1/webhooks", op, `{"tenant":"acme","format":"email",`+bad+`}`); status != http.StatusBadRequest || !strings.Contains(string(b), `"url"`) {
			t.Fatalf("%s: %d %s", bad, status, b)
		}
	}
	createWebhook(t, base, op, `{"tenant":"acme","name":"security team","format":"email","url":"mailto:sec@example.com,oncall@example.com","kinds":["finding"]}`)

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f1, f2 := finding("acme", "f-1", audit.SeverityHigh, at), finding("acme", "f-2", audit.SeverityCritical, at)
	// A rule name is operator text, an explanation quotes event fields:
	// neither may add a header.
	f2.Explanation = "takeover sequence\r\nBcc: attacker@example.net"
	f2.RuleName = "Takeover sequence\r\nBcc: attacker@example.net"
	if err := a.Stores().Findings.UpsertFindings(t.Context(), []audit.Finding{f1, f2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refused attempt", func() bool {
		relay.mu.Lock()
		defer relay.mu.Unlock()
		return relay.refused > 0
	})
	relay.setRefuse(false)
	waitFor(t, "the e-mail", func() bool { return len(relay.messages()) > 0 })
	time.Sleep(300 * time.Millisecond) // nothing more may arrive

	msgs := relay.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want the batch as one", len(msgs))
	}
	relay.mu.Lock()
	if relay.plainAut {
		t.Error("the password was sent before STARTTLS")
	}
	relay.mu.Unlock()
	m := msgs[0]
	if m.from != "MAIL FROM:<vigil@example.com>" || len(m.to) != 2 || !strings.Contains(m.to[0], "sec@example.com") || !strings.Contains(m.to[1], "oncall@example.com") {
		t.Fatalf("envelope %q %q", m.from, m.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(m.data)))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Bcc"); got != "" {
		t.Fatalf("a header was injected: Bcc %q", got)
	}
	subject := msg.Header.Get("Subject")
	if !strings.HasPrefix(subject, "[Vigil] 2 alerts, the worst: CRITICAL finding opened [acme]: Takeover sequence") ||
		!strings.HasPrefix(msg.Header.Get("Message-ID"), "<") || !strings.HasSuffix(msg.Header.Get("Message-ID"), "@vigil>") ||
		msg.Header.Get("Auto-Submitted") != "auto-generated" || !strings.Contains(msg.Header.Get("To"), "oncall@example.com") {
		t.Fatalf("headers %v", msg.Header)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HIGH finding opened [acme]: Brute force", "many failed logins", "takeover sequence",
		"https://vigil.example.com/findings/f-1?tenant=acme", "accounts: alice", `webhook "security team"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

// TestWebhookEmailNeedsARelay: without alerts.smtp an email webhook is
// refused, naming the setting.
func TestWebhookEmailNeedsARelay(t *testing.T) {
	cfg := alertConfig(t, t.TempDir())
	a, base, _ := runApp(t, cfg)
	if status, b := raw(t, "POST", base+"/v1/webhooks", a.BootstrapKey, `{"format":"email","url":"mailto:sec@example.com"}`); status != http.StatusBadRequest || !strings.Contains(string(b), "alerts.smtp.addr") {
		t.Fatalf("email without a relay: %d %s", status, b)
	}
}
