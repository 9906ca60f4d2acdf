package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree into a Go value itself, field by field, so that one
// bad value does not hide the others: every wrong type, unknown key and duplicate key
// is recorded with its dotted key and line, and decoding goes on with the next key (the
// field that failed keeps its default). yaml.v3's own Decode stops at the first error
// of a kind and truncates a float into an int field (max_clients: 12.5 became 12).
//
// The rules, for every type a configuration uses:
//
//   - integers: an integer literal only (12, 0x1f, 1_000); 12.5 and 1e3 are refused,
//     so no value is rounded and every integer has one spelling;
//   - floats: an integer or float literal, finite (.inf and .nan are refused);
//   - bools: true/false (and yes/no/on/off, as yaml.v3 reads them into a bool);
//   - strings: any scalar, as written (stop_bits: 2 is "2");
//   - structs and maps: a mapping; lists: a sequence;
//   - an empty value (key: or key: null) keeps the default;
//   - a type with its own UnmarshalYAML(*yaml.Node) (Duration) decodes itself; a
//     struct with the UnmarshalYAML(func(any) error) form (SerialPort: defaults per
//     list entry) is called with an unmarshal that walks on strictly, so use that form
//     for per-entry defaults.
type decoder struct {
	f      *File
	failed map[string]bool // keys whose value could not be decoded
}

// obsoleteUnmarshaler is yaml's UnmarshalYAML(func(any) error) form.
type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteType    = reflect.TypeFor[obsoleteUnmarshaler]()
)

func (d *decoder) fail(key string, n *yaml.Node, format string, a ...any) {
	d.failed[key] = true
	d.f.Errors = append(d.f.Errors, Error{File: d.f.Name, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, a...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names what a node holds, for messages: 12.5, "lots", a list, a mapping.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// decode sets v (addressable) from n; key is v's dotted path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // keeps the default
	}
	if v.Kind() != reflect.Pointer && reflect.PointerTo(v.Type()).Implements(obsoleteType) && v.Kind() == reflect.Struct {
		u := v.Addr().Interface().(obsoleteUnmarshaler)
		if err := u.UnmarshalYAML(func(into any) error {
			d.decode(n, reflect.ValueOf(into).Elem(), key)
			return nil
		}); err != nil {
			d.fail(key, n, "%s", yamlMessage(err))
		}
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(key, n, "%s", yamlMessage(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), key)
	case reflect.Struct:
		d.decodeStruct(n, v, key)
	case reflect.Map:
		d.decodeMap(n, v, key)
	case reflect.Slice:
		d.decodeSlice(n, v, key)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.isInt(n, key) {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(key, n, "%s is out of range for this key", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.isInt(n, key) {
			return
		}
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowUint(u) {
			d.fail(key, n, "%s is out of range for this key (at least 0)", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			d.fail(key, n, "%s is not a number", describe(n))
			return
		}
		if math.IsInf(f, 0) || math.IsNaN(f) || v.OverflowFloat(f) {
			d.fail(key, n, "%s is not a finite number", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.fail(key, n, "%s is not true or false", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(key, n, "%s is not a string", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(key, n, "%s", yamlMessage(err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.fail(key, n, "cannot decode into %s (a hearth bug: the config type has no decoding rule)", v.Type())
	}
}

var digitsRE = regexp.MustCompile(`^[-+]?[0-9_]+$`)

// isInt reports whether n is an integer literal, and records the problem if not.
func (d *decoder) isInt(n *yaml.Node, key string) bool {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		return true
	case n.Kind == yaml.ScalarNode && digitsRE.MatchString(n.Value): // too long for yaml's int64
		d.fail(key, n, "%s is out of range for this key", n.Value)
	default:
		d.fail(key, n, "%s is not an integer", describe(n))
	}
	return false
}

// entries returns the key/value pairs of a mapping: those merged in by merge keys
// (<<) and its own, which override them.
func entries(n *yaml.Node) (merged, own [][2]*yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.ShortTag() != "!!merge" {
			own = append(own, [2]*yaml.Node{k, val})
			continue
		}
		if val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		srcs := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			srcs = val.Content
		}
		for _, s := range srcs {
			if s.Kind == yaml.AliasNode {
				s = s.Alias
			}
			if s.Kind == yaml.MappingNode {
				m, o := entries(s)
				merged = append(append(merged, m...), o...)
			}
		}
	}
	return merged, own
}

// pairs calls fn for each pair of mapping n, merged ones first, and records each
// key's line; a key given twice in n itself is an error.
func (d *decoder) pairs(n *yaml.Node, key string, fn func(k, val *yaml.Node, name string)) {
	merged, own := entries(n)
	for _, kv := range merged {
		fn(kv[0], kv[1], join(key, kv[0].Value))
	}
	seen := map[string]int{}
	for _, kv := range own {
		k, val := kv[0], kv[1]
		name := join(key, k.Value)
		if line, dup := seen[k.Value]; dup { // the first value stays
			d.f.Errors = append(d.f.Errors, Error{File: d.f.Name, Line: k.Line, Key: name,
				Msg: fmt.Sprintf("key %q is given twice (first on line %d)", k.Value, line)})
			continue
		}
		seen[k.Value] = k.Line
		d.f.lines[name] = k.Line
		fn(k, val, name)
	}
}

// fieldsOf maps the yaml keys of a struct type to field index paths (inline structs
// flattened), as yaml.v3 names them: the tag's name, else the lower-cased field name.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && sf.Type.Kind() == reflect.Struct {
			for k, idx := range fieldsOf(sf.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(key, n, "%s is not a mapping of keys", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	d.pairs(n, key, func(k, val *yaml.Node, name string) {
		idx, ok := fields[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			d.fail(name, k, "unknown key %q", k.Value)
			return
		}
		d.decode(val, v.FieldByIndex(idx), name)
	})
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.fail(key, n, "%s is not a mapping of keys", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	d.pairs(n, key, func(k, val *yaml.Node, name string) {
		mk := reflect.New(v.Type().Key()).Elem()
		d.decode(k, mk, name)
		me := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(mk); old.IsValid() {
			me.Set(old)
		}
		d.decode(val, me, name)
		v.SetMapIndex(mk, me)
	})
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(key, n, "%s is not a list", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		name := fmt.Sprintf("%s[%d]", key, i)
		d.f.lines[name] = c.Line
		d.decode(c, s.Index(i), name)
	}
	v.Set(s)
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlMessage is err's text without yaml's "yaml: " and "line N: " prefixes (the
// Error carries the line).
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return m[2]
	}
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msgs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			if m := yamlLineRE.FindStringSubmatch(e); m != nil {
				e = m[2]
			}
			msgs[i] = e
		}
		return strings.Join(msgs, "; ")
	}
	return msg
}
