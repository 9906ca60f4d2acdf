package tasmota

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
)

var tasmotaMappings = mqtt.Mappings{
	{Source: mqtt.SourceTasmota, Name: "pow1", Device: "washer", Kind: device.KindWasher},
	{Source: mqtt.SourceTasmota, Name: "ds1820", Device: "fridge", Kind: device.KindFridge},
	{Source: mqtt.SourceTasmota, Name: "tasmota", Device: "tasmota_sensor", Kind: device.KindSensor},
	{Source: mqtt.SourceTasmota, Name: "ble-hub/LYWSD03-52680f", Device: "fridge_ble", Kind: device.KindFridge},
	{Source: mqtt.SourceTasmota, Name: "demo-sensor", Device: "porch", Kind: device.KindEntryDoor,
		Signals: map[string]device.Signal{"switch1": device.SignalDoor, "relay": device.SignalActive}},
	{Source: mqtt.SourceTasmota, Name: "sound1", Device: "kettle", Kind: device.KindKettle},
	{Source: mqtt.SourceTasmota, Name: "tasmota-E8A6E4", Device: "plug_e8", Kind: device.KindPlug},
	{Source: mqtt.SourceTasmota, Name: "tasmota_switch", Device: "switch", Kind: device.KindPlug},
	{Source: mqtt.SourceTasmota, Name: "tasmota_XXXXXX", Device: "plug_x", Kind: device.KindPlug},
	{Source: mqtt.SourceTasmota, Name: "SonoffZB/door_sensor", Device: "fridge_door", Kind: device.KindFridge},
	{Source: mqtt.SourceTasmota, Name: "zbbridge/Kitchen", Device: "kitchen", Kind: device.KindSensor},
	{Source: mqtt.SourceTasmota, Name: "zbbridge/IKEA_Light", Device: "lamp", Kind: device.KindPlug},
	{Source: mqtt.SourceTasmota, Name: "xxxx", Device: "bridge_x", Kind: device.KindPlug},
}

// tasmotaMappings2 map the same topics differently.
var tasmotaMappings2 = mqtt.Mappings{
	{Source: mqtt.SourceTasmota, Name: "ble-hub", Device: "ble", Kind: device.KindSensor},
	{Source: mqtt.SourceTasmota, Name: "tasmota", Device: "hall", Kind: device.KindEntryDoor,
		Signals: map[string]device.Signal{"switch1": device.SignalDoor}},
	{Source: mqtt.SourceTasmota, Name: "tasmota/0x4773", Device: "bulb", Kind: device.KindPlug},
	{Source: mqtt.SourceTasmota, Name: "SonoffZB/0x057B", Device: "hall_motion", Kind: device.KindMotion},
	{Source: mqtt.SourceTasmota, Name: "Zigbee/0x5ADF", Device: "dimmer", Kind: device.KindPlug},
}

func newTasmota(t testing.TB, ms mqtt.Mappings, opts *Options) *Decoder {
	t.Helper()
	d, err := New(ms, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTasmotaRealPayloads(t *testing.T) {
	c := adaptertest.LoadCorpus(t, "testdata/tasmota.tsv")
	defer c.CheckAllUsed()
	var av []mqtt.Availability
	d1 := newTasmota(t, tasmotaMappings, &Options{OnAvailability: func(a mqtt.Availability) { av = append(av, a) }})
	d2 := newTasmota(t, tasmotaMappings2, nil)
	var z time.Time
	offset := time.Date(2021, 6, 27, 13, 3, 44, 0, time.UTC) // "2021-06-27T15:03:44+02:00"
	const (
		S = device.KindSensor
		P = device.KindPlug
		T = device.SignalTemperature
		H = device.SignalHumidity
		B = device.SignalBattery
		A = device.SignalActive
		D = device.SignalDoor
	)
	for _, tc := range []struct {
		name  string
		d     *Decoder
		wants []adaptertest.Want
		class error
		parts []string
	}{
		// ENERGY.Power → power W, ENERGY.Total → energy kWh; Time has no zone: DeviceTime zero.
		{name: "pow-r2-energy", d: d1, wants: []adaptertest.Want{adaptertest.W("washer", device.KindWasher, device.SignalPower, 2635, "W", "").At(z), adaptertest.W("washer", device.KindWasher, device.SignalEnergy, 6.294, "kWh", "").At(z)}},
		{name: "ds18b20-rules", d: d1, wants: []adaptertest.Want{adaptertest.W("fridge", device.KindFridge, T, 20.9, "°C", "").At(z)}},
		{name: "ds18b20-mqtt-doc", d: d1, wants: []adaptertest.Want{adaptertest.W("tasmota_sensor", S, T, 20.6, "°C", "").At(z)}},
		{name: "mpu6050-temperature", d: d1, wants: []adaptertest.Want{adaptertest.W("tasmota_sensor", S, T, 27.7, "°C", "").At(z)}},
		// one sensor object mapped on its own
		{name: "ble-three-sensors", d: d1, wants: []adaptertest.Want{adaptertest.W("fridge_ble", device.KindFridge, B, 100, "%", "ble-hub/LYWSD03-52680f").At(z), adaptertest.W("fridge_ble", device.KindFridge, H, 58, "%", "").At(z), adaptertest.W("fridge_ble", device.KindFridge, T, 21.1, "°C", "").At(z)}},
		{name: "analog-only", d: d1},
		{name: "switch1-on", d: d2, wants: []adaptertest.Want{adaptertest.W("hall", device.KindEntryDoor, D, 1, "", "").At(z)}},
		// Time with an offset is trusted
		{name: "deepsleep-switches-offset-time", d: d1, wants: []adaptertest.Want{adaptertest.W("porch", device.KindEntryDoor, D, 0, "", "").At(offset)}},
		{name: "state-deepsleep-power-on", d: d1, wants: []adaptertest.Want{adaptertest.W("porch", device.KindEntryDoor, A, 1, "", "").At(offset)}},
		{name: "state-adc-power-off", d: d1, wants: []adaptertest.Want{adaptertest.W("tasmota_sensor", S, A, 0, "", "").At(z)}},
		{name: "state-epoch-no-power", d: d1},
		{name: "state-sound1-power-off", d: d1, wants: []adaptertest.Want{adaptertest.W("kettle", device.KindKettle, A, 0, "", "").At(z)}},
		{name: "state-openhab-power-placeholder", d: d1, class: mqtt.ErrMalformed, parts: []string{"tele/tasmota-E8A6E4/STATE", "POWER", `"POWER" is not an on/off state`}},
		{name: "mcp230xx-broken-json", d: d1, class: mqtt.ErrMalformed, parts: []string{"tele/tasmota/SENSOR", "JSON"}},
		{name: "stat-power-on", d: d1, wants: []adaptertest.Want{adaptertest.W("switch", P, A, 1, "", "").At(z)}},
		{name: "stat-result", d: d1},
		{name: "cmnd-power-toggle", d: d1},
		// Zigbee bridge: Contact is 1 when open
		{name: "zb-door-closed", d: d1, wants: []adaptertest.Want{adaptertest.W("fridge_door", device.KindFridge, D, 0, "", "").At(z)}},
		{name: "zb-door-open", d: d1, wants: []adaptertest.Want{adaptertest.W("fridge_door", device.KindFridge, D, 1, "", "").At(z)}},
		{name: "zb-motion", d: d2, wants: []adaptertest.Want{adaptertest.W("hall_motion", device.KindMotion, A, 1, "", "").At(z)}},
		{name: "zb-no-motion", d: d2, wants: []adaptertest.Want{adaptertest.W("hall_motion", device.KindMotion, A, 0, "", "").At(z)}},
		{name: "zb-kitchen-missing-brace", d: d1, class: mqtt.ErrMalformed, parts: []string{"tele/zbbridge/SENSOR", "JSON"}},
		{name: "zb-device-topic", d: d2},
		{name: "zb-home-subtopic", d: d1},
		{name: "zb-power-true", d: d2, wants: []adaptertest.Want{adaptertest.W("bulb", P, A, 1, "", "").At(z)}},
		{name: "zb-ikea-light-power", d: d1, wants: []adaptertest.Want{adaptertest.W("lamp", P, A, 1, "", "").At(z)}},
		{name: "zb-info-plug", d: d1},
	} {
		m := c.Get(tc.name)
		rs, err := tc.d.Decode(m.Topic, m.Payload, adaptertest.T0)
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

	// The same real messages where nothing is mapped.
	for _, tc := range []struct{ name, part string }{
		{"zb-motion", `"motion_sensor" (0x057B)`},
		{"zb-device-topic", `"Zigbee"`},
		{"ble-three-sensors", `"ble-hub"`},
	} {
		d := d1
		if tc.name == "ble-three-sensors" {
			d = newTasmota(t, tasmotaMappings2[1:], nil)
		}
		m := c.Get(tc.name)
		_, err := d.Decode(m.Topic, m.Payload, adaptertest.T0)
		adaptertest.CheckErr(t, "unmapped "+tc.name, err, mqtt.ErrUnknownDevice, tc.part)
	}
	// The whole hub mapped: every sensor, by its field name.
	m := c.Get("ble-three-sensors")
	rs, err := d2.Decode(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "ble hub", err, nil)
	adaptertest.CheckReadings(t, "ble hub", rs, []adaptertest.Want{
		adaptertest.W("ble", S, B, 2, "%", "ble-hub/LYWSD02-a2fd09").At(z), adaptertest.W("ble", S, H, 57, "%", "").At(z), adaptertest.W("ble", S, T, 21.4, "°C", "").At(z),
		adaptertest.W("ble", S, B, 100, "%", "ble-hub/LYWSD03-52680f").At(z), adaptertest.W("ble", S, H, 58, "%", "").At(z), adaptertest.W("ble", S, T, 21.1, "°C", "").At(z),
		adaptertest.W("ble", S, H, 54.6, "%", "").At(z), adaptertest.W("ble", S, T, 21.4, "°C", "").At(z)})

	// LWT: availability, no reading.
	for _, n := range []string{"lwt-online", "lwt-offline"} {
		m := c.Get(n)
		if rs, err := d1.Decode(m.Topic, m.Payload, adaptertest.T0); rs != nil || err != nil {
			t.Errorf("%s: %v %v", n, rs, err)
		}
	}
	want := []mqtt.Availability{{Source: mqtt.SourceTasmota, Name: "tasmota_XXXXXX", Device: "plug_x", Online: true, State: "Online", At: adaptertest.T0}, {Source: mqtt.SourceTasmota, Name: "tasmota_XXXXXX", Device: "plug_x", Online: false, State: "Offline", At: adaptertest.T0}}
	if len(av) != 2 || av[0] != want[0] || av[1] != want[1] {
		t.Errorf("availability %+v, want %+v", av, want)
	}
}

func TestTasmotaValues(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, nil)
	W := device.KindWasher
	for _, tc := range []struct {
		name, topic, payload string
		wants                []adaptertest.Want
	}{
		{"epoch time", "tele/sound1/STATE", `{"Time":"2019-09-04T13:08:48","Epoch":1567595328,"POWER":"ON"}`,
			[]adaptertest.Want{adaptertest.W("kettle", device.KindKettle, device.SignalActive, 1, "", "").At(time.Unix(1567595328, 0))}},
		{"fahrenheit", "tele/ds1820/SENSOR", `{"DS18B20":{"Temperature":68},"TempUnit":"F"}`,
			[]adaptertest.Want{adaptertest.W("fridge", device.KindFridge, device.SignalTemperature, 20, "°C", "")}},
		{"channels summed", "tele/pow1/SENSOR", `{"ENERGY":{"Power":[10,20.5],"Total":1}}`,
			[]adaptertest.Want{adaptertest.W("washer", W, device.SignalPower, 30.5, "W", ""), adaptertest.W("washer", W, device.SignalEnergy, 1, "kWh", "")}},
		{"POWER1", "tele/pow1/STATE", `{"POWER1":"ON","POWER2":"OFF"}`, []adaptertest.Want{adaptertest.W("washer", W, device.SignalActive, 1, "", "")}},
		{"stat POWER1", "stat/pow1/POWER1", `OFF`, []adaptertest.Want{adaptertest.W("washer", W, device.SignalActive, 0, "", "")}},
		{"stat POWER2 unmapped", "stat/pow1/POWER2", `OFF`, nil},
		{"POWERONSTATE", "stat/pow1/POWERONSTATE", `3`, nil},
		{"empty retained", "tele/pow1/SENSOR", ``, nil},
		{"other tele", "tele/pow1/INFO1", `{"Module":"Sonoff Pow R2"}`, nil},
		{"null skipped", "tele/pow1/SENSOR", `{"ENERGY":{"Power":null,"Total":2}}`, []adaptertest.Want{adaptertest.W("washer", W, device.SignalEnergy, 2, "kWh", "")}},
	} {
		rs, err := d.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		adaptertest.CheckReadings(t, tc.name, rs, tc.wants)
	}
}

func TestTasmotaFullTopic(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, &Options{FullTopics: []string{"tasmota/%topic%/%prefix%/", "%prefix%/home/%hostname%/%topic%/"}})
	W := device.KindWasher
	rs, err := d.Decode("tasmota/pow1/tele/SENSOR", []byte(`{"ENERGY":{"Power":5}}`), adaptertest.T0)
	adaptertest.CheckErr(t, "topic/prefix order", err, nil)
	adaptertest.CheckReadings(t, "topic/prefix order", rs, []adaptertest.Want{adaptertest.W("washer", W, device.SignalPower, 5, "W", "")})
	rs, err = d.Decode("stat/home/pow-1234/pow1/POWER", []byte(`ON`), adaptertest.T0)
	adaptertest.CheckErr(t, "hostname level", err, nil)
	adaptertest.CheckReadings(t, "hostname level", rs, []adaptertest.Want{adaptertest.W("washer", W, device.SignalActive, 1, "", "")})
	if _, err := d.Decode("tele/pow1/SENSOR", []byte(`{}`), adaptertest.T0); err != mqtt.ErrNotMine {
		t.Errorf("default layout with custom FullTopics: %v, want mqtt.ErrNotMine", err)
	}
	for _, ft := range []string{"%topic%/", "%prefix%/%prefix%/%topic%/", "x%prefix%/%topic%/", "%prefix%//%topic%/", "a/#/%prefix%/%topic%/"} {
		if _, err := New(nil, &Options{FullTopics: []string{ft}}); err == nil || !strings.Contains(err.Error(), "full topic") {
			t.Errorf("FullTopic %q: %v", ft, err)
		}
	}
}

func TestTasmotaBadInput(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, nil)
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
	}{
		{"not tasmota", "zigbee2mqtt/pow1", `{}`, mqtt.ErrNotMine, nil},
		{"too short", "tele/pow1", `{}`, mqtt.ErrNotMine, nil},
		{"unknown prefix", "info/pow1/SENSOR", `{}`, mqtt.ErrNotMine, nil},
		{"unknown topic", "tele/garage/SENSOR", `{"ENERGY":{"Power":1}}`, mqtt.ErrUnknownDevice, []string{`"garage"`}},
		{"unknown stat", "stat/garage/POWER", `ON`, mqtt.ErrUnknownDevice, []string{`"garage"`}},
		{"unknown lwt", "tele/garage/LWT", `Online`, mqtt.ErrUnknownDevice, []string{`"garage"`}},
		{"toggle", "stat/pow1/POWER", `TOGGLE`, mqtt.ErrMalformed, []string{"stat/pow1/POWER", "relay", "TOGGLE"}},
		{"lwt word", "tele/pow1/LWT", `Gone`, mqtt.ErrMalformed, []string{"LWT", "Gone"}},
		{"word power", "tele/pow1/SENSOR", `{"ENERGY":{"Power":"twelve"}}`, mqtt.ErrMalformed, []string{"ENERGY.Power", "string"}},
		{"bool total", "tele/pow1/SENSOR", `{"ENERGY":{"Total":false}}`, mqtt.ErrMalformed, []string{"ENERGY.Total", "boolean"}},
		{"overflow", "tele/pow1/SENSOR", `{"ENERGY":{"Power":1e400}}`, mqtt.ErrMalformed, []string{"ENERGY.Power", "range"}},
		{"huge", "tele/pow1/SENSOR", `{"ENERGY":{"Total":9e99}}`, mqtt.ErrMalformed, []string{"1e15"}},
		{"bad channels", "tele/pow1/SENSOR", `{"ENERGY":{"Power":[1,"x"]}}`, mqtt.ErrMalformed, []string{"ENERGY.Power", "not a number"}},
		{"array payload", "tele/pow1/SENSOR", `[1]`, mqtt.ErrMalformed, []string{"JSON object"}},
		{"zb not object", "tele/SonoffZB/SENSOR", `{"ZbReceived":5}`, mqtt.ErrMalformed, []string{"ZbReceived"}},
		{"zb entry not object", "tele/SonoffZB/SENSOR", `{"ZbReceived":{"0x662E":[1]}}`, mqtt.ErrMalformed, []string{"ZbReceived", "0x662E"}},
		{"zb contact word", "tele/SonoffZB/SENSOR", `{"ZbReceived":{"0x662E":{"Name":"door_sensor","Contact":7}}}`, mqtt.ErrMalformed, []string{"Contact", "want 0 or 1"}},
		{"wildcard", "tele/+/SENSOR", `{}`, mqtt.ErrMalformed, []string{"wildcards"}},
		{"deep", "tele/pow1/" + strings.Repeat("a/", 20) + "SENSOR", `{}`, mqtt.ErrMalformed, []string{"levels"}},
		{"state null", "tele/pow1/STATE", `null`, mqtt.ErrMalformed, []string{"null"}},
	} {
		rs, err := d.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if rs != nil {
			t.Errorf("%s: readings %v", tc.name, rs)
		}
		if tc.class == mqtt.ErrNotMine {
			if err != mqtt.ErrNotMine {
				t.Errorf("%s: %v, want mqtt.ErrNotMine", tc.name, err)
			}
			continue
		}
		adaptertest.CheckErr(t, tc.name, err, tc.class, tc.parts...)
	}
}

// A numeric string is read as its number, and a field that cannot be read refuses
// only itself.
func TestTasmotaNumericStringsAndFieldErrors(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, nil)
	rs, err := d.Decode("tele/pow1/SENSOR", []byte(`{"ENERGY":{"Power":"12.5","Total":"n/a","Voltage":230}}`), adaptertest.T0)
	adaptertest.CheckReadings(t, "pow1", rs, []adaptertest.Want{adaptertest.W("washer", device.KindWasher, device.SignalPower, 12.5, "W", "")})
	var fe *mqtt.FieldErrors
	if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != "ENERGY.Total" {
		t.Fatalf("error %v, want a *mqtt.FieldErrors naming ENERGY.Total alone", err)
	}
}

func FuzzTasmota(f *testing.F) {
	for _, m := range adaptertest.LoadCorpus(f, "testdata/tasmota.tsv").All() {
		f.Add(m.Topic, m.Payload)
	}
	f.Add("tele/pow1/SENSOR", []byte(`{"ENERGY":{"Power":[1e308,1e308]}}`))
	f.Add("stat/pow1/POWER3", []byte(`ON`))
	f.Add("tasmota/pow1/tele/SENSOR", []byte(`{"ENERGY":{"Power":5}}`))
	ms := append(append(mqtt.Mappings{}, tasmotaMappings...), tasmotaMappings2[0], tasmotaMappings2[2], tasmotaMappings2[3], tasmotaMappings2[4])
	d := newTasmota(f, ms, &Options{FullTopics: []string{"%prefix%/%topic%/", "tasmota/%topic%/%prefix%/"},
		OnAvailability: func(a mqtt.Availability) {}})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		adaptertest.Check(t, d, topic, payload, adaptertest.T0)
	})
}
