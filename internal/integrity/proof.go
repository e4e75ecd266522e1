package integrity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

func published(st *audit.Statement) *audit.SignedStatement {
	return &audit.SignedStatement{Statement: string(st.Body), Signature: base64.StdEncoding.EncodeToString(st.Signature)}
}

// Proof returns the day proof of tenant's day: what VerifyExport needs
// besides the day's events and a public key.
func (r *Recorder) Proof(ctx context.Context, tenant, day string) (*audit.DayProof, error) {
	if !validDay(day) {
		return nil, audit.FieldErrorf("day", "day must be a date YYYY-MM-DD")
	}
	st := r.opts.Store
	p := &audit.DayProof{Tenant: tenant, Day: day, Events: []string{}}
	after := int64(0)
	for _, kind := range []string{audit.StatementCheckpoint, audit.StatementTombstone} {
		s, err := st.Statement(ctx, tenant, kind, day)
		if audit.ErrorCode(err) == audit.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		if kind == audit.StatementCheckpoint {
			p.Checkpoint = published(s)
		} else {
			p.Tombstone = published(s)
			after = s.Count
		}
	}
	if p.Checkpoint == nil {
		return nil, &audit.Error{Code: audit.ENOTFOUND, Field: "day",
			Message: fmt.Sprintf("tenant %s has no checkpoint for %s (no events that day, or not signed yet)", tenant, day)}
	}
	for {
		page, err := st.ChainEntries(ctx, tenant, day, after, 10_000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			p.Events = append(p.Events, e.EventID)
		}
		after = page[len(page)-1].Seq
	}
	fields, err := st.ErasedFields(ctx, tenant, day)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range fields {
		p.Erased = append(p.Erased, fmt.Sprintf("%s %s %x %s", f.EventID, f.Field, f.Hash, f.Erasure))
		if seen[f.Erasure] {
			continue
		}
		seen[f.Erasure] = true
		s, err := st.Statement(ctx, tenant, audit.StatementErasure, f.Erasure)
		if err != nil {
			return nil, fmt.Errorf("read erasure record %s: %w", f.Erasure, err)
		}
		p.Erasures = append(p.Erasures, *published(s))
	}
	return p, nil
}

func openPublished(keys Keyring, s *audit.SignedStatement) (*Body, error) {
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return nil, audit.FieldErrorf("signature", "signature is not base64")
	}
	return keys.Open([]byte(s.Statement), sig)
}

// VerifyExport checks the events of one tenant-day (in any order, as an
// NDJSON export gives them) against the day's proof with the given public
// keys: it recomputes every leaf and the chain in the proof's order and
// compares the head with the signed checkpoint. Events after the
// checkpoint are reported as an unsigned tail. It needs no server.
func VerifyExport(events []audit.Event, p *audit.DayProof, keys Keyring) (*audit.IntegrityReport, error) {
	rep := &audit.IntegrityReport{Days: 1}
	brk := func(reason, detail string) *audit.IntegrityReport {
		rep.Broken = &audit.ChainBreak{Tenant: p.Tenant, Day: p.Day, Reason: reason, Detail: detail}
		return rep
	}
	if p.Checkpoint == nil {
		return nil, audit.FieldErrorf("checkpoint", "the proof has no checkpoint")
	}
	cp, err := openPublished(keys, p.Checkpoint)
	if err != nil {
		return brk(ReasonSignature, "checkpoint: "+err.Error()), nil
	}
	if cp.Kind != audit.StatementCheckpoint || cp.Tenant != p.Tenant || cp.Day != p.Day {
		return brk(ReasonSignature, fmt.Sprintf("the checkpoint is a %s of tenant %s day %s", cp.Kind, cp.Tenant, cp.Day)), nil
	}
	h, n := Genesis(p.Tenant, p.Day), int64(0)
	if p.Tombstone != nil {
		t, err := openPublished(keys, p.Tombstone)
		if err != nil {
			return brk(ReasonSignature, "tombstone: "+err.Error()), nil
		}
		if t.Kind != audit.StatementTombstone || t.Tenant != p.Tenant || t.Day != p.Day {
			return brk(ReasonSignature, "the tombstone is of another kind, tenant or day"), nil
		}
		h, n = t.HeadBytes(), t.Count
		rep.Tombstones++
	}
	total := n + int64(len(p.Events))
	erased, err := proofErasures(p, keys)
	if err != nil {
		return brk(ReasonErasure, err.Error()), nil
	}
	rep.Erasures = len(p.Erasures)
	byID := make(map[string]*audit.Event, len(events))
	for i := range events {
		ev := &events[i]
		if ev.Tenant != p.Tenant || Day(ev.Time) != p.Day {
			return nil, audit.FieldErrorf("events", "event %s is of tenant %s day %s, not of the proof's %s %s",
				ev.ID, ev.Tenant, Day(ev.Time), p.Tenant, p.Day)
		}
		byID[ev.ID] = ev
	}
	linked := make(map[string]bool, len(p.Events))
	for _, id := range p.Events {
		linked[id] = true
		if n == cp.Count {
			// Links after the checkpoint cannot be checked against a signature.
			rep.Unsigned = []audit.ChainTail{{Tenant: p.Tenant, Day: p.Day, Signed: cp.Count, Links: total}}
			break
		}
		ev := byID[id]
		if ev == nil {
			rep.Broken = &audit.ChainBreak{Tenant: p.Tenant, Day: p.Day, Seq: n + 1, EventID: id, Reason: ReasonDeleted,
				Detail: "the export lacks an event the chain links"}
			return rep, nil
		}
		h, n = Link(h, Leaf(ev, erased[id])), n+1
		rep.Events++
	}
	if n != cp.Count || !bytes.Equal(h, cp.HeadBytes()) {
		return brk(ReasonCheckpoint, fmt.Sprintf("the events and proof give %d links with a head other than the %d links the checkpoint signed", n, cp.Count)), nil
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		if !linked[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		sort.Strings(ids)
		rep.Broken = &audit.ChainBreak{Tenant: p.Tenant, Day: p.Day, EventID: ids[0], Reason: ReasonInserted,
			Detail: "the export holds an event the chain does not link"}
		return rep, nil
	}
	rep.OK = true
	return rep, nil
}

// proofErasures checks a proof's erased hashes against its signed erasure
// records and returns them by event and field.
func proofErasures(p *audit.DayProof, keys Keyring) (map[string]map[string][]byte, error) {
	records := map[string]*Body{}
	for i := range p.Erasures {
		b, err := openPublished(keys, &p.Erasures[i])
		if err != nil {
			return nil, fmt.Errorf("erasure record: %w", err)
		}
		if b.Kind != audit.StatementErasure || b.Tenant != p.Tenant || b.Day != p.Day {
			return nil, fmt.Errorf("erasure record %s is not of this tenant and day", b.Erasure)
		}
		records[b.Erasure+"/"+b.Day] = b
	}
	groups := map[string][]audit.ErasedField{}
	out := map[string]map[string][]byte{}
	for _, line := range p.Erased {
		parts := strings.Fields(line)
		if len(parts) != 4 {
			return nil, fmt.Errorf("erased entry %q is not 'event_id field hash erasure'", line)
		}
		hash, err := hex.DecodeString(parts[2])
		if err != nil || len(hash) != 32 {
			return nil, fmt.Errorf("erased entry %q has no SHA-256 hex hash", line)
		}
		f := audit.ErasedField{Tenant: p.Tenant, Day: p.Day, EventID: parts[0], Field: parts[1], Hash: hash, Erasure: parts[3]}
		groups[f.Erasure] = append(groups[f.Erasure], f)
		if out[f.EventID] == nil {
			out[f.EventID] = map[string][]byte{}
		}
		out[f.EventID][f.Field] = hash
	}
	for key, fs := range groups {
		b := records[key]
		if b == nil {
			return nil, fmt.Errorf("erased values refer to erasure record %s, which the proof lacks", key)
		}
		if b.Count != int64(len(fs)) || b.Fields != FieldsDigest(fs) {
			return nil, fmt.Errorf("the erased hashes of %s are not those its signed record covers", key)
		}
	}
	return out, nil
}

// MaxProofBytes caps a day proof a decoder accepts (a day of about a
// million events).
const MaxProofBytes = 64 << 20

// ParseProof decodes a day proof (GET /v1/integrity/days/{day}, or a file
// a customer was given). Unknown fields are refused; errors name the
// field. Signatures are checked later, by VerifyExport.
func ParseProof(b []byte) (*audit.DayProof, error) {
	if len(b) > MaxProofBytes {
		return nil, audit.FieldErrorf("proof", "proof is longer than %d bytes", MaxProofBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p audit.DayProof
	if err := dec.Decode(&p); err != nil {
		return nil, &audit.Error{Code: audit.EINVALID, Field: "proof", Message: "proof is not a day proof object: " + err.Error(), Err: err}
	}
	if dec.More() {
		return nil, audit.FieldErrorf("proof", "proof has trailing data")
	}
	switch {
	case !audit.ValidTenantID(p.Tenant):
		return nil, audit.FieldErrorf("tenant", "proof tenant is not a tenant id")
	case !validDay(p.Day):
		return nil, audit.FieldErrorf("day", "proof day must be a date YYYY-MM-DD")
	case p.Checkpoint == nil:
		return nil, audit.FieldErrorf("checkpoint", "proof has no checkpoint")
	}
	seen := make(map[string]bool, len(p.Events))
	for i, id := range p.Events {
		if id == "" || seen[id] {
			return nil, audit.FieldErrorf(fmt.Sprintf("events[%d]", i), "proof event id %q is empty or repeated", id)
		}
		seen[id] = true
	}
	return &p, nil
}
