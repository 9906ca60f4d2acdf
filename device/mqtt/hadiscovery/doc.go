// Package hadiscovery reads Home Assistant MQTT discovery, which Zigbee2MQTT, Tasmota,
// ESPHome and many other firmwares publish.
//
// A Learner takes the discovery configs and keeps a Proposal for every entity whose
// state can become a hearth signal: a suggested mapping, with the kind and signal it
// guessed and why (guess.go). Nothing is read from a proposal until the household
// accepts it (a mapping with source "homeassistant" in the configuration, or
// `hearth device accept`). A State reads the state topics of the accepted entities,
// picking the value with the entity's value_template (internal/hatemplate, the small
// part of Jinja that discovery configs use); it is given a new set of entities by
// Replace, never changed while it decodes.
//
// sample.yaml shows the configuration keys and real messages.
package hadiscovery
