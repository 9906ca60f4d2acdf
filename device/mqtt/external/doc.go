// Package external is the device.Source for a broker the household already runs
// (mosquitto with Zigbee2MQTT, say): a persistent QoS 1 session whose messages are
// handed to the adapters (an mqtt.Adapters) and acknowledged only after their
// readings are committed; a message that can never be stored is acknowledged and
// counted, so that it cannot hold up the feed. See Source for delivery, order,
// retained messages and the connection, and sample.yaml for the configuration keys.
package external
