package external

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
)

// fakeMessage is a paho.Message that records its PUBACK.
type fakeMessage struct {
	id      uint16
	payload string
	acks    *ackLog
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return 1 }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return "zigbee2mqtt/Fridge door" }
func (m *fakeMessage) MessageID() uint16 { return m.id }
func (m *fakeMessage) Payload() []byte   { return []byte(m.payload) }
func (m *fakeMessage) Ack()              { m.acks.add(m.id) }

type ackLog struct {
	mu  sync.Mutex
	ids []uint16
}

func (l *ackLog) add(id uint16) { l.mu.Lock(); l.ids = append(l.ids, id); l.mu.Unlock() }
func (l *ackLog) get() []uint16 { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.ids) }

// heldSink keeps each submission's done until release, which calls them newest
// first: commits reported out of order.
type heldSink struct {
	mu    sync.Mutex
	dones []func(error)
	n     int
}

func (s *heldSink) Submit(rs []device.Reading, done func(error)) {
	s.mu.Lock()
	s.dones = append(s.dones, done)
	s.n++
	s.mu.Unlock()
}

func (s *heldSink) release() {
	s.mu.Lock()
	ds := s.dones
	s.dones = nil
	s.mu.Unlock()
	for i := len(ds) - 1; i >= 0; i-- {
		ds[i](nil)
	}
}

func (s *heldSink) submitted() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

func testPipeline(t *testing.T, sink device.Sink) *pipeline {
	t.Helper()
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{URL: "tcp://127.0.0.1:1", ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{z2m}}, MaxInflight: 64, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return newPipeline(e, sink)
}

// Commits reported newest first are still acknowledged in the order the messages
// came, and a malformed message between them is acknowledged in its place.
func TestPipelineAcksInArrivalOrder(t *testing.T) {
	sink := &heldSink{}
	p := testPipeline(t, sink)
	acks := &ackLog{}
	var want []uint16
	for i := range 20 {
		payload := fmt.Sprintf(`{"temperature":%d}`, i)
		if i == 7 {
			payload = `{"temperature":` // never valid: acknowledged without a commit
		}
		p.handle(nil, &fakeMessage{id: uint16(i + 1), payload: payload, acks: acks})
		want = append(want, uint16(i+1))
	}
	if got := acks.get(); len(got) != 0 {
		t.Fatalf("acknowledged %v before any commit (the malformed 8th waits for the 7 before it)", got)
	}
	sink.release()
	waitUntil(t, "every PUBACK", 5*time.Second, func() bool { return len(acks.get()) == len(want) })
	if got := acks.get(); !slices.Equal(got, want) {
		t.Fatalf("PUBACKs %v, want %v", got, want)
	}
	p.stop(time.Second)
}

// After stop, no message is taken, even with free slots: one taken after another
// was left would be acknowledged before it.
func TestPipelineTakesNothingAfterStop(t *testing.T) {
	sink := &heldSink{}
	p := testPipeline(t, sink)
	p.stop(time.Millisecond)
	acks := &ackLog{}
	for i := range 100 {
		p.handle(nil, &fakeMessage{id: uint16(i + 1), payload: `{"temperature":1}`, acks: acks})
	}
	if n := sink.submitted(); n != 0 {
		t.Fatalf("%d of 100 messages handed to the sink after stop", n)
	}
}
