package audit

import (
	"context"
	"time"
)

// LifecycleChange is what happened to a finding or an incident that people
// may want to hear about.
type LifecycleChange string

// Lifecycle changes. Opened and escalated come from detection; acknowledged
// and resolved from a person's triage.
const (
	ChangeOpened       LifecycleChange = "opened"
	ChangeEscalated    LifecycleChange = "escalated"
	ChangeAcknowledged LifecycleChange = "acknowledged"
	ChangeResolved     LifecycleChange = "resolved"
)

// AllChanges lists the lifecycle changes in lifecycle order.
var AllChanges = []LifecycleChange{ChangeOpened, ChangeEscalated, ChangeAcknowledged, ChangeResolved}

// Kinds of alerted entities.
const (
	KindFinding  = "finding"
	KindIncident = "incident"
)

// Change is one stored lifecycle change of a finding or an incident: the
// input of alerting. A store that keeps findings and incidents records a
// Change in the same transaction as the state change it describes, once:
//   - opened the first time the entity is stored;
//   - escalated when its severity rises above the highest severity any
//     earlier change of it carried (so a replay of detection, which may
//     store an older version first, never escalates twice);
//   - acknowledged and resolved when a person moves it to that status.
//
// Seq orders changes and never repeats. Doc is the entity as stored (JSON of
// a Finding or an Incident).
type Change struct {
	Seq      int64
	Tenant   string
	Kind     string // KindFinding or KindIncident
	EntityID string
	Change   LifecycleChange
	Severity Severity
	// RuleID is the finding's rule or the incident's headline rule.
	RuleID string
	// Family is the incident's family; "" for a finding (alerting derives
	// it from the rule).
	Family string
	At     time.Time
	Doc    []byte
}

// Subscription is a webhook: where alerts go, in which format, and which
// changes it wants. Tenant "" is an installation-wide subscription (made by
// an operator) that hears every tenant.
//
// The signing secret is not stored: it is derived from a server key, the
// subscription id and SecretGen. During a rotation the previous generation
// stays valid until PreviousUntil.
type Subscription struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant,omitempty"`
	Name   string `json:"name,omitempty"`
	URL    string `json:"url"`
	Format string `json:"format"`
	// Filters; empty means any. MinSeverity is the lowest severity sent.
	Rules       []string          `json:"rules,omitempty"`
	Families    []string          `json:"families,omitempty"`
	MinSeverity Severity          `json:"min_severity,omitempty"`
	Changes     []LifecycleChange `json:"changes"`
	// Kinds are the entities sent: finding, incident (default both).
	Kinds    []string `json:"kinds"`
	Disabled bool     `json:"disabled,omitempty"`
	// SecretGen is the generation of the current signing secret;
	// PreviousGen, until PreviousUntil, the one before a rotation.
	// SealedURL is the receiver URL encrypted with the server's webhook
	// key (a chat URL carries a token); URL then shows only its scheme and
	// host. Services clear it before a subscription leaves them.
	SealedURL string `json:"sealed_url,omitempty"`
	// SealedCredential is the receiver's own secret (PagerDuty's routing
	// key), encrypted with the server's webhook key; services clear it
	// before a subscription leaves them, so no API shows it.
	SealedCredential string `json:"sealed_credential,omitempty"`
	// HasCredential says a credential is set (shown instead of it).
	HasCredential bool       `json:"has_credential,omitempty"`
	SecretGen     int        `json:"secret_generation"`
	PreviousGen   int        `json:"previous_generation,omitempty"`
	PreviousUntil *time.Time `json:"previous_valid_until,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// DeliveryStatus is where a delivery is: open (still gathering items),
// pending (sealed, being tried), delivered, or dead (given up; replayable).
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryOpen      DeliveryStatus = "open"
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryDead      DeliveryStatus = "dead"
)

// Delivery is one request to a subscription's receiver: a batch of items
// with a stable ID the receiver deduplicates on. Its body is fixed when it
// is sealed, so every attempt sends the same bytes.
type Delivery struct {
	ID             string         `json:"id"`
	SubscriptionID string         `json:"subscription_id"`
	Tenant         string         `json:"tenant,omitempty"`
	Status         DeliveryStatus `json:"status"`
	Items          int            `json:"items"`
	Attempts       int            `json:"attempts"`
	CreatedAt      time.Time      `json:"created_at"`
	// RetryFrom starts the retry window (the first seal, or a replay).
	RetryFrom   time.Time  `json:"retry_from,omitzero"`
	NextAt      time.Time  `json:"next_attempt_at,omitzero"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	LastStatus  int        `json:"last_status,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// Body is the sealed request body; ItemDocs the items of an open one.
	Body     []byte   `json:"-"`
	ItemDocs [][]byte `json:"-"`
}

// OutboxItem is one change for one subscription on its way into a delivery.
type OutboxItem struct {
	SubscriptionID string
	Tenant         string // the subscription's tenant
	Seq            int64
	Doc            []byte
}

// EnqueueResult says what Enqueue did beyond adding items.
type EnqueueResult struct {
	// Dropped counts items moved to dead letters because a subscription's
	// outbox was full.
	Dropped int
}

// DeliveryFilter selects deliveries of one subscription.
type DeliveryFilter struct {
	SubscriptionID string
	Status         DeliveryStatus // "" for any
	Limit          int
}

// AttemptResult is the outcome of one attempt to send a delivery.
type AttemptResult struct {
	At         time.Time
	Delivered  bool
	Dead       bool      // give up: move to dead letters
	NextAt     time.Time // when not delivered and not dead
	StatusCode int
	Error      string
}

// AlertStore keeps webhook subscriptions, the lifecycle changes recorded
// with findings and incidents, and the outbox of deliveries.
//
// Contract:
//   - CreateSubscription refuses (ECONFLICT) beyond maxPerTenant
//     subscriptions of the same tenant ("" counts as one tenant).
//   - Get/Update/DeleteSubscription: ENOTFOUND for an unknown id. Deleting
//     a subscription deletes its deliveries.
//   - ChangesAfter returns changes with Seq > after, in Seq order.
//   - Enqueue adds items to each subscription's open delivery (opening one
//     with a fresh id at maxItems), moves a subscription's oldest pending
//     deliveries to dead letters while it holds more than maxQueued items,
//     and records upTo as the alert cursor, deleting the changes up to it —
//     all in one transaction, so a change is enqueued exactly once.
//   - OpenDeliveries returns open deliveries created before the cutoff or
//     holding at least maxItems, with their ItemDocs; SealDelivery fixes
//     one's body and makes it pending, due at nextAt.
//   - DueDeliveries returns pending deliveries due at now, oldest due first,
//     with their Body.
//   - ReplayDelivery makes a dead delivery pending again, due now, with a
//     fresh retry window; EINVALID when it is not dead.
type AlertStore interface {
	CreateSubscription(ctx context.Context, s Subscription, maxPerTenant int) error
	GetSubscription(ctx context.Context, id string) (*Subscription, error)
	ListSubscriptions(ctx context.Context, tenant string, all bool) ([]Subscription, error)
	UpdateSubscription(ctx context.Context, s Subscription) error
	DeleteSubscription(ctx context.Context, id string) error

	AlertCursor(ctx context.Context) (int64, error)
	ChangesAfter(ctx context.Context, after int64, limit int) ([]Change, error)
	Enqueue(ctx context.Context, upTo int64, items []OutboxItem, maxItems, maxQueued int, now time.Time) (EnqueueResult, error)

	OpenDeliveries(ctx context.Context, createdBefore time.Time, maxItems, limit int) ([]Delivery, error)
	SealDelivery(ctx context.Context, id string, body []byte, now time.Time) error
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	RecordAttempt(ctx context.Context, id string, r AttemptResult) error
	// Postpone moves a pending delivery's next attempt without counting one.
	Postpone(ctx context.Context, id string, next time.Time) error
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	ReplayDelivery(ctx context.Context, id string, now time.Time) (*Delivery, error)
	// PruneDeliveries deletes delivered deliveries older than before and
	// each subscription's dead letters beyond keepDead, oldest first.
	PruneDeliveries(ctx context.Context, before time.Time, keepDead int) error
}
