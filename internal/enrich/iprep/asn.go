package iprep

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/vigilhq/vigil/internal/enrich/watch"
)

// asnSource answers which autonomous system an address belongs to.
type asnSource interface {
	lookup(a netip.Addr) (asn uint32, org string, ok bool)
}

// asnTable is an ASN range table read from CSV: sorted, disjoint ranges.
type asnTable struct {
	starts, ends []u128
	asns         []uint32
	orgs         []uint32 // index into names
	names        []string
}

func (t *asnTable) lookup(a netip.Addr) (uint32, string, bool) {
	k := key(a)
	i, found := slices.BinarySearchFunc(t.starts, k, u128.cmp)
	if !found {
		i--
	}
	if i < 0 || k.cmp(t.ends[i]) > 0 {
		return 0, "", false
	}
	return t.asns[i], t.names[t.orgs[i]], true
}

// parseASNCSV reads the ASN range CSV of the npm package @ip-location-db/asn
// (asn-ipv4.csv, asn-ipv6.csv): "first,last,asn,organisation" per row, no
// header. Rows may come in any order; overlapping rows keep the first.
func parseASNCSV(data []byte) (*asnTable, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	type row struct {
		lo, hi u128
		asn    uint32
		org    uint32
	}
	var rows []row
	orgIdx := map[string]uint32{}
	t := &asnTable{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("line %d: want first,last,asn[,organisation], got %d fields", line, len(rec))
		}
		lo, err := netip.ParseAddr(strings.TrimSpace(rec[0]))
		if err != nil {
			return nil, fmt.Errorf("line %d: field first: %q is not an IP address", line, clip(rec[0]))
		}
		hi, err := netip.ParseAddr(strings.TrimSpace(rec[1]))
		if err != nil {
			return nil, fmt.Errorf("line %d: field last: %q is not an IP address", line, clip(rec[1]))
		}
		lo, hi = lo.Unmap().WithZone(""), hi.Unmap().WithZone("")
		if lo.Is4() != hi.Is4() || hi.Less(lo) {
			return nil, fmt.Errorf("line %d: field last: %s is before %s or of another family", line, hi, lo)
		}
		asn, err := strconv.ParseUint(strings.TrimSpace(rec[2]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: field asn: %q is not an AS number", line, clip(rec[2]))
		}
		org := ""
		if len(rec) > 3 {
			org = strings.TrimSpace(rec[3])
		}
		idx, ok := orgIdx[org]
		if !ok {
			idx = uint32(len(t.names))
			orgIdx[org] = idx
			t.names = append(t.names, org)
		}
		rows = append(rows, row{key(lo), key(hi), uint32(asn), idx})
	}
	if len(rows) == 0 {
		return nil, errors.New("no rows")
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.lo.cmp(b.lo) })
	for _, rw := range rows {
		if n := len(t.ends); n > 0 && rw.lo.cmp(t.ends[n-1]) <= 0 {
			continue // overlaps the previous row
		}
		t.starts = append(t.starts, rw.lo)
		t.ends = append(t.ends, rw.hi)
		t.asns = append(t.asns, rw.asn)
		t.orgs = append(t.orgs, rw.org)
	}
	return t, nil
}

// asnMMDB is a GeoLite2-ASN (or GeoIP2-ISP) database held in memory.
type asnMMDB struct {
	r      *maxminddb.Reader
	v4only bool
}

type asnRecord struct {
	ASN uint32 `maxminddb:"autonomous_system_number"`
	Org string `maxminddb:"autonomous_system_organization"`
}

func (d *asnMMDB) lookup(a netip.Addr) (uint32, string, bool) {
	if d.v4only && !a.Is4() {
		return 0, "", false
	}
	res := d.r.Lookup(a)
	if !res.Found() {
		return 0, "", false
	}
	var rec asnRecord
	if err := res.Decode(&rec); err != nil || rec.ASN == 0 {
		return 0, "", false
	}
	return rec.ASN, rec.Org, true
}

// loadASN reads an ASN source: a .mmdb file in the GeoLite2-ASN schema, or
// an ASN range CSV for any other name.
func loadASN(path string) (asnSource, watch.Meta, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, watch.Meta{}, err
	}
	if strings.HasSuffix(strings.ToLower(path), ".mmdb") {
		r, err := maxminddb.OpenBytes(data)
		if err != nil {
			return nil, watch.Meta{}, fmt.Errorf("not a usable MaxMind database: %w", err)
		}
		m := r.Metadata
		return &asnMMDB{r: r, v4only: m.IPVersion == 4},
			watch.Meta{Kind: "asn-mmdb:" + m.DatabaseType, BuildTime: m.BuildTime(), Entries: int(m.NodeCount)}, nil
	}
	t, err := parseASNCSV(data)
	if err != nil {
		return nil, watch.Meta{}, err
	}
	return t, watch.Meta{Kind: "asn-csv", Entries: len(t.starts)}, nil
}
