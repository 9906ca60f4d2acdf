package mqtt

import (
	"bufio"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
)

// message is one line of a testdata file.
type message struct {
	name, topic string
	payload     []byte
}

// corpus is a testdata file; get marks lines used, and the cleanup fails the test
// when a line was never asserted.
type corpus struct {
	t     testing.TB
	file  string
	byKey map[string]message
	order []string
	used  map[string]bool
}

func loadCorpus(t testing.TB, file string) *corpus {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &corpus{t: t, file: file, byKey: map[string]message{}, used: map[string]bool{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("%s: line %q: want name<TAB>topic<TAB>payload", file, line)
		}
		if _, dup := c.byKey[parts[0]]; dup {
			t.Fatalf("%s: duplicate name %q", file, parts[0])
		}
		c.byKey[parts[0]] = message{parts[0], parts[1], []byte(parts[2])}
		c.order = append(c.order, parts[0])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *corpus) get(name string) message {
	c.t.Helper()
	m, ok := c.byKey[name]
	if !ok {
		c.t.Fatalf("%s has no line %q", c.file, name)
	}
	c.used[name] = true
	return m
}

// all returns every message, for fuzz seeds.
func (c *corpus) all() []message {
	out := make([]message, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.byKey[n])
	}
	return out
}

func (c *corpus) checkAllUsed() {
	c.t.Helper()
	for _, n := range c.order {
		if !c.used[n] {
			c.t.Errorf("%s: line %q is asserted by no test", c.file, n)
		}
	}
}

// want is an expected reading.
type want struct {
	dev    string
	kind   device.Kind
	sig    device.Signal
	val    float64
	unit   string
	label  string
	devTim time.Time
}

func checkReadings(t *testing.T, what string, got []device.Reading, ws []want) {
	t.Helper()
	if len(got) != len(ws) {
		t.Fatalf("%s: %d readings %+v, want %d %+v", what, len(got), got, len(ws), ws)
	}
	for i, w := range ws {
		g := got[i]
		if g.Device != w.dev || g.Kind != w.kind || g.Signal != w.sig || math.Abs(g.Value-w.val) > 1e-9 ||
			g.Unit != w.unit || g.Label != w.label || !g.DeviceTime.Equal(w.devTim) {
			t.Errorf("%s: reading %d = {%s %s %s %v %q %q %v}, want {%s %s %s %v %q %q %v}", what, i,
				g.Device, g.Kind, g.Signal, g.Value, g.Unit, g.Label, g.DeviceTime,
				w.dev, w.kind, w.sig, w.val, w.unit, w.label, w.devTim)
		}
		if err := g.Validate(); err != nil {
			t.Errorf("%s: reading %d: %v", what, i, err)
		}
		if !g.HubTime.IsZero() {
			t.Errorf("%s: reading %d: HubTime set by a decoder", what, i)
		}
	}
}

// checkErr asserts the error class and that the message names every part.
func checkErr(t *testing.T, what string, err, class error, parts ...string) {
	t.Helper()
	if class == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, class) {
		t.Errorf("%s: error %v, want %v", what, err, class)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

// checkFuzzResult is what every fuzz target asserts of one Decode.
func checkFuzzResult(t *testing.T, rs []device.Reading, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrNotMine) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownDevice) && !errors.Is(err, ErrLimit) {
			t.Fatalf("error of no documented class: %v", err)
		}
		// Only a *FieldErrors comes with readings: those of the fields that were read.
		var fe *FieldErrors
		if errors.As(err, &fe) && len(fe.Fields) == 0 {
			t.Fatalf("FieldErrors without fields: %v", err)
		}
		if rs != nil && fe == nil {
			t.Fatalf("readings %v returned with error %v", rs, err)
		}
	}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			t.Fatalf("reading %d invalid: %v", i, err)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

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

func TestConversions(t *testing.T) {
	for _, tc := range []struct {
		sig        device.Signal
		v          scalar
		text       bool
		want       float64
		errPart    string
		unit, outU string
	}{
		{sig: device.SignalDoor, v: scalar{typ: 'b', b: true}, want: 1},
		{sig: device.SignalActive, v: scalar{typ: 's', s: "OFF"}, want: 0},
		{sig: device.SignalActive, v: scalar{typ: 'n', num: 2}, errPart: "want 0 or 1"},
		{sig: device.SignalActive, v: scalar{typ: 's', s: "TOGGLE"}, errPart: "not an on/off state"},
		{sig: device.SignalPower, v: scalar{typ: 's', s: "12"}, errPart: "where a number"},
		{sig: device.SignalPower, v: scalar{typ: 's', s: "12"}, text: true, want: 12, outU: "W"},
		{sig: device.SignalPower, v: scalar{typ: 's', s: "NaN"}, text: true, errPart: "where a number"},
		{sig: device.SignalPower, v: scalar{typ: 'b'}, errPart: "boolean"},
		{sig: device.SignalPower, v: scalar{typ: 'n', num: 1.5}, unit: "kW", want: 1500, outU: "W"},
		{sig: device.SignalEnergy, v: scalar{typ: 'n', num: 1500}, unit: "Wh", want: 1.5, outU: "kWh"},
		{sig: device.SignalTemperature, v: scalar{typ: 'n', num: 212}, unit: "°F", want: 100, outU: "°C"},
		{sig: device.SignalTemperature, v: scalar{typ: 'n', num: 20}, unit: "%", errPart: `unit "%" does not fit`},
		{sig: device.SignalHumidity, v: scalar{typ: 'n', num: 40}, unit: "%", want: 40, outU: "%"},
		{sig: device.SignalWater, v: scalar{typ: 'n', num: 0.5}, unit: "L", want: 0.5, outU: "L"},
	} {
		f, err := toValue(tc.sig, tc.v, tc.text)
		if err == nil {
			f, _, err = normalizeUnit(tc.sig, f, tc.unit)
		}
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%s %v: error %v, want %q", tc.sig, tc.v, err, tc.errPart)
			}
			continue
		}
		_, u, _ := normalizeUnit(tc.sig, 0, tc.unit)
		if err != nil || math.Abs(f-tc.want) > 1e-9 || (tc.outU != "" && u != tc.outU) {
			t.Errorf("%s %v %q = %v %q %v, want %v %q", tc.sig, tc.v, tc.unit, f, u, err, tc.want, tc.outU)
		}
	}
	for _, s := range []string{"1e400", "-1e400", "NaN", "Inf", "infinity", "0x10", "1_000", "", "-", "12 W"} {
		if _, err := strictFloat(s); err == nil {
			t.Errorf("strictFloat(%q) accepted", s)
		}
	}
	for _, s := range []string{"21.5", "-3", "1e3", "0.0"} {
		if _, err := strictFloat(s); err != nil {
			t.Errorf("strictFloat(%q): %v", s, err)
		}
	}
}

func TestCheckTopic(t *testing.T) {
	for _, tc := range []struct{ topic, part string }{
		{"zigbee2mqtt/#", "wildcards"},
		{"zigbee2mqtt/+/x", "wildcards"},
		{"a/b\x00", "NUL"},
		{strings.Repeat("a/", 16) + "a", "17 levels"},
		{strings.Repeat("a", 1025), "1025 bytes"},
		{"a/\xff", "UTF-8"},
	} {
		err := checkTopic(tc.topic)
		if err == nil || !strings.Contains(err.Error(), tc.part) {
			t.Errorf("checkTopic(%q) = %v, want %q", truncate(tc.topic, 40), err, tc.part)
		}
	}
	if err := checkTopic("zigbee2mqtt/kitchen/fridge door"); err != nil {
		t.Error(err)
	}
}
