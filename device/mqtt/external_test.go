package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/mosquittotest"
	"github.com/hearth-iot/hearth/internal/poll"
)

// waitUntil polls cond until it holds or the deadline passes: the one place these tests wait.
// waitUntil is poll.Until: the one way these tests wait.
var waitUntil = poll.Until

func startMosquitto(t *testing.T) string { return mosquittotest.Start(t) }

// memSink records committed readings; fail, while positive, refuses that many submissions.
type memSink struct {
	mu      sync.Mutex
	values  map[float64]int
	fail    int
	refused int
}

func (s *memSink) Submit(rs []device.Reading, done func(error)) {
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.refused++
		s.mu.Unlock()
		go done(errors.New("disk quota exceeded"))
		return
	}
	for _, r := range rs {
		if r.Signal == device.SignalTemperature {
			s.values[r.Value]++
		}
	}
	s.mu.Unlock()
	go done(nil)
}

func (s *memSink) distinct() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.values) }

func publishBurst(t *testing.T, addr string, from, to int) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var lines strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&lines, `{"contact":true,"temperature":%d,"linkquality":90}`+"\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "zigbee2mqtt/Fridge door", "-l")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func newTestExternal(t *testing.T, addr string, reg prometheus.Registerer) *External {
	t.Helper()
	z2m, err := NewZigbee2MQTT(Mappings{{Source: SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExternal(ExternalOptions{URL: "tcp://" + addr, ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Decoder: Router{z2m}, ReconnectMax: 2 * time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetValue() == label {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return 0
}

// run starts e and returns a stop function that waits for Run to return.
func run(t *testing.T, e *External, sink device.Sink) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx, sink) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// The agent is stopped mid-stream and started again: nothing published with QoS 1
// while it was away is missed (persistent session, ack after commit).
func TestExternalRestartMissesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := startMosquitto(t)
	sink := &memSink{values: map[float64]int{}}

	reg := prometheus.NewRegistry()
	e := newTestExternal(t, addr, reg)
	stop := run(t, e, sink)
	waitUntil(t, "the first connection", 10*time.Second, func() bool { return counter(t, reg, "hearth_mqtt_external_connects_total", "ok") >= 1 })
	// The subscription is made in the connect handler: wait until a message gets through.
	waitUntil(t, "the subscription", 10*time.Second, func() bool {
		publishBurst(t, addr, -1, 0)
		return sink.distinct() > 0
	})
	publishBurst(t, addr, 0, 500)
	waitUntil(t, "some of the first burst", 10*time.Second, func() bool { return sink.distinct() > 10 })
	stop() // mid-stream: some of the burst may still be in flight, unacknowledged
	e.Unregister()

	publishBurst(t, addr, 500, 1000) // published while hearth is away

	reg2 := prometheus.NewRegistry()
	e2 := newTestExternal(t, addr, reg2)
	stop2 := run(t, e2, sink)
	defer stop2()
	waitUntil(t, "every reading after the restart", 30*time.Second, func() bool { return sink.distinct() == 1001 })
	for i := -1; i < 1000; i++ {
		if sink.values[float64(i)] == 0 {
			t.Fatalf("reading %d missing", i)
		}
	}
}

// A store that refuses readings gets them again: the message is left unacknowledged
// and the session re-established.
func TestExternalRefusedIsRedelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := startMosquitto(t)
	sink := &memSink{values: map[float64]int{}}
	reg := prometheus.NewRegistry()
	e := newTestExternal(t, addr, reg)
	stop := run(t, e, sink)
	defer stop()
	waitUntil(t, "the subscription", 10*time.Second, func() bool {
		publishBurst(t, addr, -1, 0)
		return sink.distinct() > 0
	})
	sink.mu.Lock()
	sink.fail = 3
	sink.mu.Unlock()
	publishBurst(t, addr, 0, 20)
	waitUntil(t, "the refused readings to come again", 30*time.Second, func() bool { return sink.distinct() == 21 })
	if n := counter(t, reg, "hearth_mqtt_external_messages_total", "refused"); n != 3 {
		t.Errorf("refused = %v, want 3", n)
	}
	if n := counter(t, reg, "hearth_mqtt_external_connects_total", "ok"); n < 2 {
		t.Errorf("connects = %v, want a reconnect after the refusal", n)
	}
}

func TestExternalOptionsChecked(t *testing.T) {
	for _, o := range []ExternalOptions{
		{},
		{URL: "http://x:1", ClientID: "a", Topics: []string{"#"}, Decoder: Router{}},
		{URL: "tcp://x:1", Topics: []string{"#"}, Decoder: Router{}},
		{URL: "tcp://x:1", ClientID: "a", Decoder: Router{}},
		{URL: "tcp://x:1", ClientID: "a", Topics: []string{"#"}},
	} {
		if _, err := NewExternal(o); err == nil {
			t.Errorf("NewExternal(%+v) accepted", o)
		}
	}
}
