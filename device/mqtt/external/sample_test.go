package external

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/internal/config"
)

// sample.yaml's configuration is one hearth accepts and one New takes, and its
// message gives the readings it states.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(t testing.TB, m config.MQTT) mqtt.Handler {
		z, err := zigbee2mqtt.New(m.DeviceMappings(), &zigbee2mqtt.Options{BaseTopic: m.Zigbee2MQTT.BaseTopic})
		if err != nil {
			t.Fatal(err)
		}
		h := mqtt.Adapters{Decoder: mqtt.Router{z}}
		e := m.External
		if _, err := New(Options{URL: e.URL, ClientID: e.ClientID, Username: e.Username, Topics: []string{m.Zigbee2MQTT.BaseTopic + "/#"},
			Handler: h, MaxInflight: e.MaxInflight, ReconnectMax: e.ReconnectMax.D(), MaxTopicLabels: e.MaxTopicLabels,
			Registerer: prometheus.NewRegistry()}); err != nil {
			t.Fatalf("the sample's external options: %v", err)
		}
		return h
	})
}
