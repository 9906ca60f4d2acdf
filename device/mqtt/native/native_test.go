package native

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
)

func TestNativeDecode(t *testing.T) {
	kinds := map[string]device.Kind{"fridge1": device.KindFridge}
	n := JSON{KindOf: func(id string) (device.Kind, bool) { k, ok := kinds[id]; return k, ok }}
	rs, err := n.Decode("hearth/v1/fridge1/readings", []byte(`[{"signal":"door","value":1,"boot":7,"seq":42,"ts":1732345678123},
		{"kind":"fridge","signal":"temperature","value":4.5,"unit":"°C","boot":7,"seq":43}]`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Kind != device.KindFridge || rs[0].Signal != device.SignalDoor || rs[0].Value != 1 ||
		rs[0].Seq != 42 || rs[0].DeviceTime.UnixMilli() != 1732345678123 || rs[1].Value != 4.5 || !rs[1].DeviceTime.IsZero() {
		t.Fatalf("decoded %+v", rs)
	}
	// Round trip through AppendNative.
	back, err := n.Decode("hearth/v1/fridge1/readings", Append(nil, rs), time.Time{})
	if err != nil || len(back) != 2 || back[0].Seq != 42 || back[1].Unit != "°C" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	bad := []struct{ topic, payload, want string }{
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":1,"colour":"red"}`, "colour"},
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":1} {"signal":"door","value":0}`, "malformed"},
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":1,"value":0}`, "duplicate"},
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":"open"}`, "malformed"},
		{"hearth/v1/fridge1/readings", `{"signal":"door"}`, "no value"},
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":1e400}`, "malformed"},
		{"hearth/v1/fridge1/readings", `{"signal":"smell","value":1}`, "unknown signal"},
		{"hearth/v1/fridge1/readings", `{"signal":"door","value":1,"seq":5}`, "without a boot id"},
		{"hearth/v1/fridge1/readings", `{"kind":"oven","signal":"door","value":1}`, "registered as"},
		{"hearth/v1/oven9/readings", `{"signal":"door","value":1}`, "unknown device"},
		{"hearth/v1/fridge1/readings", "[" + strings.Repeat(`{"signal":"door","value":1},`, MaxBatch) + `{"signal":"door","value":1}]`, "readings in one payload"},
	}
	for _, c := range bad {
		_, err := n.Decode(c.topic, []byte(c.payload), time.Time{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60s: err = %v, want it to mention %q", c.payload, err, c.want)
		}
	}
	if _, err := n.Decode("zigbee2mqtt/x", []byte(`{}`), time.Time{}); !errors.Is(err, mqtt.ErrNotMine) {
		t.Errorf("foreign topic: %v", err)
	}
}

func BenchmarkNativeDecode(b *testing.B) {
	n := JSON{}
	p := []byte(`{"kind":"fridge","signal":"door","value":1,"boot":7,"seq":42,"ts":1732345678123}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Decode("hearth/v1/fridge1/readings", p, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
