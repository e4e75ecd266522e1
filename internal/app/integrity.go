package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/fsutil"
	"github.com/vigilhq/vigil/internal/httpapi"
	"github.com/vigilhq/vigil/internal/ingest"
	"github.com/vigilhq/vigil/internal/integrity"
)

// Files of the integrity key directory (Dir/integrity): the current
// signing key (hex Ed25519 seed, mode 0600) and every public key that ever
// signed, keys/<key id>.pub (hex), kept after a rotation so that old
// statements still verify.
const (
	IntegrityDir         = "integrity"
	IntegritySigningFile = "signing.key"
	integrityAdopted     = "adopted"
)

// LoadIntegrityKeys reads the signing key of dir (creating one on first
// use) and every public key listed beside it.
func LoadIntegrityKeys(dir string) (*integrity.Signer, integrity.Keyring, error) {
	keysDir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("integrity key directory: %w", err)
	}
	path := filepath.Join(dir, IntegritySigningFile)
	b, err := os.ReadFile(path)
	var priv ed25519.PrivateKey
	switch {
	case errors.Is(err, os.ErrNotExist):
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate integrity key: %w", err)
		}
		pub := priv.Public().(ed25519.PublicKey)
		// The public key is written first: a crash in between leaves a
		// listed key that never signed, never a key that signs unlisted.
		if err := fsutil.Replace(filepath.Join(keysDir, integrity.KeyID(pub)+".pub"), []byte(hex.EncodeToString(pub)+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("write integrity public key: %w", err)
		}
		if err := fsutil.WriteNew(path, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
			return nil, nil, fmt.Errorf("write integrity signing key %s: %w", path, err)
		}
	case err != nil:
		return nil, nil, fmt.Errorf("read integrity signing key: %w", err)
	default:
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, nil, fmt.Errorf("integrity signing key %s is not a hex Ed25519 seed", path)
		}
		priv = ed25519.NewKeyFromSeed(seed)
	}
	signer := integrity.NewSigner(priv)
	keys := integrity.Keyring{signer.KeyID(): signer.Public()}
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list integrity public keys: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pub") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(keysDir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("read integrity public key: %w", err)
		}
		pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, nil, fmt.Errorf("integrity public key %s is not a hex Ed25519 key", e.Name())
		}
		keys[integrity.KeyID(pub)] = pub
	}
	if _, err := os.Stat(filepath.Join(keysDir, signer.KeyID()+".pub")); errors.Is(err, os.ErrNotExist) {
		if err := fsutil.Replace(filepath.Join(keysDir, signer.KeyID()+".pub"), []byte(hex.EncodeToString(signer.Public())+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("write integrity public key: %w", err)
		}
	}
	return signer, keys, nil
}

// PublicKeys lists a keyring as published, the signer's key marked current.
func PublicKeys(signer *integrity.Signer, keys integrity.Keyring) []audit.PublicKey {
	out := make([]audit.PublicKey, 0, len(keys))
	for id, k := range keys {
		out = append(out, audit.PublicKey{ID: id, Key: base64.StdEncoding.EncodeToString(k), Current: id == signer.KeyID()})
	}
	slices.SortFunc(out, func(a, b audit.PublicKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// buildIntegrity loads the signing keys and puts the recorder in front of
// the event store; on the first start with it, events stored before are
// chained (in the order the store lists them).
func (a *App) buildIntegrity(ctx context.Context) error {
	dir := filepath.Join(a.cfg.Storage.SQLite.Dir, IntegrityDir)
	signer, keys, err := LoadIntegrityKeys(dir)
	if err != nil {
		return err
	}
	a.integrity, err = integrity.New(integrity.Options{Events: a.stores.Events, Store: a.stores.Integrity, Retention: a.stores.Retention,
		Signer: signer, Keys: keys, Now: a.now, Logger: a.log.With("component", "integrity")})
	if err != nil {
		return err
	}
	marker := filepath.Join(dir, integrityAdopted)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	tenants, err := a.stores.Tenants.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("integrity: list tenants: %w", err)
	}
	for _, t := range tenants {
		if _, err := a.integrity.Adopt(ctx, t.ID); err != nil {
			return fmt.Errorf("integrity: chain the stored events of %s: %w", t.ID, err)
		}
	}
	return fsutil.Replace(marker, []byte("events stored before tamper evidence were chained\n"), 0o644)
}

// integrityAPI fills the API's integrity options.
func (a *App) integrityAPI(opts *httpapi.Options, svc *ingest.Service, det *detection) {
	rec := a.integrity
	opts.Verify = func(ctx context.Context, tenant, from, to string) (*audit.IntegrityReport, error) {
		return a.Verify(ctx, tenant, from, to)
	}
	opts.IntegrityKeys = func() []audit.PublicKey { return PublicKeys(rec.Signer(), rec.Keys()) }
	opts.DayProof = rec.Proof
	rw, _ := a.stores.Events.(audit.EventRewriter)
	drw, _ := a.stores.Findings.(audit.DerivedRewriter)
	opts.Erase = func(ctx context.Context, p audit.Principal, req audit.ErasureRequest) (*audit.ErasureReport, error) {
		// What detection derived goes first: the values to remove from it
		// are read from the events, so an erasure that stops midway and is
		// repeated still finds them.
		values, err := rec.ErasedValues(ctx, req)
		if err != nil {
			return nil, err
		}
		if det != nil && len(values) > 0 {
			// Open incidents detection holds first, so a later change
			// does not write the values back to the store.
			if err := det.scrubIncidents(ctx, req.Tenant, values); err != nil {
				return nil, fmt.Errorf("remove the erased values from open incidents: %w", err)
			}
		}
		derived, err := integrity.EraseDerived(ctx, req.Tenant, req.Actor, values, a.stores.Findings, a.stores.Incidents, drw)
		if err != nil {
			return nil, err
		}
		forgot := false
		if det != nil && slices.ContainsFunc(req.Fields, func(f string) bool { return slices.Contains(profileFields, f) }) {
			if forgot, err = det.forgetProfile(ctx, req.Tenant, req.Actor); err != nil {
				return nil, err
			}
		}
		rep, err := rec.Erase(ctx, req, rw)
		if err != nil {
			return rep, err
		}
		ev := &audit.Event{Tenant: req.Tenant, Action: audit.ActionErasureCompleted,
			Actor:  audit.Actor{ID: p.KeyID, Type: audit.ActorAPIKey},
			Target: audit.Target{Type: "actor", ID: req.Actor},
			Metadata: map[string]any{"erasure_id": rep.ID, "fields": strings.Join(rep.Fields, ","),
				"events": rep.Events, "values": rep.Values,
				"findings": derived.Findings, "incidents": derived.Incidents, "profile_forgotten": forgot}}
		if err := svc.RecordBatch(httpapi.ServerWrite(ctx), audit.Principal{}, []*audit.Event{ev}); err != nil {
			return rep, fmt.Errorf("record erasure %s in the audit log: %w", rep.ID, err)
		}
		return rep, nil
	}
}

// profileFields are the erasable fields a detection profile learns from
// (places, networks, devices): erasing any of them drops the actor's
// profile.
var profileFields = []string{"context.ip", "context.geo", "context.device_id", "context.user_agent", "enrichment"}

// Verify checks the hash chains of tenant (every tenant when "") whose
// days lie in [from, to] ("YYYY-MM-DD", "" unbounded).
func (a *App) Verify(ctx context.Context, tenant, from, to string) (*audit.IntegrityReport, error) {
	tenants := []string{tenant}
	if tenant == "" {
		ts, err := a.stores.Tenants.ListTenants(ctx)
		if err != nil {
			return nil, err
		}
		tenants = tenants[:0]
		for _, t := range ts {
			tenants = append(tenants, t.ID)
		}
	} else if _, err := a.stores.Tenants.GetTenant(ctx, tenant); err != nil {
		return nil, err
	}
	return a.integrity.Verifier().Verify(ctx, tenants, from, to)
}

// Integrity exposes the recorder (tests).
func (a *App) Integrity() *integrity.Recorder { return a.integrity }
