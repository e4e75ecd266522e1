package sqlite_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// BenchmarkStorageCandidates measures, on one UTC day of the benchmark
// generator's events (100,000, enrichment included), the bytes per event of
// today's day partition beside compressed layouts a closed partition could
// use instead, and what reading one block of each costs (a point lookup or an
// actor timeline decompresses whole blocks). Bytes are deterministic; the
// times are per event (encode) and per block (decode) on this machine.
//
//	go test ./internal/sqlite -run '^$' -bench StorageCandidates -benchtime 1x
func BenchmarkStorageCandidates(b *testing.B) {
	const n = 100_000
	g := newGen(1)
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = g.event(day.Add(time.Duration(i) * 864 * time.Millisecond))
	}

	// storeDay stores the day in a fresh directory, seals it when asked
	// (reporting the seal's time), and reports the closed files' bytes.
	storeDay := func(b *testing.B, seal bool) {
		for range b.N {
			dir := b.TempDir()
			db := benchOpen(b, dir, sqlite.Options{SealAfter: -1})
			for s := 0; s < n; s += 5000 {
				if err := db.Events().InsertEvents(context.Background(), evs[s:s+5000]); err != nil {
					b.Fatal(err)
				}
			}
			if seal {
				t0 := time.Now()
				if _, err := sqlite.SealNow(context.Background(), db.Events()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(t0).Nanoseconds())/1000/n, "encode-µs/event")
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			size, err := sqlite.DirBytes(filepath.Join(dir, "events"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(size)/n, "B/event")
		}
	}
	b.Run("layout=rows-sqlite-today", func(b *testing.B) { storeDay(b, false) })
	b.Run("layout=rows-sqlite-sealed", func(b *testing.B) { storeDay(b, true) })

	bodies := make([][]byte, n)
	for i := range evs {
		body, err := sqlite.EncodeEvent(&evs[i])
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	var measureWith func(b *testing.B, enc *zstd.Encoder, dec *zstd.Decoder, block int, build func(from, to int) []byte)
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	defer dec.Close()
	measure := func(b *testing.B, block int, build func(from, to int) []byte) { measureWith(b, enc, dec, block, build) }
	measureWith = func(b *testing.B, enc *zstd.Encoder, dec *zstd.Decoder, block int, build func(from, to int) []byte) {
		var blocks [][]byte
		t0 := time.Now()
		for range b.N {
			blocks = blocks[:0]
			for s := 0; s < n; s += block {
				blocks = append(blocks, enc.EncodeAll(build(s, min(s+block, n)), nil))
			}
		}
		encode := time.Since(t0) / time.Duration(b.N)
		size := 0
		for _, z := range blocks {
			size += len(z)
		}
		t0 = time.Now()
		var buf []byte
		for _, z := range blocks {
			var err error
			if buf, err = dec.DecodeAll(z, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/n, "B/event")
		b.ReportMetric(float64(encode.Nanoseconds())/1000/n, "encode-µs/event")
		b.ReportMetric(float64(time.Since(t0).Nanoseconds())/1000/float64(len(blocks)), "decode-µs/block")
	}
	rows := func(from, to int) []byte {
		var buf []byte
		for _, body := range bodies[from:to] {
			buf = binary.AppendUvarint(buf, uint64(len(body)))
			buf = append(buf, body...)
		}
		return buf
	}
	for _, block := range []int{16, 32, 64, 256, 1024, 4096} {
		b.Run("layout=rows-zstd/block="+strconv.Itoa(block), func(b *testing.B) { measure(b, block, rows) })
	}
	// A raw dictionary: the bodies of events sampled evenly over the day,
	// concatenated, which every block's frame may refer back to (so small
	// blocks need not repeat what all events share).
	for _, kib := range []int{16, 64} {
		var dict []byte
		for i := 0; len(dict) < kib<<10; i = (i + 997) % n {
			dict = append(dict, bodies[i]...)
		}
		denc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDictRaw(7, dict))
		ddec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderDictRaw(7, dict))
		for _, block := range []int{1, 8, 16, 64} {
			b.Run("layout=rows-zstd-dict"+strconv.Itoa(kib)+"k/block="+strconv.Itoa(block), func(b *testing.B) {
				measureWith(b, denc, ddec, block, rows)
				b.ReportMetric(float64(len(dict))/n, "dict-B/event")
			})
		}
		ddec.Close()
	}
	// S2 (Snappy's extension): faster to decompress than zstd, larger.
	for _, lvl := range []string{"better", "best"} {
		b.Run("layout=rows-s2-"+lvl+"/block=64", func(b *testing.B) {
			var blocks [][]byte
			size := 0
			for s := 0; s < n; s += 64 {
				raw := rows(s, min(s+64, n))
				var z []byte
				if lvl == "best" {
					z = s2.EncodeBest(nil, raw)
				} else {
					z = s2.EncodeBetter(nil, raw)
				}
				blocks = append(blocks, z)
				size += len(z)
			}
			t0 := time.Now()
			var buf []byte
			for _, z := range blocks {
				dn, _ := s2.DecodedLen(z)
				if cap(buf) < dn {
					buf = make([]byte, dn)
				}
				if _, err := s2.Decode(buf[:dn], z); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)/n, "B/event")
			b.ReportMetric(float64(time.Since(t0).Nanoseconds())/1000/float64(len(blocks)), "decode-µs/block")
		})
	}
	b.Run("layout=json-lines-zstd/block=4096", func(b *testing.B) {
		measure(b, 4096, func(from, to int) []byte {
			var buf bytes.Buffer
			for i := from; i < to; i++ {
				j, _ := json.Marshal(&evs[i])
				buf.Write(j)
				buf.WriteByte('\n')
			}
			return buf.Bytes()
		})
	})
	// Columns: each field of a block's events stored together (one stream
	// per field, concatenated), so similar values sit side by side.
	columns := func(from, to int) []byte {
		var cols [15][]byte
		put := func(c int, v []byte) {
			cols[c] = binary.AppendUvarint(cols[c], uint64(len(v)))
			cols[c] = append(cols[c], v...)
		}
		var prev int64
		for i := from; i < to; i++ {
			e := &evs[i]
			ts := e.Time.UnixNano()
			ip, _ := e.Context.IP.MarshalBinary()
			meta, _ := json.Marshal(e.Metadata)
			enr, _ := json.Marshal(e.Enrichment)
			put(0, []byte(e.ID))
			put(1, []byte(e.Tenant))
			put(2, binary.AppendVarint(nil, ts-prev))
			put(3, binary.AppendVarint(nil, e.ReceivedAt.UnixNano()-ts))
			put(4, []byte(e.Action))
			put(5, []byte(string(e.Outcome)+"\x00"+e.Reason))
			put(6, []byte(e.Actor.ID+"\x00"+e.Actor.Type+"\x00"+e.Actor.Email))
			put(7, []byte(e.Target.ID+"\x00"+e.Target.Type))
			put(8, ip)
			put(9, []byte(e.Context.UserAgent))
			put(10, []byte(e.Context.SessionID))
			put(11, []byte(e.Context.RequestID))
			put(12, []byte(e.Context.AuthMethod+"\x00"+e.Context.DeviceID))
			put(13, meta)
			put(14, enr)
			prev = ts
		}
		return bytes.Join(cols[:], nil)
	}
	b.Run("layout=columns-zstd/block=4096", func(b *testing.B) { measure(b, 4096, columns) })
}
