package zigbee2mqtt

import (
	"os"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/internal/config"
)

// sharedStates reads ../shared/data/mqtt-formats/zigbee2mqtt-state-payloads.tsv
// (topic, payload, device, source) as messages named by their topic, leaving out those
// under another base topic than Zigbee2MQTT's default.
func sharedStates(t testing.TB) []adaptertest.Message {
	t.Helper()
	b, err := os.ReadFile(adaptertest.Shared(t, "zigbee2mqtt-state-payloads.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var out []adaptertest.Message
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if strings.HasPrefix(line, "#") || len(f) < 2 || !strings.HasPrefix(f[0], "zigbee2mqtt/") {
			continue
		}
		out = append(out, adaptertest.Message{Name: "shared " + f[0], Topic: f[0], Payload: []byte(f[1])})
	}
	if len(out) < 10 {
		t.Fatalf("only %d Zigbee2MQTT states in the shared captures", len(out))
	}
	return out
}

func TestConformance(t *testing.T) {
	cases := adaptertest.Cases(adaptertest.LoadCorpus(t, "testdata/zigbee2mqtt.tsv").All())
	// The shared captures, with the readings z2mMappings gives each (the signals of
	// its kind: pressure, voltage, linkquality and the like are no hearth signal).
	want := map[string]adaptertest.Case{
		"zigbee2mqtt/Living Room temperature, humidity and pressure sensor": {Readings: 3}, // battery, humidity, temperature
		"zigbee2mqtt/schuppen/SENSOR":                                       {Readings: 3},
		"zigbee2mqtt/bathroom/SENSOR":                                       {Err: mqtt.ErrUnknownDevice}, // not mapped
		"zigbee2mqtt/0x142d41fffe5820ac":                                    {Readings: 2},                // battery, door
		"zigbee2mqtt/SZ_WINDOW01":                                           {Readings: 1},                // the mapping names contact only
		"zigbee2mqtt/AZ_MOTION01":                                           {Readings: 2},                // battery, occupancy
		"zigbee2mqtt/example device":                                        {Readings: 3},                // energy, power, state
		"zigbee2mqtt/0x00124b00251f6ccc":                                    {Readings: 3},
		"zigbee2mqtt/toilet_humid_temp_sensor":                              {Readings: 3},
		"zigbee2mqtt/WSDCGQ01LM-doc":                                        {Readings: 2},
		"zigbee2mqtt/RTCGQ01LM-doc":                                         {Readings: 1},
		"zigbee2mqtt/bridge/state":                                          {},
		"zigbee2mqtt/bridge/event":                                          {},
	}
	for _, m := range sharedStates(t) {
		c, ok := want[m.Topic]
		if !ok {
			t.Errorf("shared capture %s: no expectation in this test", m.Topic)
			continue
		}
		c.Message = m
		cases = append(cases, c)
	}
	adaptertest.Run(t, adaptertest.Adapter{
		New: func(t testing.TB) (mqtt.Decoder, mqtt.Learner) {
			return newZ2M(t, &Options{AttributeOutput: true}), nil
		},
		Messages: cases,
		Foreign: []string{"tele/pow1/SENSOR", "homie/fridge/door/open", "homeassistant/binary_sensor/fridge/door/config",
			"hearth/v1/fridge/readings", "zigbee2mqttx/kettle", "zigbee2mqtt"},
		MaxPayload: conv.MaxPayload,
	})
}

// sample.yaml's configuration is one hearth accepts, and its payload gives the
// readings it states.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(t testing.TB, m config.MQTT) mqtt.Handler {
		d, err := New(m.DeviceMappings(), &Options{BaseTopic: m.Zigbee2MQTT.BaseTopic, AttributeOutput: m.Zigbee2MQTT.AttributeOutput})
		if err != nil {
			t.Fatal(err)
		}
		return mqtt.Adapters{Decoder: d}
	})
}
