package hadiscovery

import (
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
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
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge Door", Device: "kitchen-fridge", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewLearner(nil)
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
		wants []adaptertest.Want
	}{
		{"another device", "door-sensor", S, []adaptertest.Want{
			adaptertest.W("kitchen-fridge", F, device.SignalBattery, 91, "%", "Fridge Door"),
			adaptertest.W("kitchen-fridge", F, device.SignalDoor, 1, "", ""),
			adaptertest.W("door-sensor", S, device.SignalBattery, 91, "%", "0x00158d00029b063b_battery_zigbee2mqtt")}},
		{"the mapped device", "kitchen-fridge", F, []adaptertest.Want{
			adaptertest.W("kitchen-fridge", F, device.SignalBattery, 91, "%", "Fridge Door"),
			adaptertest.W("kitchen-fridge", F, device.SignalDoor, 1, "", "")}},
	} {
		acc := p
		acc.Mapping.Device, acc.Mapping.Kind = tc.dev, tc.kind
		ha, err := NewState([]Proposal{acc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := mqtt.Layered{Base: mqtt.Router{z2m}, Extra: ha}.Decode("zigbee2mqtt/Fridge Door", payload, adaptertest.T0)
		adaptertest.CheckErr(t, tc.name, err, nil)
		adaptertest.CheckReadings(t, tc.name, rs, tc.wants)
		// Topics only one of them reads.
		if rs, err := (mqtt.Layered{Base: mqtt.Router{z2m}, Extra: ha}).Decode("zigbee2mqtt/Garage", payload, adaptertest.T0); rs != nil || err == nil {
			t.Errorf("%s: an unmapped device: %v %v, want mqtt.ErrUnknownDevice", tc.name, rs, err)
		}
	}
	// An entity on a topic the adapters do not know is read alone.
	z2mNone, _ := zigbee2mqtt.New(nil, nil)
	acc := p
	acc.Mapping.Device = "door-sensor"
	ha, err := NewState([]Proposal{acc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := mqtt.Layered{Base: mqtt.Router{z2mNone}, Extra: ha}.Decode("zigbee2mqtt/Fridge Door", payload, adaptertest.T0)
	adaptertest.CheckErr(t, "entity alone", err, nil)
	adaptertest.CheckReadings(t, "entity alone", rs, []adaptertest.Want{adaptertest.W("door-sensor", acc.Mapping.Kind, device.SignalBattery, 91, "%", "0x00158d00029b063b_battery_zigbee2mqtt")})
}
