// Package hatemplate reads the small part of Home Assistant's Jinja value templates
// that discovery configs use to pick a value out of a state payload:
// {{ value }}, {{ value_json.a.b }}, {{ value_json['a'] }}, optionally followed by
// the filters float, int, round(n), lower, upper, trim, string and is_defined.
// Anything else is refused by Parse with the reason, so that a proposal can say why
// it cannot be read.
package hatemplate

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// Template is the small part of Home Assistant's Jinja hearth understands:
// {{ value }}, {{ value_json.a.b }}, {{ value_json['a'] }}, optionally followed by
// the filters float, int, round(n), lower, upper, trim, string, is_defined.
type Template struct {
	Path    []string // value_json's keys; nil: the raw payload
	filters []filter
}

type filter struct {
	name string
	arg  int
}

// maxPath bounds the keys of value_json.a.b.c.
const maxPath = 8

// Parse reads a value_template; "" is the raw payload.
func Parse(s string) (Template, error) {
	var t Template
	s = strings.TrimSpace(s)
	if s == "" {
		return t, nil
	}
	inner, ok := strings.CutPrefix(s, "{{")
	if ok {
		inner, ok = strings.CutSuffix(inner, "}}")
	}
	if !ok || strings.Contains(inner, "{{") || strings.Contains(inner, "}}") || strings.Contains(inner, "{%") {
		return t, fmt.Errorf("%q is not a single {{ expression }}", conv.Truncate(s, 64))
	}
	parts := strings.Split(inner, "|")
	expr := strings.TrimSpace(parts[0])
	switch {
	case expr == "value":
	case strings.HasPrefix(expr, "value_json"):
		rest := expr[len("value_json"):]
		for rest != "" {
			if len(t.Path) == maxPath {
				return t, fmt.Errorf("%q: path deeper than %d", conv.Truncate(s, 64), maxPath)
			}
			switch rest[0] {
			case '.':
				n := 1
				for n < len(rest) && (rest[n] == '_' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= '0' && rest[n] <= '9') {
					n++
				}
				if n == 1 {
					return t, fmt.Errorf("%q: empty name after '.'", conv.Truncate(s, 64))
				}
				t.Path = append(t.Path, rest[1:n])
				rest = rest[n:]
			case '[':
				if len(rest) < 4 || (rest[1] != '\'' && rest[1] != '"') {
					return t, fmt.Errorf("%q: only value_json['key'] indexing is supported", conv.Truncate(s, 64))
				}
				end := strings.IndexByte(rest[2:], rest[1])
				if end < 0 || 2+end+1 >= len(rest) || rest[2+end+1] != ']' || end == 0 {
					return t, fmt.Errorf("%q: unterminated ['key']", conv.Truncate(s, 64))
				}
				t.Path = append(t.Path, rest[2:2+end])
				rest = rest[2+end+2:]
			default:
				return t, fmt.Errorf("%q: unsupported expression", conv.Truncate(s, 64))
			}
		}
		if len(t.Path) == 0 {
			return t, fmt.Errorf("%q: value_json without a key", conv.Truncate(s, 64))
		}
	default:
		return t, fmt.Errorf("%q: only value and value_json.<key> are supported", conv.Truncate(s, 64))
	}
	if len(parts) > 5 {
		return t, fmt.Errorf("%q: too many filters", conv.Truncate(s, 64))
	}
	for _, f := range parts[1:] {
		f = strings.TrimSpace(f)
		name, arg, hasArg := strings.Cut(f, "(")
		name = strings.TrimSpace(name)
		if hasArg {
			a, ok := strings.CutSuffix(strings.TrimSpace(arg), ")")
			if !ok {
				return t, fmt.Errorf("filter %q: unbalanced (", conv.Truncate(f, 32))
			}
			arg = strings.TrimSpace(a)
		}
		hf := filter{name: name}
		switch name {
		case "float", "int": // a default argument is ignored: a bad value is malformed
		case "round":
			if arg != "" {
				n, err := strconv.Atoi(arg)
				if err != nil || n < 0 || n > 10 {
					return t, fmt.Errorf("filter %q: want round(0..10)", conv.Truncate(f, 32))
				}
				hf.arg = n
			}
		case "lower", "upper", "trim", "string", "is_defined":
			if hasArg {
				return t, fmt.Errorf("filter %q takes no argument", name)
			}
		default:
			return t, fmt.Errorf("filter %q is not supported", conv.Truncate(name, 32))
		}
		t.filters = append(t.filters, hf)
	}
	return t, nil
}

// Extract applies the template to a payload. found is false when value_json has no
// such key. obj caches the payload's top-level object across entities.
func (t Template) Extract(payload []byte, obj *map[string]json.RawMessage) (v conv.Scalar, found bool, err error) {
	if t.Path == nil {
		v = conv.Scalar{Type: 's', Str: strings.TrimSpace(string(payload))}
	} else {
		if *obj == nil {
			o, err := conv.DecodeObject(payload)
			if err != nil {
				return v, false, fmt.Errorf("value_json: %v", err)
			}
			*obj = o
		}
		cur := *obj
		var raw json.RawMessage
		for i, k := range t.Path {
			r, ok := cur[k]
			if !ok {
				return v, false, nil
			}
			raw = r
			if i < len(t.Path)-1 {
				if s, _ := conv.JSONScalar(raw); s.Type != 'o' {
					return v, false, nil
				}
				if cur, err = conv.DecodeObject(raw); err != nil {
					return v, false, nil // an array where an object was expected: undefined
				}
			}
		}
		if v, err = conv.JSONScalar(raw); err != nil {
			return v, false, err
		}
	}
	for _, f := range t.filters {
		if v, err = f.apply(v); err != nil {
			return v, false, err
		}
	}
	return v, true, nil
}

func (f filter) apply(v conv.Scalar) (conv.Scalar, error) {
	switch f.name {
	case "float", "int", "round":
		var x float64
		switch v.Type {
		case 'n':
			x = v.Num
		case 'b':
			if v.Bool {
				x = 1
			}
		case 's':
			n, err := conv.StrictFloat(strings.TrimSpace(v.Str))
			if err != nil {
				if Unknown(v.Str) {
					return conv.Scalar{Type: 'z'}, nil
				}
				return v, fmt.Errorf("%s: %v", f.name, err)
			}
			x = n
		case 'z':
			return v, nil
		default:
			return v, fmt.Errorf("%s of %s", f.name, v)
		}
		switch f.name {
		case "int":
			x = math.Trunc(x)
		case "round":
			p := math.Pow(10, float64(f.arg))
			x = math.Round(x*p) / p
		}
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return v, fmt.Errorf("%s: out of range", f.name)
		}
		return conv.Scalar{Type: 'n', Num: x}, nil
	case "lower":
		if v.Type == 's' {
			v.Str = strings.ToLower(v.Str)
		}
	case "upper":
		if v.Type == 's' {
			v.Str = strings.ToUpper(v.Str)
		}
	case "trim":
		if v.Type == 's' {
			v.Str = strings.TrimSpace(v.Str)
		}
	}
	return v, nil
}

// Unknown reports the states Home Assistant uses for "no value".
func Unknown(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "unknown", "unavailable", "none", "null":
		return true
	}
	return false
}
