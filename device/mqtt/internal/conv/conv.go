// Package conv holds what the MQTT adapters share to turn payload values into
// readings: a mapping with its effective property table (Binding), JSON and text values
// (Scalar), unit conversion to hearth's units, and the bounds every adapter checks a
// topic and a payload against. It is internal to device/mqtt: the adapters' behaviour
// is documented on each adapter.
package conv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
)

// Bounds of the topics and payloads the adapters parse.
const (
	// MaxTopicLen and MaxTopicLevels bound the topics the adapters parse; deeper or
	// longer topics are malformed.
	MaxTopicLen    = 1024
	MaxTopicLevels = 16
	// MaxPayload bounds the payloads the adapters parse.
	MaxPayload = 64 << 10
)

// Binding is a mapping with its effective property table (lower-case keys).
type Binding struct {
	mqtt.Mapping
	Table map[string]device.Signal // lower-case property → signal
	Props []string                 // sorted keys of Table
}

// NewBinding returns m with its property table: m.Signals in lower case, else the
// defaults of its kind (mqtt.DefaultSignals).
func NewBinding(m mqtt.Mapping) *Binding {
	b := &Binding{Mapping: m}
	if len(m.Signals) > 0 {
		b.Table = make(map[string]device.Signal, len(m.Signals))
		for p, s := range m.Signals {
			b.Table[strings.ToLower(p)] = s
		}
	} else {
		b.Table = mqtt.DefaultSignals(m.Kind)
	}
	b.Props = SortedKeys(b.Table)
	return b
}

// Signal resolves a lower-case property. A dotted property ("energy.power",
// "engine.temperature") matches its full name first, then its last part.
func (b *Binding) Signal(prop string) (device.Signal, bool) {
	if s, ok := b.Table[prop]; ok {
		return s, true
	}
	if i := strings.LastIndexByte(prop, '.'); i >= 0 {
		s, ok := b.Table[prop[i+1:]]
		return s, ok
	}
	return "", false
}

// Index validates the mappings of one source and indexes them by name.
func Index(ms mqtt.Mappings, source string) (map[string]*Binding, error) {
	var mine mqtt.Mappings
	for _, m := range ms {
		if m.Source == source {
			mine = append(mine, m)
		}
	}
	if err := mine.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt %s: %w", source, err)
	}
	idx := make(map[string]*Binding, len(mine))
	for _, m := range mine {
		idx[m.Name] = NewBinding(m)
	}
	return idx, nil
}

// CheckTopic rejects topics no adapter should parse: too long, too deep, with
// wildcards or NUL, or not UTF-8.
func CheckTopic(topic string) error {
	if len(topic) > MaxTopicLen {
		return fmt.Errorf("topic of %d bytes (max %d)", len(topic), MaxTopicLen)
	}
	if i := strings.IndexAny(topic, "+#\x00"); i >= 0 {
		return fmt.Errorf("topic %q has %q at %d (wildcards and NUL are not allowed in a published topic)", Truncate(topic, 128), topic[i], i)
	}
	if !utf8.ValidString(topic) {
		return fmt.Errorf("topic %q is not valid UTF-8", Truncate(topic, 128))
	}
	if n := strings.Count(topic, "/") + 1; n > MaxTopicLevels {
		return fmt.Errorf("topic %q has %d levels (max %d)", Truncate(topic, 128), n, MaxTopicLevels)
	}
	return nil
}

// CheckPayload rejects a payload longer than MaxPayload.
func CheckPayload(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("payload of %d bytes (max %d)", len(payload), MaxPayload)
	}
	return nil
}

// Scalar is one value taken from a payload.
type Scalar struct {
	Type byte // 'n' number, 'b' bool, 's' string, 'z' null, 'o' object or array
	Num  float64
	Bool bool
	Str  string
}

func (v Scalar) String() string {
	switch v.Type {
	case 'n':
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case 'b':
		return strconv.FormatBool(v.Bool)
	case 's':
		return strconv.Quote(Truncate(v.Str, 32))
	case 'z':
		return "null"
	}
	return "an object or array"
}

// JSONScalar reads a value that json.Unmarshal already checked for syntax.
func JSONScalar(raw json.RawMessage) (Scalar, error) {
	r := strings.TrimSpace(string(raw))
	if r == "" {
		return Scalar{Type: 'z'}, nil
	}
	switch r[0] {
	case 'n':
		return Scalar{Type: 'z'}, nil
	case 't', 'f':
		return Scalar{Type: 'b', Bool: r == "true"}, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Scalar{}, err
		}
		return Scalar{Type: 's', Str: s}, nil
	case '{', '[':
		return Scalar{Type: 'o'}, nil
	}
	f, err := strconv.ParseFloat(r, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return Scalar{}, fmt.Errorf("number %s is out of range", Truncate(r, 32))
	}
	return Scalar{Type: 'n', Num: f}, nil
}

// TextScalar reads a plain-text payload: true/false, a number, or a string.
func TextScalar(p []byte) Scalar {
	s := strings.TrimSpace(string(p))
	switch s {
	case "true":
		return Scalar{Type: 'b', Bool: true}
	case "false":
		return Scalar{Type: 'b', Bool: false}
	}
	if f, err := StrictFloat(s); err == nil {
		return Scalar{Type: 'n', Num: f}
	}
	return Scalar{Type: 's', Str: s}
}

// StrictFloat parses a decimal number as JSON and Homie write it: digits, sign,
// '.', exponent. NaN, Inf, hex and out-of-range values are errors.
func StrictFloat(s string) (float64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	digit := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E':
		default:
			return 0, fmt.Errorf("%q is not a number", Truncate(s, 32))
		}
	}
	if !digit {
		return 0, fmt.Errorf("%q is not a number", Truncate(s, 32))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a finite number in range", Truncate(s, 32))
	}
	return f, nil
}

// OnOff reads the words devices use for binary states.
func OnOff(s string) (float64, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "open", "opened", "yes", "1", "active", "detected", "online":
		return 1, true
	case "off", "false", "closed", "close", "no", "0", "inactive", "clear", "offline":
		return 0, true
	}
	return 0, false
}

// ErrSkip means the value is absent (null, "unknown"): no reading and no error.
var ErrSkip = errors.New("no value")

// ToValue converts a Scalar to the Value of signal sig. textNumbers allows numbers
// written as strings (text protocols: Homie, Home Assistant states).
func ToValue(sig device.Signal, v Scalar, textNumbers bool) (float64, error) {
	if v.Type == 'z' {
		return 0, ErrSkip
	}
	if sig.Binary() {
		switch v.Type {
		case 'b':
			if v.Bool {
				return 1, nil
			}
			return 0, nil
		case 'n':
			if v.Num == 0 || v.Num == 1 {
				return v.Num, nil
			}
			return 0, fmt.Errorf("%s for binary signal %s (want 0 or 1)", v, sig)
		case 's':
			if f, ok := OnOff(v.Str); ok {
				return f, nil
			}
			return 0, fmt.Errorf("%s is not an on/off state for signal %s", v, sig)
		}
		return 0, fmt.Errorf("%s where an on/off state is expected", v)
	}
	switch v.Type {
	case 'n':
		return v.Num, nil
	case 's':
		if textNumbers {
			if f, err := StrictFloat(strings.TrimSpace(v.Str)); err == nil {
				return f, nil
			}
		}
		return 0, fmt.Errorf("string %s where a number is expected for signal %s", v, sig)
	case 'b':
		return 0, fmt.Errorf("boolean %s where a number is expected for signal %s", v, sig)
	}
	return 0, fmt.Errorf("%s where a number is expected for signal %s", v, sig)
}

// normalizeUnit converts v from the unit a device reported to the unit hearth uses
// for sig (W, kWh, °C, %) and returns the unit to record. Binary signals carry no
// unit; signals without a fixed unit keep the device's.
func normalizeUnit(sig device.Signal, v float64, unit string) (float64, string, error) {
	u := strings.TrimSpace(unit)
	bad := func() (float64, string, error) {
		return 0, "", fmt.Errorf("unit %q does not fit signal %s", Truncate(u, 16), sig)
	}
	switch sig {
	case device.SignalDoor, device.SignalActive, device.SignalCycle:
		return v, "", nil
	case device.SignalPower:
		switch u {
		case "", "W", "w":
			return v, "W", nil
		case "kW", "kw":
			return v * 1000, "W", nil
		case "mW":
			return v / 1000, "W", nil
		}
		return bad()
	case device.SignalEnergy:
		switch u {
		case "", "kWh", "kwh", "KWh":
			return v, "kWh", nil
		case "Wh", "wh":
			return v / 1000, "kWh", nil
		case "MWh":
			return v * 1000, "kWh", nil
		}
		return bad()
	case device.SignalTemperature:
		switch u {
		case "", "°C", "C", "ºC", "degC", "celsius", "Celsius":
			return v, "°C", nil
		case "°F", "F", "ºF", "degF", "fahrenheit", "Fahrenheit":
			return (v - 32) * 5 / 9, "°C", nil
		case "K":
			return v - 273.15, "°C", nil
		}
		return bad()
	case device.SignalHumidity, device.SignalBattery:
		switch u {
		case "", "%":
			return v, "%", nil
		}
		return bad()
	}
	if len(u) > device.MaxUnitLen {
		u = ""
	}
	return v, u, nil
}

// Reading builds and validates one reading of b. A battery reading's Label
// is the mapping's Name.
func (b *Binding) Reading(sig device.Signal, v Scalar, unit string, textNumbers bool) (device.Reading, error) {
	f, err := ToValue(sig, v, textNumbers)
	if err != nil {
		return device.Reading{}, err
	}
	f, u, err := normalizeUnit(sig, f, unit)
	if err != nil {
		return device.Reading{}, err
	}
	r := device.Reading{Device: b.Device, Kind: b.Kind, Signal: sig, Value: f, Unit: u}
	if sig == device.SignalBattery {
		// Each sensor of a device has its own battery: the label names the one that
		// reported (the mapping's Name), so that two sensors mapped to one device do
		// not mix their levels.
		r.Label = Clip(b.Name, device.MaxLabelLen)
	}
	if err := r.Validate(); err != nil {
		return device.Reading{}, err
	}
	return r, nil
}

// DecodeObject parses a payload that must be one JSON object.
func DecodeObject(payload []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("payload is null, want a JSON object")
	}
	return obj, nil
}

// SortedKeys returns the keys of m, sorted.
func SortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Clip cuts s to at most n bytes at a rune boundary.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Report calls f with a, when f is set.
func Report(f func(mqtt.Availability), a mqtt.Availability) {
	if f != nil {
		f(a)
	}
}

// CheckBase checks a base topic of an adapter's options (Zigbee2MQTT's base_topic, the
// Homie root, the discovery prefix): a valid topic of non-empty levels.
func CheckBase(base string) error {
	if err := CheckTopic(base); err != nil {
		return err
	}
	if base == "" || strings.HasPrefix(base, "/") || strings.HasSuffix(base, "/") || strings.Contains(base, "//") {
		return fmt.Errorf("%q: want levels without leading, trailing or double /", base)
	}
	return nil
}

// Truncate cuts s to n bytes and marks the cut, for error messages.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
