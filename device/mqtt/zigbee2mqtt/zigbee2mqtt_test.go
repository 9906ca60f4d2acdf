package mqtt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

var z2mMappings = Mappings{
	{Source: SourceZigbee2MQTT, Name: "Living Room temperature, humidity and pressure sensor", Device: "living_room", Kind: device.KindSensor},
	{Source: SourceZigbee2MQTT, Name: "schuppen/SENSOR", Device: "shed", Kind: device.KindSensor},
	{Source: SourceZigbee2MQTT, Name: "0x142d41fffe5820ac", Device: "front_door", Kind: device.KindEntryDoor},
	{Source: SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Kind: device.KindSensor,
		Signals: map[string]device.Signal{"contact": device.SignalDoor}},
	{Source: SourceZigbee2MQTT, Name: "AZ_MOTION01", Device: "hall_motion", Kind: device.KindMotion},
	{Source: SourceZigbee2MQTT, Name: "example device", Device: "washer", Kind: device.KindWasher},
	{Source: SourceZigbee2MQTT, Name: "0x00124b00251f6ccc", Device: "fridge", Kind: device.KindFridge},
	{Source: SourceZigbee2MQTT, Name: "toilet_humid_temp_sensor", Device: "toilet", Kind: device.KindSensor},
	{Source: SourceZigbee2MQTT, Name: "WSDCGQ01LM-doc", Device: "doc_climate", Kind: device.KindSensor},
	{Source: SourceZigbee2MQTT, Name: "RTCGQ01LM-doc", Device: "doc_motion", Kind: device.KindMotion},
	{Source: SourceZigbee2MQTT, Name: "Bedroom Desk Light", Device: "desk_light", Kind: device.KindPlug},
	{Source: SourceZigbee2MQTT, Name: "kettle", Device: "kettle", Kind: device.KindKettle},
	// other sources are ignored by NewZigbee2MQTT
	{Source: SourceTasmota, Name: "pow1", Device: "oven", Kind: device.KindOven},
}

func newZ2M(t testing.TB, opts *Zigbee2MQTTOptions) *Zigbee2MQTT {
	t.Helper()
	z, err := NewZigbee2MQTT(z2mMappings, opts)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestZigbee2MQTTRealPayloads(t *testing.T) {
	c := loadCorpus(t, "zigbee2mqtt.tsv")
	defer c.checkAllUsed()
	z := newZ2M(t, nil)
	const (
		S = device.KindSensor
		T = device.SignalTemperature
		H = device.SignalHumidity
		B = device.SignalBattery
		A = device.SignalActive
	)
	for _, tc := range []struct {
		name  string
		wants []want
	}{
		{"aqara-climate-barbaris", []want{{"living_room", S, B, 100, "%", "Living Room temperature, humidity and pressure sensor", time.Time{}}, {"living_room", S, H, 44.43, "%", "", time.Time{}}, {"living_room", S, T, 20.74, "°C", "", time.Time{}}}},
		{"climate-schuppen", []want{{"shed", S, B, 97, "%", "schuppen/SENSOR", time.Time{}}, {"shed", S, H, 81.23, "%", "", time.Time{}}, {"shed", S, T, 11.85, "°C", "", time.Time{}}}},
		// contact=false is open: door 1
		{"tuya-contact-open", []want{{"front_door", device.KindEntryDoor, B, 100, "%", "0x142d41fffe5820ac", time.Time{}}, {"front_door", device.KindEntryDoor, device.SignalDoor, 1, "", "", time.Time{}}}},
		// explicit Signals: only contact; last_seen with a zone becomes DeviceTime
		{"aqara-window-last-seen", []want{{"window", S, device.SignalDoor, 1, "", "", time.Date(2024, 1, 10, 17, 42, 21, 0, time.UTC)}}},
		{"aqara-motion-last-seen", []want{
			{"hall_motion", device.KindMotion, B, 100, "%", "AZ_MOTION01", time.Date(2024, 1, 9, 23, 22, 22, 0, time.UTC)},
			{"hall_motion", device.KindMotion, A, 1, "", "", time.Date(2024, 1, 9, 23, 22, 22, 0, time.UTC)}}},
		{"plug-metering", []want{{"washer", device.KindWasher, device.SignalEnergy, 1.05, "kWh", "", time.Time{}},
			{"washer", device.KindWasher, device.SignalPower, 102, "W", "", time.Time{}}, {"washer", device.KindWasher, A, 1, "", "", time.Time{}}}},
		{"sonoff-climate", []want{{"fridge", device.KindFridge, B, 76.5, "%", "0x00124b00251f6ccc", time.Time{}}, {"fridge", device.KindFridge, H, 30.28, "%", "", time.Time{}},
			{"fridge", device.KindFridge, T, 26.66, "°C", "", time.Time{}}}},
		{"tuya-climate-comfort", []want{{"toilet", S, B, 100, "%", "toilet_humid_temp_sensor", time.Time{}}, {"toilet", S, H, 47.7, "%", "", time.Time{}}, {"toilet", S, T, 22.7, "°C", "", time.Time{}}}},
		{"wsdcgq01lm-doc", []want{{"doc_climate", S, H, 44.72, "%", "", time.Time{}}, {"doc_climate", S, T, 27.34, "°C", "", time.Time{}}}},
		{"rtcgq01lm-doc", []want{{"doc_motion", device.KindMotion, A, 1, "", "", time.Time{}}}},
		// Zigbee2MQTT's own topics and commands: nothing, no error
		{"bridge-state", nil}, {"bridge-state-json", nil}, {"bridge-event", nil}, {"bridge-info-empty", nil},
		{"set-state", nil}, {"set-attribute", nil}, {"get-state", nil},
		// an empty retained state
		{"barbaris-empty-state", nil},
	} {
		m := c.get(tc.name)
		rs, err := z.Decode(m.topic, m.payload, t0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkReadings(t, tc.name, rs, tc.wants)
	}

	// A custom base topic (khartinger/mqtt4home uses zb6).
	zb6, err := NewZigbee2MQTT(Mappings{{Source: SourceZigbee2MQTT, Name: "h6/T1", Device: "fridge", Kind: device.KindFridge}},
		&Zigbee2MQTTOptions{BaseTopic: "zb6"})
	if err != nil {
		t.Fatal(err)
	}
	m := c.get("aqara-contact-open-zb6")
	rs, err := zb6.Decode(m.topic, m.payload, t0)
	checkErr(t, "zb6", err, nil)
	checkReadings(t, "zb6", rs, []want{{"fridge", device.KindFridge, B, 100, "%", "h6/T1", time.Time{}}, {"fridge", device.KindFridge, device.SignalDoor, 1, "", "", time.Time{}}})
	if _, err := z.Decode(m.topic, m.payload, t0); err != ErrNotMine {
		t.Errorf("zb6 topic on the default decoder: %v, want ErrNotMine", err)
	}

	// No mapping: the caller counts it.
	m = c.get("climate-bathroom")
	_, err = z.Decode(m.topic, m.payload, t0)
	checkErr(t, "unmapped", err, ErrUnknownDevice, `"bathroom/SENSOR"`)

	// Availability in both forms.
	var got []Availability
	za := newZ2M(t, &Zigbee2MQTTOptions{OnAvailability: func(a Availability) { got = append(got, a) }})
	for _, n := range []string{"availability-legacy", "availability-json"} {
		m := c.get(n)
		rs, err := za.Decode(m.topic, m.payload, t0)
		if err != nil || rs != nil {
			t.Errorf("%s: %v %v", n, rs, err)
		}
	}
	wantAv := []Availability{
		{Source: SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Online: true, State: "online", At: t0},
		{Source: SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Online: false, State: "offline", At: t0},
	}
	if len(got) != 2 || got[0] != wantAv[0] || got[1] != wantAv[1] {
		t.Errorf("availability %+v, want %+v", got, wantAv)
	}
	// Without a callback availability is still accepted.
	m = c.get("availability-legacy")
	if rs, err := z.Decode(m.topic, m.payload, t0); rs != nil || err != nil {
		t.Errorf("availability without callback: %v %v", rs, err)
	}
}

func TestZigbee2MQTTBadInput(t *testing.T) {
	z := newZ2M(t, nil)
	for _, tc := range []struct {
		name, topic, payload string
		class                error
		parts                []string
	}{
		{"other base", "zigbee2mqttx/kettle", `{}`, ErrNotMine, nil},
		{"no slash", "zigbee2mqtt", `{}`, ErrNotMine, nil},
		{"other adapter", "tele/pow1/SENSOR", `{}`, ErrNotMine, nil},
		{"no name", "zigbee2mqtt/", `{}`, ErrMalformed, []string{"no device name"}},
		{"unknown", "zigbee2mqtt/garage", `{"contact":true}`, ErrUnknownDevice, []string{`"garage"`}},
		{"unknown availability", "zigbee2mqtt/garage/availability", `online`, ErrUnknownDevice, []string{`"garage"`}},
		{"broken json", "zigbee2mqtt/kettle", `{"power": 20.1`, ErrMalformed, []string{"zigbee2mqtt/kettle", "JSON"}},
		{"array", "zigbee2mqtt/kettle", `[1,2]`, ErrMalformed, []string{"JSON object"}},
		{"null", "zigbee2mqtt/kettle", `null`, ErrMalformed, []string{"null"}},
		{"plain text", "zigbee2mqtt/kettle", `ON`, ErrMalformed, []string{"JSON"}},
		{"word for a number", "zigbee2mqtt/kettle", `{"power":"high"}`, ErrMalformed, []string{`"power"`, "string", "number"}},
		{"bool number", "zigbee2mqtt/kettle", `{"temperature":true}`, ErrMalformed, []string{`"temperature"`, "boolean"}},
		{"object number", "zigbee2mqtt/kettle", `{"energy":{"x":1}}`, ErrMalformed, []string{`"energy"`, "object"}},
		{"contact number", "zigbee2mqtt/0x142d41fffe5820ac", `{"contact":1}`, ErrMalformed, []string{`"contact"`, "true (closed)"}},
		{"state word", "zigbee2mqtt/kettle", `{"state":"TOGGLE"}`, ErrMalformed, []string{`"state"`, "TOGGLE"}},
		{"overflow", "zigbee2mqtt/kettle", `{"temperature":1e400}`, ErrMalformed, []string{`"temperature"`, "1e400", "range"}},
		{"huge", "zigbee2mqtt/kettle", `{"power":1e300}`, ErrMalformed, []string{`"power"`, "1e15"}},
		{"negative huge", "zigbee2mqtt/kettle", `{"energy":-2e15}`, ErrMalformed, []string{`"energy"`, "1e15"}},
		{"wildcard +", "zigbee2mqtt/+", `{}`, ErrMalformed, []string{"wildcards"}},
		{"wildcard #", "zigbee2mqtt/kettle/#", `{}`, ErrMalformed, []string{"wildcards"}},
		{"deep", "zigbee2mqtt/" + strings.Repeat("x/", 20) + "y", `{}`, ErrMalformed, []string{"levels"}},
		{"availability word", "zigbee2mqtt/kettle/availability", `maybe`, ErrMalformed, []string{"maybe", "online or offline"}},
		{"availability json", "zigbee2mqtt/kettle/availability", `{"status":"online"}`, ErrMalformed, []string{"availability"}},
		{"oversized", "zigbee2mqtt/kettle", `{"x":"` + strings.Repeat("a", maxPayload) + `"}`, ErrMalformed, []string{"bytes"}},
	} {
		rs, err := z.Decode(tc.topic, []byte(tc.payload), t0)
		if rs != nil {
			t.Errorf("%s: readings %v with error %v", tc.name, rs, err)
		}
		if tc.class == ErrNotMine && err != ErrNotMine {
			t.Errorf("%s: %v, want ErrNotMine", tc.name, err)
			continue
		}
		checkErr(t, tc.name, err, tc.class, tc.parts...)
	}
}

func TestZigbee2MQTTValues(t *testing.T) {
	z := newZ2M(t, nil)
	K := device.KindKettle
	for _, tc := range []struct {
		name, payload string
		wants         []want
	}{
		{"null skipped", `{"temperature":null,"power":1500}`, []want{{"kettle", K, device.SignalPower, 1500, "W", "", time.Time{}}}},
		{"state off", `{"state":"OFF","linkquality":80,"power_on_behavior":"on"}`, []want{{"kettle", K, device.SignalActive, 0, "", "", time.Time{}}}},
		{"local last_seen ignored", `{"power":3,"last_seen":"2024-01-10T17:42:21"}`, []want{{"kettle", K, device.SignalPower, 3, "W", "", time.Time{}}}},
		{"epoch last_seen", `{"power":3,"last_seen":1704908541000}`, []want{{"kettle", K, device.SignalPower, 3, "W", "", time.UnixMilli(1704908541000)}}},
		// Some Tuya and ESPHome devices send numbers as strings.
		{"numeric strings", `{"power":"20.1","temperature":" 21.5 ","state":"ON"}`, []want{{"kettle", K, device.SignalPower, 20.1, "W", "", time.Time{}},
			{"kettle", K, device.SignalActive, 1, "", "", time.Time{}}, {"kettle", K, device.SignalTemperature, 21.5, "°C", "", time.Time{}}}},
		{"nothing mapped", `{"linkquality":80,"voltage":230}`, nil},
		{"empty object", `{}`, nil},
	} {
		rs, err := z.Decode("zigbee2mqtt/kettle", []byte(tc.payload), t0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkReadings(t, tc.name, rs, tc.wants)
	}
}

// A field that cannot be read refuses only itself: the other fields of the message
// are read, and the error names the field.
func TestZigbee2MQTTFieldErrorKeepsTheRest(t *testing.T) {
	z := newZ2M(t, nil)
	S := device.KindSensor
	rs, err := z.Decode("zigbee2mqtt/toilet_humid_temp_sensor", []byte(`{"battery":"low","humidity":48,"temperature":"21.5","linkquality":"n/a"}`), t0)
	checkReadings(t, "partial", rs, []want{{"toilet", S, device.SignalHumidity, 48, "%", "", time.Time{}},
		{"toilet", S, device.SignalTemperature, 21.5, "°C", "", time.Time{}}})
	var fe *FieldErrors
	if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v, want a *FieldErrors wrapping ErrMalformed", err)
	}
	if len(fe.Fields) != 1 || fe.Fields[0].Field != "battery" || fe.Topic != "zigbee2mqtt/toilet_humid_temp_sensor" {
		t.Fatalf("fields %+v on %q, want battery alone", fe.Fields, fe.Topic)
	}
	checkErr(t, "partial", err, ErrMalformed, `"battery"`, `"low"`, "the other fields were read")
}

func TestZigbee2MQTTAttributeOutput(t *testing.T) {
	off := newZ2M(t, nil)
	on := newZ2M(t, &Zigbee2MQTTOptions{AttributeOutput: true})
	W := device.KindSensor
	for _, tc := range []struct {
		topic, payload string
		wants          []want
		errPart        string
	}{
		{"zigbee2mqtt/SZ_WINDOW01/contact", "false", []want{{"window", W, device.SignalDoor, 1, "", "", time.Time{}}}, ""},
		{"zigbee2mqtt/SZ_WINDOW01/contact", "true", []want{{"window", W, device.SignalDoor, 0, "", "", time.Time{}}}, ""},
		{"zigbee2mqtt/SZ_WINDOW01/battery", "97", nil, ""}, // not in the mapping's Signals
		{"zigbee2mqtt/kettle/state", "ON", []want{{"kettle", device.KindKettle, device.SignalActive, 1, "", "", time.Time{}}}, ""},
		{"zigbee2mqtt/kettle/temperature", "98.5", []want{{"kettle", device.KindKettle, device.SignalTemperature, 98.5, "°C", "", time.Time{}}}, ""},
		{"zigbee2mqtt/kettle/temperature", "hot", nil, "string"},
		{"zigbee2mqtt/kettle/temperature", "", nil, ""},
	} {
		rs, err := off.Decode(tc.topic, []byte(tc.payload), t0)
		if rs != nil || err != nil {
			t.Errorf("%s without AttributeOutput: %v %v, want nothing", tc.topic, rs, err)
		}
		rs, err = on.Decode(tc.topic, []byte(tc.payload), t0)
		if tc.errPart != "" {
			checkErr(t, tc.topic, err, ErrMalformed, tc.errPart)
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.topic, tc.payload, err)
			continue
		}
		checkReadings(t, tc.topic+" "+tc.payload, rs, tc.wants)
	}
}

func TestNewZigbee2MQTTErrors(t *testing.T) {
	for _, base := range []string{"a/#", "/z2m", "z2m/", "a//b"} {
		if _, err := NewZigbee2MQTT(nil, &Zigbee2MQTTOptions{BaseTopic: base}); err == nil || !strings.Contains(err.Error(), "base topic") {
			t.Errorf("base %q: %v", base, err)
		}
	}
	_, err := NewZigbee2MQTT(Mappings{{Source: SourceZigbee2MQTT, Name: "x", Device: "bad id", Kind: device.KindFridge}}, nil)
	if err == nil || !strings.Contains(err.Error(), "device") || !strings.Contains(err.Error(), "zigbee2mqtt") {
		t.Errorf("bad mapping: %v", err)
	}
}

func FuzzZigbee2MQTT(f *testing.F) {
	c := loadCorpus(f, "zigbee2mqtt.tsv")
	for _, m := range c.all() {
		f.Add(m.topic, m.payload)
	}
	f.Add("zigbee2mqtt/kettle", []byte(`{"temperature":1e400,"state":"ON"}`))
	f.Add("zigbee2mqtt/kettle/state", []byte(`ON`))
	f.Add("zigbee2mqtt/SZ_WINDOW01/availability", []byte(`{"state":"online"}`))
	z := newZ2M(f, &Zigbee2MQTTOptions{AttributeOutput: true, OnAvailability: func(a Availability) {
		if a.Device == "" || a.Source != SourceZigbee2MQTT {
			panic("bad availability")
		}
	}})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := z.Decode(topic, payload, t0)
		checkFuzzResult(t, rs, err)
	})
}

func BenchmarkZigbee2MQTT(b *testing.B) {
	z := newZ2M(b, nil)
	payload := []byte(`{"current":0.54,"energy":1.05,"identify":null,"linkquality":255,"power":102,"power_on_behavior":"on","state":"ON","update":{"installed_version":33816645,"latest_version":33816645,"state":"idle"},"voltage":239.1}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := z.Decode("zigbee2mqtt/example device", payload, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
