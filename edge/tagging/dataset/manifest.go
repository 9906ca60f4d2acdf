package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// Manifest describes one recorded home: where its data is, how to read it, and how
// its sensors map to hearth's devices (the `hearth replay` mapping, inline).
type Manifest struct {
	Name      string   `yaml:"name"`      // short name for tables, e.g. aras-houseA
	Title     string   `yaml:"title"`     // one line for people
	Data      string   `yaml:"data"`      // the data, relative to the manifest's directory
	Converter string   `yaml:"converter"` // a key of Converters()
	Start     string   `yaml:"start"`     // first date (YYYY-MM-DD) of numbered days
	Columns   []string `yaml:"columns"`   // entity ids of the sensor columns, in order

	replay.Mapping `yaml:",inline"`

	// Path is the manifest file; DataPath the data, resolved.
	Path     string `yaml:"-"`
	DataPath string `yaml:"-"`
}

// LoadManifest reads and checks a manifest; errors name the file and line.
func LoadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseManifest(b, path)
}

// ParseManifest decodes a manifest strictly (an unknown key is an error) and checks
// it: a known converter, a start date when given, the mapping (as replay checks it).
// name is the manifest's path: the data is resolved against its directory.
func ParseManifest(src []byte, name string) (*Manifest, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	m.Path = name
	line := func(key string) int { return keyLine(&root, key) }
	var errs []error
	if m.Name == "" {
		errs = append(errs, fmt.Errorf("%s: name: required", name))
	}
	if m.Data == "" {
		errs = append(errs, fmt.Errorf("%s: data: required (the dataset, relative to this file)", name))
	}
	m.DataPath = filepath.Join(filepath.Dir(name), m.Data)
	if _, ok := Converters()[m.Converter]; !ok {
		var have []string
		for k := range Converters() {
			have = append(have, k)
		}
		sort.Strings(have)
		errs = append(errs, fmt.Errorf("%s:%d: converter: %q is not one of %v", name, line("converter"), m.Converter, have))
	}
	if m.Start != "" {
		if _, err := time.Parse(time.DateOnly, m.Start); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: start: %q is not a date (YYYY-MM-DD)", name, line("start"), m.Start))
		}
	}
	if err := m.Mapping.Check(name, &root); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

func keyLine(n *yaml.Node, key string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	return 0
}

// Source resolves the manifest's data for its converter.
func (m *Manifest) Source() Source {
	src := Source{Path: m.DataPath, Location: m.Location, Columns: m.Columns}
	if t, err := time.ParseInLocation(time.DateOnly, m.Start, m.Location); err == nil {
		src.Start = t
	}
	return src
}

// Convert returns the manifest's converter.
func (m *Manifest) Convert() Converter { return Converters()[m.Converter] }

// Only returns a copy of the manifest whose mapping keeps only the entities of the
// given kinds (the fridge-only evaluation: every other sensor removed).
func (m *Manifest) Only(kinds ...device.Kind) *Manifest {
	c := *m
	c.Entities = map[string]replay.Entity{}
	for id, e := range m.Entities {
		for _, k := range kinds {
			if e.Kind == k {
				c.Entities[id] = e
			}
		}
	}
	return &c
}

// Manifests loads every *.yaml manifest in dir, by file name.
func Manifests(dir string) ([]*Manifest, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*Manifest
	var errs []error
	for _, p := range paths {
		m, err := LoadManifest(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("%s: no home manifests (*.yaml)", dir)
	}
	return out, errors.Join(errs...)
}

// ReplayMapping is the `hearth replay` mapping (YAML) of the manifest's home.
func (m *Manifest) ReplayMapping() ([]byte, error) {
	type file struct {
		Timezone string                   `yaml:"timezone"`
		Entities map[string]replay.Entity `yaml:"entities"`
	}
	b, err := yaml.Marshal(file{m.Timezone, m.Entities})
	if err != nil {
		return nil, err
	}
	return append([]byte("# hearth replay mapping of "+m.Name+", from "+m.Path+"\n"), b...), nil
}
