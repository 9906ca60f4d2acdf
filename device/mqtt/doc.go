// Package mqtt turns what devices publish over MQTT into readings: hearth's native
// topic schema (hearth/v1/<device>/readings) and adapters for what real devices
// publish (Zigbee2MQTT, Tasmota, Home Assistant MQTT discovery, Homie v4).
//
// Decoders are pure functions of topic and payload; the embedded broker (edge/broker)
// and the external-broker Source in this package (External: a persistent QoS 1
// session on a broker the household already runs, acknowledging each message only
// after its readings are committed) feed them.
package mqtt
