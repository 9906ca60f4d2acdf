package homie

import (
	"fmt"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/internal/config"
)

func TestConformance(t *testing.T) {
	// The convention's examples, then a washer's attributes and values, in the order
	// a device sends them; the flood devices are mapped too (only mapped devices are
	// kept).
	ms := append(mqtt.Mappings(nil), homieMappings...)
	for i := range 40 {
		ms = append(ms, mqtt.Mapping{Source: mqtt.SourceHomie, Name: fmt.Sprintf("flood%d", i), Device: fmt.Sprintf("flood%d", i), Kind: device.KindSensor})
	}
	const maxDevices = 16
	cases := adaptertest.Cases(adaptertest.LoadCorpus(t, "testdata/homie.tsv").All())
	msg := func(topic, payload string) adaptertest.Message {
		return adaptertest.Message{Name: topic + " " + payload, Topic: topic, Payload: []byte(payload)}
	}
	cases = append(cases,
		adaptertest.Case{Message: msg("homie/washer/machine/error/$datatype", "enum")},
		adaptertest.Case{Message: msg("homie/washer/machine/error/$format", "none,door-open,no-water")},
		adaptertest.Case{Message: msg("homie/washer/machine/error", "no-water"), Readings: 1},
		adaptertest.Case{Message: msg("homie/washer/meter/count/$datatype", "integer")},
		adaptertest.Case{Message: msg("homie/washer/meter/count", "2.5"), Err: mqtt.ErrMalformed},
		adaptertest.Case{Message: msg("homie/washer/meter/power/$unit", "kW")},
		adaptertest.Case{Message: msg("homie/washer/meter/power", "1.2"), Readings: 1},
		adaptertest.Case{Message: msg("homie/garage/$state", "ready"), Err: mqtt.ErrUnknownDevice},
	)
	adaptertest.Run(t, adaptertest.Adapter{
		New: func(t testing.TB) (mqtt.Decoder, mqtt.Learner) {
			d, l, err := New(ms, &Options{MaxDevices: maxDevices, MaxNodes: 8, MaxProperties: 16})
			if err != nil {
				t.Fatal(err)
			}
			return d, l
		},
		Messages: cases,
		Foreign: []string{"zigbee2mqtt/Fridge Door", "tele/pow1/SENSOR", "homeassistant/sensor/fridge/power/config",
			"hearth/v1/fridge/readings", "homie", "homiex/fridge/$state"},
		MaxPayload: conv.MaxPayload,
		Flood: func(i int) adaptertest.Message {
			return msg(fmt.Sprintf("homie/flood%d/$name", i), "a device that says its name")
		},
		Held: func(l mqtt.Learner) (int, int) { return len(l.(*Learner).tab.Load().devices), maxDevices },
	})
}

// sample.yaml's configuration is one hearth accepts, and its messages give the
// readings it states.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(t testing.TB, m config.MQTT) mqtt.Handler {
		d, l, err := New(m.DeviceMappings(), &Options{BaseTopic: m.Homie.BaseTopic, MaxDevices: m.Homie.MaxDevices,
			MaxNodes: m.Homie.MaxNodes, MaxProperties: m.Homie.MaxProperties})
		if err != nil {
			t.Fatal(err)
		}
		return mqtt.Adapters{Learners: []mqtt.Learner{l}, Decoder: d}
	})
}
