// Package device defines what hearth hears from appliances: the Reading, the
// vocabulary of kinds and signals, and the Source and Sink interfaces that join a
// source of readings to the durable store.
//
// # Sources
//
// Each subpackage is one Source: serial (appliance firmware over a UART), mqtt
// (MQTT topics from native devices, Zigbee2MQTT, Tasmota, Home Assistant and Homie),
// gpio (reed switches and I2C sensors on the hub) and sim (simulated households).
// A source never imports edge/ or sync/: it hands readings to a Sink and acknowledges
// them to its device only after the Sink reports them durable.
package device
