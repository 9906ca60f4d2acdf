package mqtt

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
)

func TestMappingValidate(t *testing.T) {
	ok := Mapping{Source: SourceZigbee2MQTT, Name: "kitchen/fridge door", Device: "fridge", Kind: device.KindFridge}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid mapping: %v", err)
	}
	mod := func(f func(*Mapping)) Mapping { m := ok; f(&m); return m }
	for _, tc := range []struct {
		name  string
		m     Mapping
		parts []string
	}{
		{"no source", mod(func(m *Mapping) { m.Source = "" }), []string{"source", "required"}},
		{"bad source", mod(func(m *Mapping) { m.Source = "zwave" }), []string{"source", `"zwave"`, "zigbee2mqtt, tasmota"}},
		{"no name", mod(func(m *Mapping) { m.Name = "" }), []string{"name", "required"}},
		{"wildcard name", mod(func(m *Mapping) { m.Name = "kitchen/+" }), []string{"name", "wildcards"}},
		{"long name", mod(func(m *Mapping) { m.Name = strings.Repeat("a", 257) }), []string{"name", "256"}},
		{"z2m bridge", mod(func(m *Mapping) { m.Name = "bridge/state" }), []string{"name", "bridge"}},
		{"z2m set level", mod(func(m *Mapping) { m.Name = "lamp/set" }), []string{"name", `"set"`}},
		{"z2m leading slash", mod(func(m *Mapping) { m.Name = "/lamp" }), []string{"name", "start or end"}},
		{"homie slash", mod(func(m *Mapping) { m.Source = SourceHomie; m.Name = "a/b" }), []string{"name", "Homie"}},
		{"tasmota empty sub", mod(func(m *Mapping) { m.Source = SourceTasmota; m.Name = "pow1/ " }), []string{"name", "after /"}},
		{"tasmota space topic", mod(func(m *Mapping) { m.Source = SourceTasmota; m.Name = "my pow" }), []string{"name", "spaces"}},
		{"bad device", mod(func(m *Mapping) { m.Device = "my fridge" }), []string{"device", "' '"}},
		{"no device", mod(func(m *Mapping) { m.Device = "" }), []string{"device", "empty"}},
		{"no kind", mod(func(m *Mapping) { m.Kind = "" }), []string{"kind", "required"}},
		{"bad kind", mod(func(m *Mapping) { m.Kind = "toilet" }), []string{"kind", `"toilet"`, "fridge"}},
		{"bad signal", mod(func(m *Mapping) { m.Signals = map[string]device.Signal{"contact": "opened"} }), []string{"signals", `"contact"`, `"opened"`}},
		{"empty property", mod(func(m *Mapping) { m.Signals = map[string]device.Signal{"": device.SignalDoor} }), []string{"signals", "empty"}},
		{"case clash", mod(func(m *Mapping) {
			m.Signals = map[string]device.Signal{"Power": device.SignalPower, "power": device.SignalPower}
		}), []string{"signals", "case"}},
	} {
		err := tc.m.Validate()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, p := range tc.parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, p)
			}
		}
	}
}

func TestMappingsValidateAndLookup(t *testing.T) {
	ms := Mappings{
		{Source: SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge", Kind: device.KindFridge},
		{Source: SourceTasmota, Name: "fridge-plug", Device: "fridge", Kind: device.KindFridge},
		{Source: SourceHomie, Name: "fridge-plug", Device: "washer", Kind: device.KindWasher},
	}
	if err := ms.Validate(); err != nil {
		t.Fatal(err)
	}
	if m, ok := ms.Lookup(SourceTasmota, "fridge-plug"); !ok || m.Device != "fridge" {
		t.Errorf("Lookup tasmota fridge-plug = %+v, %v", m, ok)
	}
	if m, ok := ms.Lookup(SourceHomie, "fridge-plug"); !ok || m.Device != "washer" {
		t.Errorf("Lookup homie fridge-plug = %+v, %v", m, ok)
	}
	if _, ok := ms.Lookup(SourceZigbee2MQTT, "fridge-plug"); ok {
		t.Error("Lookup found a name under the wrong source")
	}
	dup := append(slices.Clone(ms), Mapping{Source: SourceZigbee2MQTT, Name: "Fridge door", Device: "other", Kind: device.KindSensor})
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "mappings[3]") || !strings.Contains(err.Error(), "mappings[0]") {
		t.Errorf("duplicate name: %v", err)
	}
	clash := append(slices.Clone(ms), Mapping{Source: SourceHomie, Name: "x", Device: "fridge", Kind: device.KindFreezer})
	if err := clash.Validate(); err == nil || !strings.Contains(err.Error(), `"freezer"`) || !strings.Contains(err.Error(), `"fridge"`) {
		t.Errorf("kind clash: %v", err)
	}
	bad := append(slices.Clone(ms), Mapping{Source: SourceHomie, Name: "y", Device: "", Kind: device.KindFreezer})
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "mappings[3]") || !strings.Contains(err.Error(), "device") {
		t.Errorf("bad entry: %v", err)
	}
}

// TestMappingsYAML checks the yaml tags the config package relies on, with strict
// decoding as hearth.yaml uses.
func TestMappingsYAML(t *testing.T) {
	const doc = `
mappings:
  - source: zigbee2mqtt
    name: Fridge door
    device: fridge
    kind: fridge
    signals:
      contact: door
  - source: tasmota
    name: washer-plug
    device: washer
    kind: washer
`
	var cfg struct {
		Mappings Mappings `yaml:"mappings"`
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Mappings.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mappings) != 2 || cfg.Mappings[0].Signals["contact"] != device.SignalDoor || cfg.Mappings[1].Kind != device.KindWasher || cfg.Mappings[1].Signals != nil {
		t.Errorf("decoded %+v", cfg.Mappings)
	}
	dec = yaml.NewDecoder(strings.NewReader("mappings:\n  - source: tasmota\n    nmae: x\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestDefaultSignals(t *testing.T) {
	for _, k := range device.Kinds() {
		d := DefaultSignals(k)
		if len(d) == 0 {
			t.Errorf("kind %s has no default signals", k)
		}
		for p, s := range d {
			if !s.Valid() || p != strings.ToLower(p) {
				t.Errorf("kind %s: %q → %q", k, p, s)
			}
		}
	}
	for _, tc := range []struct {
		kind device.Kind
		prop string
		sig  device.Signal
	}{
		{device.KindFridge, "contact", device.SignalDoor},
		{device.KindFridge, "temperature", device.SignalTemperature},
		{device.KindWasher, "power", device.SignalPower},
		{device.KindWasher, "total", device.SignalEnergy},
		{device.KindPlug, "state", device.SignalActive},
		{device.KindPlug, "relay", device.SignalActive},
		{device.KindMotion, "occupancy", device.SignalActive},
		{device.KindEntryDoor, "contact", device.SignalDoor},
		{device.KindSensor, "humidity", device.SignalHumidity},
		{device.KindEntryDoor, "power", ""},
		{device.KindMotion, "contact", ""},
	} {
		if got := DefaultSignals(tc.kind)[tc.prop]; got != tc.sig {
			t.Errorf("DefaultSignals(%s)[%s] = %q, want %q", tc.kind, tc.prop, got, tc.sig)
		}
	}
	d := DefaultSignals(device.KindFridge)
	d["contact"] = device.SignalError
	if DefaultSignals(device.KindFridge)["contact"] != device.SignalDoor {
		t.Error("DefaultSignals returned shared state")
	}
}
