package main

import "github.com/hearth-iot/hearth/device"

// extraSources builds the sources beyond the embedded broker: serial ports
// (serial.go), an external MQTT broker (mqtt.go) and the hub's own sensors
// (hubsensors.go). They run under the sources'
// context and hand readings to ingest.
func (a *agent) extraSources() ([]device.Source, error) {
	var out []device.Source
	for _, f := range []func() ([]device.Source, error){a.serialSources, a.mqttSources, a.hubSources} {
		srcs, err := f()
		if err != nil {
			return nil, err
		}
		out = append(out, srcs...)
	}
	return out, nil
}
