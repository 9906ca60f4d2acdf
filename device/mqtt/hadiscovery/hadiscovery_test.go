package hadiscovery

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

func newDiscovery(t testing.TB, opts *LearnerOptions) *Learner {
	t.Helper()
	d, err := NewLearner(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// feed hands a message to a learner, or to a decoder, and wants nothing back.
func feed(t *testing.T, x any, topic string, payload []byte) {
	t.Helper()
	switch x := x.(type) {
	case mqtt.Learner:
		if err := x.Learn(topic, payload, adaptertest.T0); err != nil {
			t.Fatalf("%s: %v, want nothing", topic, err)
		}
	case mqtt.Decoder:
		if rs, err := x.Decode(topic, payload, adaptertest.T0); rs != nil || err != nil {
			t.Fatalf("%s: %v %v, want nothing", topic, rs, err)
		}
	}
}

func proposalFor(t *testing.T, d *Learner, configTopic string) Proposal {
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
	c := adaptertest.LoadCorpus(t, "testdata/homeassistant.tsv")
	defer c.CheckAllUsed()
	changes := 0
	d := newDiscovery(t, &LearnerOptions{OnChange: func() { changes++ }})

	// Doc example: a motion binary_sensor, its state, its removal.
	m := c.Get("doc-motion-config")
	feed(t, d, m.Topic, m.Payload)
	p := proposalFor(t, d, m.Topic)
	wantP := Proposal{
		Mapping:  mqtt.Mapping{Source: mqtt.SourceHomeAssistant, Name: "garden", Device: "garden", Kind: device.KindMotion, Signals: map[string]device.Signal{"motion": device.SignalActive}},
		Property: "motion", Signal: device.SignalActive, Reason: p.Reason,
		ConfigTopic: m.Topic, Component: "binary_sensor", ObjectID: "garden", EntityName: "garden", DeviceClass: "motion",
		StateTopic: "homeassistant/binary_sensor/garden/state", PayloadOn: "ON", PayloadOff: "OFF",
		PayloadAvailable: "online", PayloadNotAvailable: "offline",
	}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("motion proposal\n got %+v\nwant %+v", p, wantP)
	}
	if !strings.Contains(p.Reason, "motion") {
		t.Errorf("reason %q does not explain the guess", p.Reason)
	}
	st, err := NewState(d.Proposals(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m = c.Get("doc-motion-state")
	rs, err := st.Decode(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "motion state", err, nil)
	adaptertest.CheckReadings(t, "motion state", rs, []adaptertest.Want{adaptertest.W("garden", device.KindMotion, device.SignalActive, 1, "", "")})
	if err := d.Learn(m.Topic, m.Payload, adaptertest.T0); err != mqtt.ErrNotMine {
		t.Errorf("Learner on a state topic: %v, want ErrNotMine", err)
	}
	m = c.Get("doc-motion-delete")
	feed(t, d, m.Topic, m.Payload)
	if len(d.Proposals()) != 0 || changes != 2 {
		t.Errorf("after removal: %d proposals, %d changes", len(d.Proposals()), changes)
	}

	// Doc example: two sensors sharing one JSON state topic.
	for _, n := range []string{"doc-bedroom-t-config", "doc-bedroom-h-config"} {
		m := c.Get(n)
		feed(t, d, m.Topic, m.Payload)
	}
	pt := proposalFor(t, d, "homeassistant/sensor/sensorBedroomT/config")
	if pt.Property != "temperature" || pt.Signal != device.SignalTemperature || pt.Unit != "°C" || pt.Mapping.Kind != device.KindSensor || pt.Mapping.Name != "sensorBedroomT" {
		t.Errorf("temperature proposal %+v", pt)
	}
	// Accept both under one corrected device.
	ms := mqtt.Mappings{
		{Source: mqtt.SourceHomeAssistant, Name: "sensorBedroomT", Device: "bedroom", Kind: device.KindSensor},
		{Source: mqtt.SourceHomeAssistant, Name: "sensorBedroomH", Device: "bedroom", Kind: device.KindSensor},
		{Source: mqtt.SourceHomeAssistant, Name: "not-discovered", Device: "x", Kind: device.KindSensor},
	}
	acc := d.Accepted(ms)
	if len(acc) != 2 || acc[0].Mapping.Device != "bedroom" || acc[1].Mapping.Device != "bedroom" {
		t.Fatalf("accepted %+v", acc)
	}
	if err := st.Replace(acc); err != nil {
		t.Fatal(err)
	}
	m = c.Get("doc-bedroom-state")
	rs, err = st.Decode(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "bedroom", err, nil)
	adaptertest.CheckReadings(t, "bedroom", rs, []adaptertest.Want{
		adaptertest.W("bedroom", device.KindSensor, device.SignalHumidity, 43.7, "%", ""),
		adaptertest.W("bedroom", device.KindSensor, device.SignalTemperature, 23.2, "°C", "")})
	if _, err := st.Decode("homeassistant/binary_sensor/garden/state", []byte("ON"), adaptertest.T0); err != mqtt.ErrNotMine {
		t.Errorf("replaced-away topic: %v, want mqtt.ErrNotMine", err)
	}

	// Doc example: the same switch in full and abbreviated form with a ~ base.
	m = c.Get("doc-switch-config")
	feed(t, d, m.Topic, m.Payload)
	full := proposalFor(t, d, m.Topic)
	if full.StateTopic != "homeassistant/switch/irrigation/state" || full.Signal != device.SignalActive || full.Mapping.Kind != device.KindPlug || full.Property != "switch" {
		t.Errorf("switch proposal %+v", full)
	}
	before := changes
	m = c.Get("doc-switch-abbrev-config")
	feed(t, d, m.Topic, m.Payload)
	if abbr := proposalFor(t, d, m.Topic); !reflect.DeepEqual(abbr, full) {
		t.Errorf("abbreviated switch\n got %+v\nwant %+v", abbr, full)
	}
	if changes != before {
		t.Errorf("an identical config counted as a change")
	}

	// Real Zigbee2MQTT 1.6.0 configs of a door sensor: contact, battery, link quality.
	for _, n := range []string{"z2m-contact-config", "z2m-battery-config", "z2m-linkquality-config"} {
		m := c.Get(n)
		feed(t, d, m.Topic, m.Payload)
	}
	if len(d.Proposals()) != 5 { // 2 bedroom + switch + contact + battery; no link quality
		t.Errorf("%d proposals, want 5", len(d.Proposals()))
	}
	pc := proposalFor(t, d, "homeassistant/binary_sensor/0x00158d00029b063b/contact/config")
	wantC := Proposal{
		Mapping: mqtt.Mapping{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "0x00158d00029b063b",
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
	var av []mqtt.Availability
	ms = mqtt.Mappings{
		{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge},
		{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_battery_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge},
	}
	st2, err := NewState(d.Accepted(ms), &StateOptions{OnAvailability: func(a mqtt.Availability) { av = append(av, a) }})
	if err != nil {
		t.Fatal(err)
	}
	// A real MCCGQ11LM state (contact=false: open) published on this sensor's topic.
	z := adaptertest.LoadCorpus(t, "../zigbee2mqtt/testdata/zigbee2mqtt.tsv").Get("aqara-contact-open-zb6")
	rs, err = st2.Decode("zigbee2mqtt/0x00158d00029b063b", z.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "z2m via HA", err, nil)
	adaptertest.CheckReadings(t, "z2m via HA", rs, []adaptertest.Want{
		adaptertest.W("fridge", device.KindFridge, device.SignalDoor, 1, "", ""),
		adaptertest.W("fridge", device.KindFridge, device.SignalBattery, 100, "%", "0x00158d00029b063b_battery_zigbee2mqtt")})
	rs, err = st2.Decode("zigbee2mqtt/0x00158d00029b063b", []byte(`{"contact":true,"linkquality":39}`), adaptertest.T0)
	adaptertest.CheckErr(t, "closed", err, nil)
	adaptertest.CheckReadings(t, "closed", rs, []adaptertest.Want{adaptertest.W("fridge", device.KindFridge, device.SignalDoor, 0, "", "")})
	feed(t, st2, "zigbee2mqtt/bridge/state", []byte("offline"))
	feed(t, st2, "zigbee2mqtt/bridge/state", []byte(`{"state":"online"}`))
	wantAv := []mqtt.Availability{
		{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Online: false, State: "offline", At: adaptertest.T0},
		{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Online: true, State: "online", At: adaptertest.T0},
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
		st, err := NewState([]Proposal{p}, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.topic, err)
			continue
		}
		rs, err := st.Decode(p.StateTopic, []byte(tc.state), adaptertest.T0)
		adaptertest.CheckErr(t, tc.topic, err, nil)
		adaptertest.CheckReadings(t, tc.topic, rs, []adaptertest.Want{adaptertest.W(tc.dev, tc.kind, tc.sig, tc.wantVal, tc.wantUnit, "")})
	}
	if p := proposalFor(t, d, "homeassistant/binary_sensor/kitchen/fridge_door/config"); p.StateTopic != "kitchen/fridge/state" ||
		p.DeviceName != "Kitchen Fridge" || p.Model != "FD-1" || p.Manufacturer != "Acme" || !reflect.DeepEqual(p.Identifiers, []string{"abc"}) || p.UniqueID != "fridge_door_1" {
		t.Errorf("abbreviations: %+v", p)
	}
}

func TestDiscoveryIgnoredAndBad(t *testing.T) {
	d := newDiscovery(t, &LearnerOptions{MaxProposals: 2})
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
	}{
		{"state topic", "homeassistant/sensor/x/state", `1`, mqtt.ErrNotMine, nil},
		{"other prefix", "zigbee2mqtt/x/config", `{}`, mqtt.ErrNotMine, nil},
		{"light", "homeassistant/light/lamp/config", `{"name":"Lamp","state_topic":"lamp/state","command_topic":"lamp/set"}`, nil, nil},
		{"optimistic switch", "homeassistant/switch/s/config", `{"name":"S","command_topic":"s/set"}`, nil, nil},
		{"no signal", "homeassistant/sensor/rssi/config", `{"name":"RSSI","unit_of_measurement":"dBm","state_topic":"x/rssi"}`, nil, nil},
		{"binary battery", "homeassistant/binary_sensor/bl/config", `{"device_class":"battery","state_topic":"x/bl"}`, nil, nil},
		{"remove unknown", "homeassistant/sensor/nothing/config", ``, nil, nil},
		{"too short", "homeassistant/config", `{}`, mqtt.ErrNotMine, nil},
		{"one level", "homeassistant/sensor/config", `{}`, mqtt.ErrMalformed, []string{"<component>"}},
		{"too deep", "homeassistant/sensor/a/b/c/config", `{}`, mqtt.ErrMalformed, []string{"<object_id>"}},
		{"bad id", "homeassistant/sensor/bad id/config", `{}`, mqtt.ErrMalformed, []string{`"bad id"`}},
		{"empty id", "homeassistant/sensor//config", `{}`, mqtt.ErrMalformed, []string{"id"}},
		{"wildcard", "homeassistant/sensor/+/config", `{}`, mqtt.ErrMalformed, []string{"wildcards"}},
		{"broken json", "homeassistant/sensor/t/config", `{"name":`, mqtt.ErrMalformed, []string{"homeassistant/sensor/t/config", "JSON"}},
		{"state_topic type", "homeassistant/sensor/t/config", `{"stat_t":5}`, mqtt.ErrMalformed, []string{"state_topic", "want a string"}},
		{"state_topic wildcard", "homeassistant/sensor/t/config", `{"state_topic":"a/#"}`, mqtt.ErrMalformed, []string{"state_topic", "wildcards"}},
		{"state_topic empty level", "homeassistant/sensor/t/config", `{"state_topic":"a//b"}`, mqtt.ErrMalformed, []string{"state_topic", "empty level"}},
		{"name type", "homeassistant/sensor/t/config", `{"name":["x"],"state_topic":"a"}`, mqtt.ErrMalformed, []string{"name"}},
		{"device type", "homeassistant/sensor/t/config", `{"dev":"x","state_topic":"a"}`, mqtt.ErrMalformed, []string{"device"}},
		{"identifiers type", "homeassistant/sensor/t/config", `{"dev":{"ids":5},"state_topic":"a"}`, mqtt.ErrMalformed, []string{"identifiers"}},
		{"payload_on type", "homeassistant/binary_sensor/t/config", `{"pl_on":{"a":1},"state_topic":"a"}`, mqtt.ErrMalformed, []string{"payload_on"}},
		{"availability type", "homeassistant/sensor/t/config", `{"avty":{"t":"x"},"state_topic":"a"}`, mqtt.ErrMalformed, []string{"availability"}},
		{"unique_id wildcard", "homeassistant/sensor/t/config", `{"uniq_id":"a#b","device_class":"power","state_topic":"a"}`, mqtt.ErrMalformed, []string{"unique_id", `"a#b"`}},
		{"overflow number", "homeassistant/binary_sensor/t/config", `{"pl_on":1e400,"state_topic":"a"}`, mqtt.ErrMalformed, []string{"payload_on", "range"}},
	} {
		err := d.Learn(tc.topic, []byte(tc.payload), adaptertest.T0)
		if tc.class == mqtt.ErrNotMine {
			if err != mqtt.ErrNotMine {
				t.Errorf("%s: %v, want mqtt.ErrNotMine", tc.name, err)
			}
			continue
		}
		adaptertest.CheckErr(t, tc.name, err, tc.class, tc.parts...)
	}
	if n := len(d.Proposals()); n != 0 {
		t.Errorf("%d proposals from ignored and bad configs: %+v", n, d.Proposals())
	}

	// The cap: two held, a third refused, a replacement and a removal still work.
	cfg := []byte(`{"device_class":"power","unit_of_measurement":"W","state_topic":"p/w"}`)
	feed(t, d, "homeassistant/sensor/p1/config", cfg)
	feed(t, d, "homeassistant/sensor/p2/config", cfg)
	err := d.Learn("homeassistant/sensor/p3/config", cfg, adaptertest.T0)
	adaptertest.CheckErr(t, "third", err, mqtt.ErrLimit, "homeassistant/sensor/p3/config", "max 2")
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

func TestTemplateProblemListed(t *testing.T) {
	// An unsupported template is listed with its problem and refused by State.
	d := newDiscovery(t, nil)
	feed(t, d, "homeassistant/sensor/jinja/config", []byte(`{"device_class":"power","state_topic":"j/p","value_template":"{{ value_json.p | multiply(2) }}"}`))
	p := proposalFor(t, d, "homeassistant/sensor/jinja/config")
	if !strings.Contains(p.Problem, "multiply") {
		t.Errorf("problem %q", p.Problem)
	}
	if _, err := NewState([]Proposal{p}, nil); err == nil || !strings.Contains(err.Error(), "multiply") {
		t.Errorf("NewState with a problem: %v", err)
	}
}

func TestStateBadInput(t *testing.T) {
	d := newDiscovery(t, nil)
	feed(t, d, "homeassistant/binary_sensor/door/config", []byte(`{"device_class":"door","state_topic":"d/state","value_template":"{{ value_json.contact }}","payload_on":false,"payload_off":true}`))
	feed(t, d, "homeassistant/sensor/power/config", []byte(`{"device_class":"power","unit_of_measurement":"W","state_topic":"p/state","value_template":"{{ value_json.power | float }}"}`))
	feed(t, d, "homeassistant/sensor/raw/config", []byte(`{"device_class":"temperature","unit_of_measurement":"°C","state_topic":"t/state"}`))
	st, err := NewState(d.Proposals(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
		n                    int
	}{
		{"not accepted", "x/state", `1`, mqtt.ErrNotMine, nil, 0},
		{"broken json", "d/state", `{"contact":`, mqtt.ErrMalformed, []string{"d/state", `"door"`, "value_json"}, 0},
		{"plain text for json", "d/state", `open`, mqtt.ErrMalformed, []string{"value_json"}, 0},
		{"neither on nor off", "d/state", `{"contact":"ajar"}`, mqtt.ErrMalformed, []string{"ajar", "payload_on"}, 0},
		{"missing key", "d/state", `{"battery":100}`, nil, nil, 0},
		{"null value", "d/state", `{"contact":null}`, nil, nil, 0},
		{"word for number", "p/state", `{"power":"lots"}`, mqtt.ErrMalformed, []string{"float", "lots"}, 0},
		{"unknown state", "p/state", `{"power":"unavailable"}`, nil, nil, 0},
		{"overflow", "p/state", `{"power":1e400}`, mqtt.ErrMalformed, []string{"range"}, 0},
		{"huge", "p/state", `{"power":1e200}`, mqtt.ErrMalformed, []string{"1e15"}, 0},
		{"numeric string", "p/state", `{"power":"12.5"}`, nil, nil, 1},
		{"raw number", "t/state", `21.5`, nil, nil, 1},
		{"raw unknown", "t/state", `unknown`, nil, nil, 0},
		{"raw word", "t/state", `warm`, mqtt.ErrMalformed, []string{"warm"}, 0},
		{"raw NaN", "t/state", `NaN`, mqtt.ErrMalformed, []string{"NaN"}, 0},
		{"oversized", "t/state", strings.Repeat("1", conv.MaxPayload+1), mqtt.ErrMalformed, []string{"bytes"}, 0},
	} {
		rs, err := st.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if tc.class == mqtt.ErrNotMine {
			if err != mqtt.ErrNotMine {
				t.Errorf("%s: %v, want mqtt.ErrNotMine", tc.name, err)
			}
			continue
		}
		adaptertest.CheckErr(t, tc.name, err, tc.class, tc.parts...)
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
		{"source", func(p *Proposal) { p.Mapping.Source = mqtt.SourceTasmota }, "source"},
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
		if _, err := st.Decode("t/state", []byte("1"), adaptertest.T0); err != nil {
			t.Errorf("%s: previous set lost: %v", tc.name, err)
		}
	}
	// Accepted Signals win over the guess; an empty mapping falls back to the guess.
	p := good[0] // the door entity
	p.Mapping.Signals = map[string]device.Signal{"contact": device.SignalActive}
	st2, err := NewState([]Proposal{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st2.Decode("d/state", []byte(`{"contact":false}`), adaptertest.T0)
	adaptertest.CheckErr(t, "override", err, nil)
	adaptertest.CheckReadings(t, "override", rs, []adaptertest.Want{adaptertest.W(p.Mapping.Device, p.Mapping.Kind, device.SignalActive, 1, "", "")})
	p.Mapping.Signals = nil
	p.Mapping.Kind = device.KindMotion // mqtt.DefaultSignals(motion) has no "contact": the guess (door) is used
	st3, err := NewState([]Proposal{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err = st3.Decode("d/state", []byte(`{"contact":true}`), adaptertest.T0)
	adaptertest.CheckErr(t, "guess", err, nil)
	adaptertest.CheckReadings(t, "guess", rs, []adaptertest.Want{adaptertest.W(p.Mapping.Device, device.KindMotion, device.SignalDoor, 0, "", "")})

	var av []mqtt.Availability
	feed(t, d, "homeassistant/sensor/avail/config", []byte(`{"device_class":"power","state_topic":"a/p","availability_topic":"a/status"}`))
	st4, err := NewState([]Proposal{proposalFor(t, d, "homeassistant/sensor/avail/config")}, &StateOptions{OnAvailability: func(a mqtt.Availability) { av = append(av, a) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st4.Decode("a/status", []byte("flaky"), adaptertest.T0)
	adaptertest.CheckErr(t, "availability word", err, mqtt.ErrMalformed, "a/status", "flaky", `"online"`)
	if len(av) != 0 {
		t.Errorf("availability reported for a malformed message: %+v", av)
	}
}

func TestNewLearnerErrors(t *testing.T) {
	if _, err := NewLearner(&LearnerOptions{Prefix: "ha/+"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("bad prefix: %v", err)
	}
	d := newDiscovery(t, &LearnerOptions{Prefix: "custom/ha"})
	feed(t, d, "custom/ha/sensor/p/config", []byte(`{"device_class":"power","state_topic":"p/w"}`))
	if err := d.Learn("homeassistant/sensor/p/config", []byte(`{}`), adaptertest.T0); err != mqtt.ErrNotMine {
		t.Errorf("default prefix on a custom Learner: %v", err)
	}
	if len(d.Proposals()) != 1 {
		t.Errorf("custom prefix: %+v", d.Proposals())
	}
}

func FuzzDiscovery(f *testing.F) {
	for _, m := range adaptertest.LoadCorpus(f, "testdata/homeassistant.tsv").All() {
		f.Add(m.Topic, m.Payload, []byte(`{"temperature":21,"humidity":40,"contact":false,"battery":90}`))
	}
	f.Add("homeassistant/sensor/x/config", []byte(`{"~":"a","stat_t":"~/s","val_tpl":"{{ value_json['p'] | round(2) }}","dev_cla":"power"}`), []byte(`{"p":"12.345"}`))
	f.Add("homeassistant/switch/x/y/config", []byte(`{"stat_t":"s","stat_on":1,"stat_off":0}`), []byte(`1`))
	f.Fuzz(func(t *testing.T, topic string, payload, state []byte) {
		d := newDiscovery(t, &LearnerOptions{MaxProposals: 4})
		adaptertest.CheckLearn(t, d, topic, payload, adaptertest.T0)
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
		st, err := NewState(ok, nil)
		if err != nil {
			t.Fatalf("accepting proposals as proposed: %v", err)
		}
		for _, p := range ok {
			adaptertest.Check(t, st, p.StateTopic, state, adaptertest.T0)
		}
	})
}

func FuzzState(f *testing.F) {
	c := adaptertest.LoadCorpus(f, "testdata/homeassistant.tsv")
	d := newDiscovery(f, nil)
	for _, m := range c.All() {
		if strings.HasSuffix(m.Topic, "/config") {
			if err := d.Learn(m.Topic, m.Payload, adaptertest.T0); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(m.Topic, m.Payload)
	}
	f.Add("zigbee2mqtt/0x00158d00029b063b", []byte(`{"battery":100,"contact":false}`))
	f.Add("zigbee2mqtt/bridge/state", []byte(`offline`))
	f.Add("homeassistant/sensor/sensorBedroom/state", []byte(`{"temperature":1e400}`))
	st, err := NewState(d.Proposals(), &StateOptions{OnAvailability: func(mqtt.Availability) {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		adaptertest.Check(t, st, topic, payload, adaptertest.T0)
	})
}

// The Learner learns entities; the household accepts some in hearth.yaml; State reads
// the accepted ones and is given a new set whenever the Learner's proposals change.
func ExampleLearner() {
	accepted := mqtt.Mappings{{Source: mqtt.SourceHomeAssistant, Name: "0x00158d00029b063b_contact_zigbee2mqtt", Device: "fridge", Kind: device.KindFridge}}
	state, _ := NewState(nil, nil)
	var disc *Learner
	disc, _ = NewLearner(&LearnerOptions{OnChange: func() {
		if err := state.Replace(disc.Accepted(accepted)); err != nil {
			fmt.Println(err)
		}
	}})
	adapters := mqtt.Adapters{Learners: []mqtt.Learner{disc}, Decoder: state}

	// A retained discovery config, as Zigbee2MQTT publishes it.
	_, err := adapters.Handle("homeassistant/binary_sensor/0x00158d00029b063b/contact/config",
		[]byte(`{"payload_on":false,"payload_off":true,"value_template":"{{ value_json.contact }}","device_class":"door",`+
			`"state_topic":"zigbee2mqtt/0x00158d00029b063b","name":"0x00158d00029b063b_contact",`+
			`"unique_id":"0x00158d00029b063b_contact_zigbee2mqtt","device":{"name":"0x00158d00029b063b"}}`), time.Now())
	fmt.Println("config:", err)
	for _, p := range disc.Proposals() {
		fmt.Printf("proposal %s: %s %s (%s)\n", p.Mapping.Name, p.Mapping.Kind, p.Signal, p.Reason)
	}

	rs, err := adapters.Handle("zigbee2mqtt/0x00158d00029b063b", []byte(`{"battery":97,"contact":false}`), time.Now())
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
	d, err := NewLearner(nil)
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
	d2, err := NewLearner(&LearnerOptions{MaxProposals: 1, Known: append(learned, Proposal{ConfigTopic: "homeassistant/sensor/x/y/config"}),
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
