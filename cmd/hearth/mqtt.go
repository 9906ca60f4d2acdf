package main

import "github.com/hearth-iot/hearth/device"

// mqttSources builds the external-broker Source when one is configured.
func (a *agent) mqttSources() ([]device.Source, error) { return nil, nil }
