package alert

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
)

// Options configures a Service. Zero values take the defaults named.
type Options struct {
	Store   audit.AlertStore // required
	Keyring *Keyring         // required
	// Guard decides which receiver addresses are allowed (at connect time).
	Guard Guard
	// AllowHTTP accepts http:// receiver URLs; only https:// otherwise.
	AllowHTTP bool
	// Actions stores the response actions that findings trigger through
	// their tenant's rule settings (RuleActions); both nil: none are.
	Actions audit.ActionStore
	// RuleActions returns the response actions a tenant has a rule's new
	// findings trigger.
	RuleActions func(ctx context.Context, tenant, rule string) ([]string, error)
	// ActionRequested writes a triggered action to its tenant's audit log;
	// it is called again for an action already stored (after a crash), so
	// it must be idempotent.
	ActionRequested func(ctx context.Context, a audit.ResponseAction) error
	// SMTP is the relay of email subscriptions; nil refuses them.
	SMTP *SMTP
	// PublicURL is the console's address, for links in payloads; "" omits them.
	PublicURL string
	// Family names a rule's family (for family filters on findings).
	Family func(ruleID string) string
	// MaxPerTenant caps the subscriptions of one tenant (and the
	// installation-wide ones); default 25.
	MaxPerTenant int
	// BatchWindow is how long a delivery gathers items before it is sent;
	// default 5s. BatchMax is the most items in one request; default 200.
	BatchWindow time.Duration
	BatchMax    int
	// MaxQueued caps the items waiting for one subscription; beyond it the
	// oldest waiting deliveries become dead letters
	// (vigil_webhook_items_dropped_total). Default 10,000.
	MaxQueued int
	// RatePerMinute caps the requests to one subscription; default 60.
	RatePerMinute int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (defaults 10s and 1h); each wait is jittered to between half
	// and all of it. RetryFor is how long a delivery is retried before it
	// becomes a dead letter; default 24h.
	MinBackoff, MaxBackoff, RetryFor time.Duration
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// SecretOverlap is how long the previous secret stays valid after a
	// rotation, unless the rotation names another; default 24h.
	SecretOverlap time.Duration
	// Poll is how often the worker looks for work; default 1s.
	Poll time.Duration
	// Workers is how many requests are in flight at once; default 4.
	Workers int
	// KeepDelivered is how long delivered deliveries are listed (default
	// 7 days); KeepDead how many dead letters a subscription keeps
	// (default 1,000, the oldest are deleted).
	KeepDelivered time.Duration
	KeepDead      int
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	Now           func() time.Time
}

// Service manages subscriptions and runs the delivery worker.
type Service struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	client *http.Client

	mu       sync.Mutex
	nextSend map[string]time.Time // per subscription, for the rate limit

	sent    *prometheus.CounterVec
	dropped prometheus.Counter
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Keyring == nil {
		return nil, errors.New("alert: Store and Keyring are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&opts.MaxPerTenant, 25)
	def(&opts.BatchWindow, 5*time.Second)
	defInt(&opts.BatchMax, 200)
	defInt(&opts.MaxQueued, 10_000)
	defInt(&opts.RatePerMinute, 60)
	def(&opts.MinBackoff, 10*time.Second)
	def(&opts.MaxBackoff, time.Hour)
	def(&opts.RetryFor, 24*time.Hour)
	def(&opts.Timeout, 10*time.Second)
	def(&opts.SecretOverlap, 24*time.Hour)
	def(&opts.Poll, time.Second)
	defInt(&opts.Workers, 4)
	def(&opts.KeepDelivered, 7*24*time.Hour)
	defInt(&opts.KeepDead, 1000)
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now, nextSend: map[string]time.Time{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, Control: opts.Guard.Control}
	s.client = &http.Client{
		Timeout: opts.Timeout,
		Transport: &http.Transport{
			Proxy:               nil, // a proxy would connect for us, past the guard
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: opts.Timeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
		// A redirect would lead past the URL that was checked: not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_webhook_attempts_total",
		Help: "Webhook delivery attempts by result: delivered, failed (to be retried), dead (given up)."}, []string{"result"})
	s.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_webhook_items_dropped_total",
		Help: "Webhook items moved to dead letters unsent because their subscription's outbox was full."})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.sent, s.dropped} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register webhook metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Close releases idle connections.
func (s *Service) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Spec is what a caller sets on a subscription. On update, nil fields are
// left as they are.
type Spec struct {
	Name        *string
	URL         *string
	Format      *string
	Rules       *[]string
	Families    *[]string
	MinSeverity *audit.Severity
	Changes     *[]audit.LifecycleChange
	Kinds       *[]string
	Disabled    *bool
	// RoutingKey is a pagerduty subscription's integration key; it is
	// stored sealed and never shown again.
	RoutingKey *string
}

// Limits of a subscription's fields.
const (
	maxURLLen   = 2048
	maxNameLen  = 200
	maxFilterN  = 100
	maxFilterSz = 200
)

// apply validates spec onto sub, reporting every problem at once.
func (s *Service) apply(sub *audit.Subscription, spec Spec) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, audit.FieldErrorf(field, format, args...))
	}
	if spec.Name != nil {
		if len(*spec.Name) > maxNameLen {
			bad("name", "name must be at most %d bytes", maxNameLen)
		}
		sub.Name = *spec.Name
	}
	if spec.Format != nil {
		if !slices.Contains(Formats, *spec.Format) {
			bad("format", "format must be one of %s", strings.Join(Formats, ", "))
		}
		sub.Format = *spec.Format
	}
	// u is the plain URL: given, or the stored one opened.
	var u string
	if spec.URL != nil {
		u = *spec.URL
	} else if sub.URL != "" || sub.SealedURL != "" {
		var err error
		if u, err = s.plainURL(sub); err != nil {
			bad("url", "the stored url does not open with this server's webhook key: set it again")
		}
	}
	if sub.Format == FormatEmail {
		if s.opts.SMTP == nil {
			bad("format", "email needs an SMTP relay configured on this server (alerts.smtp.addr)")
		}
		if _, err := mailRecipients(u); err != nil {
			bad("url", "%s", err.Error())
		}
	} else if spec.URL != nil || spec.Format != nil {
		if err := s.checkURL(u); err != nil && u != "" {
			bad("url", "%s", err.Error())
		}
	}
	list := func(field string, in *[]string, out *[]string) {
		if in == nil {
			return
		}
		if len(*in) > maxFilterN {
			bad(field, "%s may name at most %d values", field, maxFilterN)
		}
		for _, v := range *in {
			if v == "" || len(v) > maxFilterSz {
				bad(field, "%s values must be 1-%d bytes", field, maxFilterSz)
				break
			}
		}
		*out = slices.Clone(*in)
	}
	list("rules", spec.Rules, &sub.Rules)
	list("families", spec.Families, &sub.Families)
	if spec.MinSeverity != nil {
		if *spec.MinSeverity != "" && spec.MinSeverity.Rank() == 0 {
			bad("min_severity", "min_severity must be low, medium, high or critical")
		}
		sub.MinSeverity = *spec.MinSeverity
	}
	if spec.Changes != nil {
		for _, c := range *spec.Changes {
			if !slices.Contains(audit.AllChanges, c) {
				bad("changes", "changes must be among opened, escalated, acknowledged, resolved; not %q", c)
				break
			}
		}
		sub.Changes = slices.Clone(*spec.Changes)
	}
	if spec.Kinds != nil {
		for _, k := range *spec.Kinds {
			if k != audit.KindFinding && k != audit.KindIncident && k != audit.KindAction {
				bad("kinds", "kinds must be among finding, incident, action; not %q", k)
				break
			}
		}
		sub.Kinds = slices.Clone(*spec.Kinds)
	}
	if spec.Disabled != nil {
		sub.Disabled = *spec.Disabled
	}
	if sub.Format == FormatPagerDuty {
		if u == "" {
			u = PagerDutyURL
		}
		if spec.RoutingKey != nil {
			if k := *spec.RoutingKey; k == "" || len(k) > 128 || strings.IndexFunc(k, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
				bad("routing_key", "routing_key must be the PagerDuty integration key: 1-128 letters and digits")
			} else if sealed, err := s.opts.Keyring.Seal(k, sub.ID); err != nil {
				bad("routing_key", "routing_key could not be sealed: %v", err)
			} else {
				sub.SealedCredential = sealed
			}
		}
		if sub.SealedCredential == "" {
			bad("routing_key", "a pagerduty webhook needs routing_key (the integration key of a PagerDuty service's Events API v2 integration)")
		}
	} else {
		if spec.RoutingKey != nil && *spec.RoutingKey != "" {
			bad("routing_key", "routing_key is only for format pagerduty")
		}
		sub.SealedCredential = "" // a format that needs none keeps none
	}
	if u == "" {
		bad("url", "url is required")
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	sealed, err := s.opts.Keyring.Seal(u, sub.ID+"/url")
	if err != nil {
		return audit.FieldErrorf("url", "url could not be sealed: %v", err)
	}
	sub.SealedURL, sub.URL = sealed, displayURL(u)
	return nil
}

// plainURL is a subscription's receiver URL: its sealed URL opened, or the
// plain one a subscription stored before URLs were sealed still has.
func (s *Service) plainURL(sub *audit.Subscription) (string, error) {
	if sub.SealedURL == "" {
		return sub.URL, nil
	}
	return s.opts.Keyring.Open(sub.SealedURL, sub.ID+"/url")
}

// displayURL is what is shown of a receiver URL: scheme and host, the
// rest elided (Slack's and Teams' paths are credentials); a mailto: list
// is shown whole.
func displayURL(raw string) string {
	if strings.HasPrefix(raw, "mailto:") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable url)"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

// sealPlainURLs seals the URLs of subscriptions stored before URLs were
// sealed.
func (s *Service) sealPlainURLs(ctx context.Context) error {
	subs, err := s.opts.Store.ListSubscriptions(ctx, "", true)
	if err != nil {
		return err
	}
	for i := range subs {
		sub := &subs[i]
		if sub.SealedURL != "" || sub.URL == "" {
			continue
		}
		plain := sub.URL
		if sub.SealedURL, err = s.opts.Keyring.Seal(plain, sub.ID+"/url"); err != nil {
			return err
		}
		sub.URL = displayURL(plain)
		if err := s.opts.Store.UpdateSubscription(ctx, *sub); err != nil {
			return err
		}
	}
	return nil
}

// public is a subscription as it leaves the service: its sealed
// credential replaced by whether it has one.
func public(sub *audit.Subscription) *audit.Subscription {
	if sub == nil {
		return nil
	}
	out := *sub
	out.HasCredential = sub.SealedCredential != ""
	out.SealedCredential, out.SealedURL = "", ""
	return &out
}

// checkURL accepts an absolute https URL (http with AllowHTTP) with a host
// and no credentials; a literal address must pass the guard. Names are
// checked when connecting.
func (s *Service) checkURL(raw string) error {
	if len(raw) > maxURLLen {
		return fmt.Errorf("url must be at most %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return errors.New("url must be an absolute URL such as https://hooks.example.com/vigil")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.opts.AllowHTTP:
	case u.Scheme == "http":
		return errors.New("url must use https (alerts.allow_http allows http)")
	default:
		return errors.New("url must use https")
	}
	if u.User != nil {
		return errors.New("url must not carry credentials")
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if err := s.opts.Guard.Check(ip); err != nil {
			return fmt.Errorf("url: %w (alerts.allow_private_networks or alerts.allow_cidrs allow it)", err)
		}
	}
	return nil
}

// scope returns the subscription id if p may manage it; ENOTFOUND
// otherwise, so a tenant cannot learn another tenant's ids.
func (s *Service) get(ctx context.Context, p audit.Principal, id string) (*audit.Subscription, error) {
	sub, err := s.opts.Store.GetSubscription(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.Operator() && sub.Tenant != p.Tenant {
		return nil, audit.Errorf(audit.ENOTFOUND, "webhook %q not found", id)
	}
	return sub, nil
}

// Create makes a subscription of tenant ("" installation-wide, operators
// only) and returns it with its signing secret, which is shown only now.
func (s *Service) Create(ctx context.Context, p audit.Principal, tenant string, spec Spec) (audit.Subscription, string, error) {
	if !p.Operator() && tenant != p.Tenant {
		return audit.Subscription{}, "", audit.Errorf(audit.EFORBIDDEN, "this key may not manage another tenant's webhooks")
	}
	now := s.now().UTC()
	sub := audit.Subscription{ID: newID(), Tenant: tenant, Format: FormatJSON,
		Changes:   []audit.LifecycleChange{audit.ChangeOpened, audit.ChangeEscalated, audit.ChangeResolved},
		Kinds:     []string{audit.KindIncident, audit.KindFinding},
		SecretGen: 1, CreatedAt: now, UpdatedAt: now}
	if spec.Format != nil && *spec.Format == FormatPagerDuty && spec.MinSeverity == nil {
		sub.MinSeverity = audit.SeverityHigh // page on high and critical unless told otherwise
	}
	if err := s.apply(&sub, spec); err != nil {
		return audit.Subscription{}, "", err
	}
	if err := s.opts.Store.CreateSubscription(ctx, sub, s.opts.MaxPerTenant); err != nil {
		return audit.Subscription{}, "", err
	}
	return *public(&sub), s.opts.Keyring.Secret(sub.ID, sub.SecretGen), nil
}

// List returns the subscriptions p may see: a tenant's own; for an
// operator those of tenant, or with all every subscription.
func (s *Service) List(ctx context.Context, p audit.Principal, tenant string, all bool) ([]audit.Subscription, error) {
	if !p.Operator() {
		tenant, all = p.Tenant, false
	}
	subs, err := s.opts.Store.ListSubscriptions(ctx, tenant, all)
	for i := range subs {
		subs[i] = *public(&subs[i])
	}
	return subs, err
}

// Get returns one subscription.
func (s *Service) Get(ctx context.Context, p audit.Principal, id string) (*audit.Subscription, error) {
	sub, err := s.get(ctx, p, id)
	return public(sub), err
}

// Update changes a subscription.
func (s *Service) Update(ctx context.Context, p audit.Principal, id string, spec Spec) (*audit.Subscription, error) {
	sub, err := s.get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if err := s.apply(sub, spec); err != nil {
		return nil, err
	}
	sub.UpdatedAt = s.now().UTC()
	if err := s.opts.Store.UpdateSubscription(ctx, *sub); err != nil {
		return nil, err
	}
	return public(sub), nil
}

// Delete deletes a subscription and its deliveries.
func (s *Service) Delete(ctx context.Context, p audit.Principal, id string) error {
	if _, err := s.get(ctx, p, id); err != nil {
		return err
	}
	return s.opts.Store.DeleteSubscription(ctx, id)
}

// MaxSecretOverlap bounds how long a rotated-out secret stays valid.
const MaxSecretOverlap = 7 * 24 * time.Hour

// Rotate gives a subscription a new signing secret (returned, shown only
// now). The previous one stays valid for overlap (SecretOverlap when
// negative; 0 ends it at once): requests carry both signatures meanwhile.
func (s *Service) Rotate(ctx context.Context, p audit.Principal, id string, overlap time.Duration) (*audit.Subscription, string, error) {
	if overlap > MaxSecretOverlap {
		return nil, "", audit.FieldErrorf("overlap", "overlap must be at most %s", MaxSecretOverlap)
	}
	if overlap < 0 {
		overlap = s.opts.SecretOverlap
	}
	sub, err := s.get(ctx, p, id)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	until := now.Add(overlap)
	sub.PreviousGen, sub.PreviousUntil, sub.SecretGen, sub.UpdatedAt = sub.SecretGen, &until, sub.SecretGen+1, now
	if overlap == 0 {
		sub.PreviousGen, sub.PreviousUntil = 0, nil
	}
	if err := s.opts.Store.UpdateSubscription(ctx, *sub); err != nil {
		return nil, "", err
	}
	return public(sub), s.opts.Keyring.Secret(sub.ID, sub.SecretGen), nil
}

// Deliveries lists a subscription's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, p audit.Principal, id string, status audit.DeliveryStatus, limit int) ([]audit.Delivery, error) {
	switch status {
	case "", audit.DeliveryOpen, audit.DeliveryPending, audit.DeliveryDelivered, audit.DeliveryDead:
	default:
		return nil, audit.FieldErrorf("status", "status must be open, pending, delivered or dead")
	}
	if _, err := s.get(ctx, p, id); err != nil {
		return nil, err
	}
	return s.opts.Store.ListDeliveries(ctx, audit.DeliveryFilter{SubscriptionID: id, Status: status, Limit: limit})
}

// Replay sends a dead delivery again, with the same id and body, retried
// for another RetryFor.
func (s *Service) Replay(ctx context.Context, p audit.Principal, id string) (*audit.Delivery, error) {
	d, err := s.opts.Store.GetDelivery(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.Operator() && d.Tenant != p.Tenant {
		return nil, audit.Errorf(audit.ENOTFOUND, "delivery %q not found", id)
	}
	return s.opts.Store.ReplayDelivery(ctx, id, s.now().UTC())
}

// secrets are the signing secrets valid now, newest first.
func (s *Service) secrets(sub *audit.Subscription, now time.Time) []string {
	out := []string{s.opts.Keyring.Secret(sub.ID, sub.SecretGen)}
	if sub.PreviousUntil != nil && now.Before(*sub.PreviousUntil) && sub.PreviousGen > 0 {
		out = append(out, s.opts.Keyring.Secret(sub.ID, sub.PreviousGen))
	}
	return out
}

func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "wh_" + hex.EncodeToString(b[:])
}

// Run is the delivery worker: until ctx ends it fans changes out to
// subscriptions, seals deliveries whose batch window passed, sends those
// due and prunes old ones. Errors are logged and the step retried on the
// next turn; nothing is lost, since every step is a store transaction.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Poll)
	defer t.Stop()
	var lastPrune time.Time
	if err := s.sealPlainURLs(ctx); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "seal the stored webhook URLs", slog.String("error", err.Error()))
	}
	for {
		if err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "webhook worker step failed; retrying", slog.String("error", err.Error()))
		}
		if now := s.now(); now.Sub(lastPrune) > 10*time.Minute {
			lastPrune = now
			if err := s.opts.Store.PruneDeliveries(ctx, now.Add(-s.opts.KeepDelivered), s.opts.KeepDead); err != nil && ctx.Err() == nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "prune webhook deliveries", slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Step runs one turn of the worker: fan out, seal, send.
func (s *Service) Step(ctx context.Context) error {
	if err := s.fanOut(ctx); err != nil {
		return fmt.Errorf("fan out changes: %w", err)
	}
	if err := s.seal(ctx); err != nil {
		return fmt.Errorf("seal deliveries: %w", err)
	}
	return s.send(ctx)
}

// fanOut turns the changes after the cursor into outbox items.
func (s *Service) fanOut(ctx context.Context) error {
	for range 100 { // bounded per turn; the rest waits for the next one
		cur, err := s.opts.Store.AlertCursor(ctx)
		if err != nil {
			return err
		}
		changes, err := s.opts.Store.ChangesAfter(ctx, cur, 500)
		if err != nil || len(changes) == 0 {
			return err
		}
		subs, err := s.opts.Store.ListSubscriptions(ctx, "", true)
		if err != nil {
			return err
		}
		// Changes of findings and incidents raised on a silent backfill
		// (imported history) alert no one; the cursor still passes them.
		live := make([]audit.Change, 0, len(changes))
		for _, c := range changes {
			if !silentBackfill(c) {
				live = append(live, c)
			}
		}
		if err := s.triggerActions(ctx, live); err != nil {
			return err
		}
		var items []audit.OutboxItem
		for _, c := range live {
			var it *Item
			for i := range subs {
				sub := &subs[i]
				if !s.matches(sub, c) {
					continue
				}
				if it == nil {
					x, err := itemOf(c, s.opts.Family, s.opts.PublicURL)
					if err != nil {
						s.log.LogAttrs(ctx, slog.LevelError, "webhook item dropped: undecodable change", slog.String("error", err.Error()))
						break
					}
					it = &x
				}
				if !s.matchesItem(sub, it) {
					continue
				}
				doc, err := json.Marshal(it)
				if err != nil {
					return err
				}
				items = append(items, audit.OutboxItem{SubscriptionID: sub.ID, Tenant: sub.Tenant, Seq: c.Seq, Doc: doc})
			}
		}
		res, err := s.opts.Store.Enqueue(ctx, changes[len(changes)-1].Seq, items, s.opts.BatchMax, s.opts.MaxQueued, s.now().UTC())
		if err != nil {
			return err
		}
		if res.Dropped > 0 {
			s.dropped.Add(float64(res.Dropped))
			s.log.LogAttrs(ctx, slog.LevelWarn, "webhook outbox full: oldest items moved to dead letters", slog.Int("items", res.Dropped))
		}
		if len(changes) < 500 {
			return nil
		}
	}
	return nil
}

// silentBackfill says whether a change is of a finding or incident whose
// latest evidence is history imported without alerts
// (audit.BackfillSilent).
func silentBackfill(c audit.Change) bool {
	if (c.Kind != audit.KindFinding && c.Kind != audit.KindIncident) || !bytes.Contains(c.Doc, []byte(`"backfill"`)) {
		return false
	}
	var d struct {
		Backfill string `json:"backfill"`
	}
	return json.Unmarshal(c.Doc, &d) == nil && d.Backfill == audit.BackfillSilent
}

// triggerActions creates the response actions the tenants' rule settings
// ask for on new findings that name an account. An action's id derives
// from the finding and the action type, so a retried turn creates nothing
// twice.
func (s *Service) triggerActions(ctx context.Context, changes []audit.Change) error {
	if s.opts.Actions == nil || s.opts.RuleActions == nil {
		return nil
	}
	cache := map[string][]string{}
	for _, c := range changes {
		if c.Kind != audit.KindFinding || c.Change != audit.ChangeOpened || c.Tenant == "" {
			continue
		}
		ck := c.Tenant + "\x00" + c.RuleID
		types, ok := cache[ck]
		if !ok {
			var err error
			if types, err = s.opts.RuleActions(ctx, c.Tenant, c.RuleID); err != nil {
				return err
			}
			cache[ck] = types
		}
		if len(types) == 0 {
			continue
		}
		var f audit.Finding
		if err := json.Unmarshal(c.Doc, &f); err != nil || f.ActorID == "" {
			continue
		}
		for _, typ := range types {
			a := audit.ResponseAction{ID: actionID(c.Tenant, f.ID, typ), Tenant: c.Tenant, Type: typ, ActorID: f.ActorID,
				FindingID: f.ID, IncidentID: f.IncidentID, RuleID: f.RuleID, RequestedBy: "rule:" + f.RuleID, Severity: f.Severity,
				Reason: truncateText(f.Explanation, 1000), Status: audit.ActionRequested, CreatedAt: s.now().UTC()}
			a.UpdatedAt = a.CreatedAt
			if _, err := s.opts.Actions.CreateAction(ctx, a); err != nil {
				if audit.ErrorCode(err) == audit.EINVALID {
					s.log.LogAttrs(ctx, slog.LevelWarn, "response action not triggered", slog.String("tenant_id", c.Tenant),
						slog.String("finding_id", f.ID), slog.String("error", err.Error()))
					continue
				}
				return err
			}
			if s.opts.ActionRequested != nil {
				if err := s.opts.ActionRequested(ctx, a); err != nil {
					if audit.ErrorCode(err) != audit.EINVALID {
						return err // retried next turn
					}
					// A record the log refuses would block every alert:
					// say so and go on.
					s.log.LogAttrs(ctx, slog.LevelError, "response action not written to the audit log", slog.String("tenant_id", c.Tenant),
						slog.String("action_id", a.ID), slog.String("error", err.Error()))
				}
			}
		}
	}
	return nil
}

// actionID is the id of the action of type typ a finding triggers.
func actionID(tenant, finding, typ string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + finding + "\x00" + typ))
	return "act_" + hex.EncodeToString(h[:12])
}

// NewActionID is the id of an action an analyst requests.
func NewActionID() string { return "act_" + newID()[3:] }

// ActionIDFor is the id of the response action a tenant requested with an
// idempotency key: the same (tenant, key) always names the same action, in
// the form NewActionID gives.
func ActionIDFor(tenant, key string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + key))
	return "act_" + hex.EncodeToString(h[:10])
}

// matches applies the filters a change carries.
func (s *Service) matches(sub *audit.Subscription, c audit.Change) bool {
	if sub.Disabled || (sub.Tenant != "" && sub.Tenant != c.Tenant) {
		return false
	}
	if !slices.Contains(sub.Kinds, c.Kind) || !slices.Contains(sub.Changes, c.Change) {
		return false
	}
	return sub.MinSeverity == "" || c.Severity.Rank() >= sub.MinSeverity.Rank()
}

// matchesItem applies the rule and family filters.
func (s *Service) matchesItem(sub *audit.Subscription, it *Item) bool {
	if len(sub.Rules) > 0 && !slices.Contains(sub.Rules, it.RuleID) {
		return false
	}
	return len(sub.Families) == 0 || slices.Contains(sub.Families, it.Family)
}

// seal renders the body of every delivery whose batch is complete.
func (s *Service) seal(ctx context.Context) error {
	now := s.now().UTC()
	ds, err := s.opts.Store.OpenDeliveries(ctx, now.Add(-s.opts.BatchWindow), s.opts.BatchMax, 100)
	if err != nil {
		return err
	}
	for _, d := range ds {
		sub, err := s.opts.Store.GetSubscription(ctx, d.SubscriptionID)
		if err != nil {
			return err
		}
		items := make([]Item, 0, len(d.ItemDocs))
		for _, doc := range d.ItemDocs {
			var it Item
			if err := json.Unmarshal(doc, &it); err != nil {
				return fmt.Errorf("decode item of delivery %s: %w", d.ID, err)
			}
			items = append(items, it)
		}
		var body []byte
		if sub.Format == FormatEmail {
			plain, rerr := s.plainURL(sub)
			var to []string
			if rerr == nil {
				to, rerr = mailRecipients(plain)
			}
			from := ""
			if s.opts.SMTP != nil {
				from = s.opts.SMTP.From
			}
			if rerr == nil {
				body, err = renderEmail(from, to, sub, d.ID, items, now)
			} else {
				err = rerr
			}
		} else {
			body, err = render(sub.Format, d.ID, sub.ID, items)
		}
		if err != nil {
			return fmt.Errorf("render delivery %s: %w", d.ID, err)
		}
		if err := s.opts.Store.SealDelivery(ctx, d.ID, body, now); err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
			return err
		}
	}
	return nil
}

// send attempts every due delivery, Workers at a time.
func (s *Service) send(ctx context.Context) error {
	now := s.now().UTC()
	ds, err := s.opts.Store.DueDeliveries(ctx, now, 100)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, s.opts.Workers)
	var wg sync.WaitGroup
	subs := map[string]*audit.Subscription{}
	for _, d := range ds {
		sub, ok := subs[d.SubscriptionID]
		if !ok {
			if sub, err = s.opts.Store.GetSubscription(ctx, d.SubscriptionID); err != nil {
				if audit.ErrorCode(err) == audit.ENOTFOUND {
					continue // deleted meanwhile, with its deliveries
				}
				return err
			}
			subs[d.SubscriptionID] = sub
		}
		if sub.Disabled {
			if err := s.opts.Store.Postpone(ctx, d.ID, now.Add(time.Minute)); err != nil {
				return err
			}
			continue
		}
		if at, ok := s.reserve(sub.ID, now); !ok {
			if err := s.opts.Store.Postpone(ctx, d.ID, at); err != nil {
				return err
			}
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.attempt(ctx, sub, d)
		}()
	}
	wg.Wait()
	return nil
}

// reserve takes a request slot of the subscription's rate, or says when
// the next one is free.
func (s *Service) reserve(sub string, now time.Time) (time.Time, bool) {
	gap := time.Minute / time.Duration(s.opts.RatePerMinute)
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.nextSend[sub]
	if now.Before(next) {
		return next, false
	}
	if len(s.nextSend) > 100_000 {
		clear(s.nextSend)
	}
	s.nextSend[sub] = now.Add(gap)
	return time.Time{}, true
}

// attempt sends one delivery and records the outcome.
func (s *Service) attempt(ctx context.Context, sub *audit.Subscription, d audit.Delivery) {
	start := s.now().UTC()
	status, err := s.post(ctx, sub, d, start)
	if ctx.Err() != nil {
		return // shutting down: the attempt is repeated after restart
	}
	res := audit.AttemptResult{At: s.now().UTC(), StatusCode: status}
	switch {
	case err == nil:
		res.Delivered = true
		s.sent.WithLabelValues("delivered").Inc()
	default:
		res.Error = err.Error()
		deadline := d.RetryFrom.Add(s.opts.RetryFor)
		wait := s.backoff(d.Attempts)
		if !res.At.Before(deadline) {
			res.Dead = true
			s.sent.WithLabelValues("dead").Inc()
			s.log.LogAttrs(ctx, slog.LevelWarn, "webhook delivery given up; it is in the dead letters",
				slog.String("webhook_id", sub.ID), slog.String("delivery_id", d.ID), slog.String("tenant_id", sub.Tenant),
				slog.Int("attempts", d.Attempts+1), slog.String("error", res.Error))
		} else {
			res.NextAt = res.At.Add(wait)
			if res.NextAt.After(deadline) {
				res.NextAt = deadline
			}
			s.sent.WithLabelValues("failed").Inc()
		}
	}
	if err := s.opts.Store.RecordAttempt(context.WithoutCancel(ctx), d.ID, res); err != nil && audit.ErrorCode(err) != audit.ENOTFOUND {
		s.log.LogAttrs(ctx, slog.LevelWarn, "record webhook attempt", slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
	}
}

// backoff is the jittered wait after the attempts-th failure (0-based):
// MinBackoff doubled per attempt up to MaxBackoff, then a random point
// between half and all of it.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.opts.MinBackoff
	for range min(attempts, 40) {
		d *= 2
		if d >= s.opts.MaxBackoff {
			d = s.opts.MaxBackoff
			break
		}
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// post makes one request (a pagerduty delivery, one per event). A 2xx
// answer is success; anything else, a refused address or a network error
// is an error to retry.
func (s *Service) post(ctx context.Context, sub *audit.Subscription, d audit.Delivery, now time.Time) (int, error) {
	if sub.Format == FormatEmail {
		plain, err := s.plainURL(sub)
		if err != nil {
			return 0, err
		}
		to, err := mailRecipients(plain)
		if err != nil {
			return 0, err
		}
		if err := s.sendMail(ctx, to, d.Body); err != nil {
			return 0, err
		}
		return 250, nil // SMTP's "requested mail action okay"
	}
	if sub.Format != FormatPagerDuty {
		return s.postBody(ctx, sub, d.ID, d.Body, now)
	}
	key, err := s.opts.Keyring.Open(sub.SealedCredential, sub.ID)
	if err != nil {
		return 0, err
	}
	var events []map[string]json.RawMessage
	if err := json.Unmarshal(d.Body, &events); err != nil {
		return 0, fmt.Errorf("decode pagerduty events of delivery %s: %w", d.ID, err)
	}
	rk, _ := json.Marshal(key)
	status := 0
	// Every attempt sends every event again: PagerDuty deduplicates them by
	// dedup_key, so a repeated trigger adds nothing.
	for _, ev := range events {
		ev["routing_key"] = rk
		body, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		if status, err = s.postBody(ctx, sub, d.ID, body, now); err != nil {
			return status, err
		}
	}
	return status, nil
}

func (s *Service) postBody(ctx context.Context, sub *audit.Subscription, deliveryID string, body []byte, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	target, err := s.plainURL(sub)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(body)))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Webhook/1")
	req.Header.Set("Vigil-Delivery", deliveryID)
	req.Header.Set("Vigil-Webhook", sub.ID)
	req.Header.Set("Vigil-Timestamp", ts)
	req.Header.Set("Vigil-Signature", SignatureHeader(s.secrets(sub, now), ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrBlockedAddress) {
			return 0, fmt.Errorf("refused: %w", ErrBlockedAddress)
		}
		return 0, errors.New(redactURL(err.Error(), target))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// redactURL removes the receiver URL (which may carry a token, as Slack's
// do) from an error text.
func redactURL(msg, u string) string {
	return strings.ReplaceAll(msg, u, "<webhook url>")
}
