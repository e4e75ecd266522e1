package detect

import (
	"bytes"
	"encoding/json"
	"errors"
)

// KeyStateJSON returns a persisted keyed state in the JSON form versions
// before the binary one wrote, with the key's parts (t, r, g) inside.
func KeyStateJSON(value []byte, tenant, rule, group string) ([]byte, error) {
	var ks keyState
	if err := decodeKeyState(value, &ks); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&ks)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	for k, v := range map[string]string{"t": tenant, "r": rule, "g": group} {
		fields[k], _ = json.Marshal(v)
	}
	return json.Marshal(fields)
}

// CheckKeyStates encodes and decodes every keyed state the engine holds
// and reports the first that does not come back as it was.
func CheckKeyStates(e *Engine) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for sk, ks := range e.keys {
		b, err := ks.encode(nil)
		if err != nil {
			return n, err
		}
		var got keyState
		if err := decodeKeyState(b, &got); err != nil {
			return n, err
		}
		want, _ := json.Marshal(ks)
		have, _ := json.Marshal(&got)
		if string(want) != string(have) {
			return n, &codecError{key: sk, want: string(want), got: string(have)}
		}
		n++
	}
	return n, nil
}

type codecError struct{ key, want, got string }

func (e *codecError) Error() string {
	return "keyed state " + e.key + " changed in the binary form:\nwant " + e.want + "\n got " + e.got
}

// HeldRowJSON returns a persisted row of held events as its JSON list.
func HeldRowJSON(value []byte) ([]byte, error) {
	if !bytes.HasPrefix(value, zstdMagic) {
		return nil, errors.New("a row of held events is not compressed")
	}
	_, dec := heldCodec()
	return dec.DecodeAll(value, nil)
}

// ProfilesInMemory is how many actor profiles the engine holds in memory.
func ProfilesInMemory(e *Engine) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.profiles)
}
