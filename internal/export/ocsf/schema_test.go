package ocsf_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/internal/export/ocsf"
)

// schema is the extraction of the published OCSF 1.2.0 schema export in
// testdata (see testdata/README.md): the classes the mappers emit and
// every object they reach.
type schema struct {
	Version string                `json:"version"`
	Classes map[string]definition `json:"classes"`
	Objects map[string]definition `json:"objects"`
	byUID   map[int]definition
}

type definition struct {
	Caption    string               `json:"caption"`
	UID        int                  `json:"uid"`
	AtLeastOne []string             `json:"at_least_one"`
	JustOne    []string             `json:"just_one"`
	Attributes map[string]attribute `json:"attributes"`
}

type attribute struct {
	Type        string            `json:"type"`
	ObjectType  string            `json:"object_type"`
	IsArray     bool              `json:"is_array"`
	Requirement string            `json:"requirement"`
	Profile     string            `json:"profile"`
	Sibling     string            `json:"sibling"`
	Enum        map[string]string `json:"enum"`
}

func loadSchema(path string) (*schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.byUID = map[int]definition{}
	for _, c := range s.Classes {
		s.byUID[c.UID] = c
	}
	return &s, nil
}

var checkSchema *schema

// checkObject validates o, after a JSON round trip (what a reader of the
// export sees), against its class in the schema: every attribute path,
// recursively through objects, is an attribute of its class or object;
// arrays are where the schema has them; scalars have the attribute's type;
// every enumerated value (class_uid, category_uid, activity_id, type_uid,
// status_id, severity_id, auth_protocol_id, analytic type_id…) is one of
// the enumeration's, with its caption in the sibling attribute (any label
// for 99 Other, except type_name, which is always the enumeration's);
// required attributes (outside profiles Vigil does not claim) and each
// object's at_least_one / just_one constraints hold; metadata.version is
// the schema's version. It reports every problem, sorted.
//
// allowMissing names top-level required attributes the caller knows are
// absent: API Activity's src_endpoint for an event recorded without a
// client address (docs/exports.md says so).
func checkObject(o ocsf.Object, allowMissing ...string) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	uid, err := strconv.Atoi(fmt.Sprint(doc["class_uid"]))
	if err != nil {
		return fmt.Errorf("class_uid %v", doc["class_uid"])
	}
	cls, ok := checkSchema.byUID[uid]
	if !ok {
		return fmt.Errorf("class_uid %d is not a class the schema extraction holds", uid)
	}
	var problems []string
	checkSchema.object("", doc, cls, &problems)
	problems = slices.DeleteFunc(problems, func(p string) bool {
		for _, a := range allowMissing {
			if p == a+" is required" {
				return true
			}
		}
		return false
	})
	if md, _ := doc["metadata"].(map[string]any); md == nil || md["version"] != checkSchema.Version {
		problems = append(problems, fmt.Sprintf("metadata.version is not %s", checkSchema.Version))
	}
	if doc["type_uid"] != nil && doc["activity_id"] != nil {
		a, _ := strconv.Atoi(fmt.Sprint(doc["activity_id"]))
		if fmt.Sprint(doc["type_uid"]) != strconv.Itoa(uid*100+a) {
			problems = append(problems, fmt.Sprintf("type_uid %v is not class_uid*100+activity_id", doc["type_uid"]))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func (s *schema) object(path string, v map[string]any, def definition, problems *[]string) {
	add := func(format string, args ...any) { *problems = append(*problems, fmt.Sprintf(format, args...)) }
	for k, val := range v {
		p := path + k
		a, ok := def.Attributes[k]
		if !ok {
			add("%s is not an attribute", p)
			continue
		}
		items := []any{val}
		if arr, isArr := val.([]any); isArr != a.IsArray {
			add("%s: array %v, the schema says %v", p, isArr, a.IsArray)
			continue
		} else if isArr {
			items = arr
		}
		for _, x := range items {
			if a.Type == "object_t" {
				m, ok := x.(map[string]any)
				switch {
				case !ok:
					add("%s is not an object", p)
				case a.ObjectType == "object":
					// free-form (unmapped)
				default:
					od, ok := s.Objects[a.ObjectType]
					if !ok {
						add("%s: object %s is not in the extraction", p, a.ObjectType)
						continue
					}
					s.object(p+".", m, od, problems)
				}
				continue
			}
			if err := checkType(a.Type, x); err != nil {
				add("%s (%s): %v", p, a.Type, err)
			}
			if a.Enum == nil {
				continue
			}
			caption, ok := a.Enum[fmt.Sprint(x)]
			if !ok {
				add("%s %v is not a value of the enumeration", p, x)
				continue
			}
			if a.Sibling == "" {
				continue
			}
			got, _ := v[a.Sibling].(string)
			other := fmt.Sprint(x) == "99"
			switch {
			case got == "":
				add("%s %v without %s", p, x, path+a.Sibling)
			case other && k != "type_uid":
			case got != caption:
				add("%s %q, want %q for %s %v", path+a.Sibling, got, caption, p, x)
			}
		}
	}
	for k, a := range def.Attributes {
		if a.Requirement == "required" && a.Profile == "" && (v[k] == nil || v[k] == "") {
			add("%s%s is required", path, k)
		}
	}
	if n := present(v, def.AtLeastOne); len(def.AtLeastOne) > 0 && n == 0 {
		add("%s needs at least one of %s", strings.TrimSuffix(path, "."), strings.Join(def.AtLeastOne, ", "))
	}
	if n := present(v, def.JustOne); len(def.JustOne) > 0 && n != 1 {
		add("%s needs exactly one of %s", strings.TrimSuffix(path, "."), strings.Join(def.JustOne, ", "))
	}
}

func present(v map[string]any, names []string) int {
	n := 0
	for _, k := range names {
		if v[k] != nil && v[k] != "" {
			n++
		}
	}
	return n
}

// checkType checks a scalar against an OCSF data type.
func checkType(typ string, x any) error {
	switch typ {
	case "integer_t", "long_t", "timestamp_t", "port_t":
		n, ok := x.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return fmt.Errorf("%v is not an integer", x)
		}
	case "float_t":
		n, ok := x.(json.Number)
		if _, err := n.Float64(); !ok || err != nil {
			return fmt.Errorf("%v is not a number", x)
		}
	case "boolean_t":
		if _, ok := x.(bool); !ok {
			return fmt.Errorf("%v is not a boolean", x)
		}
	case "json_t":
	case "ip_t":
		s, _ := x.(string)
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("%v is not an IP address", x)
		}
	default: // string_t and its refinements (email_t, url_t, …)
		if _, ok := x.(string); !ok {
			return fmt.Errorf("%v is not a string", x)
		}
	}
	return nil
}
