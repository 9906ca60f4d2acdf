package hatemplate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		tpl     string
		path    []string
		errPart string
	}{
		{"", nil, ""},
		{"{{ value }}", nil, ""},
		{"{{ value_json.temperature}}", []string{"temperature"}, ""},
		{"{{value_json['temp']}}", []string{"temp"}, ""},
		{`{{ value_json["a b"] }}`, []string{"a b"}, ""},
		{"{{ value_json.update.state }}", []string{"update", "state"}, ""},
		{"{{ value_json.t | float }}", []string{"t"}, ""},
		{"{{ value_json.t | float(0) | round(2) }}", []string{"t"}, ""},
		{"{{ value_json.t | int }}", []string{"t"}, ""},
		{"{{ value_json.t | is_defined }}", []string{"t"}, ""},
		{"{{ value_json.t | replace('a','b') }}", nil, "not supported"},
		{"{% if value_json.x %}ON{% endif %}", nil, "single"},
		{"on: {{ value }}", nil, "single"},
		{"{{ value_json }}", nil, "without a key"},
		{"{{ value_json[0] }}", nil, "['key']"},
		{"{{ value_json.['a'] }}", nil, "empty name"},
		{"{{ value_json['abc }}", nil, "unterminated"},
		{"{{ value_json.a.b.c.d.e.f.g.h.i }}", nil, "deeper"},
		{"{{ states('sensor.x') }}", nil, "only value"},
		{"{{ value_json.t | round(x) }}", nil, "round"},
		{"{{ value_json.t | float(0 }}", nil, "unbalanced"},
		{"{{ value_json.t | lower(1) }}", nil, "no argument"},
		{"{{ value_json.a }} {{ value_json.b }}", nil, "single"},
	} {
		got, err := Parse(tc.tpl)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q: error %v, want %q", tc.tpl, err, tc.errPart)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got.Path, tc.path) {
			t.Errorf("%q = %v %v, want %v", tc.tpl, got.Path, err, tc.path)
		}
	}
}

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		tpl, payload string
		want         conv.Scalar
		found        bool
		errPart      string
	}{
		{"", " 21.5 ", conv.Scalar{Type: 's', Str: "21.5"}, true, ""},
		{"{{ value }}", "ON", conv.Scalar{Type: 's', Str: "ON"}, true, ""},
		{"{{ value_json.contact }}", `{"contact":false}`, conv.Scalar{Type: 'b'}, true, ""},
		{"{{ value_json.update.state }}", `{"update":{"state":"idle"}}`, conv.Scalar{Type: 's', Str: "idle"}, true, ""},
		{"{{ value_json['temp'] | float }}", `{"temp":"4.25"}`, conv.Scalar{Type: 'n', Num: 4.25}, true, ""},
		{"{{ value_json.t | round(1) }}", `{"t":21.46}`, conv.Scalar{Type: 'n', Num: 21.5}, true, ""},
		{"{{ value_json.t | int }}", `{"t":-3.9}`, conv.Scalar{Type: 'n', Num: -3}, true, ""},
		{"{{ value_json.t | float }}", `{"t":true}`, conv.Scalar{Type: 'n', Num: 1}, true, ""},
		{"{{ value | lower | trim }}", " OPEN ", conv.Scalar{Type: 's', Str: "open"}, true, ""},
		{"{{ value | upper }}", "on", conv.Scalar{Type: 's', Str: "ON"}, true, ""},
		// "unknown" and friends become null through a number filter: no value, no error.
		{"{{ value_json.t | float }}", `{"t":"unavailable"}`, conv.Scalar{Type: 'z'}, true, ""},
		{"{{ value_json.t | float }}", `{"t":null}`, conv.Scalar{Type: 'z'}, true, ""},
		// A key the payload lacks is undefined: not found, not an error.
		{"{{ value_json.missing }}", `{"t":1}`, conv.Scalar{}, false, ""},
		{"{{ value_json.a.b }}", `{"a":[1,2]}`, conv.Scalar{}, false, ""},
		{"{{ value_json.a.b }}", `{"a":5}`, conv.Scalar{}, false, ""},
		{"{{ value_json.t }}", `not json`, conv.Scalar{}, false, "value_json"},
		{"{{ value_json.t | float }}", `{"t":"warm"}`, conv.Scalar{}, false, "float"},
		{"{{ value_json.t | float }}", `{"t":{"x":1}}`, conv.Scalar{}, false, "float of"},
		{"{{ value_json.t | round(10) }}", `{"t":1e308}`, conv.Scalar{}, false, "out of range"},
	} {
		tpl, err := Parse(tc.tpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tpl, err)
		}
		var obj map[string]json.RawMessage
		got, found, err := tpl.Extract([]byte(tc.payload), &obj)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q on %s: error %v, want one mentioning %q", tc.tpl, tc.payload, err, tc.errPart)
			}
			continue
		}
		if err != nil || found != tc.found || (found && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%q on %s = %+v, %v, %v; want %+v, %v", tc.tpl, tc.payload, got, found, err, tc.want, tc.found)
		}
	}
}

// Entities on one topic share the payload's decoded object: it is parsed once.
func TestExtractSharesTheObject(t *testing.T) {
	a, _ := Parse("{{ value_json.a }}")
	b, _ := Parse("{{ value_json.b }}")
	var obj map[string]json.RawMessage
	if _, _, err := a.Extract([]byte(`{"a":1,"b":2}`), &obj); err != nil || obj == nil {
		t.Fatalf("first extract: %v, object %v", err, obj)
	}
	// The payload passed the second time is not read again: the cached object answers.
	v, found, err := b.Extract([]byte(`garbage`), &obj)
	if err != nil || !found || v.Num != 2 {
		t.Errorf("second extract = %+v %v %v, want 2 from the cached object", v, found, err)
	}
}

func TestUnknown(t *testing.T) {
	for s, want := range map[string]bool{"unknown": true, " Unavailable ": true, "None": true, "": true, "null": true, "0": false, "off": false} {
		if got := Unknown(s); got != want {
			t.Errorf("Unknown(%q) = %v, want %v", s, got, want)
		}
	}
}
