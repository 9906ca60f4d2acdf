package mqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
)

// The sources a Mapping can name.
const (
	SourceZigbee2MQTT   = "zigbee2mqtt"
	SourceTasmota       = "tasmota"
	SourceHomie         = "homie"
	SourceHomeAssistant = "homeassistant"
)

var sources = []string{SourceZigbee2MQTT, SourceTasmota, SourceHomie, SourceHomeAssistant}

// ErrLimit means a decoder refused to keep more state (devices, properties, proposals)
// than its configured cap. The message that hit the cap is dropped; nothing held is
// evicted.
var ErrLimit = errors.New("limit reached")

// Limits on names and topics the adapters accept.
const (
	// MaxMappingNameLen is the longest Mapping.Name.
	MaxMappingNameLen = 256
	// MaxPropertyLen is the longest key of Mapping.Signals.
	MaxPropertyLen = 64
	// maxTopicLen and maxTopicLevels bound the topics the adapters parse; deeper or
	// longer topics are malformed.
	maxTopicLen    = 1024
	maxTopicLevels = 16
	// maxPayload bounds the payloads the adapters parse.
	maxPayload = 64 << 10
)

// Mapping binds a source-specific name to a hearth device.
type Mapping struct {
	Source string      `yaml:"source"` // "zigbee2mqtt", "tasmota", "homie", "homeassistant"
	Name   string      `yaml:"name"`   // z2m friendly_name, tasmota topic, homie device id, HA unique_id/object id
	Device string      `yaml:"device"` // hearth device id
	Kind   device.Kind `yaml:"kind"`
	// Signals maps a source property to a hearth signal, e.g. contact→door, power→power, state→active.
	// Empty: the adapter's defaults for the kind.
	Signals map[string]device.Signal `yaml:"signals,omitempty"`
}

// Validate checks one mapping. Its error names the field at fault first, as in
// "kind: ..." (Mappings.Problems relies on it).
func (m Mapping) Validate() error {
	known := false
	for _, s := range sources {
		known = known || m.Source == s
	}
	if !known {
		if m.Source == "" {
			return errors.New("source: required (one of " + strings.Join(sources, ", ") + ")")
		}
		return fmt.Errorf("source: %q is not one of %s", m.Source, strings.Join(sources, ", "))
	}
	if err := m.validateName(); err != nil {
		return fmt.Errorf("name: %v", err)
	}
	if err := device.ValidID(m.Device); err != nil {
		return fmt.Errorf("device: %v", err)
	}
	if m.Kind == "" {
		return errors.New("kind: required")
	}
	if !m.Kind.Valid() {
		return fmt.Errorf("kind: %q is not a known kind (known: %s)", m.Kind, joinKinds())
	}
	lower := make(map[string]string, len(m.Signals))
	for _, p := range sortedKeys(m.Signals) {
		s := m.Signals[p]
		if p == "" {
			return errors.New("signals: empty property name")
		}
		if len(p) > MaxPropertyLen {
			return fmt.Errorf("signals: property %q longer than %d bytes", truncate(p, 32), MaxPropertyLen)
		}
		if !s.Valid() {
			return fmt.Errorf("signals: property %q: %q is not a known signal", p, s)
		}
		l := strings.ToLower(p)
		if prev, dup := lower[l]; dup {
			return fmt.Errorf("signals: properties %q and %q differ only in case", prev, p)
		}
		lower[l] = p
	}
	return nil
}

func (m Mapping) validateName() error {
	n := m.Name
	switch {
	case n == "":
		return errors.New("required")
	case len(n) > MaxMappingNameLen:
		return fmt.Errorf("longer than %d bytes", MaxMappingNameLen)
	case !utf8.ValidString(n):
		return errors.New("not valid UTF-8")
	}
	if i := strings.IndexAny(n, "+#\x00"); i >= 0 {
		return fmt.Errorf("%q has %q at %d (MQTT wildcards and NUL are not allowed)", n, n[i], i)
	}
	switch m.Source {
	case SourceZigbee2MQTT:
		if strings.HasPrefix(n, "/") || strings.HasSuffix(n, "/") || strings.Contains(n, "//") {
			return fmt.Errorf("%q: a friendly_name must not start or end with / or contain //", n)
		}
		if n == "bridge" || strings.HasPrefix(n, "bridge/") {
			return fmt.Errorf("%q: bridge/ topics belong to Zigbee2MQTT itself", n)
		}
		for _, l := range strings.Split(n, "/")[1:] {
			if l == "set" || l == "get" || l == "availability" {
				return fmt.Errorf("%q: a friendly_name level may not be %q", n, l)
			}
		}
	case SourceTasmota:
		topic, sub, _ := strings.Cut(n, "/")
		if topic == "" || strings.Contains(topic, " ") {
			return fmt.Errorf("%q: want a Tasmota topic, or topic/sensor, without spaces in the topic", n)
		}
		if strings.Contains(n, "/") && strings.TrimSpace(sub) == "" {
			return fmt.Errorf("%q: empty sensor or Zigbee device name after /", n)
		}
	case SourceHomie:
		if strings.ContainsAny(n, "/$") {
			return fmt.Errorf("%q: a Homie device id is one topic level without $", n)
		}
	case SourceHomeAssistant:
		if strings.TrimSpace(n) != n {
			return fmt.Errorf("%q has leading or trailing space", n)
		}
	}
	return nil
}

// Mappings is the list configured under mqtt.mappings.
type Mappings []Mapping

// Validate checks every mapping, that no (source, name) appears twice and that a device
// has one kind across all its mappings. It returns the first problem (Problems lists
// them all).
func (ms Mappings) Validate() error {
	if ps := ms.Problems(); len(ps) > 0 {
		return ps[0].err
	}
	return nil
}

// MappingProblem is one problem of a Mappings: the mapping at Index, its key at fault
// (Field: source, name, device, kind or signals) and what is wrong with it.
type MappingProblem struct {
	Index int
	Field string
	Msg   string
	err   error // as Validate reports it
}

// Problems checks as Validate does, and returns every problem rather than the first.
func (ms Mappings) Problems() []MappingProblem {
	type key struct{ source, name string }
	seen := make(map[key]int, len(ms))
	kindOf := make(map[string]int, len(ms))
	var out []MappingProblem
	for i, m := range ms {
		if err := m.Validate(); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ") // Validate names the field first
			out = append(out, MappingProblem{Index: i, Field: field, Msg: msg,
				err: fmt.Errorf("mappings[%d] (%s %q): %v", i, m.Source, truncate(m.Name, 64), err)})
			continue
		}
		k := key{m.Source, m.Name}
		if j, dup := seen[k]; dup {
			msg := fmt.Sprintf("%s %q is already mapped by mappings[%d]", m.Source, m.Name, j)
			out = append(out, MappingProblem{Index: i, Field: "name", Msg: msg, err: fmt.Errorf("mappings[%d]: %s", i, msg)})
			continue
		}
		seen[k] = i
		if j, ok := kindOf[m.Device]; ok && ms[j].Kind != m.Kind {
			msg := fmt.Sprintf("device %q has kind %q here but %q in mappings[%d]", m.Device, m.Kind, ms[j].Kind, j)
			out = append(out, MappingProblem{Index: i, Field: "kind", Msg: msg, err: fmt.Errorf("mappings[%d]: %s", i, msg)})
			continue
		}
		kindOf[m.Device] = i
	}
	return out
}

// Lookup returns the mapping for a source-specific name.
func (ms Mappings) Lookup(source, name string) (Mapping, bool) {
	for _, m := range ms {
		if m.Source == source && m.Name == name {
			return m, true
		}
	}
	return Mapping{}, false
}

// Availability reports that a device went online or offline, as its source said so
// (Zigbee2MQTT availability, Tasmota LWT, Homie $state, a Home Assistant availability
// topic). It carries no reading.
type Availability struct {
	Source string    // one of the Source constants
	Name   string    // the mapping name (friendly_name, Tasmota topic, Homie id, HA entity)
	Device string    // hearth device id
	Online bool      // the device can send readings now
	State  string    // the source's own word: "online", "Offline", "lost", "sleeping", ...
	At     time.Time // the now passed to Decode
}

// DefaultSignals returns the property→signal table an adapter uses for a mapping of
// kind k that has no Signals of its own. Property names are the lower-case names the
// adapters document (Zigbee2MQTT payload keys, Tasmota field names, Homie property ids,
// the value_json key of a Home Assistant entity). The result is a fresh copy.
func DefaultSignals(k device.Kind) map[string]device.Signal {
	out := make(map[string]device.Signal)
	for _, g := range defaultGroups[k] {
		for p, s := range g {
			out[p] = s
		}
	}
	return out
}

var (
	doorProps    = map[string]device.Signal{"contact": device.SignalDoor, "door": device.SignalDoor, "opening": device.SignalDoor}
	motionProps  = map[string]device.Signal{"occupancy": device.SignalActive, "motion": device.SignalActive, "presence": device.SignalActive}
	powerProps   = map[string]device.Signal{"power": device.SignalPower, "energy": device.SignalEnergy, "total": device.SignalEnergy, "state": device.SignalActive, "relay": device.SignalActive}
	tempProps    = map[string]device.Signal{"temperature": device.SignalTemperature}
	humProps     = map[string]device.Signal{"humidity": device.SignalHumidity}
	batteryProps = map[string]device.Signal{"battery": device.SignalBattery}

	defaultGroups = map[device.Kind][]map[string]device.Signal{
		device.KindFridge:         {doorProps, powerProps, tempProps, humProps, batteryProps},
		device.KindFreezer:        {doorProps, powerProps, tempProps, humProps, batteryProps},
		device.KindOven:           {doorProps, powerProps, tempProps, batteryProps},
		device.KindMicrowave:      {doorProps, powerProps, tempProps, batteryProps},
		device.KindDishwasher:     {doorProps, powerProps, batteryProps},
		device.KindWasher:         {doorProps, powerProps, batteryProps},
		device.KindDryer:          {doorProps, powerProps, batteryProps},
		device.KindStove:          {powerProps, tempProps, batteryProps},
		device.KindKettle:         {powerProps, tempProps, batteryProps},
		device.KindToaster:        {powerProps, batteryProps},
		device.KindKitchenCabinet: {doorProps, batteryProps},
		device.KindEntryDoor:      {doorProps, batteryProps},
		device.KindMotion:         {motionProps, batteryProps},
		device.KindPlug:           {powerProps},
		device.KindSensor:         {doorProps, motionProps, powerProps, tempProps, humProps, batteryProps},
	}
)

// binding is a mapping with its effective property table (lower-case keys).
type binding struct {
	Mapping
	signals map[string]device.Signal
	props   []string // sorted keys of signals
}

func newBinding(m Mapping) *binding {
	b := &binding{Mapping: m}
	if len(m.Signals) > 0 {
		b.signals = make(map[string]device.Signal, len(m.Signals))
		for p, s := range m.Signals {
			b.signals[strings.ToLower(p)] = s
		}
	} else {
		b.signals = DefaultSignals(m.Kind)
	}
	b.props = sortedKeys(b.signals)
	return b
}

// signal resolves a lower-case property. A dotted property ("energy.power",
// "engine.temperature") matches its full name first, then its last part.
func (b *binding) signal(prop string) (device.Signal, bool) {
	if s, ok := b.signals[prop]; ok {
		return s, true
	}
	if i := strings.LastIndexByte(prop, '.'); i >= 0 {
		s, ok := b.signals[prop[i+1:]]
		return s, ok
	}
	return "", false
}

// indexMappings validates the mappings of one source and indexes them by name.
func indexMappings(ms Mappings, source string) (map[string]*binding, error) {
	var mine Mappings
	for _, m := range ms {
		if m.Source == source {
			mine = append(mine, m)
		}
	}
	if err := mine.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt %s: %w", source, err)
	}
	idx := make(map[string]*binding, len(mine))
	for _, m := range mine {
		idx[m.Name] = newBinding(m)
	}
	return idx, nil
}

// checkTopic rejects topics no adapter should parse: too long, too deep, with
// wildcards or NUL, or not UTF-8.
func checkTopic(topic string) error {
	if len(topic) > maxTopicLen {
		return fmt.Errorf("topic of %d bytes (max %d)", len(topic), maxTopicLen)
	}
	if i := strings.IndexAny(topic, "+#\x00"); i >= 0 {
		return fmt.Errorf("topic %q has %q at %d (wildcards and NUL are not allowed in a published topic)", truncate(topic, 128), topic[i], i)
	}
	if !utf8.ValidString(topic) {
		return fmt.Errorf("topic %q is not valid UTF-8", truncate(topic, 128))
	}
	if n := strings.Count(topic, "/") + 1; n > maxTopicLevels {
		return fmt.Errorf("topic %q has %d levels (max %d)", truncate(topic, 128), n, maxTopicLevels)
	}
	return nil
}

func checkPayload(payload []byte) error {
	if len(payload) > maxPayload {
		return fmt.Errorf("payload of %d bytes (max %d)", len(payload), maxPayload)
	}
	return nil
}

// scalar is one value taken from a payload.
type scalar struct {
	typ byte // 'n' number, 'b' bool, 's' string, 'z' null, 'o' object or array
	num float64
	b   bool
	s   string
}

func (v scalar) String() string {
	switch v.typ {
	case 'n':
		return strconv.FormatFloat(v.num, 'g', -1, 64)
	case 'b':
		return strconv.FormatBool(v.b)
	case 's':
		return strconv.Quote(truncate(v.s, 32))
	case 'z':
		return "null"
	}
	return "an object or array"
}

// jsonScalar reads a value that json.Unmarshal already checked for syntax.
func jsonScalar(raw json.RawMessage) (scalar, error) {
	r := strings.TrimSpace(string(raw))
	if r == "" {
		return scalar{typ: 'z'}, nil
	}
	switch r[0] {
	case 'n':
		return scalar{typ: 'z'}, nil
	case 't', 'f':
		return scalar{typ: 'b', b: r == "true"}, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return scalar{}, err
		}
		return scalar{typ: 's', s: s}, nil
	case '{', '[':
		return scalar{typ: 'o'}, nil
	}
	f, err := strconv.ParseFloat(r, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return scalar{}, fmt.Errorf("number %s is out of range", truncate(r, 32))
	}
	return scalar{typ: 'n', num: f}, nil
}

// textScalar reads a plain-text payload: true/false, a number, or a string.
func textScalar(p []byte) scalar {
	s := strings.TrimSpace(string(p))
	switch s {
	case "true":
		return scalar{typ: 'b', b: true}
	case "false":
		return scalar{typ: 'b', b: false}
	}
	if f, err := strictFloat(s); err == nil {
		return scalar{typ: 'n', num: f}
	}
	return scalar{typ: 's', s: s}
}

// strictFloat parses a decimal number as JSON and Homie write it: digits, sign,
// '.', exponent. NaN, Inf, hex and out-of-range values are errors.
func strictFloat(s string) (float64, error) {
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
			return 0, fmt.Errorf("%q is not a number", truncate(s, 32))
		}
	}
	if !digit {
		return 0, fmt.Errorf("%q is not a number", truncate(s, 32))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a finite number in range", truncate(s, 32))
	}
	return f, nil
}

// onOff reads the words devices use for binary states.
func onOff(s string) (float64, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "open", "opened", "yes", "1", "active", "detected", "online":
		return 1, true
	case "off", "false", "closed", "close", "no", "0", "inactive", "clear", "offline":
		return 0, true
	}
	return 0, false
}

// errSkip means the value is absent (null, "unknown"): no reading and no error.
var errSkip = errors.New("no value")

// toValue converts a scalar to the Value of signal sig. textNumbers allows numbers
// written as strings (text protocols: Homie, Home Assistant states).
func toValue(sig device.Signal, v scalar, textNumbers bool) (float64, error) {
	if v.typ == 'z' {
		return 0, errSkip
	}
	if sig.Binary() {
		switch v.typ {
		case 'b':
			if v.b {
				return 1, nil
			}
			return 0, nil
		case 'n':
			if v.num == 0 || v.num == 1 {
				return v.num, nil
			}
			return 0, fmt.Errorf("%s for binary signal %s (want 0 or 1)", v, sig)
		case 's':
			if f, ok := onOff(v.s); ok {
				return f, nil
			}
			return 0, fmt.Errorf("%s is not an on/off state for signal %s", v, sig)
		}
		return 0, fmt.Errorf("%s where an on/off state is expected", v)
	}
	switch v.typ {
	case 'n':
		return v.num, nil
	case 's':
		if textNumbers {
			if f, err := strictFloat(strings.TrimSpace(v.s)); err == nil {
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
		return 0, "", fmt.Errorf("unit %q does not fit signal %s", truncate(u, 16), sig)
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

// reading builds and validates one reading of binding b. A battery reading's Label
// is the mapping's Name.
func (b *binding) reading(sig device.Signal, v scalar, unit string, textNumbers bool) (device.Reading, error) {
	f, err := toValue(sig, v, textNumbers)
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
		r.Label = clip(b.Name, device.MaxLabelLen)
	}
	if err := r.Validate(); err != nil {
		return device.Reading{}, err
	}
	return r, nil
}

// decodeObject parses a payload that must be one JSON object.
func decodeObject(payload []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("payload is null, want a JSON object")
	}
	return obj, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func joinKinds() string {
	var b strings.Builder
	for i, k := range device.Kinds() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func callAvailability(f func(Availability), a Availability) {
	if f != nil {
		f(a)
	}
}
