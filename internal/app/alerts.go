package app

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigilhq/vigil/internal/alert"
	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/siem"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// WebhookKeyFile is the file in the data directory holding the key webhook
// signing secrets are derived from (mode 0600). Losing it changes every
// webhook's secret; copying it with a backup keeps them.
const WebhookKeyFile = "webhook-key"

// buildAlerts builds the webhook service, or nil when alerts are off.
func (a *App) buildAlerts(c config.Alerts, publicURL string) (*alert.Service, error) {
	if !c.Enabled {
		return nil, nil
	}
	key, err := alert.LoadOrCreateKey(filepath.Join(a.cfg.Storage.SQLite.Dir, WebhookKeyFile))
	if err != nil {
		return nil, err
	}
	kr, err := alert.NewKeyring(key)
	if err != nil {
		return nil, err
	}
	guard := alert.Guard{AllowPrivate: c.AllowPrivateNetworks}
	for _, s := range c.AllowCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, err // Validate has refused it already
		}
		guard.Allow = append(guard.Allow, p.Masked())
	}
	var smtp *alert.SMTP
	if m := c.SMTP; m.Addr != "" {
		smtp = &alert.SMTP{Addr: m.Addr, From: m.From, Username: m.Username, Password: m.Password, TLS: m.TLS}
		if m.CAFile != "" {
			pem, err := os.ReadFile(m.CAFile)
			if err != nil {
				return nil, fmt.Errorf("alerts.smtp.ca_file: %w", err)
			}
			smtp.RootCAs = x509.NewCertPool()
			if !smtp.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("alerts.smtp.ca_file %s holds no PEM certificate", m.CAFile)
			}
		}
	}
	rules := a.stores.Rules
	ruleActions := func(ctx context.Context, tenant, rule string) ([]string, error) {
		ss, err := rules.ListRuleSettings(ctx, tenant)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if s.RuleID == rule && !s.Disabled {
				return s.Actions, nil
			}
		}
		return nil, nil
	}
	return alert.New(alert.Options{
		Actions: a.stores.Actions, RuleActions: ruleActions, ActionRequested: a.recordTriggeredAction,
		Store: a.stores.Alerts, Keyring: kr, Guard: guard, AllowHTTP: c.AllowHTTP, PublicURL: publicURL, SMTP: smtp,
		Family: detect.Family, MaxPerTenant: c.MaxWebhooksPerTenant, BatchWindow: c.BatchWindow, BatchMax: c.BatchMax,
		MaxQueued: c.MaxQueued, RatePerMinute: c.RatePerMinute, MinBackoff: c.MinBackoff, MaxBackoff: c.MaxBackoff,
		RetryFor: c.RetryFor, Timeout: c.Timeout, SecretOverlap: c.SecretOverlap, Poll: c.Poll,
		Logger: a.log.With("component", "alert"), Registerer: a.registry, Now: a.now,
	})
}

// recordTriggeredAction writes an action a rule triggered to its tenant's
// audit log; its event id makes a repeated record (after a crash) harmless.
func (a *App) recordTriggeredAction(ctx context.Context, act audit.ResponseAction) error {
	if a.ingest == nil {
		return nil
	}
	meta := map[string]any{"action_id": act.ID, "type": act.Type, "status": string(act.Status), "requested_by": act.RequestedBy,
		"finding_id": act.FindingID}
	if act.Reason != "" {
		meta["reason"] = act.Reason
	}
	ev := &audit.Event{ID: act.ID + ".requested", Tenant: act.Tenant, Action: audit.ActionResponseRequested,
		Actor: audit.Actor{ID: "vigil", Type: audit.ActorService}, Target: audit.Target{Type: "user", ID: act.ActorID}, Metadata: meta}
	return a.ingest.RecordBatch(httpapi.ServerWrite(ctx), audit.Principal{}, []*audit.Event{ev})
}

// buildSIEM builds the SIEM stream and the change log's pruning, or nil
// when the store cannot keep SIEM cursors (then no sink may be
// configured). Prepare runs with or without sinks, so sinks removed from
// the configuration release the changes and events they held.
func (a *App) buildSIEM(ctx context.Context, c config.SIEM, webhooks bool) (*siem.Service, error) {
	sinks := make([]siem.Sink, 0, len(c.Sinks))
	for _, k := range c.Sinks {
		facility := config.DefaultSIEMFacility
		if k.Facility != nil {
			facility = *k.Facility
		}
		sinks = append(sinks, siem.Sink{Name: k.Name, Kind: k.Kind, URL: k.URL, Events: k.Events, Tenants: k.Tenants,
			MinSeverity: audit.Severity(k.MinSeverity), Headers: k.Headers, Gzip: k.Gzip, Facility: facility,
			CAFile: k.TLS.CAFile, ServerName: k.TLS.ServerName, InsecureSkipVerify: k.TLS.InsecureSkipVerify,
			Timeout: k.Timeout, MinBackoff: k.MinBackoff, MaxBackoff: k.MaxBackoff})
	}
	store, ok := a.stores.Alerts.(audit.SIEMStore)
	if !ok {
		if len(sinks) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("siem: storage.driver %s cannot keep SIEM cursors", a.cfg.Storage.Driver)
	}
	opts := siem.Options{Store: store, Sinks: sinks, Webhooks: webhooks, Poll: c.Poll, BatchMax: c.BatchMax,
		MaxChanges: c.MaxChanges, MaxChangeAge: c.MaxChangeAge, MaxEventLag: c.MaxEventLag,
		Logger: a.log.With("component", "siem"), Now: a.now}
	if len(sinks) > 0 {
		opts.Registerer = a.registry
	}
	if st, ok := a.stores.Stream.(*sqlite.Stream); ok {
		opts.Stream, opts.ConsumerPrefix = st, sqlite.DetachedPrefix
	}
	opts.Hostname, _ = os.Hostname()
	svc, err := siem.New(opts)
	if err != nil {
		return nil, err
	}
	if err := svc.Prepare(ctx); err != nil {
		return nil, fmt.Errorf("siem: %w", err)
	}
	// Without sinks the service still runs: it prunes the change log,
	// which the store fills whether or not anything reads it (with alerts
	// off and no sinks, nothing else would ever delete it).
	return svc, nil
}
