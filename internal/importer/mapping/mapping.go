// Package mapping imports CSV and NDJSON files of any shape with a mapping
// file (YAML) that names, for each event field, the CSV column or JSON
// path it comes from, an optional value map, and the time format.
// docs/importers.md documents the file; examples/import/rba-dataset.yaml
// is a complete one.
package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Formats a mapping reads.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// MaxFileBytes bounds a mapping file.
const MaxFileBytes = 64 << 10

// Field says where one event field comes from: a column or JSON path
// (From) or a constant (Value), then an optional value map (Map, whose
// "*" entry is the default for unlisted values; a value mapped to "" is
// left out), a Prefix, and the actions it applies to (Only; all when
// empty).
type Field struct {
	From   string            `yaml:"from"`
	Value  string            `yaml:"value"`
	Map    map[string]string `yaml:"map"`
	Prefix string            `yaml:"prefix"`
	Only   []string          `yaml:"only"`
}

// Time says where the event time comes from and how it is written:
// Layout is "rfc3339" (the default), "unix", "unix_ms", or a Go time
// layout such as "2006-01-02 15:04:05.000"; Zone is the IANA zone of
// times written without one (default UTC).
type Time struct {
	From   string `yaml:"from"`
	Layout string `yaml:"layout"`
	Zone   string `yaml:"zone"`
}

// File is a mapping file as written.
type File struct {
	// Name becomes the id prefix and metadata.import.format suffix
	// ("csv:<name>"); letters, digits, '-' and '_'.
	Name   string           `yaml:"name"`
	Format string           `yaml:"format"`
	Time   Time             `yaml:"time"`
	ID     *Field           `yaml:"id"`
	Action Field            `yaml:"action"`
	Fields map[string]Field `yaml:"fields"`
}

// Mapping is a checked mapping file, ready to decode records.
type Mapping struct {
	f    File
	loc  *time.Location
	cols map[string]int // CSV: column name → index, set by Header
}

// targets are the event fields a mapping may fill.
var targets = []string{"actor.id", "actor.type", "actor.email", "actor.name", "target.type", "target.id", "target.name",
	"outcome", "reason", "context.ip", "context.user_agent", "context.session_id", "context.request_id",
	"context.auth_method", "context.device_id", "context.geo.country", "context.geo.region", "context.geo.city",
	"context.geo.latitude", "context.geo.longitude"}

// Parse reads and checks a mapping file, reporting every problem at once
// with the YAML path of each.
func Parse(b []byte) (*Mapping, error) {
	if len(b) > MaxFileBytes {
		return nil, audit.FieldErrorf("mapping", "the mapping file is over %d KiB", MaxFileBytes>>10)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(b, err)
	}
	var ps importer.Problems
	if f.Name == "" || !validName(f.Name) {
		ps.Add("name", "name is required: 1-32 letters, digits, '-' or '_'")
	}
	if f.Format != FormatCSV && f.Format != FormatNDJSON {
		ps.Add("format", "format must be csv or ndjson")
	}
	if f.Time.From == "" {
		ps.Add("time.from", "time.from is required")
	}
	switch f.Time.Layout {
	case "", "rfc3339", "unix", "unix_ms":
	default:
		if !strings.Contains(f.Time.Layout, "2006") {
			ps.Add("time.layout", "time.layout must be rfc3339, unix, unix_ms or a Go layout such as 2006-01-02 15:04:05")
		}
	}
	m := &Mapping{f: f, loc: time.UTC}
	if f.Time.Zone != "" {
		loc, err := time.LoadLocation(f.Time.Zone)
		if err != nil {
			ps.Add("time.zone", "time.zone %q is not an IANA time zone", f.Time.Zone)
		}
		m.loc = loc
	}
	check := func(path string, fl Field) {
		if (fl.From == "") == (fl.Value == "") {
			ps.Add(path, "%s needs exactly one of from or value", path)
		}
		for _, a := range fl.Only {
			if !audit.ValidAction(a) {
				ps.Add(path+".only", "%s.only: %q is not an action", path, a)
			}
		}
	}
	check("action", f.Action)
	for _, to := range f.Action.Map {
		if to != "" && !audit.ValidAction(to) {
			ps.Add("action.map", "action.map: %q is not an action name", to)
		}
	}
	if f.ID != nil {
		check("id", *f.ID)
	}
	keys := make([]string, 0, len(f.Fields))
	for k := range f.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(targets, k) && !strings.HasPrefix(k, "metadata.") {
			ps.Add("fields."+k, "fields: %q is not an event field (%s, or metadata.<key>)", k, strings.Join(targets, ", "))
			continue
		}
		check("fields."+k, f.Fields[k])
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// yamlError turns a YAML decoding error into problems that name the YAML
// path at fault ("fields.actor.id.only", "time.zoen"); what has no path
// (a syntax error, a file that is not a mapping) names the file, field
// "mapping".
func yamlError(b []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return audit.FieldErrorf("mapping", "mapping file: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	var keys []yamlKey
	collectKeys(&root, "", &keys)
	var ps importer.Problems
	for _, msg := range te.Errors {
		field, line, text := "mapping", 0, msg
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			text = m[2]
		}
		want := ""
		if m := yamlUnknown.FindStringSubmatch(text); m != nil {
			want = m[1]
			text = fmt.Sprintf("%s is not a mapping field", want)
		} else if m := yamlValue.FindStringSubmatch(text); m != nil {
			want = m[1]
		}
		for _, k := range keys {
			if k.line != line {
				continue
			}
			if field == "mapping" {
				field = k.path // the first key on the line, unless one fits better
			}
			if want != "" && (strings.HasSuffix(k.path, "."+want) || k.path == want || k.value == want) {
				field = k.path
				break
			}
		}
		if field == "" {
			field = "mapping" // a key with an empty name
		}
		ps.Add(field, "%s: %s (line %d)", field, text, line)
	}
	return ps.Err()
}

var (
	yamlLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknown = regexp.MustCompile(`^field (.+) not found in type`)
	yamlValue   = regexp.MustCompile("^cannot unmarshal \\S+ `([^`]*)` into")
)

// yamlKey is one key of a YAML document: its dotted path, its line and,
// for a scalar, its value.
type yamlKey struct {
	path, value string
	line        int
}

func collectKeys(n *yaml.Node, prefix string, out *[]yamlKey) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeys(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			*out = append(*out, yamlKey{path: p, line: k.Line})
			if v.Kind == yaml.ScalarNode {
				*out = append(*out, yamlKey{path: p, value: v.Value, line: v.Line})
			}
			collectKeys(v, p, out)
		}
	}
}

func validName(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Format is the mapping's input format, csv or ndjson.
func (m *Mapping) Format() string { return m.f.Format }

// Header takes a CSV file's header row; every column the mapping names
// must be in it.
func (m *Mapping) Header(cols []string) error {
	m.cols = make(map[string]int, len(cols))
	for i, c := range cols {
		m.cols[strings.TrimSpace(strings.TrimPrefix(c, "\uFEFF"))] = i
	}
	var ps importer.Problems
	need := func(path string, fl *Field) {
		if fl == nil || fl.From == "" {
			return
		}
		if _, ok := m.cols[fl.From]; !ok {
			ps.Add(path+".from", "column %q (%s.from) is not in the header", fl.From, path)
		}
	}
	need("time", &Field{From: m.f.Time.From})
	need("action", &m.f.Action)
	need("id", m.f.ID)
	for k, fl := range m.f.Fields {
		need("fields."+k, &fl)
	}
	return ps.Err()
}

// source looks values up in one record.
type source func(from string) (string, bool)

// DecodeRow turns one CSV row (after Header) into an event.
func (m *Mapping) DecodeRow(row []string) (*audit.Event, error) {
	get := func(from string) (string, bool) {
		i, ok := m.cols[from]
		if !ok || i >= len(row) {
			return "", false
		}
		return row[i], true
	}
	raw, _ := json.Marshal(row)
	return m.decode(get, raw)
}

// DecodeJSON turns one NDJSON record into an event; from is a dot path
// of object keys ("actor.login").
func (m *Mapping) DecodeJSON(raw []byte) (*audit.Event, error) {
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil || v == nil {
		return nil, audit.Errorf(audit.EINVALID, "the record is not a JSON object")
	}
	get := func(from string) (string, bool) {
		var cur any = v
		for key := range strings.SplitSeq(from, ".") {
			o, ok := cur.(map[string]any)
			if !ok {
				return "", false
			}
			if cur, ok = o[key]; !ok {
				return "", false
			}
		}
		switch x := cur.(type) {
		case string:
			return x, true
		case json.Number:
			return x.String(), true
		case bool:
			return strconv.FormatBool(x), true
		case nil:
			return "", false
		}
		b, _ := json.Marshal(cur)
		return string(b), true
	}
	return m.decode(get, raw)
}

// value resolves one field spec for a record ("" when absent or mapped
// away).
func (m *Mapping) value(get source, fl Field) string {
	v := fl.Value
	if fl.From != "" {
		v, _ = get(fl.From)
		v = strings.TrimSpace(v)
	}
	if fl.Map != nil {
		if to, ok := fl.Map[v]; ok {
			v = to
		} else if def, ok := fl.Map["*"]; ok {
			v = def
		}
	}
	if v != "" {
		v = fl.Prefix + v
	}
	return v
}

func (m *Mapping) decode(get source, raw []byte) (*audit.Event, error) {
	var ps importer.Problems
	ev := &audit.Event{Metadata: map[string]any{}}
	ts, _ := get(m.f.Time.From)
	t, err := m.parseTime(strings.TrimSpace(ts))
	if err != nil {
		ps.Add(m.f.Time.From, "%s (time): %s", m.f.Time.From, err)
	}
	ev.Time = t
	ev.Action = m.value(get, m.f.Action)
	if ev.Action == "" {
		ps.Add(fieldName(m.f.Action), "%s (action): no action for this record", fieldName(m.f.Action))
	} else if !audit.ValidAction(ev.Action) {
		ps.Add(fieldName(m.f.Action), "%s (action): %q is not an action name; map it with action.map", fieldName(m.f.Action), importer.Text(ev.Action, 40))
	}
	keys := make([]string, 0, len(m.f.Fields))
	for k := range m.f.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fl := m.f.Fields[k]
		if len(fl.Only) > 0 && !slices.Contains(fl.Only, ev.Action) {
			continue
		}
		v := m.value(get, fl)
		if v == "" {
			continue
		}
		if err := set(ev, k, v); err != nil {
			ps.Add(fieldName(fl), "%s (%s): %s", fieldName(fl), k, err)
		}
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	prefix := "csv"
	if m.f.Format == FormatNDJSON {
		prefix = "ndjson"
	}
	vendorID := ""
	if m.f.ID != nil {
		vendorID = m.value(get, *m.f.ID)
	}
	ev.ID = importer.ID(prefix+":"+m.f.Name, vendorID, raw)
	custom := ev.Action
	if audit.InCatalog(custom) || slices.Contains(audit.CatalogNamespaces, ev.Namespace()) {
		custom = importer.Action(m.f.Name, strings.ReplaceAll(ev.Action, ".", "_"))
	}
	importer.Finish(ev, prefix+":"+m.f.Name, custom, raw)
	return ev, nil
}

func fieldName(fl Field) string {
	if fl.From != "" {
		return fl.From
	}
	return "value"
}

func (m *Mapping) parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("no time")
	}
	switch m.f.Time.Layout {
	case "", "rfc3339":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", importer.Text(s, 40))
		}
		return t.UTC(), nil
	case "unix", "unix_ms":
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a number", importer.Text(s, 40))
		}
		if m.f.Time.Layout == "unix_ms" {
			return time.UnixMilli(int64(n)).UTC(), nil
		}
		return time.Unix(0, int64(n*1e9)).UTC(), nil
	}
	t, err := time.ParseInLocation(m.f.Time.Layout, s, m.loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q does not match the layout %q", importer.Text(s, 40), m.f.Time.Layout)
	}
	return t.UTC(), nil
}

// set assigns v to the event field at path.
func set(ev *audit.Event, path, v string) error {
	geo := func() *audit.ClientGeo {
		if ev.Context.Geo == nil {
			ev.Context.Geo = &audit.ClientGeo{}
		}
		return ev.Context.Geo
	}
	switch path {
	case "actor.id":
		ev.Actor.ID = v
	case "actor.type":
		ev.Actor.Type = v
	case "actor.email":
		ev.Actor.Email = v
	case "actor.name":
		ev.Actor.Name = v
	case "target.type":
		ev.Target.Type = v
	case "target.id":
		ev.Target.ID = v
	case "target.name":
		ev.Target.Name = v
	case "outcome":
		ev.Outcome = audit.Outcome(v)
	case "reason":
		ev.Reason = v
	case "context.ip":
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("%q is not an IP address", importer.Text(v, 40))
		}
		ev.Context.IP = ip
	case "context.user_agent":
		ev.Context.UserAgent = v
	case "context.session_id":
		ev.Context.SessionID = v
	case "context.request_id":
		ev.Context.RequestID = v
	case "context.auth_method":
		ev.Context.AuthMethod = v
	case "context.device_id":
		ev.Context.DeviceID = v
	case "context.geo.country":
		geo().Country = v
	case "context.geo.region":
		geo().Region = v
	case "context.geo.city":
		geo().City = v
	case "context.geo.latitude", "context.geo.longitude":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", importer.Text(v, 40))
		}
		if path == "context.geo.latitude" {
			geo().Latitude = &f
		} else {
			geo().Longitude = &f
		}
	default:
		key := strings.TrimPrefix(path, "metadata.")
		ev.Metadata[key] = importer.Text(v, 256)
	}
	return nil
}
