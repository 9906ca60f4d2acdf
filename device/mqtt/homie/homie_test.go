package homie

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
)

var homieMappings = mqtt.Mappings{
	{Source: mqtt.SourceHomie, Name: "super-car", Device: "car", Kind: device.KindSensor},
	{Source: mqtt.SourceHomie, Name: "kitchen-light", Device: "light", Kind: device.KindPlug,
		Signals: map[string]device.Signal{"light.power": device.SignalActive}},
	{Source: mqtt.SourceHomie, Name: "washer", Device: "washer", Kind: device.KindWasher,
		Signals: map[string]device.Signal{"door": device.SignalDoor, "error": device.SignalError, "program": device.SignalCycle,
			"power": device.SignalPower, "name": device.SignalError, "count": device.SignalWater}},
	{Source: mqtt.SourceHomie, Name: "fridge", Device: "fridge", Kind: device.KindFridge},
}

// newHomie returns the adapter as a source uses it (learner, then decoder), and its
// learner.
func newHomie(t testing.TB, opts *Options) (mqtt.Adapters, *Learner) {
	t.Helper()
	d, l, err := New(homieMappings, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mqtt.Adapters{Learners: []mqtt.Learner{l}, Decoder: d}, l
}

func TestHomieConventionExamples(t *testing.T) {
	c := adaptertest.LoadCorpus(t, "testdata/homie.tsv")
	defer c.CheckAllUsed()
	var av []mqtt.Availability
	h, l := newHomie(t, &Options{OnAvailability: func(a mqtt.Availability) { av = append(av, a) }})
	for _, n := range []string{"car-homie", "car-name", "car-nodes", "car-implementation", "car-state-ready",
		"engine-name", "engine-type", "engine-properties", "temp-name", "temp-settable", "temp-unit", "temp-datatype",
		"temp-format", "light-set", "broadcast"} {
		m := c.Get(n)
		if rs, err := h.Handle(m.Topic, m.Payload, adaptertest.T0); rs != nil || err != nil {
			t.Errorf("%s: %v %v, want nothing", n, rs, err)
		}
	}
	m := c.Get("temp-value")
	rs, err := h.Handle(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "temperature", err, nil)
	adaptertest.CheckReadings(t, "temperature", rs, []adaptertest.Want{adaptertest.W("car", device.KindSensor, device.SignalTemperature, 21.5, "°C", "")})
	m = c.Get("light-power")
	rs, err = h.Handle(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "light", err, nil)
	adaptertest.CheckReadings(t, "light", rs, []adaptertest.Want{adaptertest.W("light", device.KindPlug, device.SignalActive, 1, "", "")})

	wantAv := mqtt.Availability{Source: mqtt.SourceHomie, Name: "super-car", Device: "car", Online: true, State: "ready", At: adaptertest.T0}
	if len(av) != 1 || av[0] != wantAv {
		t.Errorf("availability %+v, want %+v", av, wantAv)
	}
	got, ok := l.Device("super-car")
	want := Device{ID: "super-car", Name: "Super car", Version: "2.1.0", State: "ready",
		Nodes:      []Node{{ID: "wheels"}, {ID: "engine", Name: "Car engine", Type: "V8", Properties: []string{"speed", "direction", "temperature"}}, {ID: "lights"}},
		Properties: []Property{{Node: "engine", ID: "temperature", Name: "Engine temperature", Datatype: "float", Unit: "°C", Format: "-20:120"}}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Device = %+v, %v\nwant %+v", got, ok, want)
	}
	if _, ok := l.Device("kitchen-light"); ok {
		t.Error("a device that sent no attribute has metadata")
	}
	// The copy is the caller's.
	got.Nodes[1].Properties[0] = "x"
	if again, _ := l.Device("super-car"); again.Nodes[1].Properties[0] != "speed" {
		t.Error("Device shares its slices")
	}
}

func TestHomieValues(t *testing.T) {
	var av []mqtt.Availability
	h, _ := newHomie(t, &Options{OnAvailability: func(a mqtt.Availability) { av = append(av, a) }})
	W, F := device.KindWasher, device.KindFridge
	var z time.Time
	for _, tc := range []struct {
		name, topic, payload string
		wants                []adaptertest.Want
		class                error
		parts                []string
	}{
		{name: "datatype enum", topic: "homie/washer/machine/error/$datatype", payload: "enum"},
		{name: "format enum", topic: "homie/washer/machine/error/$format", payload: "none,door-open,no-water"},
		{name: "enum index", topic: "homie/washer/machine/error", payload: "no-water", wants: []adaptertest.Want{adaptertest.W("washer", W, device.SignalError, 2, "", "no-water").At(z)}},
		{name: "enum unknown", topic: "homie/washer/machine/error", payload: "flood", class: mqtt.ErrMalformed, parts: []string{"homie/washer/machine/error", `"flood"`, "$format"}},
		{name: "door enum", topic: "homie/washer/machine/door/$datatype", payload: "enum"},
		{name: "door format", topic: "homie/washer/machine/door/$format", payload: "closed,open"},
		{name: "door open", topic: "homie/washer/machine/door", payload: "open", wants: []adaptertest.Want{adaptertest.W("washer", W, device.SignalDoor, 1, "", "open").At(z)}},
		{name: "door closed", topic: "homie/washer/machine/door", payload: "closed", wants: []adaptertest.Want{adaptertest.W("washer", W, device.SignalDoor, 0, "", "closed").At(z)}},
		{name: "power kW", topic: "homie/washer/meter/power/$unit", payload: "kW"},
		{name: "power float", topic: "homie/washer/meter/power/$datatype", payload: "float"},
		{name: "power", topic: "homie/washer/meter/power", payload: "1.2", wants: []adaptertest.Want{adaptertest.W("washer", W, device.SignalPower, 1200, "W", "").At(z)}},
		{name: "power NaN", topic: "homie/washer/meter/power", payload: "NaN", class: mqtt.ErrMalformed, parts: []string{"homie/washer/meter/power", "NaN"}},
		{name: "power Inf", topic: "homie/washer/meter/power", payload: "1e400", class: mqtt.ErrMalformed, parts: []string{"1e400"}},
		{name: "power comma", topic: "homie/washer/meter/power", payload: "1,2", class: mqtt.ErrMalformed, parts: []string{`"1,2"`}},
		{name: "power huge", topic: "homie/washer/meter/power", payload: "1e300", class: mqtt.ErrMalformed, parts: []string{"1e15"}},
		{name: "count integer", topic: "homie/washer/meter/count/$datatype", payload: "integer"},
		{name: "count", topic: "homie/washer/meter/count", payload: "-3", wants: []adaptertest.Want{adaptertest.W("washer", W, device.SignalWater, -3, "", "").At(z)}},
		{name: "count fraction", topic: "homie/washer/meter/count", payload: "2.5", class: mqtt.ErrMalformed, parts: []string{"integer", `"2.5"`}},
		{name: "count range", topic: "homie/washer/meter/count", payload: "99999999999999999999", class: mqtt.ErrMalformed, parts: []string{"integer", "range"}},
		{name: "string datatype", topic: "homie/washer/meter/name/$datatype", payload: "string"},
		{name: "string value", topic: "homie/washer/meter/name", payload: "Miele", class: mqtt.ErrMalformed, parts: []string{"string value cannot become"}},
		{name: "bool datatype", topic: "homie/fridge/door/contact/$datatype", payload: "boolean"},
		{name: "contact closed", topic: "homie/fridge/door/contact", payload: "true", wants: []adaptertest.Want{adaptertest.W("fridge", F, device.SignalDoor, 0, "", "").At(z)}},
		{name: "contact open", topic: "homie/fridge/door/contact", payload: "false", wants: []adaptertest.Want{adaptertest.W("fridge", F, device.SignalDoor, 1, "", "").At(z)}},
		{name: "bool case", topic: "homie/fridge/door/contact", payload: "TRUE", class: mqtt.ErrMalformed, parts: []string{"boolean", `"TRUE"`}},
		{name: "fahrenheit unit", topic: "homie/fridge/inside/temperature/$unit", payload: "°F"},
		{name: "fahrenheit", topic: "homie/fridge/inside/temperature", payload: "41", wants: []adaptertest.Want{adaptertest.W("fridge", F, device.SignalTemperature, 5, "°C", "").At(z)}},
		{name: "inferred word", topic: "homie/fridge/inside/humidity", payload: "wet", class: mqtt.ErrMalformed, parts: []string{`"wet"`, "no $datatype"}},
		{name: "unmapped property", topic: "homie/fridge/inside/rssi", payload: "-60"},
		{name: "empty value", topic: "homie/fridge/inside/temperature", payload: ""},
		{name: "sleeping", topic: "homie/fridge/$state", payload: "sleeping"},
		{name: "lost", topic: "homie/fridge/$state", payload: "lost"},
		{name: "bad state", topic: "homie/fridge/$state", payload: "zombie", class: mqtt.ErrMalformed, parts: []string{"$state", "zombie"}},
		{name: "bad datatype", topic: "homie/fridge/inside/temperature/$datatype", payload: "decimal", class: mqtt.ErrMalformed, parts: []string{"$datatype", "decimal"}},
		{name: "stats ignored", topic: "homie/fridge/$stats/uptime", payload: "100"},
		{name: "fw ignored", topic: "homie/fridge/$fw/name", payload: "x"},
		{name: "unknown device", topic: "homie/garage/$state", payload: "ready", class: mqtt.ErrUnknownDevice, parts: []string{`"garage"`}},
		{name: "unknown device value", topic: "homie/garage/door/open", payload: "true", class: mqtt.ErrUnknownDevice, parts: []string{`"garage"`}},
		{name: "device only", topic: "homie/fridge", payload: "x", class: mqtt.ErrMalformed, parts: []string{"homie/fridge"}},
		{name: "node only", topic: "homie/fridge/door", payload: "x", class: mqtt.ErrMalformed, parts: []string{"node needs"}},
		{name: "too deep", topic: "homie/fridge/a/b/c/d", payload: "x", class: mqtt.ErrMalformed, parts: []string{"levels"}},
		{name: "extra level", topic: "homie/fridge/a/b/c", payload: "x", class: mqtt.ErrMalformed, parts: []string{"<node>/<property>"}},
		{name: "empty level", topic: "homie/fridge//b", payload: "x", class: mqtt.ErrMalformed, parts: []string{"empty level"}},
		{name: "wildcard", topic: "homie/+/$state", payload: "ready", class: mqtt.ErrMalformed, parts: []string{"wildcards"}},
		{name: "huge attribute", topic: "homie/fridge/$name", payload: strings.Repeat("n", 1025), class: mqtt.ErrMalformed, parts: []string{"1025 bytes"}},
		{name: "not homie", topic: "homiex/fridge/$state", payload: "ready", class: mqtt.ErrNotMine},
	} {
		rs, err := h.Handle(tc.topic, []byte(tc.payload), adaptertest.T0)
		if tc.class == mqtt.ErrNotMine {
			if err != mqtt.ErrNotMine {
				t.Errorf("%s: %v, want mqtt.ErrNotMine", tc.name, err)
			}
			continue
		}
		if tc.class != nil {
			if rs != nil {
				t.Errorf("%s: readings %v with error", tc.name, rs)
			}
			adaptertest.CheckErr(t, tc.name, err, tc.class, tc.parts...)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		adaptertest.CheckReadings(t, tc.name, rs, tc.wants)
	}
	if len(av) != 2 || av[0].Online || av[0].State != "sleeping" || av[1].Online || av[1].State != "lost" || av[1].Device != "fridge" {
		t.Errorf("availability %+v", av)
	}
}

func TestHomieLimits(t *testing.T) {
	h, l := newHomie(t, &Options{MaxDevices: 1, MaxNodes: 1, MaxProperties: 2})
	step := func(topic, payload string, class error, parts ...string) {
		t.Helper()
		_, err := h.Handle(topic, []byte(payload), adaptertest.T0)
		adaptertest.CheckErr(t, topic, err, class, parts...)
	}
	step("homie/fridge/$name", "Fridge", nil)
	step("homie/washer/$name", "Washer", mqtt.ErrLimit, `"washer"`, "max 1")
	step("homie/fridge/$nodes", "a,b", mqtt.ErrLimit, "2 nodes", "max 1")
	step("homie/fridge/a/$name", "A", nil)
	step("homie/fridge/b/$name", "B", mqtt.ErrLimit, `"b"`, "max 1")
	step("homie/fridge/a/$properties", "x,y,z", mqtt.ErrLimit, "3 properties", "max 2")
	step("homie/fridge/a/x/$datatype", "float", nil)
	step("homie/fridge/a/y/$datatype", "float", nil)
	step("homie/fridge/a/z/$datatype", "float", mqtt.ErrLimit, `"a/z"`, "max 2")
	step("homie/fridge/a/x/$unit", "°C", nil) // an existing property is still updated
	step("homie/fridge/a/x/$format", "\xff\xfe,b", mqtt.ErrMalformed, "not UTF-8")
	d, _ := l.Device("fridge")
	if len(d.Properties) != 2 || d.Properties[0].Unit != "°C" || len(d.Nodes) != 1 {
		t.Errorf("device after limits: %+v", d)
	}
	// Values of properties beyond the cap still decode, by inference.
	rs, err := h.Handle("homie/fridge/a/temperature", []byte("4.5"), adaptertest.T0)
	adaptertest.CheckErr(t, "value beyond cap", err, nil)
	adaptertest.CheckReadings(t, "value beyond cap", rs, []adaptertest.Want{adaptertest.W("fridge", device.KindFridge, device.SignalTemperature, 4.5, "°C", "")})
}

func TestNewHomieErrors(t *testing.T) {
	if _, _, err := New(nil, &Options{BaseTopic: "homie/"}); err == nil || !strings.Contains(err.Error(), "base topic") {
		t.Errorf("bad base: %v", err)
	}
	if _, _, err := New(mqtt.Mappings{{Source: mqtt.SourceHomie, Name: "a/b", Device: "x", Kind: device.KindFridge}}, nil); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("bad mapping: %v", err)
	}
}

func FuzzHomie(f *testing.F) {
	for _, m := range adaptertest.LoadCorpus(f, "testdata/homie.tsv").All() {
		f.Add(m.Topic, m.Payload)
	}
	f.Add("homie/washer/machine/error/$format", []byte("none,door-open"))
	f.Add("homie/washer/machine/error/$datatype", []byte("enum"))
	f.Add("homie/washer/machine/error", []byte("door-open"))
	f.Add("homie/fridge/door/contact", []byte("true"))
	f.Add("homie/washer/meter/power", []byte("1e400"))
	d, l, err := New(homieMappings, &Options{MaxDevices: 3, MaxNodes: 4, MaxProperties: 8, OnAvailability: func(mqtt.Availability) {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if errors.Is(adaptertest.CheckLearn(t, l, topic, payload, adaptertest.T0), mqtt.ErrNotMine) {
			adaptertest.Check(t, d, topic, payload, adaptertest.T0)
		}
		tab := l.tab.Load()
		if len(tab.devices) > 3 {
			t.Fatalf("%d devices kept (max 3)", len(tab.devices))
		}
		for id, d := range tab.devices {
			if len(d.nodes) > 4 || len(d.props) > 8 || len(d.nodeOrder) > 4 {
				t.Fatalf("device %q: %d nodes, %d properties, %d listed nodes", id, len(d.nodes), len(d.props), len(d.nodeOrder))
			}
		}
	})
}
