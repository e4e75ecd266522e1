package natsstream

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/internal/audit"
)

// offsetKey is a consumer's key in the offsets bucket: consumer names are
// Vigil's own ("pipeline"), but a key allows few characters, so any other
// byte is escaped. The key never holds a '.', which partition keys
// (partKey) use.
func offsetKey(consumer string) string {
	b := make([]byte, 0, len(consumer))
	for i := 0; i < len(consumer); i++ {
		c := consumer[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_')
			b = append(b, hex.EncodeToString([]byte{c})...)
		}
	}
	return string(b)
}

// partKey is a consumer's key in the offsets bucket for its position in
// partition p alone.
func partKey(consumer string, p int) string {
	return offsetKey(consumer) + ".p" + strconv.Itoa(p)
}

// keyPartition is the partition of a partition key (partKey), or -1 for a
// whole-stream consumer's key (offsetKey). A key with a '.' that is not a
// partition key counts as a whole-stream one: it holds back every purge.
func keyPartition(key string) int {
	i := strings.LastIndexByte(key, '.')
	if i < 0 || !strings.HasPrefix(key[i+1:], "p") {
		return -1
	}
	p, err := strconv.Atoi(key[i+2:])
	if err != nil || p < 0 {
		return -1
	}
	return p
}

// allPartitions asks lowest for the positions that hold back any record.
const allPartitions = -1

// lowest is the lowest of the positions that hold back the records of
// partition part: every whole-stream consumer's and the positions in part
// itself. With allPartitions it is the lowest of every position. ok is
// false when no position concerns the partition.
func lowest(pos map[string]uint64, part int) (low uint64, ok bool) {
	for k, n := range pos {
		if kp := keyPartition(k); part != allPartitions && kp >= 0 && kp != part {
			continue
		}
		if !ok || n < low {
			low, ok = n, true
		}
	}
	return low, ok
}

// positions reads the positions in the offsets bucket whose keys match
// filters (every key when there are none), by key.
func positions(ctx context.Context, kv jetstream.KeyValue, filters ...string) (map[string]uint64, error) {
	var lister jetstream.KeyLister
	var err error
	if len(filters) == 0 {
		lister, err = kv.ListKeys(ctx)
	} else {
		lister, err = kv.ListKeysFiltered(ctx, filters...)
	}
	if err != nil {
		return nil, unavailable("list consumer positions", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	out := make(map[string]uint64, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, unavailable("read consumer positions", err)
		}
		n, err := parseOffset(k, e.Value())
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}

func parseOffset(key string, v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stored position %s is %q, not a sequence: %w", key, v, err)
	}
	return n, nil
}

// claims holds, per claimed position key, the revision of the position
// its owner (a Stream, or one Part) last wrote: Commit moves a claimed
// position only from there, so a node that lost the pipeline to another
// cannot write its stale position over the new one.
type claims struct {
	mu   sync.Mutex
	revs map[string]uint64
}

func (c *claims) get(key string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev, ok := c.revs[key]
	return rev, ok
}

func (c *claims) set(key string, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revs == nil {
		c.revs = map[string]uint64{}
	}
	c.revs[key] = rev
}

// getKey reads the position under key and its revision (0, 0 when
// absent); what names the position for errors.
func (s *Stream) getKey(ctx context.Context, key, what string) (uint64, uint64, error) {
	e, err := s.offsets.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, unavailable("read "+what, err)
	}
	n, err := parseOffset(key, e.Value())
	if err != nil {
		return 0, 0, err
	}
	return n, e.Revision(), nil
}

// claimKey reads the position under key and writes it back with a
// compare-and-set on the revision it read, recording the new revision in
// c. A key not stored yet is created at initial's answer; created reports
// that this claim created it.
func (s *Stream) claimKey(ctx context.Context, c *claims, key, what string,
	initial func(context.Context) (uint64, error)) (n uint64, created bool, err error) {
	for attempt := 0; ; attempt++ {
		n, rev, err := s.getKey(ctx, key, what)
		if err != nil {
			return 0, false, err
		}
		if rev == 0 {
			if n, err = initial(ctx); err != nil {
				return 0, false, err
			}
		}
		val := []byte(strconv.FormatUint(n, 10))
		var newRev uint64
		if rev == 0 {
			newRev, err = s.offsets.Create(ctx, key, val)
		} else {
			newRev, err = s.offsets.Update(ctx, key, val, rev)
		}
		if err == nil {
			c.set(key, newRev)
			return n, rev == 0, nil
		}
		if !isRevisionConflict(err) || attempt == 4 {
			return 0, false, unavailable("claim "+what, err)
		}
		// Another node wrote it between the read and the write: read again.
	}
}

// commitKey stores seq under key. A position claimed through c moves only
// from the revision c last wrote: if another stream (another node)
// claimed, moved or deleted it since, commitKey writes nothing and returns
// an error wrapping audit.ErrFenced.
func (s *Stream) commitKey(ctx context.Context, c *claims, key, what string, seq uint64) error {
	val := []byte(strconv.FormatUint(seq, 10))
	rev, claimed := c.get(key)
	var err error
	if claimed {
		rev, err = s.offsets.Update(ctx, key, val, rev)
	} else {
		_, err = s.offsets.Put(ctx, key, val)
	}
	if err != nil {
		if claimed && isRevisionConflict(err) {
			return fmt.Errorf("%w: %s was claimed by another node", audit.ErrFenced, what)
		}
		return unavailable("store "+what, err)
	}
	if claimed {
		c.set(key, rev)
	}
	return nil
}

// isRevisionConflict reports a compare-and-set write refused because the
// key is not at the expected revision.
func isRevisionConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164)
}

// partitionPositions reads a consumer's partition positions, by
// partition.
func (s *Stream) partitionPositions(ctx context.Context, consumer string) (map[int]uint64, error) {
	pos, err := positions(ctx, s.offsets, offsetKey(consumer)+".*")
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint64, len(pos))
	for k, n := range pos {
		if p := keyPartition(k); p >= 0 && p < s.opts.Partitions {
			out[p] = n
		}
	}
	return out, nil
}

// fromPartitions is where a whole-stream consumer that has only partition
// positions resumes: the lowest of them, with a partition that has none
// counting as 0 (nothing of it was consumed). ok is false when the
// consumer has no partition position.
func (s *Stream) fromPartitions(ctx context.Context, consumer string) (n uint64, parts map[int]uint64, ok bool, err error) {
	parts, err = s.partitionPositions(ctx, consumer)
	if err != nil || len(parts) == 0 {
		return 0, nil, false, err
	}
	if len(parts) < s.opts.Partitions {
		return 0, parts, true, nil
	}
	first := true
	for _, pn := range parts {
		if first || pn < n {
			n, first = pn, false
		}
	}
	return n, parts, true, nil
}
