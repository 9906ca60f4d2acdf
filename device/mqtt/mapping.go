package mqtt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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

// Limits on names and topics the adapters accept.
const (
	// MaxMappingNameLen is the longest Mapping.Name.
	MaxMappingNameLen = 256
	// MaxPropertyLen is the longest key of Mapping.Signals.
	MaxPropertyLen = 64
)

// Mapping binds a source-specific name to a hearth device.
type Mapping struct {
	Source string // "zigbee2mqtt", "tasmota", "homie", "homeassistant"
	Name   string // z2m friendly_name, tasmota topic, homie device id, HA unique_id/object id
	Device string // hearth device id
	Kind   device.Kind
	// Signals maps a source property to a hearth signal, e.g. contact→door, power→power, state→active.
	// Empty: the adapter's defaults for the kind.
	Signals map[string]device.Signal
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
	for _, p := range slices.Sorted(maps.Keys(m.Signals)) {
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
	At     time.Time // the now passed to Decode or Learn
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
