package integrity

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// Reasons a verification names for the first broken link.
const (
	// ReasonAltered: the stored event no longer hashes to its link's leaf.
	ReasonAltered = "altered_event"
	// ReasonDeleted: a link names an event the store no longer holds.
	ReasonDeleted = "deleted_event"
	// ReasonInserted: the store holds an event that no chain links.
	ReasonInserted = "inserted_event"
	// ReasonBrokenLink: a link's hash does not follow from the one before
	// (links reordered, removed or forged).
	ReasonBrokenLink = "broken_link"
	// ReasonCheckpoint: the chain does not reach the head its checkpoint
	// signed, or holds fewer links than it signed.
	ReasonCheckpoint = "checkpoint_mismatch"
	// ReasonSignature: a checkpoint, tombstone or erasure record does not
	// verify with the published keys, or speaks of another tenant or day.
	ReasonSignature = "bad_signature"
	// ReasonErasure: the kept hashes of erased values differ from what
	// their signed erasure record covers.
	ReasonErasure = "bad_erasure"
)

// Describe is a one-line account of a break.
func Describe(b *audit.ChainBreak) string {
	s := fmt.Sprintf("%s: tenant %s", b.Reason, b.Tenant)
	if b.Day != "" {
		s += " day " + b.Day
	}
	if b.Seq != 0 {
		s += fmt.Sprintf(" link %d", b.Seq)
	}
	if b.EventID != "" {
		s += " event " + b.EventID
	}
	return s + ": " + b.Detail
}

// Verifier checks chains against the stored events and signed statements.
type Verifier struct {
	Store  audit.IntegrityStore
	Events audit.EventStore
	Keys   Keyring
	// Settle, when set, waits for an insert in progress to be chained: an
	// event found without a link is checked again after it.
	Settle func()
}

// Verifier returns a verifier over the recorder's store and keys.
func (r *Recorder) Verifier() *Verifier {
	return &Verifier{Store: r.opts.Store, Events: r.opts.Events, Keys: r.opts.Keys, Settle: r.sync}
}

// Verify checks every chain of tenants whose day lies in [from, to]
// ("YYYY-MM-DD", inclusive, "" unbounded), then that every stored event of
// that range is linked. It stops at the first broken link. An error is a
// failure to read, not a broken chain.
func (v *Verifier) Verify(ctx context.Context, tenants []string, from, to string) (*audit.IntegrityReport, error) {
	rep := &audit.IntegrityReport{}
	for _, t := range tenants {
		days, err := v.Store.ChainDays(ctx, t, from, to)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			b, err := v.day(ctx, rep, t, d)
			if err != nil {
				return nil, fmt.Errorf("verify %s/%s: %w", t, d, err)
			}
			if b != nil {
				rep.Broken = b
				return rep, nil
			}
		}
	}
	for _, t := range tenants {
		b, err := v.unlinked(ctx, t, from, to)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", t, err)
		}
		if b != nil {
			rep.Broken = b
			return rep, nil
		}
	}
	rep.OK = true
	return rep, nil
}

// statement reads and opens the statement of (tenant, kind, key); nil
// without error when there is none.
func (v *Verifier) statement(ctx context.Context, tenant, kind, key, day string) (*Body, *audit.ChainBreak, error) {
	st, err := v.Store.Statement(ctx, tenant, kind, key)
	if audit.ErrorCode(err) == audit.ENOTFOUND {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	b, err := v.Keys.Open(st.Body, st.Signature)
	if err != nil {
		return nil, &audit.ChainBreak{Tenant: tenant, Day: day, Reason: ReasonSignature, Detail: kind + " " + err.Error()}, nil
	}
	if b.Kind != kind || b.Tenant != tenant || b.Day != day {
		return nil, &audit.ChainBreak{Tenant: tenant, Day: day, Reason: ReasonSignature,
			Detail: fmt.Sprintf("the stored %s is a signed %s of tenant %s day %s", kind, b.Kind, b.Tenant, b.Day)}, nil
	}
	return b, nil, nil
}

// erased reads a day's erased-field hashes and checks them against their
// signed erasure records.
func (v *Verifier) erased(ctx context.Context, rep *audit.IntegrityReport, tenant, day string) (map[string]map[string][]byte, *audit.ChainBreak, error) {
	fields, err := v.Store.ErasedFields(ctx, tenant, day)
	if err != nil || len(fields) == 0 {
		return nil, nil, err
	}
	groups := map[string][]audit.ErasedField{}
	out := map[string]map[string][]byte{}
	for _, f := range fields {
		groups[f.Erasure] = append(groups[f.Erasure], f)
		if out[f.EventID] == nil {
			out[f.EventID] = map[string][]byte{}
		}
		out[f.EventID][f.Field] = f.Hash
	}
	for key, fs := range groups {
		b, brk, err := v.statement(ctx, tenant, audit.StatementErasure, key, day)
		if err != nil || brk != nil {
			return nil, brk, err
		}
		if b == nil {
			return nil, &audit.ChainBreak{Tenant: tenant, Day: day, EventID: fs[0].EventID, Reason: ReasonErasure,
				Detail: "erased values refer to erasure record " + key + ", which does not exist"}, nil
		}
		if b.Erasure+"/"+b.Day != key || b.Count != int64(len(fs)) || b.Fields != FieldsDigest(fs) {
			return nil, &audit.ChainBreak{Tenant: tenant, Day: day, Reason: ReasonErasure,
				Detail: fmt.Sprintf("the kept hashes of erasure %s are not the %d its signed record covers", key, b.Count)}, nil
		}
		rep.Erasures++
	}
	return out, nil, nil
}

func (v *Verifier) day(ctx context.Context, rep *audit.IntegrityReport, tenant, day string) (*audit.ChainBreak, error) {
	rep.Days++
	h, n := Genesis(tenant, day), int64(0)
	tomb, brk, err := v.statement(ctx, tenant, audit.StatementTombstone, day, day)
	if err != nil || brk != nil {
		return brk, err
	}
	if tomb != nil {
		h, n = tomb.HeadBytes(), tomb.Count
		rep.Tombstones++
	}
	cp, brk, err := v.statement(ctx, tenant, audit.StatementCheckpoint, day, day)
	if err != nil || brk != nil {
		return brk, err
	}
	erased, brk, err := v.erased(ctx, rep, tenant, day)
	if err != nil || brk != nil {
		return brk, err
	}
	leaves, err := v.dayLeaves(ctx, tenant, day, erased)
	if err != nil {
		return nil, err
	}
	signedAt := func() *audit.ChainBreak {
		if cp != nil && n == cp.Count && !bytes.Equal(h, cp.HeadBytes()) {
			return &audit.ChainBreak{Tenant: tenant, Day: day, Seq: n, Reason: ReasonCheckpoint,
				Detail: fmt.Sprintf("the chain's hash after %d links is not the head its checkpoint signed", n)}
		}
		return nil
	}
	if b := signedAt(); b != nil {
		return b, nil
	}
	for after := n; ; {
		page, err := v.Store.ChainEntries(ctx, tenant, day, after, 1000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Seq
		for _, e := range page {
			brk := &audit.ChainBreak{Tenant: tenant, Day: day, Seq: e.Seq, EventID: e.EventID}
			if e.Seq != n+1 {
				brk.Seq, brk.Reason = n+1, ReasonBrokenLink
				brk.Detail = fmt.Sprintf("link %d is missing (the next stored link is %d)", n+1, e.Seq)
				return brk, nil
			}
			leaf, ok := leaves[e.EventID]
			if !ok {
				// Not among the day's events: gone, or moved to another day.
				ev, err := v.Events.GetEvent(ctx, tenant, e.EventID)
				if audit.ErrorCode(err) == audit.ENOTFOUND {
					brk.Reason, brk.Detail = ReasonDeleted, "the link names an event the store does not hold"
					return brk, nil
				}
				if err != nil {
					return nil, err
				}
				if Day(ev.Time) != day {
					brk.Reason, brk.Detail = ReasonAltered, "the event's time is now on "+Day(ev.Time)
					return brk, nil
				}
				leaf = Leaf(ev, erased[ev.ID])
			}
			if !bytes.Equal(leaf, e.Leaf) {
				brk.Reason, brk.Detail = ReasonAltered, "the stored event does not hash to its link's leaf"
				return brk, nil
			}
			next := Link(h, e.Leaf)
			if !bytes.Equal(next, e.Hash) {
				brk.Reason, brk.Detail = ReasonBrokenLink, "the link's hash does not follow from the previous link (links reordered or forged)"
				return brk, nil
			}
			h, n = next, n+1
			rep.Events++
			if b := signedAt(); b != nil {
				return b, nil
			}
		}
	}
	switch {
	case cp != nil && n < cp.Count:
		return &audit.ChainBreak{Tenant: tenant, Day: day, Seq: n + 1, Reason: ReasonCheckpoint,
			Detail: fmt.Sprintf("the checkpoint signed %d links, the chain holds %d", cp.Count, n)}, nil
	case cp == nil && n > 0:
		rep.Unsigned = append(rep.Unsigned, audit.ChainTail{Tenant: tenant, Day: day, Links: n})
	case cp != nil && n > cp.Count:
		rep.Unsigned = append(rep.Unsigned, audit.ChainTail{Tenant: tenant, Day: day, Signed: cp.Count, Links: n})
	}
	return nil, nil
}

// dayLeaves reads the stored events of tenant's day, page by page, and
// returns their leaves by id: one pass over the day instead of one lookup
// per link.
func (v *Verifier) dayLeaves(ctx context.Context, tenant, day string, erased map[string]map[string][]byte) (map[string][]byte, error) {
	start, err := time.Parse(DayLayout, day)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	f := audit.EventFilter{Tenant: tenant, Since: start, Until: start.Add(24 * time.Hour), Limit: audit.MaxPageSize}
	for {
		page, err := v.Events.SearchEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range page.Events {
			ev := &page.Events[i]
			out[ev.ID] = Leaf(ev, erased[ev.ID])
		}
		if page.Next == "" {
			return out, nil
		}
		f.Cursor = page.Next
	}
}

// unlinked pages through tenant's stored events of the range and reports
// the first one no chain links.
func (v *Verifier) unlinked(ctx context.Context, tenant, from, to string) (*audit.ChainBreak, error) {
	f := audit.EventFilter{Tenant: tenant, Limit: audit.MaxPageSize}
	if from != "" {
		t, err := time.Parse(DayLayout, from)
		if err != nil {
			return nil, audit.FieldErrorf("from", "from must be a date YYYY-MM-DD")
		}
		f.Since = t
	}
	if to != "" {
		t, err := time.Parse(DayLayout, to)
		if err != nil {
			return nil, audit.FieldErrorf("to", "to must be a date YYYY-MM-DD")
		}
		f.Until = t.Add(24 * time.Hour)
	}
	for {
		page, err := v.Events.SearchEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(page.Events))
		for i := range page.Events {
			ids[i] = page.Events[i].ID
		}
		chained, err := v.Store.Chained(ctx, tenant, ids)
		if err != nil {
			return nil, err
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if chained[ev.ID] {
				continue
			}
			if v.Settle != nil {
				v.Settle()
				again, err := v.Store.Chained(ctx, tenant, []string{ev.ID})
				if err != nil {
					return nil, err
				}
				if again[ev.ID] {
					continue
				}
			}
			return &audit.ChainBreak{Tenant: tenant, Day: Day(ev.Time), EventID: ev.ID, Reason: ReasonInserted,
				Detail: "the store holds an event that no chain links"}, nil
		}
		if page.Next == "" {
			return nil, nil
		}
		f.Cursor = page.Next
	}
}
