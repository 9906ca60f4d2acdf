// Package tasmota reads what Tasmota firmware publishes for the devices mapped with
// source "tasmota" (mqtt.mappings): SENSOR and STATE telemetry, POWER results and the
// LWT, under any FullTopic in use, including the Zigbee devices behind a Tasmota
// bridge. See Decoder for the topics and conventions, and sample.yaml for the
// configuration keys and a real payload.
package tasmota
