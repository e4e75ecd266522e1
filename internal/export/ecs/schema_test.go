package ecs_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/internal/export/ecs"
)

// ecsSchema is ECS 9.4.0 as published in @elastic/ecs (testdata/README.md):
// each field's type, and the allowed categorisation values.
type ecsSchema struct {
	types   map[string]string
	allowed map[string]map[string][]string // field → value → expected event types (for a category)
}

var loadSchema = sync.OnceValues(func() (*ecsSchema, error) {
	s := &ecsSchema{types: map[string]string{}, allowed: map[string]map[string][]string{}}
	err := readRows("testdata/ecs-9.4.0-fields.tsv", func(r []string) {
		s.types[r[0]] = r[1]
	})
	if err != nil {
		return nil, err
	}
	err = readRows("testdata/ecs-9.4.0-allowed.tsv", func(r []string) {
		if s.allowed[r[0]] == nil {
			s.allowed[r[0]] = map[string][]string{}
		}
		s.allowed[r[0]][r[1]] = strings.Split(r[2], ",")
	})
	return s, err
})

func readRows(path string, row func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r := strings.Split(sc.Text(), "\t")
		if len(r) < 2 {
			return fmt.Errorf("%s: %q has %d columns", path, sc.Text(), len(r))
		}
		for len(r) < 3 {
			r = append(r, "")
		}
		row(r)
	}
	return sc.Err()
}

// checkDoc encodes a document as the export does and checks it against
// ECS: every path outside the vigil namespace is an ECS field (or lies in
// an object, flattened or geo_point field), every value has the field's
// type (an array holds values of it), event.kind, category, type and
// outcome are allowed values (each type one its category expects), and
// the custom namespace is only vigil.finding or vigil.incident. It returns
// the decoded document.
func checkDoc(d ecs.Object) (map[string]any, error) {
	s, err := loadSchema()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if _, ok := s.types[ecs.Namespace]; ok {
		return nil, fmt.Errorf("the custom namespace %q is an ECS field", ecs.Namespace)
	}
	leaves := map[string]any{}
	walk("", doc, leaves)
	var problems []string
	for p, v := range leaves {
		if strings.HasPrefix(p, ecs.Namespace+".") {
			if !strings.HasPrefix(p, ecs.Namespace+".finding.") && !strings.HasPrefix(p, ecs.Namespace+".incident.") {
				problems = append(problems, p+" is outside vigil.finding and vigil.incident")
			}
			continue
		}
		typ, ok := s.types[p]
		if !ok {
			if !inside(s.types, p) {
				problems = append(problems, p+" is not an ECS field")
			}
			continue
		}
		if err := checkType(typ, v); err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s): %v", p, typ, err))
		}
	}
	e, _ := doc["event"].(map[string]any)
	if e == nil {
		return nil, fmt.Errorf("no event object")
	}
	if kind, _ := e["kind"].(string); s.allowed["event.kind"][kind] == nil {
		problems = append(problems, fmt.Sprintf("event.kind %v", e["kind"]))
	}
	if o, ok := e["outcome"]; ok {
		if _, ok := s.allowed["event.outcome"][fmt.Sprint(o)]; !ok {
			problems = append(problems, fmt.Sprintf("event.outcome %v", o))
		}
	}
	cats, _ := e["category"].([]any)
	types, _ := e["type"].([]any)
	for _, c := range cats {
		expected, ok := s.allowed["event.category"][fmt.Sprint(c)]
		if !ok {
			problems = append(problems, fmt.Sprintf("event.category %v", c))
		}
		for _, ty := range types {
			if _, ok := s.allowed["event.type"][fmt.Sprint(ty)]; !ok || !slices.Contains(expected, fmt.Sprint(ty)) {
				problems = append(problems, fmt.Sprintf("event.type %v with category %v", ty, c))
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return doc, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return doc, nil
}

// inside: the path lies inside an object, flattened or geo_point field
// (labels.*, source.geo.location.lat).
func inside(types map[string]string, p string) bool {
	for i := strings.LastIndexByte(p, '.'); i > 0; i = strings.LastIndexByte(p[:i], '.') {
		switch types[p[:i]] {
		case "object", "flattened", "geo_point":
			return true
		}
	}
	return false
}

// checkType checks a JSON value (or each element of an array) against an
// ECS field type.
func checkType(typ string, v any) error {
	if a, ok := v.([]any); ok {
		for _, x := range a {
			if err := checkType(typ, x); err != nil {
				return err
			}
		}
		return nil
	}
	switch typ {
	case "keyword", "wildcard", "constant_keyword", "match_only_text":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%v is not a string", v)
		}
	case "ip":
		s, _ := v.(string)
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("%v is not an IP address", v)
		}
	case "date":
		s, _ := v.(string)
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("%v is not an RFC 3339 date", v)
		}
	case "long", "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return fmt.Errorf("%v is not an integer", v)
		}
	case "float", "double", "scaled_float":
		n, ok := v.(json.Number)
		if _, err := n.Float64(); !ok || err != nil {
			return fmt.Errorf("%v is not a number", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%v is not a boolean", v)
		}
	}
	return nil
}

// walk records the leaf paths of v. An array's objects share its path;
// an array of scalars is one leaf.
func walk(path string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(p, c, out)
		}
	case []any:
		scalar := true
		for _, c := range x {
			if _, ok := c.(map[string]any); ok {
				scalar = false
				walk(path, c, out)
			}
		}
		if scalar {
			out[path] = x
		}
	default:
		out[path] = v
	}
}
