package adaptertest

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/internal/config"
)

// sampleExample is the second YAML document of a sample.yaml.
type sampleExample struct {
	Messages []struct {
		Topic    string `yaml:"topic"`
		Payload  string `yaml:"payload"`
		Readings []struct {
			Device string        `yaml:"device"`
			Kind   device.Kind   `yaml:"kind"`
			Signal device.Signal `yaml:"signal"`
			Value  float64       `yaml:"value"`
			Unit   string        `yaml:"unit"`
			Label  string        `yaml:"label"`
		} `yaml:"readings"`
	} `yaml:"messages"`
}

// CheckSample keeps an adapter's sample.yaml true. The file holds two YAML documents:
//
//  1. a hearth configuration showing the adapter's keys (under mqtt:), read as
//     `hearth config check` reads a file: an unknown key, a wrong type or a warning
//     fails the test;
//  2. messages a real device publishes (topic, payload) and the readings hearth
//     stores from each (device, kind, signal, value, unit, label).
//
// build makes the adapter's handler from the configuration's mqtt section, as the
// agent does; each message is handled in order and must give exactly its readings.
func CheckSample(t *testing.T, file string, build func(t testing.TB, m config.MQTT) mqtt.Handler) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfgDoc, exDoc, ok := strings.Cut(string(src), "\n---\n")
	if !ok {
		t.Fatalf("%s: want two YAML documents (the configuration, --- , the example messages)", file)
	}
	f := config.ParseFile([]byte(cfgDoc), file)
	if err := f.Err(); err != nil {
		t.Fatalf("%s: the configuration is not one hearth accepts: %v", file, err)
	}
	for _, w := range f.Warnings {
		t.Errorf("%s: config check warns: %v", file, w)
	}
	var ex sampleExample
	dec := yaml.NewDecoder(bytes.NewReader([]byte(exDoc)))
	dec.KnownFields(true)
	if err := dec.Decode(&ex); err != nil {
		t.Fatalf("%s: example messages: %v", file, err)
	}
	h := build(t, f.Config.MQTT)
	n := 0
	for i, m := range ex.Messages {
		rs, err := h.Handle(m.Topic, []byte(m.Payload), T0)
		if err != nil {
			t.Errorf("%s: message %d (%s): %v", file, i+1, m.Topic, err)
			continue
		}
		if len(rs) != len(m.Readings) {
			t.Errorf("%s: message %d (%s): %d readings %+v, the sample says %d", file, i+1, m.Topic, len(rs), rs, len(m.Readings))
			continue
		}
		for j, w := range m.Readings {
			g := rs[j]
			if g.Device != w.Device || g.Kind != w.Kind || g.Signal != w.Signal || math.Abs(g.Value-w.Value) > 1e-9 ||
				g.Unit != w.Unit || g.Label != w.Label {
				t.Errorf("%s: message %d reading %d = {%s %s %s %v %q %q}, the sample says {%s %s %s %v %q %q}", file, i+1, j+1,
					g.Device, g.Kind, g.Signal, g.Value, g.Unit, g.Label, w.Device, w.Kind, w.Signal, w.Value, w.Unit, w.Label)
			}
		}
		n += len(rs)
	}
	if n == 0 {
		t.Errorf("%s: no example message gives a reading", file)
	}
}
