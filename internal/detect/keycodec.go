package detect

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vigilhq/vigil/internal/audit"
)

// A keyed state is persisted in a compact binary form: a checkpoint writes
// thousands of them (two or three per event in live traffic), and as JSON
// they were the largest part of its bytes and of its encoding CPU. State
// written as JSON by older versions (its first byte is '{') still loads.
//
//	version byte (keyStateVersion)
//	flags byte (ksBaseline, ksSteps, ksFinding, ksFVals, ksFValsCapped)
//	newest varint
//	entries: count uvarint, then per entry: time as a varint delta from
//	  the previous entry's (the first from newest), id and value as
//	  uvarint-length strings, a byte of bit 0 matched, and the risk byte
//	baseline (ksBaseline): bucket varint, count and matched uvarints,
//	  base and baseM as float64 bits, closed uvarint
//	steps (ksSteps): count uvarint, then step uvarint, time varint from
//	  newest, id string, risk byte
//	until varint (from newest)
//	finding values (ksFVals): count uvarint, then value string and count
//	  uvarint, in value order; matched uvarint
//	finding (ksFinding): its JSON as a uvarint-length string
const keyStateVersion = 1

const (
	ksBaseline = 1 << iota
	ksSteps
	ksFinding
	ksFVals
	ksFValsCapped
)

var errKeyState = errors.New("corrupt keyed state")

// encode appends the binary form of ks to buf.
func (ks *keyState) encode(buf []byte) ([]byte, error) {
	var fl byte
	if ks.Bucket != 0 || ks.BCount != 0 || ks.BMatched != 0 || ks.Base != 0 || ks.BaseM != 0 || ks.Closed != 0 {
		fl |= ksBaseline
	}
	if len(ks.Steps) > 0 {
		fl |= ksSteps
	}
	if ks.Finding != nil {
		fl |= ksFinding
	}
	if len(ks.FVals) > 0 || ks.FMatched != 0 {
		fl |= ksFVals
	}
	if ks.FValsCapped {
		fl |= ksFValsCapped
	}
	b := append(buf, keyStateVersion, fl)
	b = binary.AppendVarint(b, ks.Newest)
	b = binary.AppendUvarint(b, uint64(len(ks.Entries)))
	prev := ks.Newest
	for _, en := range ks.Entries {
		b = binary.AppendVarint(b, en.T-prev)
		prev = en.T
		b = appendString(b, en.ID)
		b = appendString(b, en.V)
		var m byte
		if en.M {
			m = 1
		}
		b = append(b, m, en.R)
	}
	if fl&ksBaseline != 0 {
		b = binary.AppendVarint(b, ks.Bucket)
		b = binary.AppendUvarint(b, uint64(max(ks.BCount, 0)))
		b = binary.AppendUvarint(b, uint64(max(ks.BMatched, 0)))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ks.Base))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(ks.BaseM))
		b = binary.AppendUvarint(b, uint64(max(ks.Closed, 0)))
	}
	if fl&ksSteps != 0 {
		b = binary.AppendUvarint(b, uint64(len(ks.Steps)))
		for _, s := range ks.Steps {
			b = binary.AppendUvarint(b, uint64(max(s.Step, 0)))
			b = binary.AppendVarint(b, s.T-ks.Newest)
			b = appendString(b, s.ID)
			b = append(b, s.R)
		}
	}
	b = binary.AppendVarint(b, ks.Until-ks.Newest)
	if fl&ksFVals != 0 {
		b = binary.AppendUvarint(b, uint64(len(ks.FVals)))
		vals := make([]string, 0, len(ks.FVals))
		for v := range ks.FVals {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		for _, v := range vals {
			b = appendString(b, v)
			b = binary.AppendUvarint(b, uint64(max(ks.FVals[v], 0)))
		}
		b = binary.AppendUvarint(b, uint64(max(ks.FMatched, 0)))
	}
	if fl&ksFinding != 0 {
		f, err := json.Marshal(ks.Finding)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeKeyState parses a persisted keyed state, binary or (written by
// older versions) JSON, into ks. The key's parts (Tenant, Rule, Group) are
// not in the value.
func decodeKeyState(data []byte, ks *keyState) error {
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, ks); err != nil {
			return fmt.Errorf("%w: %w", errKeyState, err)
		}
		return nil
	}
	if len(data) < 2 || data[0] != keyStateVersion {
		return errKeyState
	}
	fl := data[1]
	r := &profReader{b: data[2:]}
	ks.Newest = r.varint()
	// Every entry takes at least 5 bytes: a count beyond that is corrupt,
	// and is refused before it sizes an allocation.
	if n := r.uvarint(); n > 0 {
		if n > uint64(len(r.b)/5) {
			return errKeyState
		}
		ks.Entries = make([]entry, n)
		prev := ks.Newest
		for i := range ks.Entries {
			en := &ks.Entries[i]
			en.T = prev + r.varint()
			prev = en.T
			en.ID, en.V = r.str(), r.str()
			if mr := r.bytes(2); mr != nil {
				en.M, en.R = mr[0]&1 != 0, mr[1]
			}
		}
	}
	if fl&ksBaseline != 0 {
		ks.Bucket = r.varint()
		ks.BCount, ks.BMatched = r.int(), r.int()
		ks.Base = math.Float64frombits(r.u64())
		ks.BaseM = math.Float64frombits(r.u64())
		ks.Closed = r.int()
	}
	if fl&ksSteps != 0 {
		n := r.uvarint()
		if n > uint64(len(r.b)/4) {
			return errKeyState
		}
		ks.Steps = make([]stepHit, n)
		for i := range ks.Steps {
			s := &ks.Steps[i]
			s.Step = r.int()
			s.T = ks.Newest + r.varint()
			s.ID = r.str()
			if rb := r.bytes(1); rb != nil {
				s.R = rb[0]
			}
		}
	}
	ks.Until = ks.Newest + r.varint()
	if fl&ksFVals != 0 {
		n := r.uvarint()
		if n > uint64(len(r.b)/2) {
			return errKeyState
		}
		if n > 0 {
			ks.FVals = make(map[string]int32, n)
		}
		for range n {
			v := r.str()
			ks.FVals[v] = int32(min(r.uvarint(), math.MaxInt32))
		}
		ks.FMatched = r.int()
	}
	ks.FValsCapped = fl&ksFValsCapped != 0
	if fl&ksFinding != 0 {
		var f audit.Finding
		if err := json.Unmarshal(r.bytes(r.int()), &f); err != nil && r.err == nil {
			return fmt.Errorf("%w: finding: %w", errKeyState, err)
		}
		ks.Finding = &f
	}
	if r.err != nil || len(r.b) != 0 {
		return errKeyState
	}
	return nil
}

// str reads a uvarint-length string.
func (r *profReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errProfile
		return ""
	}
	if n == 0 {
		return ""
	}
	return string(r.bytes(int(n)))
}

// int reads a uvarint that must fit an int.
func (r *profReader) int() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.err = errProfile
		return 0
	}
	return int(v)
}

func (r *profReader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}
