package zigbee2mqtt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

var z2mMappings = mqtt.Mappings{
	{Source: mqtt.SourceZigbee2MQTT, Name: "Living Room temperature, humidity and pressure sensor", Device: "living_room", Kind: device.KindSensor},
	{Source: mqtt.SourceZigbee2MQTT, Name: "schuppen/SENSOR", Device: "shed", Kind: device.KindSensor},
	{Source: mqtt.SourceZigbee2MQTT, Name: "0x142d41fffe5820ac", Device: "front_door", Kind: device.KindEntryDoor},
	{Source: mqtt.SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Kind: device.KindSensor,
		Signals: map[string]device.Signal{"contact": device.SignalDoor}},
	{Source: mqtt.SourceZigbee2MQTT, Name: "AZ_MOTION01", Device: "hall_motion", Kind: device.KindMotion},
	{Source: mqtt.SourceZigbee2MQTT, Name: "example device", Device: "washer", Kind: device.KindWasher},
	{Source: mqtt.SourceZigbee2MQTT, Name: "0x00124b00251f6ccc", Device: "fridge", Kind: device.KindFridge},
	{Source: mqtt.SourceZigbee2MQTT, Name: "toilet_humid_temp_sensor", Device: "toilet", Kind: device.KindSensor},
	{Source: mqtt.SourceZigbee2MQTT, Name: "WSDCGQ01LM-doc", Device: "doc_climate", Kind: device.KindSensor},
	{Source: mqtt.SourceZigbee2MQTT, Name: "RTCGQ01LM-doc", Device: "doc_motion", Kind: device.KindMotion},
	{Source: mqtt.SourceZigbee2MQTT, Name: "Bedroom Desk Light", Device: "desk_light", Kind: device.KindPlug},
	{Source: mqtt.SourceZigbee2MQTT, Name: "kettle", Device: "kettle", Kind: device.KindKettle},
	// other sources are ignored by New
	{Source: mqtt.SourceTasmota, Name: "pow1", Device: "oven", Kind: device.KindOven},
}

func newZ2M(t testing.TB, opts *Options) *Decoder {
	t.Helper()
	z, err := New(z2mMappings, opts)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestZigbee2MQTTRealPayloads(t *testing.T) {
	c := adaptertest.LoadCorpus(t, "testdata/zigbee2mqtt.tsv")
	defer c.CheckAllUsed()
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
		wants []adaptertest.Want
	}{
		{"aqara-climate-barbaris", []adaptertest.Want{adaptertest.W("living_room", S, B, 100, "%", "Living Room temperature, humidity and pressure sensor"), adaptertest.W("living_room", S, H, 44.43, "%", ""), adaptertest.W("living_room", S, T, 20.74, "°C", "")}},
		{"climate-schuppen", []adaptertest.Want{adaptertest.W("shed", S, B, 97, "%", "schuppen/SENSOR"), adaptertest.W("shed", S, H, 81.23, "%", ""), adaptertest.W("shed", S, T, 11.85, "°C", "")}},
		// contact=false is open: door 1
		{"tuya-contact-open", []adaptertest.Want{adaptertest.W("front_door", device.KindEntryDoor, B, 100, "%", "0x142d41fffe5820ac"), adaptertest.W("front_door", device.KindEntryDoor, device.SignalDoor, 1, "", "")}},
		// explicit Signals: only contact; last_seen with a zone becomes DeviceTime
		{"aqara-window-last-seen", []adaptertest.Want{adaptertest.W("window", S, device.SignalDoor, 1, "", "").At(time.Date(2024, 1, 10, 17, 42, 21, 0, time.UTC))}},
		{"aqara-motion-last-seen", []adaptertest.Want{
			adaptertest.W("hall_motion", device.KindMotion, B, 100, "%", "AZ_MOTION01").At(time.Date(2024, 1, 9, 23, 22, 22, 0, time.UTC)),
			adaptertest.W("hall_motion", device.KindMotion, A, 1, "", "").At(time.Date(2024, 1, 9, 23, 22, 22, 0, time.UTC))}},
		{"plug-metering", []adaptertest.Want{adaptertest.W("washer", device.KindWasher, device.SignalEnergy, 1.05, "kWh", ""),
			adaptertest.W("washer", device.KindWasher, device.SignalPower, 102, "W", ""), adaptertest.W("washer", device.KindWasher, A, 1, "", "")}},
		{"sonoff-climate", []adaptertest.Want{adaptertest.W("fridge", device.KindFridge, B, 76.5, "%", "0x00124b00251f6ccc"), adaptertest.W("fridge", device.KindFridge, H, 30.28, "%", ""),
			adaptertest.W("fridge", device.KindFridge, T, 26.66, "°C", "")}},
		{"tuya-climate-comfort", []adaptertest.Want{adaptertest.W("toilet", S, B, 100, "%", "toilet_humid_temp_sensor"), adaptertest.W("toilet", S, H, 47.7, "%", ""), adaptertest.W("toilet", S, T, 22.7, "°C", "")}},
		{"wsdcgq01lm-doc", []adaptertest.Want{adaptertest.W("doc_climate", S, H, 44.72, "%", ""), adaptertest.W("doc_climate", S, T, 27.34, "°C", "")}},
		{"rtcgq01lm-doc", []adaptertest.Want{adaptertest.W("doc_motion", device.KindMotion, A, 1, "", "")}},
		// Zigbee2MQTT's own topics and commands: nothing, no error
		{"bridge-state", nil}, {"bridge-state-json", nil}, {"bridge-event", nil}, {"bridge-info-empty", nil},
		{"set-state", nil}, {"set-attribute", nil}, {"get-state", nil},
		// an empty retained state
		{"barbaris-empty-state", nil},
	} {
		m := c.Get(tc.name)
		rs, err := z.Decode(m.Topic, m.Payload, adaptertest.T0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		adaptertest.CheckReadings(t, tc.name, rs, tc.wants)
	}

	// A custom base topic (khartinger/mqtt4home uses zb6).
	zb6, err := New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "h6/T1", Device: "fridge", Kind: device.KindFridge}},
		&Options{BaseTopic: "zb6"})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Get("aqara-contact-open-zb6")
	rs, err := zb6.Decode(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "zb6", err, nil)
	adaptertest.CheckReadings(t, "zb6", rs, []adaptertest.Want{adaptertest.W("fridge", device.KindFridge, B, 100, "%", "h6/T1"), adaptertest.W("fridge", device.KindFridge, device.SignalDoor, 1, "", "")})
	if _, err := z.Decode(m.Topic, m.Payload, adaptertest.T0); err != mqtt.ErrNotMine {
		t.Errorf("zb6 topic on the default decoder: %v, want mqtt.ErrNotMine", err)
	}

	// No mapping: the caller counts it.
	m = c.Get("climate-bathroom")
	_, err = z.Decode(m.Topic, m.Payload, adaptertest.T0)
	adaptertest.CheckErr(t, "unmapped", err, mqtt.ErrUnknownDevice, `"bathroom/SENSOR"`)

	// mqtt.Availability in both forms.
	var got []mqtt.Availability
	za := newZ2M(t, &Options{OnAvailability: func(a mqtt.Availability) { got = append(got, a) }})
	for _, n := range []string{"availability-legacy", "availability-json"} {
		m := c.Get(n)
		rs, err := za.Decode(m.Topic, m.Payload, adaptertest.T0)
		if err != nil || rs != nil {
			t.Errorf("%s: %v %v", n, rs, err)
		}
	}
	wantAv := []mqtt.Availability{
		{Source: mqtt.SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Online: true, State: "online", At: adaptertest.T0},
		{Source: mqtt.SourceZigbee2MQTT, Name: "SZ_WINDOW01", Device: "window", Online: false, State: "offline", At: adaptertest.T0},
	}
	if len(got) != 2 || got[0] != wantAv[0] || got[1] != wantAv[1] {
		t.Errorf("availability %+v, want %+v", got, wantAv)
	}
	// Without a callback availability is still accepted.
	m = c.Get("availability-legacy")
	if rs, err := z.Decode(m.Topic, m.Payload, adaptertest.T0); rs != nil || err != nil {
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
		{"other base", "zigbee2mqttx/kettle", `{}`, mqtt.ErrNotMine, nil},
		{"no slash", "zigbee2mqtt", `{}`, mqtt.ErrNotMine, nil},
		{"other adapter", "tele/pow1/SENSOR", `{}`, mqtt.ErrNotMine, nil},
		{"no name", "zigbee2mqtt/", `{}`, mqtt.ErrMalformed, []string{"no device name"}},
		{"unknown", "zigbee2mqtt/garage", `{"contact":true}`, mqtt.ErrUnknownDevice, []string{`"garage"`}},
		{"unknown availability", "zigbee2mqtt/garage/availability", `online`, mqtt.ErrUnknownDevice, []string{`"garage"`}},
		{"broken json", "zigbee2mqtt/kettle", `{"power": 20.1`, mqtt.ErrMalformed, []string{"zigbee2mqtt/kettle", "JSON"}},
		{"array", "zigbee2mqtt/kettle", `[1,2]`, mqtt.ErrMalformed, []string{"JSON object"}},
		{"null", "zigbee2mqtt/kettle", `null`, mqtt.ErrMalformed, []string{"null"}},
		{"plain text", "zigbee2mqtt/kettle", `ON`, mqtt.ErrMalformed, []string{"JSON"}},
		{"word for a number", "zigbee2mqtt/kettle", `{"power":"high"}`, mqtt.ErrMalformed, []string{`"power"`, "string", "number"}},
		{"bool number", "zigbee2mqtt/kettle", `{"temperature":true}`, mqtt.ErrMalformed, []string{`"temperature"`, "boolean"}},
		{"object number", "zigbee2mqtt/kettle", `{"energy":{"x":1}}`, mqtt.ErrMalformed, []string{`"energy"`, "object"}},
		{"contact number", "zigbee2mqtt/0x142d41fffe5820ac", `{"contact":1}`, mqtt.ErrMalformed, []string{`"contact"`, "true (closed)"}},
		{"state word", "zigbee2mqtt/kettle", `{"state":"TOGGLE"}`, mqtt.ErrMalformed, []string{`"state"`, "TOGGLE"}},
		{"overflow", "zigbee2mqtt/kettle", `{"temperature":1e400}`, mqtt.ErrMalformed, []string{`"temperature"`, "1e400", "range"}},
		{"huge", "zigbee2mqtt/kettle", `{"power":1e300}`, mqtt.ErrMalformed, []string{`"power"`, "1e15"}},
		{"negative huge", "zigbee2mqtt/kettle", `{"energy":-2e15}`, mqtt.ErrMalformed, []string{`"energy"`, "1e15"}},
		{"wildcard +", "zigbee2mqtt/+", `{}`, mqtt.ErrMalformed, []string{"wildcards"}},
		{"wildcard #", "zigbee2mqtt/kettle/#", `{}`, mqtt.ErrMalformed, []string{"wildcards"}},
		{"deep", "zigbee2mqtt/" + strings.Repeat("x/", 20) + "y", `{}`, mqtt.ErrMalformed, []string{"levels"}},
		{"availability word", "zigbee2mqtt/kettle/availability", `maybe`, mqtt.ErrMalformed, []string{"maybe", "online or offline"}},
		{"availability json", "zigbee2mqtt/kettle/availability", `{"status":"online"}`, mqtt.ErrMalformed, []string{"availability"}},
		{"oversized", "zigbee2mqtt/kettle", `{"x":"` + strings.Repeat("a", conv.MaxPayload) + `"}`, mqtt.ErrMalformed, []string{"bytes"}},
	} {
		rs, err := z.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if rs != nil {
			t.Errorf("%s: readings %v with error %v", tc.name, rs, err)
		}
		if tc.class == mqtt.ErrNotMine && err != mqtt.ErrNotMine {
			t.Errorf("%s: %v, want mqtt.ErrNotMine", tc.name, err)
			continue
		}
		adaptertest.CheckErr(t, tc.name, err, tc.class, tc.parts...)
	}
}

func TestZigbee2MQTTValues(t *testing.T) {
	z := newZ2M(t, nil)
	K := device.KindKettle
	for _, tc := range []struct {
		name, payload string
		wants         []adaptertest.Want
	}{
		{"null skipped", `{"temperature":null,"power":1500}`, []adaptertest.Want{adaptertest.W("kettle", K, device.SignalPower, 1500, "W", "")}},
		{"state off", `{"state":"OFF","linkquality":80,"power_on_behavior":"on"}`, []adaptertest.Want{adaptertest.W("kettle", K, device.SignalActive, 0, "", "")}},
		{"local last_seen ignored", `{"power":3,"last_seen":"2024-01-10T17:42:21"}`, []adaptertest.Want{adaptertest.W("kettle", K, device.SignalPower, 3, "W", "")}},
		{"epoch last_seen", `{"power":3,"last_seen":1704908541000}`, []adaptertest.Want{adaptertest.W("kettle", K, device.SignalPower, 3, "W", "").At(time.UnixMilli(1704908541000))}},
		// Some Tuya and ESPHome devices send numbers as strings.
		{"numeric strings", `{"power":"20.1","temperature":" 21.5 ","state":"ON"}`, []adaptertest.Want{adaptertest.W("kettle", K, device.SignalPower, 20.1, "W", ""),
			adaptertest.W("kettle", K, device.SignalActive, 1, "", ""), adaptertest.W("kettle", K, device.SignalTemperature, 21.5, "°C", "")}},
		{"nothing mapped", `{"linkquality":80,"voltage":230}`, nil},
		{"empty object", `{}`, nil},
	} {
		rs, err := z.Decode("zigbee2mqtt/kettle", []byte(tc.payload), adaptertest.T0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		adaptertest.CheckReadings(t, tc.name, rs, tc.wants)
	}
}

// A field that cannot be read refuses only itself: the other fields of the message
// are read, and the error names the field.
func TestZigbee2MQTTFieldErrorKeepsTheRest(t *testing.T) {
	z := newZ2M(t, nil)
	S := device.KindSensor
	rs, err := z.Decode("zigbee2mqtt/toilet_humid_temp_sensor", []byte(`{"battery":"low","humidity":48,"temperature":"21.5","linkquality":"n/a"}`), adaptertest.T0)
	adaptertest.CheckReadings(t, "partial", rs, []adaptertest.Want{adaptertest.W("toilet", S, device.SignalHumidity, 48, "%", ""),
		adaptertest.W("toilet", S, device.SignalTemperature, 21.5, "°C", "")})
	var fe *mqtt.FieldErrors
	if !errors.As(err, &fe) || !errors.Is(err, mqtt.ErrMalformed) {
		t.Fatalf("error %v, want a *mqtt.FieldErrors wrapping mqtt.ErrMalformed", err)
	}
	if len(fe.Fields) != 1 || fe.Fields[0].Field != "battery" || fe.Topic != "zigbee2mqtt/toilet_humid_temp_sensor" {
		t.Fatalf("fields %+v on %q, want battery alone", fe.Fields, fe.Topic)
	}
	adaptertest.CheckErr(t, "partial", err, mqtt.ErrMalformed, `"battery"`, `"low"`, "the other fields were read")
}

func TestZigbee2MQTTAttributeOutput(t *testing.T) {
	off := newZ2M(t, nil)
	on := newZ2M(t, &Options{AttributeOutput: true})
	W := device.KindSensor
	for _, tc := range []struct {
		topic, payload string
		wants          []adaptertest.Want
		errPart        string
	}{
		{"zigbee2mqtt/SZ_WINDOW01/contact", "false", []adaptertest.Want{adaptertest.W("window", W, device.SignalDoor, 1, "", "")}, ""},
		{"zigbee2mqtt/SZ_WINDOW01/contact", "true", []adaptertest.Want{adaptertest.W("window", W, device.SignalDoor, 0, "", "")}, ""},
		{"zigbee2mqtt/SZ_WINDOW01/battery", "97", nil, ""}, // not in the mapping's Signals
		{"zigbee2mqtt/kettle/state", "ON", []adaptertest.Want{adaptertest.W("kettle", device.KindKettle, device.SignalActive, 1, "", "")}, ""},
		{"zigbee2mqtt/kettle/temperature", "98.5", []adaptertest.Want{adaptertest.W("kettle", device.KindKettle, device.SignalTemperature, 98.5, "°C", "")}, ""},
		{"zigbee2mqtt/kettle/temperature", "hot", nil, "string"},
		{"zigbee2mqtt/kettle/temperature", "", nil, ""},
	} {
		rs, err := off.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if rs != nil || err != nil {
			t.Errorf("%s without AttributeOutput: %v %v, want nothing", tc.topic, rs, err)
		}
		rs, err = on.Decode(tc.topic, []byte(tc.payload), adaptertest.T0)
		if tc.errPart != "" {
			adaptertest.CheckErr(t, tc.topic, err, mqtt.ErrMalformed, tc.errPart)
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.topic, tc.payload, err)
			continue
		}
		adaptertest.CheckReadings(t, tc.topic+" "+tc.payload, rs, tc.wants)
	}
}

func TestNewErrors(t *testing.T) {
	for _, base := range []string{"a/#", "/z2m", "z2m/", "a//b"} {
		if _, err := New(nil, &Options{BaseTopic: base}); err == nil || !strings.Contains(err.Error(), "base topic") {
			t.Errorf("base %q: %v", base, err)
		}
	}
	_, err := New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "x", Device: "bad id", Kind: device.KindFridge}}, nil)
	if err == nil || !strings.Contains(err.Error(), "device") || !strings.Contains(err.Error(), "zigbee2mqtt") {
		t.Errorf("bad mapping: %v", err)
	}
}

func FuzzZigbee2MQTT(f *testing.F) {
	c := adaptertest.LoadCorpus(f, "testdata/zigbee2mqtt.tsv")
	for _, m := range c.All() {
		f.Add(m.Topic, m.Payload)
	}
	f.Add("zigbee2mqtt/kettle", []byte(`{"temperature":1e400,"state":"ON"}`))
	f.Add("zigbee2mqtt/kettle/state", []byte(`ON`))
	f.Add("zigbee2mqtt/SZ_WINDOW01/availability", []byte(`{"state":"online"}`))
	z := newZ2M(f, &Options{AttributeOutput: true, OnAvailability: func(a mqtt.Availability) {
		if a.Device == "" || a.Source != mqtt.SourceZigbee2MQTT {
			panic("bad availability")
		}
	}})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		adaptertest.Check(t, z, topic, payload, adaptertest.T0)
	})
}

func BenchmarkZigbee2MQTT(b *testing.B) {
	z := newZ2M(b, nil)
	payload := []byte(`{"current":0.54,"energy":1.05,"identify":null,"linkquality":255,"power":102,"power_on_behavior":"on","state":"ON","update":{"installed_version":33816645,"latest_version":33816645,"state":"idle"},"voltage":239.1}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := z.Decode("zigbee2mqtt/example device", payload, adaptertest.T0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
