package hadiscovery

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/internal/config"
)

func TestConformance(t *testing.T) {
	msgs := adaptertest.LoadCorpus(t, "testdata/homeassistant.tsv").All()
	// Every entity the real configs propose, accepted as proposed: what State reads.
	l := newDiscovery(t, nil)
	for _, m := range msgs {
		if strings.HasSuffix(m.Topic, "/config") {
			_ = l.Learn(m.Topic, m.Payload, adaptertest.T0)
		}
	}
	var accepted []Proposal
	for _, p := range l.Proposals() {
		if p.Problem == "" {
			accepted = append(accepted, p)
		}
	}
	if len(accepted) < 3 {
		t.Fatalf("only %d proposals from the real configs", len(accepted))
	}
	const maxProposals = 8
	adaptertest.Run(t, adaptertest.Adapter{
		New: func(t testing.TB) (mqtt.Decoder, mqtt.Learner) {
			st, err := NewState(accepted, nil)
			if err != nil {
				t.Fatal(err)
			}
			return st, newDiscovery(t, &LearnerOptions{MaxProposals: maxProposals})
		},
		Messages: adaptertest.Cases(msgs),
		Foreign: []string{"zigbee2mqtt/Kitchen kettle", "tele/pow1/SENSOR", "homie/fridge/door/open", "hearth/v1/fridge/readings",
			"homeassistant/sensor/nobody/state", "homeassistant", "homeassistantx/sensor/x/config"},
		MaxPayload: conv.MaxPayload,
		Flood: func(i int) adaptertest.Message {
			return adaptertest.Message{Name: fmt.Sprint("flood ", i), Topic: fmt.Sprintf("homeassistant/sensor/flood%d/config", i),
				Payload: fmt.Appendf(nil, `{"device_class":"power","unit_of_measurement":"W","state_topic":"flood/%d"}`, i)}
		},
		Held: func(l mqtt.Learner) (int, int) { return len(l.(*Learner).Proposals()), maxProposals },
	})
}

// sample.yaml's configuration is one hearth accepts, and its messages give the
// readings it states: a config is learned, the entity the configuration accepts is
// handed to State, and its state is read.
func TestSample(t *testing.T) {
	adaptertest.CheckSample(t, "sample.yaml", func(t testing.TB, m config.MQTT) mqtt.Handler {
		st, err := NewState(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var l *Learner
		l, err = NewLearner(&LearnerOptions{Prefix: m.Discovery.Prefix, MaxProposals: m.Discovery.MaxProposals, OnChange: func() {
			if err := st.Replace(l.Accepted(m.DeviceMappings())); err != nil {
				t.Error(err)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return mqtt.Adapters{Learners: []mqtt.Learner{l}, Decoder: st}
	})
}
