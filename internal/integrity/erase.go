package integrity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/vigilhq/vigil/internal/audit"
)

// MaxErasureFields caps the fields one erasure request names.
const MaxErasureFields = 16

// CheckErasure validates an erasure request and returns its fields
// sorted and without repeats. Errors name the field.
func CheckErasure(req audit.ErasureRequest) ([]string, error) {
	switch {
	case req.Tenant == "":
		return nil, audit.FieldErrorf("tenant", "an erasure needs a tenant")
	case req.Actor == "" || len(req.Actor) > 512:
		return nil, audit.FieldErrorf("actor", "actor must be an actor id of 1-512 bytes")
	case len(req.Fields) == 0 || len(req.Fields) > MaxErasureFields:
		return nil, audit.FieldErrorf("fields", "fields must name 1-%d fields", MaxErasureFields)
	}
	fields := slices.Clone(req.Fields)
	slices.Sort(fields)
	fields = slices.Compact(fields)
	for i, f := range fields {
		if !slices.Contains(Erasable, f) {
			return nil, audit.FieldErrorf(fmt.Sprintf("fields[%d]", i), "field %q cannot be erased; erasable fields are %v", f, Erasable)
		}
	}
	return fields, nil
}

// Erase redacts the named fields in every stored event of one actor. For
// each page of events, and each day within it, it first stores a signed
// erasure record of the original value hashes, then rewrites the events
// with the values erased (Erased, or removed): verification keeps passing,
// and a value later edited to anything but its erased form fails. Values
// already erased are left alone, so a repeated request erases what is new.
// rw rewrites the stored events; the events are read through the
// recorder's event store.
func (r *Recorder) Erase(ctx context.Context, req audit.ErasureRequest, rw audit.EventRewriter) (*audit.ErasureReport, error) {
	fields, err := CheckErasure(req)
	if err != nil {
		return nil, err
	}
	if rw == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "this store cannot rewrite events")
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("integrity: erasure id: %w", err)
	}
	id := "er_" + hex.EncodeToString(raw[:])
	rep := &audit.ErasureReport{ID: id, Tenant: req.Tenant, Fields: fields}
	// Values whose original hash is already kept (an erasure that stopped
	// between its record and the rewrite) are rewritten without a new
	// record: the first record covers them.
	kept := map[string]map[string]bool{}
	isKept := func(day, id, field string) (bool, error) {
		m, ok := kept[day]
		if !ok {
			fs, err := r.opts.Store.ErasedFields(ctx, req.Tenant, day)
			if err != nil {
				return false, err
			}
			m = map[string]bool{}
			for _, f := range fs {
				m[f.EventID+" "+f.Field] = true
			}
			kept[day] = m
		}
		return m[id+" "+field], nil
	}
	f := audit.EventFilter{Tenant: req.Tenant, ActorID: req.Actor, Limit: audit.MaxPageSize}
	for part := 1; ; part++ {
		page, err := r.opts.Events.SearchEvents(ctx, f)
		if err != nil {
			return rep, err
		}
		var changed []audit.Event
		byDay := map[string][]audit.ErasedField{}
		for _, ev := range page.Events {
			if ev.Actor.ID != req.Actor {
				continue
			}
			n := 0
			for _, name := range fields {
				if len(Value(&ev, name)) == 0 || IsErased(&ev, name) {
					continue
				}
				d := Day(ev.Time)
				done, err := isKept(d, ev.ID, name)
				if err != nil {
					return rep, fmt.Errorf("integrity: read erased fields: %w", err)
				}
				if !done {
					byDay[d] = append(byDay[d], audit.ErasedField{Tenant: req.Tenant, Day: d, EventID: ev.ID, Field: name,
						Hash: FieldHash(&ev, name)})
				}
				Erase(&ev, name)
				n++
			}
			if n > 0 {
				changed = append(changed, ev)
				rep.Events++
				rep.Values += n
			}
		}
		for day, fs := range byDay {
			key := fmt.Sprintf("%s.%d", id, part)
			for i := range fs {
				fs[i].Erasure = key + "/" + day
			}
			st := r.opts.Signer.Sign(Body{Kind: audit.StatementErasure, Tenant: req.Tenant, Day: day, Count: int64(len(fs)),
				Erasure: key, Fields: FieldsDigest(fs), Time: r.opts.Now()})
			if err := r.opts.Store.PutErasure(ctx, st, fs); err != nil {
				return rep, fmt.Errorf("integrity: store erasure record: %w", err)
			}
		}
		if len(changed) > 0 {
			if _, err := rw.ReplaceEvents(ctx, changed); err != nil {
				return rep, fmt.Errorf("integrity: rewrite erased events: %w", err)
			}
		}
		if page.Next == "" {
			return rep, nil
		}
		f.Cursor = page.Next
	}
}
