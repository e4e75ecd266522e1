package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// SeedState gives namespace to of store, when it holds no state yet, the
// part of namespace from's state that an engine of a detection unit needs
// to go on where one engine over everything left off: how partitioned
// detection starts from an unpartitioned engine's checkpoint instead of
// learning every profile again. It reports whether it wrote anything.
//
// owns says which tenants' state is the unit's: their keyed states,
// profiles, flags and incidents. installation marks the installation-wide
// unit, which takes the installation-wide keyed states, flags and
// incidents (tenant ""). Every unit takes the tenants' clocks and the
// events held for event-time order of its tenants — the installation-wide
// unit those of every tenant, since it evaluates every event too — and the
// position, so that each resumes after the records the checkpoint covers.
//
// It writes through store in one SaveState: with a fenced store (a unit's
// epoch), a node that lost the unit meanwhile writes nothing.
func SeedState(ctx context.Context, store audit.StateStore, from, to string, owns func(tenant string) bool, installation bool) (bool, error) {
	if _, err := store.GetState(ctx, to, metaKey); err == nil {
		return false, nil // the unit has state of its own
	} else if audit.ErrorCode(err) != audit.ENOTFOUND {
		return false, fmt.Errorf("read the state of %s: %w", to, err)
	}
	mine := func(tenant string) bool {
		if tenant == "" {
			return installation
		}
		return owns(tenant)
	}
	held := func(tenant string) bool { return installation || owns(tenant) }
	puts := map[string][]byte{}
	err := store.ScanState(ctx, from, func(key string, value []byte) error {
		switch {
		case key == metaKey:
			var m meta
			if err := json.Unmarshal(value, &m); err != nil {
				return fmt.Errorf("decode detection meta: %w", err)
			}
			for t := range m.Tenants {
				if !held(t) {
					delete(m.Tenants, t)
				}
			}
			for k := range m.Flags {
				if tenant, _, _ := strings.Cut(k, "|"); !mine(tenant) {
					delete(m.Flags, k)
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			puts[key] = b
		case strings.HasPrefix(key, "k/"), strings.HasPrefix(key, "p/"):
			// Tenant ids hold no '|': the key's tenant is what precedes it.
			if tenant, _, _ := strings.Cut(key[2:], "|"); mine(tenant) {
				puts[key] = value
			}
		case strings.HasPrefix(key, "i/"):
			var is struct {
				Inc struct {
					Tenant string `json:"tenant"`
				} `json:"inc"`
			}
			if err := json.Unmarshal(value, &is); err != nil {
				return fmt.Errorf("decode incident %q: %w", key, err)
			}
			if mine(is.Inc.Tenant) {
				puts[key] = value
			}
		case strings.HasPrefix(key, "hb/"):
			if bytes.HasPrefix(value, zstdMagic) {
				_, dec := heldCodec()
				var err error
				if value, err = dec.DecodeAll(value, nil); err != nil {
					return fmt.Errorf("decode held events %q: %w", key, err)
				}
			}
			var entries []heldEntry
			if err := json.Unmarshal(value, &entries); err != nil {
				return fmt.Errorf("decode held events %q: %w", key, err)
			}
			kept := entries[:0]
			for _, en := range entries {
				if en.Event != nil && held(en.Event.Tenant) {
					kept = append(kept, en)
				}
			}
			if len(kept) > 0 {
				b, err := json.Marshal(kept)
				if err != nil {
					return err
				}
				puts[key] = b
			}
		case strings.HasPrefix(key, "h/"):
			var ev struct {
				Tenant string `json:"tenant"`
			}
			if err := json.Unmarshal(value, &ev); err != nil {
				return fmt.Errorf("decode held event %q: %w", key, err)
			}
			if held(ev.Tenant) {
				puts[key] = value
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read the state of %s: %w", from, err)
	}
	if _, ok := puts[metaKey]; !ok {
		return false, nil // nothing to start from
	}
	if err := store.SaveState(ctx, to, puts, nil); err != nil {
		return false, fmt.Errorf("write the state of %s: %w", to, err)
	}
	return true, nil
}
