package mqtt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

var tasmotaMappings = Mappings{
	{Source: SourceTasmota, Name: "pow1", Device: "washer", Kind: device.KindWasher},
	{Source: SourceTasmota, Name: "ds1820", Device: "fridge", Kind: device.KindFridge},
	{Source: SourceTasmota, Name: "tasmota", Device: "tasmota_sensor", Kind: device.KindSensor},
	{Source: SourceTasmota, Name: "ble-hub/LYWSD03-52680f", Device: "fridge_ble", Kind: device.KindFridge},
	{Source: SourceTasmota, Name: "demo-sensor", Device: "porch", Kind: device.KindEntryDoor,
		Signals: map[string]device.Signal{"switch1": device.SignalDoor, "relay": device.SignalActive}},
	{Source: SourceTasmota, Name: "sound1", Device: "kettle", Kind: device.KindKettle},
	{Source: SourceTasmota, Name: "tasmota-E8A6E4", Device: "plug_e8", Kind: device.KindPlug},
	{Source: SourceTasmota, Name: "tasmota_switch", Device: "switch", Kind: device.KindPlug},
	{Source: SourceTasmota, Name: "tasmota_XXXXXX", Device: "plug_x", Kind: device.KindPlug},
	{Source: SourceTasmota, Name: "SonoffZB/door_sensor", Device: "fridge_door", Kind: device.KindFridge},
	{Source: SourceTasmota, Name: "zbbridge/Kitchen", Device: "kitchen", Kind: device.KindSensor},
	{Source: SourceTasmota, Name: "zbbridge/IKEA_Light", Device: "lamp", Kind: device.KindPlug},
	{Source: SourceTasmota, Name: "xxxx", Device: "bridge_x", Kind: device.KindPlug},
}

// tasmotaMappings2 map the same topics differently.
var tasmotaMappings2 = Mappings{
	{Source: SourceTasmota, Name: "ble-hub", Device: "ble", Kind: device.KindSensor},
	{Source: SourceTasmota, Name: "tasmota", Device: "hall", Kind: device.KindEntryDoor,
		Signals: map[string]device.Signal{"switch1": device.SignalDoor}},
	{Source: SourceTasmota, Name: "tasmota/0x4773", Device: "bulb", Kind: device.KindPlug},
	{Source: SourceTasmota, Name: "SonoffZB/0x057B", Device: "hall_motion", Kind: device.KindMotion},
	{Source: SourceTasmota, Name: "Zigbee/0x5ADF", Device: "dimmer", Kind: device.KindPlug},
}

func newTasmota(t testing.TB, ms Mappings, opts *TasmotaOptions) *Tasmota {
	t.Helper()
	d, err := NewTasmota(ms, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTasmotaRealPayloads(t *testing.T) {
	c := loadCorpus(t, "tasmota.tsv")
	defer c.checkAllUsed()
	var av []Availability
	d1 := newTasmota(t, tasmotaMappings, &TasmotaOptions{OnAvailability: func(a Availability) { av = append(av, a) }})
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
		d     *Tasmota
		wants []want
		class error
		parts []string
	}{
		// ENERGY.Power → power W, ENERGY.Total → energy kWh; Time has no zone: DeviceTime zero.
		{name: "pow-r2-energy", d: d1, wants: []want{{"washer", device.KindWasher, device.SignalPower, 2635, "W", "", z}, {"washer", device.KindWasher, device.SignalEnergy, 6.294, "kWh", "", z}}},
		{name: "ds18b20-rules", d: d1, wants: []want{{"fridge", device.KindFridge, T, 20.9, "°C", "", z}}},
		{name: "ds18b20-mqtt-doc", d: d1, wants: []want{{"tasmota_sensor", S, T, 20.6, "°C", "", z}}},
		{name: "mpu6050-temperature", d: d1, wants: []want{{"tasmota_sensor", S, T, 27.7, "°C", "", z}}},
		// one sensor object mapped on its own
		{name: "ble-three-sensors", d: d1, wants: []want{{"fridge_ble", device.KindFridge, B, 100, "%", "ble-hub/LYWSD03-52680f", z}, {"fridge_ble", device.KindFridge, H, 58, "%", "", z}, {"fridge_ble", device.KindFridge, T, 21.1, "°C", "", z}}},
		{name: "analog-only", d: d1},
		{name: "switch1-on", d: d2, wants: []want{{"hall", device.KindEntryDoor, D, 1, "", "", z}}},
		// Time with an offset is trusted
		{name: "deepsleep-switches-offset-time", d: d1, wants: []want{{"porch", device.KindEntryDoor, D, 0, "", "", offset}}},
		{name: "state-deepsleep-power-on", d: d1, wants: []want{{"porch", device.KindEntryDoor, A, 1, "", "", offset}}},
		{name: "state-adc-power-off", d: d1, wants: []want{{"tasmota_sensor", S, A, 0, "", "", z}}},
		{name: "state-epoch-no-power", d: d1},
		{name: "state-sound1-power-off", d: d1, wants: []want{{"kettle", device.KindKettle, A, 0, "", "", z}}},
		{name: "state-openhab-power-placeholder", d: d1, class: ErrMalformed, parts: []string{"tele/tasmota-E8A6E4/STATE", "POWER", `"POWER" is not an on/off state`}},
		{name: "mcp230xx-broken-json", d: d1, class: ErrMalformed, parts: []string{"tele/tasmota/SENSOR", "JSON"}},
		{name: "stat-power-on", d: d1, wants: []want{{"switch", P, A, 1, "", "", z}}},
		{name: "stat-result", d: d1},
		{name: "cmnd-power-toggle", d: d1},
		// Zigbee bridge: Contact is 1 when open
		{name: "zb-door-closed", d: d1, wants: []want{{"fridge_door", device.KindFridge, D, 0, "", "", z}}},
		{name: "zb-door-open", d: d1, wants: []want{{"fridge_door", device.KindFridge, D, 1, "", "", z}}},
		{name: "zb-motion", d: d2, wants: []want{{"hall_motion", device.KindMotion, A, 1, "", "", z}}},
		{name: "zb-no-motion", d: d2, wants: []want{{"hall_motion", device.KindMotion, A, 0, "", "", z}}},
		{name: "zb-kitchen-missing-brace", d: d1, class: ErrMalformed, parts: []string{"tele/zbbridge/SENSOR", "JSON"}},
		{name: "zb-device-topic", d: d2},
		{name: "zb-home-subtopic", d: d1},
		{name: "zb-power-true", d: d2, wants: []want{{"bulb", P, A, 1, "", "", z}}},
		{name: "zb-ikea-light-power", d: d1, wants: []want{{"lamp", P, A, 1, "", "", z}}},
		{name: "zb-info-plug", d: d1},
	} {
		m := c.get(tc.name)
		rs, err := tc.d.Decode(m.topic, m.payload, t0)
		if tc.class != nil {
			if rs != nil {
				t.Errorf("%s: readings %v with error", tc.name, rs)
			}
			checkErr(t, tc.name, err, tc.class, tc.parts...)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkReadings(t, tc.name, rs, tc.wants)
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
		m := c.get(tc.name)
		_, err := d.Decode(m.topic, m.payload, t0)
		checkErr(t, "unmapped "+tc.name, err, ErrUnknownDevice, tc.part)
	}
	// The whole hub mapped: every sensor, by its field name.
	m := c.get("ble-three-sensors")
	rs, err := d2.Decode(m.topic, m.payload, t0)
	checkErr(t, "ble hub", err, nil)
	checkReadings(t, "ble hub", rs, []want{
		{"ble", S, B, 2, "%", "ble-hub/LYWSD02-a2fd09", z}, {"ble", S, H, 57, "%", "", z}, {"ble", S, T, 21.4, "°C", "", z},
		{"ble", S, B, 100, "%", "ble-hub/LYWSD03-52680f", z}, {"ble", S, H, 58, "%", "", z}, {"ble", S, T, 21.1, "°C", "", z},
		{"ble", S, H, 54.6, "%", "", z}, {"ble", S, T, 21.4, "°C", "", z}})

	// LWT: availability, no reading.
	for _, n := range []string{"lwt-online", "lwt-offline"} {
		m := c.get(n)
		if rs, err := d1.Decode(m.topic, m.payload, t0); rs != nil || err != nil {
			t.Errorf("%s: %v %v", n, rs, err)
		}
	}
	want := []Availability{{SourceTasmota, "tasmota_XXXXXX", "plug_x", true, "Online", t0}, {SourceTasmota, "tasmota_XXXXXX", "plug_x", false, "Offline", t0}}
	if len(av) != 2 || av[0] != want[0] || av[1] != want[1] {
		t.Errorf("availability %+v, want %+v", av, want)
	}
}

func TestTasmotaValues(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, nil)
	W := device.KindWasher
	for _, tc := range []struct {
		name, topic, payload string
		wants                []want
	}{
		{"epoch time", "tele/sound1/STATE", `{"Time":"2019-09-04T13:08:48","Epoch":1567595328,"POWER":"ON"}`,
			[]want{{"kettle", device.KindKettle, device.SignalActive, 1, "", "", time.Unix(1567595328, 0)}}},
		{"fahrenheit", "tele/ds1820/SENSOR", `{"DS18B20":{"Temperature":68},"TempUnit":"F"}`,
			[]want{{"fridge", device.KindFridge, device.SignalTemperature, 20, "°C", "", time.Time{}}}},
		{"channels summed", "tele/pow1/SENSOR", `{"ENERGY":{"Power":[10,20.5],"Total":1}}`,
			[]want{{"washer", W, device.SignalPower, 30.5, "W", "", time.Time{}}, {"washer", W, device.SignalEnergy, 1, "kWh", "", time.Time{}}}},
		{"POWER1", "tele/pow1/STATE", `{"POWER1":"ON","POWER2":"OFF"}`, []want{{"washer", W, device.SignalActive, 1, "", "", time.Time{}}}},
		{"stat POWER1", "stat/pow1/POWER1", `OFF`, []want{{"washer", W, device.SignalActive, 0, "", "", time.Time{}}}},
		{"stat POWER2 unmapped", "stat/pow1/POWER2", `OFF`, nil},
		{"POWERONSTATE", "stat/pow1/POWERONSTATE", `3`, nil},
		{"empty retained", "tele/pow1/SENSOR", ``, nil},
		{"other tele", "tele/pow1/INFO1", `{"Module":"Sonoff Pow R2"}`, nil},
		{"null skipped", "tele/pow1/SENSOR", `{"ENERGY":{"Power":null,"Total":2}}`, []want{{"washer", W, device.SignalEnergy, 2, "kWh", "", time.Time{}}}},
	} {
		rs, err := d.Decode(tc.topic, []byte(tc.payload), t0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkReadings(t, tc.name, rs, tc.wants)
	}
}

func TestTasmotaFullTopic(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, &TasmotaOptions{FullTopics: []string{"tasmota/%topic%/%prefix%/", "%prefix%/home/%hostname%/%topic%/"}})
	W := device.KindWasher
	rs, err := d.Decode("tasmota/pow1/tele/SENSOR", []byte(`{"ENERGY":{"Power":5}}`), t0)
	checkErr(t, "topic/prefix order", err, nil)
	checkReadings(t, "topic/prefix order", rs, []want{{"washer", W, device.SignalPower, 5, "W", "", time.Time{}}})
	rs, err = d.Decode("stat/home/pow-1234/pow1/POWER", []byte(`ON`), t0)
	checkErr(t, "hostname level", err, nil)
	checkReadings(t, "hostname level", rs, []want{{"washer", W, device.SignalActive, 1, "", "", time.Time{}}})
	if _, err := d.Decode("tele/pow1/SENSOR", []byte(`{}`), t0); err != ErrNotMine {
		t.Errorf("default layout with custom FullTopics: %v, want ErrNotMine", err)
	}
	for _, ft := range []string{"%topic%/", "%prefix%/%prefix%/%topic%/", "x%prefix%/%topic%/", "%prefix%//%topic%/", "a/#/%prefix%/%topic%/"} {
		if _, err := NewTasmota(nil, &TasmotaOptions{FullTopics: []string{ft}}); err == nil || !strings.Contains(err.Error(), "full topic") {
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
		{"not tasmota", "zigbee2mqtt/pow1", `{}`, ErrNotMine, nil},
		{"too short", "tele/pow1", `{}`, ErrNotMine, nil},
		{"unknown prefix", "info/pow1/SENSOR", `{}`, ErrNotMine, nil},
		{"unknown topic", "tele/garage/SENSOR", `{"ENERGY":{"Power":1}}`, ErrUnknownDevice, []string{`"garage"`}},
		{"unknown stat", "stat/garage/POWER", `ON`, ErrUnknownDevice, []string{`"garage"`}},
		{"unknown lwt", "tele/garage/LWT", `Online`, ErrUnknownDevice, []string{`"garage"`}},
		{"toggle", "stat/pow1/POWER", `TOGGLE`, ErrMalformed, []string{"stat/pow1/POWER", "relay", "TOGGLE"}},
		{"lwt word", "tele/pow1/LWT", `Gone`, ErrMalformed, []string{"LWT", "Gone"}},
		{"word power", "tele/pow1/SENSOR", `{"ENERGY":{"Power":"twelve"}}`, ErrMalformed, []string{"ENERGY.Power", "string"}},
		{"bool total", "tele/pow1/SENSOR", `{"ENERGY":{"Total":false}}`, ErrMalformed, []string{"ENERGY.Total", "boolean"}},
		{"overflow", "tele/pow1/SENSOR", `{"ENERGY":{"Power":1e400}}`, ErrMalformed, []string{"ENERGY.Power", "range"}},
		{"huge", "tele/pow1/SENSOR", `{"ENERGY":{"Total":9e99}}`, ErrMalformed, []string{"1e15"}},
		{"bad channels", "tele/pow1/SENSOR", `{"ENERGY":{"Power":[1,"x"]}}`, ErrMalformed, []string{"ENERGY.Power", "not a number"}},
		{"array payload", "tele/pow1/SENSOR", `[1]`, ErrMalformed, []string{"JSON object"}},
		{"zb not object", "tele/SonoffZB/SENSOR", `{"ZbReceived":5}`, ErrMalformed, []string{"ZbReceived"}},
		{"zb entry not object", "tele/SonoffZB/SENSOR", `{"ZbReceived":{"0x662E":[1]}}`, ErrMalformed, []string{"ZbReceived", "0x662E"}},
		{"zb contact word", "tele/SonoffZB/SENSOR", `{"ZbReceived":{"0x662E":{"Name":"door_sensor","Contact":7}}}`, ErrMalformed, []string{"Contact", "want 0 or 1"}},
		{"wildcard", "tele/+/SENSOR", `{}`, ErrMalformed, []string{"wildcards"}},
		{"deep", "tele/pow1/" + strings.Repeat("a/", 20) + "SENSOR", `{}`, ErrMalformed, []string{"levels"}},
		{"state null", "tele/pow1/STATE", `null`, ErrMalformed, []string{"null"}},
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
}

// A numeric string is read as its number, and a field that cannot be read refuses
// only itself.
func TestTasmotaNumericStringsAndFieldErrors(t *testing.T) {
	d := newTasmota(t, tasmotaMappings, nil)
	rs, err := d.Decode("tele/pow1/SENSOR", []byte(`{"ENERGY":{"Power":"12.5","Total":"n/a","Voltage":230}}`), t0)
	checkReadings(t, "pow1", rs, []want{{"washer", device.KindWasher, device.SignalPower, 12.5, "W", "", time.Time{}}})
	var fe *FieldErrors
	if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != "ENERGY.Total" {
		t.Fatalf("error %v, want a *FieldErrors naming ENERGY.Total alone", err)
	}
}

func FuzzTasmota(f *testing.F) {
	for _, m := range loadCorpus(f, "tasmota.tsv").all() {
		f.Add(m.topic, m.payload)
	}
	f.Add("tele/pow1/SENSOR", []byte(`{"ENERGY":{"Power":[1e308,1e308]}}`))
	f.Add("stat/pow1/POWER3", []byte(`ON`))
	f.Add("tasmota/pow1/tele/SENSOR", []byte(`{"ENERGY":{"Power":5}}`))
	ms := append(append(Mappings{}, tasmotaMappings...), tasmotaMappings2[0], tasmotaMappings2[2], tasmotaMappings2[3], tasmotaMappings2[4])
	d := newTasmota(f, ms, &TasmotaOptions{FullTopics: []string{"%prefix%/%topic%/", "tasmota/%topic%/%prefix%/"},
		OnAvailability: func(a Availability) {}})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := d.Decode(topic, payload, t0)
		checkFuzzResult(t, rs, err)
	})
}
