package native

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

func TestProto(t *testing.T) {
	kinds := map[string]device.Kind{"fridge1": device.KindFridge, "washer1": device.KindWasher}
	n := Proto{KindOf: func(id string) (device.Kind, bool) { k, ok := kinds[id]; return k, ok }}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rd, _ := proto.Marshal(&fwpb.Readings{BootId: 77, SentMonoMs: 10_000, Readings: []*fwpb.Reading{
		{Seq: 1, MonoMs: 9_000, Signal: fwpb.Signal_SIGNAL_TEMPERATURE, Value: 4.25},
		{Seq: 2, MonoMs: 9_500, WallMs: 1763899200000, Signal: fwpb.Signal_SIGNAL_WATER, Value: 0.3},
	}})
	rs, err := n.Decode("hearth/v1/fridge1/readings/pb", rd, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Kind != device.KindFridge || rs[0].Signal != device.SignalTemperature || rs[0].Value != 4.25 ||
		rs[0].Unit != "°C" || rs[0].Boot != 77 || rs[0].Seq != 1 || !rs[0].DeviceTime.Equal(now.Add(-time.Second)) ||
		rs[1].Unit != "L" || rs[1].DeviceTime.UnixMilli() != 1763899200000 {
		t.Fatalf("readings: %+v", rs)
	}
	ev, _ := proto.Marshal(&fwpb.Events{BootId: 5, Events: []*fwpb.Event{{Seq: 9, WallMs: 1763899200000,
		Event: &fwpb.Event_Cycle{Cycle: &fwpb.CycleEvent{Phase: fwpb.CyclePhase_CYCLE_PHASE_FINISHED, Programme: "cotton40", EnergyWh: 850}}}}})
	rs, err = n.Decode("hearth/v1/washer1/events/pb", ev, now)
	if err != nil || len(rs) != 1 || rs[0].Signal != device.SignalCycle || rs[0].Value != 0 || rs[0].Label != "cotton40" || rs[0].Aux != 850 {
		t.Fatalf("events: %+v %v", rs, err)
	}
	inv, _ := proto.Marshal(&fwpb.Inventory{BootId: 77, Changes: []*fwpb.InventoryChange{{Seq: 3, WallMs: 1763899200000,
		Action: fwpb.InventoryAction_INVENTORY_ACTION_REMOVED, Category: "dairy", BestBeforeDays: 20420}}})
	rs, err = n.Decode("hearth/v1/fridge1/inventory/pb", inv, now)
	if err != nil || len(rs) != 1 || rs[0].Signal != device.SignalInventory || rs[0].Value != -1 || rs[0].Label != "dairy" || rs[0].Aux != 20420 {
		t.Fatalf("inventory: %+v %v", rs, err)
	}
	noBoot, _ := proto.Marshal(&fwpb.Readings{Readings: []*fwpb.Reading{{Seq: 1, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1}}})
	badSeq, _ := proto.Marshal(&fwpb.Readings{BootId: 1, Readings: []*fwpb.Reading{{Seq: 1, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1}, {Seq: 0, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 0}}})
	for _, c := range []struct {
		topic   string
		payload []byte
		want    error
		msg     string
	}{
		{"hearth/v1/fridge1/readings/pb", []byte{0xff, 0xff, 0xff}, mqtt.ErrMalformed, "readings"},
		{"hearth/v1/fridge1/readings/pb", badSeq, mqtt.ErrMalformed, "sequence number 0"},
		{"hearth/v1/fridge1/readings/pb", noBoot, mqtt.ErrMalformed, "boot_id 0"},
		{"hearth/v1/oven9/readings/pb", rd, mqtt.ErrUnknownDevice, "oven9"},
		{"hearth/v1/fridge1/other/pb", rd, mqtt.ErrNotMine, ""},
		{"hearth/v1/fridge1/readings", rd, mqtt.ErrNotMine, ""},
	} {
		_, err := n.Decode(c.topic, c.payload, now)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v mentioning %q", c.topic, err, c.want, c.msg)
		}
	}
}
