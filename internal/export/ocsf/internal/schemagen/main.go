// Command schemagen extracts from the published OCSF 1.2.0 schema export
// (the JSON schema.ocsf.io serves at /export/schema) the four classes
// Vigil's OCSF mapping emits and every object they reach, into
// testdata/ocsf-1.2.0-schema.json, which the ocsf tests validate against.
//
// The export comes from the Go module github.com/valllabh/ocsf-schema-golang
// v1.0.3 (schema/v1.2-schema.json, Apache-2.0), fetched through the Go
// module proxy with `go mod download` in a scratch directory, so the
// module never becomes a dependency of Vigil; its checksum is verified
// against the one pinned here. Run it from internal/export/ocsf with
// `go generate`, or give -schema a copy of the file.
//
// The extraction keeps, for each attribute, what the tests check: its
// type, object type, whether it is an array, its requirement and profile,
// its caption sibling and its enumeration (value → caption); and, for each
// object, its at_least_one / just_one constraints. Descriptions are left
// out. Nothing is edited: the values are the export's.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
)

const (
	module     = "github.com/valllabh/ocsf-schema-golang"
	version    = "v1.0.3"
	moduleSum  = "h1:eR8k/3jP/OOqB8LRCtdJ4U+vlgd/gk5y3KMXoodrsrw="
	schemaFile = "schema/v1.2-schema.json"
)

// classes are the OCSF classes the mapping emits.
var classes = []string{"authentication", "account_change", "api_activity", "detection_finding"}

type attribute struct {
	Caption     string                              `json:"caption"`
	Type        string                              `json:"type"`
	ObjectType  string                              `json:"object_type"`
	IsArray     bool                                `json:"is_array"`
	Requirement string                              `json:"requirement"`
	Profile     string                              `json:"profile"`
	Sibling     string                              `json:"sibling"`
	Enum        map[string]struct{ Caption string } `json:"enum"`
}

type constraints struct {
	AtLeastOne []string `json:"at_least_one"`
	JustOne    []string `json:"just_one"`
}

type definition struct {
	Name        string               `json:"name"`
	Caption     string               `json:"caption"`
	Category    string               `json:"category"`
	Extends     string               `json:"extends"`
	Constraints *constraints         `json:"constraints"`
	Attributes  map[string]attribute `json:"attributes"`
}

type export struct {
	Version string                `json:"version"`
	Classes map[string]definition `json:"classes"`
	Objects map[string]definition `json:"objects"`
}

// Output attribute: the enumeration is value → caption.
type outAttribute struct {
	Caption     string            `json:"caption"`
	Type        string            `json:"type"`
	ObjectType  string            `json:"object_type,omitempty"`
	IsArray     bool              `json:"is_array,omitempty"`
	Requirement string            `json:"requirement,omitempty"`
	Profile     string            `json:"profile,omitempty"`
	Sibling     string            `json:"sibling,omitempty"`
	Enum        map[string]string `json:"enum,omitempty"`
}

type outDefinition struct {
	Caption    string                  `json:"caption"`
	UID        int                     `json:"uid,omitempty"`
	AtLeastOne []string                `json:"at_least_one,omitempty"`
	JustOne    []string                `json:"just_one,omitempty"`
	Attributes map[string]outAttribute `json:"attributes"`
}

type output struct {
	Source  map[string]string        `json:"source"`
	Version string                   `json:"version"`
	Classes map[string]outDefinition `json:"classes"`
	Objects map[string]outDefinition `json:"objects"`
}

func main() {
	schema := flag.String("schema", "", "path of v1.2-schema.json (default: fetch "+module+"@"+version+" with go mod download)")
	out := flag.String("out", "testdata/ocsf-1.2.0-schema.json", "extraction to write")
	license := flag.String("license", "testdata/LICENSE", "where to copy the module's LICENSE (only when fetched)")
	flag.Parse()
	if err := run(*schema, *out, *license); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(schema, out, license string) error {
	if schema == "" {
		dir, err := download()
		if err != nil {
			return err
		}
		schema = filepath.Join(dir, filepath.FromSlash(schemaFile))
		lic, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(license, lic, 0o644); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	var ex export
	if err := json.Unmarshal(b, &ex); err != nil {
		return fmt.Errorf("%s: %w", schema, err)
	}
	o, err := extract(&ex)
	if err != nil {
		return err
	}
	o.Source = map[string]string{"module": module, "version": version, "sum": moduleSum, "file": schemaFile}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(o); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// download fetches the module into the module cache from a scratch
// directory (so no go.mod is touched) and checks its checksum.
func download() (string, error) {
	tmp, err := os.MkdirTemp("", "schemagen")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	var info struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(b, &info); err != nil {
		return "", err
	}
	switch {
	case info.Error != "":
		return "", errors.New(info.Error)
	case info.Sum != moduleSum:
		return "", fmt.Errorf("%s@%s has checksum %s, want %s", module, version, info.Sum, moduleSum)
	}
	return info.Dir, nil
}

func extract(ex *export) (*output, error) {
	if ex.Version != "1.2.0" {
		return nil, fmt.Errorf("the export is OCSF %s, want 1.2.0", ex.Version)
	}
	o := &output{Version: ex.Version, Classes: map[string]outDefinition{}, Objects: map[string]outDefinition{}}
	var todo []string
	reach := func(d definition) {
		for _, a := range d.Attributes {
			if a.ObjectType != "" {
				todo = append(todo, a.ObjectType)
			}
		}
	}
	for _, name := range classes {
		d, ok := ex.Classes[name]
		if !ok {
			return nil, fmt.Errorf("no class %s", name)
		}
		od := convert(d)
		// The class's uid is the one value of its class_uid enumeration.
		for v := range d.Attributes["class_uid"].Enum {
			od.UID, _ = strconv.Atoi(v)
		}
		o.Classes[name] = od
		reach(d)
	}
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, done := o.Objects[name]; done {
			continue
		}
		d, ok := ex.Objects[name]
		if !ok {
			return nil, fmt.Errorf("no object %s", name)
		}
		o.Objects[name] = convert(d)
		reach(d)
	}
	return o, nil
}

func convert(d definition) outDefinition {
	od := outDefinition{Caption: d.Caption, Attributes: make(map[string]outAttribute, len(d.Attributes))}
	if c := d.Constraints; c != nil {
		od.AtLeastOne, od.JustOne = slices.Clone(c.AtLeastOne), slices.Clone(c.JustOne)
	}
	for k, a := range d.Attributes {
		oa := outAttribute{Caption: a.Caption, Type: a.Type, ObjectType: a.ObjectType, IsArray: a.IsArray,
			Requirement: a.Requirement, Profile: a.Profile, Sibling: a.Sibling}
		if len(a.Enum) > 0 {
			oa.Enum = make(map[string]string, len(a.Enum))
			for v, e := range a.Enum {
				oa.Enum[v] = e.Caption
			}
		}
		od.Attributes[k] = oa
	}
	return od
}
