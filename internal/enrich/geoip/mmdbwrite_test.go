package geoip_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"os"
	"slices"
	"testing"
)

// writeMMDB writes a minimal IPv4 MaxMind DB (format 2.0, 24-bit records)
// mapping each prefix to a flat map of strings and float64s. It exists so
// tests can exercise the DB-IP lite schema without committing DB-IP data;
// it follows the published MaxMind DB format specification.
func writeMMDB(t *testing.T, path, dbType string, build uint64, nets map[string]map[string]any) {
	t.Helper()
	type node struct{ rec [2]int } // >=0 node index; -1 empty; <= -2 data index -(i+2)
	nodes := []node{{rec: [2]int{-1, -1}}}
	var data bytes.Buffer
	data.Write(make([]byte, 0))
	var dataOffsets []int
	keys := make([]string, 0, len(nets))
	for k := range nets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := netip.MustParsePrefix(k)
		if !p.Addr().Is4() {
			t.Fatalf("writeMMDB: only IPv4, got %s", k)
		}
		dataOffsets = append(dataOffsets, data.Len())
		encodeValue(&data, nets[k])
		a := p.Addr().As4()
		ip := binary.BigEndian.Uint32(a[:])
		n := 0
		for depth := 0; depth < p.Bits(); depth++ {
			bit := int(ip>>(31-depth)) & 1
			if depth == p.Bits()-1 {
				nodes[n].rec[bit] = -(len(dataOffsets) - 1 + 2)
				break
			}
			next := nodes[n].rec[bit]
			if next < 0 {
				if next != -1 {
					t.Fatalf("writeMMDB: %s nests inside another network", k)
				}
				nodes = append(nodes, node{rec: [2]int{-1, -1}})
				next = len(nodes) - 1
				nodes[n].rec[bit] = next
			}
			n = next
		}
	}
	count := len(nodes)
	var out bytes.Buffer
	for _, nd := range nodes {
		for _, r := range nd.rec {
			var v int
			switch {
			case r >= 0:
				v = r
			case r == -1:
				v = count
			default:
				v = count + 16 + dataOffsets[-r-2]
			}
			out.Write([]byte{byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	out.Write(make([]byte, 16))
	out.Write(data.Bytes())
	out.WriteString("\xAB\xCD\xEFMaxMind.com")
	encodeValue(&out, map[string]any{
		"node_count": uint32(count), "record_size": uint16(24), "ip_version": uint16(4),
		"database_type": dbType, "languages": []any{}, "binary_format_major_version": uint16(2),
		"binary_format_minor_version": uint16(0), "build_epoch": build, "description": map[string]any{},
	})
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ctrl(b *bytes.Buffer, typ, size int) {
	var first byte
	ext := typ > 7
	if !ext {
		first = byte(typ << 5)
	}
	switch {
	case size < 29:
		b.WriteByte(first | byte(size))
		if ext {
			b.WriteByte(byte(typ - 7))
		}
	case size < 285:
		b.WriteByte(first | 29)
		if ext {
			b.WriteByte(byte(typ - 7))
		}
		b.WriteByte(byte(size - 29))
	default:
		b.WriteByte(first | 30)
		if ext {
			b.WriteByte(byte(typ - 7))
		}
		s := size - 285
		b.Write([]byte{byte(s >> 8), byte(s)})
	}
}

func uintBytes(v uint64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	i := 0
	for i < 8 && buf[i] == 0 {
		i++
	}
	return buf[i:]
}

func encodeValue(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case string:
		ctrl(b, 2, len(v))
		b.WriteString(v)
	case float64:
		ctrl(b, 3, 8)
		_ = binary.Write(b, binary.BigEndian, math.Float64bits(v))
	case uint16:
		u := uintBytes(uint64(v))
		ctrl(b, 5, len(u))
		b.Write(u)
	case uint32:
		u := uintBytes(uint64(v))
		ctrl(b, 6, len(u))
		b.Write(u)
	case uint64:
		u := uintBytes(v)
		ctrl(b, 9, len(u))
		b.Write(u)
	case map[string]any:
		ctrl(b, 7, len(v))
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			encodeValue(b, k)
			encodeValue(b, v[k])
		}
	case []any:
		ctrl(b, 11, len(v))
		for _, x := range v {
			encodeValue(b, x)
		}
	default:
		panic("writeMMDB: unsupported value")
	}
}
