package mqtt

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

func newDiscovery(t testing.TB, opts *DiscoveryOptions) *Discovery {
	t.Helper()
	d, err := NewDiscovery(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func feed(t *testing.T, d Decoder, topic string, payload []byte) {
	t.Helper()
	rs, err := d.Decode(topic, payload, t0)
	if rs != nil || err != nil {
		t.Fatalf("%s: %v %v, want nothing", topic, rs, err)
	}
}

func proposalFor(t *testing.T, d *Discovery, configTopic string) Proposal {
	t.Helper()
	for _, p := range d.Proposals() {
		if p.ConfigTopic == configTopic {
			return p
		}
	}
	t.Fatalf("no proposal for %s", configTopic)
	return Proposal{}
}

func TestDiscoveryRealConfigs(t *testing.T) {
	c := loadCorpus(t, "homeassistant.tsv")
	defer c.checkAllUsed()
	changes := 0
	d := newDiscovery(t, &DiscoveryOptions{OnChange: func() { changes++ }})

	// Doc example: a motion binary_sensor, its state, its removal.
	m := c.get("doc-motion-config")
	feed(t, d, m.topic, m.payload)
	p := proposalFor(t, d, m.topic)
	wantP := Proposal{
		Mapping:  Mapping{Source: SourceHomeAssistant, Name: "garden", Device: "garden", Kind: device.KindMotion, Signals: map[string]device.Signal{"motion": device.SignalActive}},
		Property: "motion", Signal: device.SignalActive, Reason: p.Reason,
		ConfigTopic: m.topic, Component: "binary_sensor", ObjectID: "garden", EntityName: "garden", DeviceClass: "motion",
		StateTopic: "homeassistant/binary_sensor/garden/state", PayloadOn: "ON", PayloadOff: "OFF",
		PayloadAvailable: "online", PayloadNotAvailable: "offline",
	}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("motion proposal\n got %+v\nwant %+v", p, wantP)
	}
	if !strings.Contains(p.Reason, "motion") {
		t.Errorf("reason %q does not explain the guess", p.Reason)
	}
	st, err := NewHAState(d.Proposals(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m = c.get("doc-motion-state")
	rs, err := st.Decode(m.topic, m.payload, t0)
	checkErr(t, "motion state", err, nil)
	checkReadings(t, "motion state", rs, []want{{"garden", device.KindMotion, device.SignalActive, 1, "", "", time.Time{}}})
	if _, err := d.Decode(m.topic, m.payload, t0); err != ErrNotMine {
		t.Errorf("Discovery on a state topic: %v, want ErrNotMine", err)
	}
	m = c.get("doc-motion-delete")
	feed(t, d, m.topic, m.payload)
	if len(d.Proposals()) != 0 || changes != 2 {
		t.Errorf("after removal: %d proposals, %d changes", len(d.Proposals()), changes)
	}

	// Doc example: two sensors sharing one JSON state topic.
	for _, n := range []string{"doc-bedroom-t-config", "doc-bedroom-h-config"} {
		m := c.get(n)
		feed(t, d, m.topic, m.payload)
	}
	pt := proposalFor(t, d, "homeassistant/sensor/sensorBedroomT/config")
	if pt.Property != "temperature" || pt.Signal != device.SignalTemperature || pt.Unit != "°C" || pt.Mapping.Kind != device.KindSensor || pt.Mapping.Name != "sensorBedroomT" {
		t.Errorf("temperature proposal %+v", pt)
	}
	// Accept both under one corrected device.
	ms := Mappings{
		{Source: SourceHomeAssistant, Name: "sensorBedroomT", Device: "bedroom", Kind: device.KindSensor},
		{Source: SourceHomeAssistant, Name: "sensorBedroomH", Device: "bedroom", Kind: device.KindSensor},
		{Source: SourceHomeAssistant, Name: "not-discovered", Device: "x", Kind: device.KindSensor},
	}
	acc := d.Accepted(ms)
	if len(acc) != 2 || acc[0].Mapping.Device != "bedroom" || acc[1].Mapping.Device != "bedroom" {
		t.Fatalf("accepted %+v", acc)
	}
	if err := st.Replace(acc); err != nil {
		t.Fatal(err)
	}
	m = c.get("doc-bedroom-state")
	rs, err = st.Decode(m.topic, m.payload, t0)
	checkErr(t, "bedroom", err, nil)
	checkReadings(t, "bedroom", rs, []want{
		{"bedroom", device.KindSensor, device.SignalHumidity, 43.7, "%", "", time.Time{}},
		{"bedroom", device.KindSensor, device.SignalTemperature, 23.2, "°C", "", time.Time{}}})
	if _, err := st.Decode("homeassistant/binary_sensor/garden/state", []byte("ON"), t0); err != ErrNotMine {
		t.Errorf("replaced-away topic: %v, want ErrNotMine", err)
	}

	// Doc example: the same switch in full and abbreviated form with a ~ base.
	m = c.get("doc-switch-config")
	feed(t, d, m.topic, m.payload)
	full := proposalFor(t, d, m.topic)
	if full.StateTopic != "homeassistant/switch/irrigation/state" || full.Signal != device.SignalActive || full.Mapping.Kind != device.KindPlug || full.Property != "switch" {
		t.Errorf("switch proposal %+v", full)
	}
	before := changes
	m = c.get("doc-switch-abbrev-config")
	feed(t, d, m.topic, m.payload)
	if abbr := proposalFor(t, d, m.topic); !reflect.DeepEqual(abbr, full) {
		t.Errorf("abbreviated switch\n got %+v\nwant %+v", abbr, full)
	}
	if changes != before {
		t.Errorf("an identical config counted as a change")
	}

	// Real Zigbee2MQTT 1.6.0 configs of a door sensor: contact, battery, link quality.
	for _, n := range []string{"z2m-contact-config", "z2m-battery-config", "z2m-linkquality-config"} {
		m := c.get(n)
		feed(t, d, m.topic, m.payload)
	}
	if len(d.Proposals()) != 5 { // 2 bedroom + switch + contact + battery; no link quality
		t.Errorf("%d proposals, want 5", len(d.Proposals()))
	}
	pc := proposalFor(t, d, "homeassistant/binary_sensor/0x00158d00029b063b/contact/config")
	wantC := Proposal{
		Mapping: Mapping{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "0x00158d00029b063b",
			Kind: device.KindSensor, Signals: map[string]device.Signal{"contact": device.SignalDoor}},
		Property: "contact", Signal: device.SignalDoor, Reason: pc.Reason,
		ConfigTopic: "homeassistant/binary_sensor/0x00158d00029b063b/contact/config", Component: "binary_sensor",
		NodeID: "0x00158d00029b063b", ObjectID: "contact", UniqueID: "0x00158d00029b063b_contact_zigbee2mqtt",
		EntityName: "0x00158d00029b063b_contact", DeviceClass: "door",
		StateTopic: "zigbee2mqtt/0x00158d00029b063b", ValueTemplate: "{{ value_json.contact }}", PayloadOn: "false", PayloadOff: "true",
		AvailabilityTopic: "zigbee2mqtt/bridge/state", PayloadAvailable: "online", PayloadNotAvailable: "offline",
		DeviceName: "0x00158d00029b063b", Model: "MiJia door & window contact sensor (MCCGQ01LM)", Manufacturer: "Xiaomi",
		Identifiers: []string{"zigbee2mqtt_0x00158d00029b063b"},
	}
	if !reflect.DeepEqual(pc, wantC) {
		t.Errorf("contact proposal\n got %+v\nwant %+v", pc, wantC)
	}
	pb := proposalFor(t, d, "homeassistant/sensor/0x00158d00029b063b/battery/config")
	if pb.Signal != device.SignalBattery || pb.Mapping.Device != "0x00158d00029b063b" || pb.Property != "battery" {
		t.Errorf("battery proposal %+v", pb)
	}

	// The household says: that sensor is on the fridge door.
	var av []Availability
	ms = Mappings{
		{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge},
		{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_battery_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge},
	}
	st2, err := NewHAState(d.Accepted(ms), &HAStateOptions{OnAvailability: func(a Availability) { av = append(av, a) }})
	if err != nil {
		t.Fatal(err)
	}
	// A real MCCGQ11LM state (contact=false: open) published on this sensor's topic.
	z := loadCorpus(t, "zigbee2mqtt.tsv").get("aqara-contact-open-zb6")
	rs, err = st2.Decode("zigbee2mqtt/0x00158d00029b063b", z.payload, t0)
	checkErr(t, "z2m via HA", err, nil)
	checkReadings(t, "z2m via HA", rs, []want{
		{"fridge", device.KindFridge, device.SignalDoor, 1, "", "", time.Time{}},
		{"fridge", device.KindFridge, device.SignalBattery, 100, "%", "0x00158d00029b063b_battery_zigbee2mqtt", time.Time{}}})
	rs, err = st2.Decode("zigbee2mqtt/0x00158d00029b063b", []byte(`{"contact":true,"linkquality":39}`), t0)
	checkErr(t, "closed", err, nil)
	checkReadings(t, "closed", rs, []want{{"fridge", device.KindFridge, device.SignalDoor, 0, "", "", time.Time{}}})
	feed(t, st2, "zigbee2mqtt/bridge/state", []byte("offline"))
	feed(t, st2, "zigbee2mqtt/bridge/state", []byte(`{"state":"online"}`))
	wantAv := []Availability{
		{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Online: false, State: "offline", At: t0},
		{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Online: true, State: "online", At: t0},
	}
	if !reflect.DeepEqual(av, wantAv) {
		t.Errorf("availability %+v, want %+v (once per device)", av, wantAv)
	}
}

func TestDiscoveryGuesses(t *testing.T) {
	d := newDiscovery(t, nil)
	for _, tc := range []struct {
		topic, config string
		kind          device.Kind
		sig           device.Signal
		prop, dev     string
		state         string
		wantVal       float64
		wantUnit      string
	}{
		{"homeassistant/binary_sensor/kitchen/fridge_door/config",
			`{"name":"Fridge door","dev_cla":"door","~":"kitchen/fridge","stat_t":"~/state","uniq_id":"fridge_door_1","dev":{"ids":"abc","name":"Kitchen Fridge","mdl":"FD-1","mf":"Acme"}}`,
			device.KindFridge, device.SignalDoor, "door", "kitchen_fridge", "ON", 1, ""},
		{"homeassistant/sensor/washer_plug_power/config",
			`{"name":"Washer power","device_class":"power","unit_of_measurement":"W","state_topic":"tele/washer/SENSOR","value_template":"{{ value_json['ENERGY'].Power }}"}`,
			device.KindWasher, device.SignalPower, "energy.power", "washer_power", `{"ENERGY":{"Power":512}}`, 512, "W"},
		{"homeassistant/sensor/dw/config",
			`{"name":"Dishwasher energy","unit_of_measurement":"Wh","state_topic":"dw/energy"}`,
			device.KindDishwasher, device.SignalEnergy, "sensor", "dishwasher_energy", "1500", 1.5, "kWh"},
		{"homeassistant/sensor/oven_temp/config",
			`{"name":"Oven","dev_cla":"temperature","unit_of_meas":"°F","stat_t":"oven/t","val_tpl":"{{ value_json.t | float | round(1) }}"}`,
			device.KindOven, device.SignalTemperature, "t", "oven", `{"t":"392"}`, 200, "°C"},
		{"homeassistant/binary_sensor/fridge_cn/config",
			`{"name":"冰箱门","device_class":"opening","state_topic":"cn/door","payload_on":"1","payload_off":"0"}`,
			device.KindFridge, device.SignalDoor, "opening", "fridge_cn", "0", 0, ""},
		{"homeassistant/binary_sensor/front/config",
			`{"name":"Front door","device_class":"door","state_topic":"front/door"}`,
			device.KindEntryDoor, device.SignalDoor, "door", "front_door", "OFF", 0, ""},
		{"homeassistant/sensor/plug_w/config",
			`{"name":"Desk plug","unit_of_measurement":"kW","state_topic":"desk/power"}`,
			device.KindPlug, device.SignalPower, "sensor", "desk_plug", "0.25", 250, "W"},
		{"homeassistant/sensor/living/config",
			`{"name":"Living humidity","unit_of_measurement":"%","state_topic":"living/h"}`,
			device.KindSensor, device.SignalHumidity, "sensor", "living_humidity", "41", 41, "%"},
		{"homeassistant/switch/kettle/config",
			`{"name":"Kettle","command_topic":"k/set","state_topic":"k/state","state_on":"running","state_off":"idle"}`,
			device.KindKettle, device.SignalActive, "switch", "kettle", "running", 1, ""},
		{"homeassistant/binary_sensor/hall/config",
			`{"name":"Hall","state_topic":"hall/pir","value_template":"{{ value_json.occupancy }}","payload_on":true,"payload_off":false}`,
			device.KindMotion, device.SignalActive, "occupancy", "hall", `{"occupancy":true}`, 1, ""},
	} {
		feed(t, d, tc.topic, []byte(tc.config))
		p := proposalFor(t, d, tc.topic)
		if p.Mapping.Kind != tc.kind || p.Signal != tc.sig || p.Property != tc.prop || p.Mapping.Device != tc.dev || p.Problem != "" {
			t.Errorf("%s: kind %s signal %s property %q device %q problem %q (reason %q), want %s %s %q %q",
				tc.topic, p.Mapping.Kind, p.Signal, p.Property, p.Mapping.Device, p.Problem, p.Reason, tc.kind, tc.sig, tc.prop, tc.dev)
			continue
		}
		if err := p.Mapping.Validate(); err != nil {
			t.Errorf("%s: proposed mapping invalid: %v", tc.topic, err)
		}
		st, err := NewHAState([]Proposal{p}, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.topic, err)
			continue
		}
		rs, err := st.Decode(p.StateTopic, []byte(tc.state), t0)
		checkErr(t, tc.topic, err, nil)
		checkReadings(t, tc.topic, rs, []want{{tc.dev, tc.kind, tc.sig, tc.wantVal, tc.wantUnit, "", time.Time{}}})
	}
	if p := proposalFor(t, d, "homeassistant/binary_sensor/kitchen/fridge_door/config"); p.StateTopic != "kitchen/fridge/state" ||
		p.DeviceName != "Kitchen Fridge" || p.Model != "FD-1" || p.Manufacturer != "Acme" || !reflect.DeepEqual(p.Identifiers, []string{"abc"}) || p.UniqueID != "fridge_door_1" {
		t.Errorf("abbreviations: %+v", p)
	}
}

func TestDiscoveryIgnoredAndBad(t *testing.T) {
	d := newDiscovery(t, &DiscoveryOptions{MaxProposals: 2})
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
	}{
		{"state topic", "homeassistant/sensor/x/state", `1`, ErrNotMine, nil},
		{"other prefix", "zigbee2mqtt/x/config", `{}`, ErrNotMine, nil},
		{"light", "homeassistant/light/lamp/config", `{"name":"Lamp","state_topic":"lamp/state","command_topic":"lamp/set"}`, nil, nil},
		{"optimistic switch", "homeassistant/switch/s/config", `{"name":"S","command_topic":"s/set"}`, nil, nil},
		{"no signal", "homeassistant/sensor/rssi/config", `{"name":"RSSI","unit_of_measurement":"dBm","state_topic":"x/rssi"}`, nil, nil},
		{"binary battery", "homeassistant/binary_sensor/bl/config", `{"device_class":"battery","state_topic":"x/bl"}`, nil, nil},
		{"remove unknown", "homeassistant/sensor/nothing/config", ``, nil, nil},
		{"too short", "homeassistant/config", `{}`, ErrNotMine, nil},
		{"one level", "homeassistant/sensor/config", `{}`, ErrMalformed, []string{"<component>"}},
		{"too deep", "homeassistant/sensor/a/b/c/config", `{}`, ErrMalformed, []string{"<object_id>"}},
		{"bad id", "homeassistant/sensor/bad id/config", `{}`, ErrMalformed, []string{`"bad id"`}},
		{"empty id", "homeassistant/sensor//config", `{}`, ErrMalformed, []string{"id"}},
		{"wildcard", "homeassistant/sensor/+/config", `{}`, ErrMalformed, []string{"wildcards"}},
		{"broken json", "homeassistant/sensor/t/config", `{"name":`, ErrMalformed, []string{"homeassistant/sensor/t/config", "JSON"}},
		{"state_topic type", "homeassistant/sensor/t/config", `{"stat_t":5}`, ErrMalformed, []string{"state_topic", "want a string"}},
		{"state_topic wildcard", "homeassistant/sensor/t/config", `{"state_topic":"a/#"}`, ErrMalformed, []string{"state_topic", "wildcards"}},
		{"state_topic empty level", "homeassistant/sensor/t/config", `{"state_topic":"a//b"}`, ErrMalformed, []string{"state_topic", "empty level"}},
		{"name type", "homeassistant/sensor/t/config", `{"name":["x"],"state_topic":"a"}`, ErrMalformed, []string{"name"}},
		{"device type", "homeassistant/sensor/t/config", `{"dev":"x","state_topic":"a"}`, ErrMalformed, []string{"device"}},
		{"identifiers type", "homeassistant/sensor/t/config", `{"dev":{"ids":5},"state_topic":"a"}`, ErrMalformed, []string{"identifiers"}},
		{"payload_on type", "homeassistant/binary_sensor/t/config", `{"pl_on":{"a":1},"state_topic":"a"}`, ErrMalformed, []string{"payload_on"}},
		{"availability type", "homeassistant/sensor/t/config", `{"avty":{"t":"x"},"state_topic":"a"}`, ErrMalformed, []string{"availability"}},
		{"unique_id wildcard", "homeassistant/sensor/t/config", `{"uniq_id":"a#b","device_class":"power","state_topic":"a"}`, ErrMalformed, []string{"unique_id", `"a#b"`}},
		{"overflow number", "homeassistant/binary_sensor/t/config", `{"pl_on":1e400,"state_topic":"a"}`, ErrMalformed, []string{"payload_on", "range"}},
	} {
		rs, err := d.Decode(tc.topic, []byte(tc.payload), t0)
		if rs != nil {
			t.Errorf("%s: readings %v", tc.name, rs)
		}
		if tc.class == ErrNotMine {
			if err != ErrNotMine {
				t.Errorf("%s: %v, want ErrNotMine", tc.name, err)
			}
			continue
		}
		checkErr(t, tc.name, err, tc.class, tc.parts...)
	}
	if n := len(d.Proposals()); n != 0 {
		t.Errorf("%d proposals from ignored and bad configs: %+v", n, d.Proposals())
	}

	// The cap: two held, a third refused, a replacement and a removal still work.
	cfg := []byte(`{"device_class":"power","unit_of_measurement":"W","state_topic":"p/w"}`)
	feed(t, d, "homeassistant/sensor/p1/config", cfg)
	feed(t, d, "homeassistant/sensor/p2/config", cfg)
	_, err := d.Decode("homeassistant/sensor/p3/config", cfg, t0)
	checkErr(t, "third", err, ErrLimit, "homeassistant/sensor/p3/config", "max 2")
	feed(t, d, "homeassistant/sensor/p2/config", []byte(`{"device_class":"energy","state_topic":"p/e"}`))
	feed(t, d, "homeassistant/sensor/p1/config", nil)
	feed(t, d, "homeassistant/sensor/p3/config", cfg)
	ps := d.Proposals()
	if len(ps) != 2 || ps[0].ObjectID != "p2" || ps[0].Signal != device.SignalEnergy || ps[1].ObjectID != "p3" {
		t.Errorf("after cap: %+v", ps)
	}
	// Proposals are copies.
	ps[0].Mapping.Signals["x"] = device.SignalDoor
	if _, ok := d.Proposals()[0].Mapping.Signals["x"]; ok {
		t.Error("Proposals shares its maps")
	}

	// The availability list form, abbreviated, with the ~ base.
	d = newDiscovery(t, nil)
	feed(t, d, "homeassistant/binary_sensor/node1/door/config",
		[]byte(`{"~":"esp/node1","stat_t":"~/door","dev_cla":"door","avty":[{"t":"~/status","pl_avail":"up","pl_not_avail":"down"}]}`))
	p := proposalFor(t, d, "homeassistant/binary_sensor/node1/door/config")
	if p.AvailabilityTopic != "esp/node1/status" || p.PayloadAvailable != "up" || p.PayloadNotAvailable != "down" || p.Mapping.Name != "node1/door" || p.StateTopic != "esp/node1/door" {
		t.Errorf("availability list: %+v", p)
	}
}

func TestParseTemplate(t *testing.T) {
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
		got, err := parseTemplate(tc.tpl)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q: error %v, want %q", tc.tpl, err, tc.errPart)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got.path, tc.path) {
			t.Errorf("%q = %v %v, want %v", tc.tpl, got.path, err, tc.path)
		}
	}
	// An unsupported template is listed with its problem and refused by HAState.
	d := newDiscovery(t, nil)
	feed(t, d, "homeassistant/sensor/jinja/config", []byte(`{"device_class":"power","state_topic":"j/p","value_template":"{{ value_json.p | multiply(2) }}"}`))
	p := proposalFor(t, d, "homeassistant/sensor/jinja/config")
	if !strings.Contains(p.Problem, "multiply") {
		t.Errorf("problem %q", p.Problem)
	}
	if _, err := NewHAState([]Proposal{p}, nil); err == nil || !strings.Contains(err.Error(), "multiply") {
		t.Errorf("NewHAState with a problem: %v", err)
	}
}

func TestHAStateBadInput(t *testing.T) {
	d := newDiscovery(t, nil)
	feed(t, d, "homeassistant/binary_sensor/door/config", []byte(`{"device_class":"door","state_topic":"d/state","value_template":"{{ value_json.contact }}","payload_on":false,"payload_off":true}`))
	feed(t, d, "homeassistant/sensor/power/config", []byte(`{"device_class":"power","unit_of_measurement":"W","state_topic":"p/state","value_template":"{{ value_json.power | float }}"}`))
	feed(t, d, "homeassistant/sensor/raw/config", []byte(`{"device_class":"temperature","unit_of_measurement":"°C","state_topic":"t/state"}`))
	st, err := NewHAState(d.Proposals(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
		n                    int
	}{
		{"not accepted", "x/state", `1`, ErrNotMine, nil, 0},
		{"broken json", "d/state", `{"contact":`, ErrMalformed, []string{"d/state", `"door"`, "value_json"}, 0},
		{"plain text for json", "d/state", `open`, ErrMalformed, []string{"value_json"}, 0},
		{"neither on nor off", "d/state", `{"contact":"ajar"}`, ErrMalformed, []string{"ajar", "payload_on"}, 0},
		{"missing key", "d/state", `{"battery":100}`, nil, nil, 0},
		{"null value", "d/state", `{"contact":null}`, nil, nil, 0},
		{"word for number", "p/state", `{"power":"lots"}`, ErrMalformed, []string{"float", "lots"}, 0},
		{"unknown state", "p/state", `{"power":"unavailable"}`, nil, nil, 0},
		{"overflow", "p/state", `{"power":1e400}`, ErrMalformed, []string{"range"}, 0},
		{"huge", "p/state", `{"power":1e200}`, ErrMalformed, []string{"1e15"}, 0},
		{"numeric string", "p/state", `{"power":"12.5"}`, nil, nil, 1},
		{"raw number", "t/state", `21.5`, nil, nil, 1},
		{"raw unknown", "t/state", `unknown`, nil, nil, 0},
		{"raw word", "t/state", `warm`, ErrMalformed, []string{"warm"}, 0},
		{"raw NaN", "t/state", `NaN`, ErrMalformed, []string{"NaN"}, 0},
		{"oversized", "t/state", strings.Repeat("1", maxPayload+1), ErrMalformed, []string{"bytes"}, 0},
	} {
		rs, err := st.Decode(tc.topic, []byte(tc.payload), t0)
		if tc.class == ErrNotMine {
			if err != ErrNotMine {
				t.Errorf("%s: %v, want ErrNotMine", tc.name, err)
			}
			continue
		}
		checkErr(t, tc.name, err, tc.class, tc.parts...)
		if len(rs) != tc.n {
			t.Errorf("%s: %d readings %v, want %d", tc.name, len(rs), rs, tc.n)
		}
	}

	// Bad accepted lists are refused whole; the previous set stays.
	good := d.Proposals()
	for _, tc := range []struct {
		name string
		mod  func(*Proposal)
		part string
	}{
		{"source", func(p *Proposal) { p.Mapping.Source = SourceTasmota }, "source"},
		{"device", func(p *Proposal) { p.Mapping.Device = "a b" }, "device"},
		{"no state topic", func(p *Proposal) { p.StateTopic = "" }, "state topic"},
		{"wildcard state topic", func(p *Proposal) { p.StateTopic = "a/+" }, "state topic"},
		{"component", func(p *Proposal) { p.Component = "light" }, "component"},
		{"no signal", func(p *Proposal) {
			p.Mapping.Signals = map[string]device.Signal{"other": device.SignalDoor}
		}, `no signal for property "contact"`},
		{"template", func(p *Proposal) { p.ValueTemplate = "{{ x }}" }, "value_template"},
	} {
		bad := append([]Proposal(nil), good...)
		bad[0] = bad[0].clone()
		tc.mod(&bad[0])
		if err := st.Replace(bad); err == nil || !strings.Contains(err.Error(), tc.part) || !strings.Contains(err.Error(), "accepted[0]") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err := st.Decode("t/state", []byte("1"), t0); err != nil {
			t.Errorf("%s: previous set lost: %v", tc.name, err)
		}
	}
	// Accepted Signals win over the guess; an empty mapping falls back to the guess.
	p := good[0] // the door entity
	p.Mapping.Signals = map[string]device.Signal{"contact": device.SignalActive}
	st2, err := NewHAState([]Proposal{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st2.Decode("d/state", []byte(`{"contact":false}`), t0)
	checkErr(t, "override", err, nil)
	checkReadings(t, "override", rs, []want{{p.Mapping.Device, p.Mapping.Kind, device.SignalActive, 1, "", "", time.Time{}}})
	p.Mapping.Signals = nil
	p.Mapping.Kind = device.KindMotion // DefaultSignals(motion) has no "contact": the guess (door) is used
	st3, err := NewHAState([]Proposal{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err = st3.Decode("d/state", []byte(`{"contact":true}`), t0)
	checkErr(t, "guess", err, nil)
	checkReadings(t, "guess", rs, []want{{p.Mapping.Device, device.KindMotion, device.SignalDoor, 0, "", "", time.Time{}}})

	var av []Availability
	feed(t, d, "homeassistant/sensor/avail/config", []byte(`{"device_class":"power","state_topic":"a/p","availability_topic":"a/status"}`))
	st4, err := NewHAState([]Proposal{proposalFor(t, d, "homeassistant/sensor/avail/config")}, &HAStateOptions{OnAvailability: func(a Availability) { av = append(av, a) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st4.Decode("a/status", []byte("flaky"), t0)
	checkErr(t, "availability word", err, ErrMalformed, "a/status", "flaky", `"online"`)
	if len(av) != 0 {
		t.Errorf("availability reported for a malformed message: %+v", av)
	}
}

func TestNewDiscoveryErrors(t *testing.T) {
	if _, err := NewDiscovery(&DiscoveryOptions{Prefix: "ha/+"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("bad prefix: %v", err)
	}
	d := newDiscovery(t, &DiscoveryOptions{Prefix: "custom/ha"})
	feed(t, d, "custom/ha/sensor/p/config", []byte(`{"device_class":"power","state_topic":"p/w"}`))
	if _, err := d.Decode("homeassistant/sensor/p/config", []byte(`{}`), t0); err != ErrNotMine {
		t.Errorf("default prefix on a custom Discovery: %v", err)
	}
	if len(d.Proposals()) != 1 {
		t.Errorf("custom prefix: %+v", d.Proposals())
	}
}

func FuzzDiscovery(f *testing.F) {
	for _, m := range loadCorpus(f, "homeassistant.tsv").all() {
		f.Add(m.topic, m.payload, []byte(`{"temperature":21,"humidity":40,"contact":false,"battery":90}`))
	}
	f.Add("homeassistant/sensor/x/config", []byte(`{"~":"a","stat_t":"~/s","val_tpl":"{{ value_json['p'] | round(2) }}","dev_cla":"power"}`), []byte(`{"p":"12.345"}`))
	f.Add("homeassistant/switch/x/y/config", []byte(`{"stat_t":"s","stat_on":1,"stat_off":0}`), []byte(`1`))
	f.Fuzz(func(t *testing.T, topic string, payload, state []byte) {
		d := newDiscovery(t, &DiscoveryOptions{MaxProposals: 4})
		rs, err := d.Decode(topic, payload, t0)
		checkFuzzResult(t, rs, err)
		if rs != nil {
			t.Fatalf("Discovery returned readings %v", rs)
		}
		ps := d.Proposals()
		if len(ps) > 4 {
			t.Fatalf("%d proposals (max 4)", len(ps))
		}
		var ok []Proposal
		for _, p := range ps {
			if err := p.Mapping.Validate(); err != nil {
				t.Fatalf("proposed mapping invalid: %v", err)
			}
			if p.Problem == "" {
				ok = append(ok, p)
			}
		}
		// Every proposal without a Problem, accepted as proposed, can be read.
		st, err := NewHAState(ok, nil)
		if err != nil {
			t.Fatalf("accepting proposals as proposed: %v", err)
		}
		for _, p := range ok {
			rs, err := st.Decode(p.StateTopic, state, t0)
			checkFuzzResult(t, rs, err)
		}
	})
}

func FuzzHAState(f *testing.F) {
	c := loadCorpus(f, "homeassistant.tsv")
	d := newDiscovery(f, nil)
	for _, m := range c.all() {
		if strings.HasSuffix(m.topic, "/config") {
			if _, err := d.Decode(m.topic, m.payload, t0); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(m.topic, m.payload)
	}
	f.Add("zigbee2mqtt/0x00158d00029b063b", []byte(`{"battery":100,"contact":false}`))
	f.Add("zigbee2mqtt/bridge/state", []byte(`offline`))
	f.Add("homeassistant/sensor/sensorBedroom/state", []byte(`{"temperature":1e400}`))
	st, err := NewHAState(d.Proposals(), &HAStateOptions{OnAvailability: func(Availability) {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := st.Decode(topic, payload, t0)
		checkFuzzResult(t, rs, err)
	})
}

// Discovery learns entities; the household accepts some in hearth.yaml; HAState reads
// the accepted ones and is rebuilt whenever discovery changes.
func ExampleDiscovery() {
	accepted := Mappings{{Source: SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge}}
	state, _ := NewHAState(nil, nil)
	var disc *Discovery
	disc, _ = NewDiscovery(&DiscoveryOptions{OnChange: func() {
		if err := state.Replace(disc.Accepted(accepted)); err != nil {
			fmt.Println(err)
		}
	}})
	router := Router{state, disc} // HAState first: it claims only accepted topics

	// A retained discovery config, as Zigbee2MQTT publishes it.
	_, err := router.Decode("homeassistant/binary_sensor/0x00158d00029b063b/contact/config",
		[]byte(`{"payload_on":false,"payload_off":true,"value_template":"{{ value_json.contact }}","device_class":"door",`+
			`"state_topic":"zigbee2mqtt/0x00158d00029b063b","name":"0x00158d00029b063b_contact",`+
			`"unique_id":"0x00158d00029b063b_contact_zigbee2mqtt","device":{"name":"0x00158d00029b063b"}}`), time.Now())
	fmt.Println("config:", err)
	for _, p := range disc.Proposals() {
		fmt.Printf("proposal %s: %s %s (%s)\n", p.Mapping.Name, p.Mapping.Kind, p.Signal, p.Reason)
	}

	rs, err := router.Decode("zigbee2mqtt/0x00158d00029b063b", []byte(`{"battery":97,"contact":false}`), time.Now())
	fmt.Println("state:", err)
	for _, r := range rs {
		fmt.Println(r.Device, r.Kind, r.Signal, r.Value)
	}
	// Output:
	// config: <nil>
	// proposal 0x00158d00029b063b_contact_zigbee2mqtt: sensor door (no appliance named → sensor; device_class door → door)
	// state: <nil>
	// fridge fridge door 1
}

// Proposals learned before come back through Known; a change is reported through
// OnProposal, a config received again unchanged is not, and an empty config reports
// the removal.
func TestDiscoveryKnownAndOnProposal(t *testing.T) {
	d, err := NewDiscovery(nil)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, d, fridgeDoorBatteryConfigTopic, []byte(fridgeDoorBatteryConfig))
	learned := d.Proposals()

	type call struct {
		topic   string
		removed bool
	}
	var calls []call
	d2, err := NewDiscovery(&DiscoveryOptions{MaxProposals: 1, Known: append(learned, Proposal{ConfigTopic: "homeassistant/sensor/x/y/config"}),
		OnProposal: func(topic string, p *Proposal) { calls = append(calls, call{topic, p == nil}) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := d2.Proposals(); len(got) != 1 || got[0].ConfigTopic != fridgeDoorBatteryConfigTopic || got[0].Mapping.Name != learned[0].Mapping.Name {
		t.Fatalf("restored %+v, want the one learned (MaxProposals 1)", got)
	}
	feed(t, d2, fridgeDoorBatteryConfigTopic, []byte(fridgeDoorBatteryConfig)) // the retained config again
	if len(calls) != 0 {
		t.Errorf("an unchanged config reported %+v", calls)
	}
	feed(t, d2, fridgeDoorBatteryConfigTopic, []byte(strings.Replace(fridgeDoorBatteryConfig, "Fridge Door battery", "Door battery", 1)))
	feed(t, d2, fridgeDoorBatteryConfigTopic, nil)
	if want := []call{{fridgeDoorBatteryConfigTopic, false}, {fridgeDoorBatteryConfigTopic, true}}; !slices.Equal(calls, want) {
		t.Errorf("OnProposal calls %+v, want %+v", calls, want)
	}
}
