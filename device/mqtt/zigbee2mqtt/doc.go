// Package zigbee2mqtt reads what Zigbee2MQTT publishes for the devices mapped with
// source "zigbee2mqtt" (mqtt.mappings): the JSON state of each device under the base
// topic, its availability, and optionally the per-attribute topics. See Decoder for
// the topics and conventions, and sample.yaml for the configuration keys and a real
// payload.
package zigbee2mqtt
