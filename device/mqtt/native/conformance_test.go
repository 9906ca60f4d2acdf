package native_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/native"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
	"github.com/hearth-iot/hearth/internal/config"
)

// vectorPayloads reads the protobuf payloads of the firmware protocol's test vectors
// (firmware-proto/testdata/vectors, shared with firmware teams): what a device that
// speaks the protocol on a UART publishes over MQTT, unframed.
func vectorPayloads(t testing.TB, dev string) []adaptertest.Message {
	t.Helper()
	files, err := filepath.Glob("../../../firmware-proto/testdata/vectors/*.hex")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test vectors: %v", err)
	}
	topicOf := map[string]string{"02": "readings", "03": "events", "04": "inventory"}
	var out []adaptertest.Message
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var typ, hexs string
		in := false
		for _, line := range strings.Split(string(b), "\n") {
			switch rest, _ := strings.CutPrefix(line, "#"); {
			case strings.HasPrefix(rest, "   header  01 "):
				typ = strings.Fields(rest)[2]
			case strings.HasPrefix(rest, "   payload "):
				hexs, in = strings.TrimPrefix(rest, "   payload "), true
			case in && strings.HasPrefix(rest, "           "):
				hexs += " " + strings.TrimSpace(rest)
			default:
				in = false
			}
		}
		what, ok := topicOf[typ]
		if !ok || hexs == "" {
			continue
		}
		p, err := hex.DecodeString(strings.ReplaceAll(hexs, " ", ""))
		if err != nil {
			t.Fatalf("%s: payload: %v", f, err)
		}
		out = append(out, adaptertest.Message{Name: filepath.Base(f), Topic: native.Prefix + dev + "/" + what + "/pb", Payload: p})
	}
	if len(out) < 4 {
		t.Fatalf("only %d reading, event and inventory vectors", len(out))
	}
	return out
}

func TestConformance(t *testing.T) {
	kindOf := func(id string) (device.Kind, bool) { return device.KindFridge, id == "fridge1" }
	msg := func(name, topic string, payload []byte) adaptertest.Message {
		return adaptertest.Message{Name: name, Topic: topic, Payload: payload}
	}
	withBoot, err := proto.Marshal(&fwpb.Readings{BootId: 9, Readings: []*fwpb.Reading{
		{Seq: 1, WallMs: 1767225601250, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1},
		{Seq: 2, Signal: fwpb.Signal_SIGNAL_TEMPERATURE, Value: 3.5}}})
	if err != nil {
		t.Fatal(err)
	}
	readings := native.Topic("fridge1")
	cases := adaptertest.Cases(vectorPayloads(t, "fridge1")) // boot 0 is refused over MQTT; events.hex carries one
	cases = append(cases,
		adaptertest.Case{Message: msg("one", readings, []byte(`{"signal":"door","value":1,"boot":7,"seq":42,"ts":1732345678123}`)), Readings: 1},
		adaptertest.Case{Message: msg("batch", readings, []byte(`[{"signal":"door","value":1,"boot":7,"seq":43},{"kind":"fridge","signal":"temperature","value":4.5,"unit":"°C"}]`)), Readings: 2},
		adaptertest.Case{Message: msg("appended", readings, native.Append(nil, []device.Reading{{Kind: device.KindFridge, Signal: device.SignalPower, Value: 87.5, Unit: "W"}})), Readings: 1},
		adaptertest.Case{Message: msg("protobuf with boot", readings+"/pb", withBoot), Readings: 2},
		adaptertest.Case{Message: msg("wrong kind", readings, []byte(`{"kind":"oven","signal":"door","value":1}`)), Err: mqtt.ErrMalformed},
		adaptertest.Case{Message: msg("seq without boot", readings, []byte(`{"signal":"door","value":1,"seq":5}`)), Err: mqtt.ErrMalformed},
		adaptertest.Case{Message: msg("unregistered", native.Topic("ghost"), []byte(`{"signal":"door","value":1}`)), Err: mqtt.ErrUnknownDevice},
	)
	big := make([]byte, 0, 64<<10)
	big = append(big, '[')
	for i := range native.MaxBatch + 1 {
		if i > 0 {
			big = append(big, ',')
		}
		big = append(big, `{"signal":"door","value":1}`...)
	}
	big = append(big, ']')
	bigPB := &fwpb.Readings{BootId: 9}
	for i := range native.MaxBatch + 1 {
		bigPB.Readings = append(bigPB.Readings, &fwpb.Reading{Seq: uint64(i + 1), Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1})
	}
	bigPBBytes, err := proto.Marshal(bigPB)
	if err != nil {
		t.Fatal(err)
	}
	adaptertest.Run(t, adaptertest.Adapter{
		New: func(testing.TB) (mqtt.Decoder, mqtt.Learner) {
			return mqtt.Router{native.JSON{KindOf: kindOf}, native.Proto{KindOf: kindOf}}, nil
		},
		Messages: cases,
		Foreign: []string{"zigbee2mqtt/Fridge Door", "tele/pow1/SENSOR", "homie/fridge/door/open", "homeassistant/sensor/x/config",
			"hearth/v1/fridge1", "hearth/v1/fridge1/status", "hearth/v2/fridge1/readings", "hearth/v1/fridge1/readings/json"},
		Oversized: []adaptertest.Message{
			msg(fmt.Sprintf("JSON batch of %d", native.MaxBatch+1), readings, big),
			msg(fmt.Sprintf("protobuf batch of %d", native.MaxBatch+1), readings+"/pb", bigPBBytes),
		},
	})
}

// sample.yaml's configuration is one hearth accepts, and its payloads give the
// readings it states.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(testing.TB, config.MQTT) mqtt.Handler {
		kindOf := func(id string) (device.Kind, bool) { return device.KindFridge, id == "kitchen-fridge" }
		return mqtt.Adapters{Decoder: mqtt.Router{native.JSON{KindOf: kindOf}, native.Proto{KindOf: kindOf}}}
	})
}
