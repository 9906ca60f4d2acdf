package mqtt

import (
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Zigbee2MQTT's discovery config of the battery of the contact sensor that the
// configuration maps as the fridge door (its state topic is the device's).
const (
	fridgeDoorBatteryConfigTopic = "homeassistant/sensor/0x00158d00029b063b/battery/config"
	fridgeDoorBatteryConfig      = `{"unit_of_measurement":"%","device_class":"battery","value_template":"{{ value_json.battery }}","state_topic":"zigbee2mqtt/Fridge Door","json_attributes_topic":"zigbee2mqtt/Fridge Door","name":"Fridge Door battery","unique_id":"0x00158d00029b063b_battery_zigbee2mqtt","device":{"identifiers":["zigbee2mqtt_0x00158d00029b063b"],"name":"Fridge Door","model":"MiJia door & window contact sensor (MCCGQ01LM)","manufacturer":"Xiaomi"},"availability_topic":"zigbee2mqtt/bridge/state"}`
)

// An accepted Home Assistant entity that reads the state topic of a device the
// configuration maps adds to that mapping: the configured readings keep coming, the
// entity's too, and what both give for one device and signal is stored once.
func TestLayeredAcceptedEntityBesideMapping(t *testing.T) {
	z2m, err := NewZigbee2MQTT(Mappings{{Source: SourceZigbee2MQTT, Name: "Fridge Door", Device: "kitchen-fridge", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDiscovery(nil)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, d, fridgeDoorBatteryConfigTopic, []byte(fridgeDoorBatteryConfig))
	p := proposalFor(t, d, fridgeDoorBatteryConfigTopic)
	payload := []byte(`{"battery":91,"contact":false,"linkquality":120}`)
	const F, S = device.KindFridge, device.KindSensor
	for _, tc := range []struct {
		name  string
		dev   string
		kind  device.Kind
		wants []want
	}{
		{"another device", "door-sensor", S, []want{
			{"kitchen-fridge", F, device.SignalBattery, 91, "%", "Fridge Door", time.Time{}},
			{"kitchen-fridge", F, device.SignalDoor, 1, "", "", time.Time{}},
			{"door-sensor", S, device.SignalBattery, 91, "%", "0x00158d00029b063b_battery_zigbee2mqtt", time.Time{}}}},
		{"the mapped device", "kitchen-fridge", F, []want{
			{"kitchen-fridge", F, device.SignalBattery, 91, "%", "Fridge Door", time.Time{}},
			{"kitchen-fridge", F, device.SignalDoor, 1, "", "", time.Time{}}}},
	} {
		acc := p
		acc.Mapping.Device, acc.Mapping.Kind = tc.dev, tc.kind
		ha, err := NewHAState([]Proposal{acc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := Layered{Base: Router{z2m}, Extra: ha}.Decode("zigbee2mqtt/Fridge Door", payload, t0)
		checkErr(t, tc.name, err, nil)
		checkReadings(t, tc.name, rs, tc.wants)
		// Topics only one of them reads.
		if rs, err := (Layered{Base: Router{z2m}, Extra: ha}).Decode("zigbee2mqtt/Garage", payload, t0); rs != nil || err == nil {
			t.Errorf("%s: an unmapped device: %v %v, want ErrUnknownDevice", tc.name, rs, err)
		}
	}
	// An entity on a topic the adapters do not know is read alone.
	z2mNone, _ := NewZigbee2MQTT(nil, nil)
	acc := p
	acc.Mapping.Device = "door-sensor"
	ha, err := NewHAState([]Proposal{acc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Layered{Base: Router{z2mNone}, Extra: ha}.Decode("zigbee2mqtt/Fridge Door", payload, t0)
	checkErr(t, "entity alone", err, nil)
	checkReadings(t, "entity alone", rs, []want{{"door-sensor", acc.Mapping.Kind, device.SignalBattery, 91, "%", "0x00158d00029b063b_battery_zigbee2mqtt", time.Time{}}})
}
