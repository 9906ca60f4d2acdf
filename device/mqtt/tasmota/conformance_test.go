package tasmota

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/internal/config"
)

// logLine is a Tasmota console or doc line showing a telemetry message.
var logLine = regexp.MustCompile(`(tele/[^ ]+/(?:SENSOR|STATE)) = (\{.*\})`)

// sharedTelemetry reads the SENSOR and STATE messages of the Tasmota docs and of a real
// Zigbee bridge log in ../shared/data/mqtt-formats (%topic% read as "tasmota").
func sharedTelemetry(t testing.TB) []adaptertest.Message {
	t.Helper()
	var out []adaptertest.Message
	for _, name := range []string{"tasmota-doc-examples.txt", "tasmota-zigbee-bridge-real-log.txt"} {
		b, err := os.ReadFile(adaptertest.Shared(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			m := logLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			topic := strings.ReplaceAll(m[1], "%topic%", "tasmota")
			out = append(out, adaptertest.Message{Name: fmt.Sprintf("%s line %d", name, i+1), Topic: topic, Payload: []byte(m[2])})
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d Tasmota telemetry messages in the shared captures", len(out))
	}
	return out
}

func TestConformance(t *testing.T) {
	msgs := append(adaptertest.LoadCorpus(t, "testdata/tasmota.tsv").All(), sharedTelemetry(t)...)
	// The bridge's door sensor and a doc example, with what they must give.
	cases := adaptertest.Cases(msgs)
	cases = append(cases,
		adaptertest.Case{Message: adaptertest.Message{Name: "bridge door open", Topic: "tele/SonoffZB/SENSOR",
			Payload: []byte(`{"ZbReceived":{"0x662E":{"Device":"0x662E","Name":" door_sensor","0500<00":"210000010000","ZoneStatusChange":33,"ZoneStatusChangeZone":1,"Contact":1,"Endpoint":1,"LinkQuality":157}}}`)},
			Readings: 1},
		adaptertest.Case{Message: adaptertest.Message{Name: "ibeacon unmapped", Topic: "tele/ibeacon/SENSOR",
			Payload: []byte(`{"Time":"2021-01-02T12:08:40","IBEACON":{"MAC":"A4C1387FC1E1","RSSI":-56,"STATE":"ON"}}`)},
			Err: mqtt.ErrUnknownDevice},
	)
	adaptertest.Run(t, adaptertest.Adapter{
		New: func(t testing.TB) (mqtt.Decoder, mqtt.Learner) {
			return newTasmota(t, tasmotaMappings, &Options{FullTopics: []string{"%prefix%/%topic%/", "tasmota/%topic%/%prefix%/"}}), nil
		},
		Messages: cases,
		Foreign: []string{"zigbee2mqtt/Fridge Door", "homie/fridge/door/open", "homeassistant/sensor/fridge/power/config",
			"hearth/v1/fridge/readings", "tele", "tele/pow1", "cmd/pow1/POWER", "telex/pow1/SENSOR"},
		MaxPayload: conv.MaxPayload,
	})
}

// sample.yaml's configuration is one hearth accepts, and its payloads give the
// readings it states.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(t testing.TB, m config.MQTT) mqtt.Handler {
		d, err := New(m.DeviceMappings(), &Options{FullTopics: m.Tasmota.FullTopics})
		if err != nil {
			t.Fatal(err)
		}
		return mqtt.Adapters{Decoder: d}
	})
}
