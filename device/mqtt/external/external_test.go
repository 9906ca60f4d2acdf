package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/adaptertest"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/internal/metricset"
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

func newTestExternal(t *testing.T, addr string, reg prometheus.Registerer) *Source {
	t.Helper()
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{URL: "tcp://" + addr, ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{z2m}}, ReconnectMax: 2 * time.Second, Registerer: reg})
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
func run(t *testing.T, e *Source, sink device.Sink) (stop func()) {
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

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{
		{},
		{URL: "http://x:1", ClientID: "a", Topics: []string{"#"}, Handler: mqtt.Adapters{Decoder: mqtt.Router{}}},
		{URL: "tcp://x:1", Topics: []string{"#"}, Handler: mqtt.Adapters{Decoder: mqtt.Router{}}},
		{URL: "tcp://x:1", ClientID: "a", Handler: mqtt.Adapters{Decoder: mqtt.Router{}}},
		{URL: "tcp://x:1", ClientID: "a", Topics: []string{"#"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		// MQTT 3.1.1 §4.7.1.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "sport/tennis", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/tennis/#", "sport/tennis", true},
		// §4.7.2: wildcards at the first level do not match $ topics.
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		// Plain filters, case and levels.
		{"zigbee2mqtt/#", "esphome/kitchen/sensor/fridge_temp/state", false},
		{"tele/+/SENSOR", "tele/plug1/SENSOR", true},
		{"tele/+/SENSOR", "tele/plug1/sensor", false},
		{"a/b", "a/b", true},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"a/b", "a/b/", false},
		{"$share/hearth/shellies/#", "shellies/plug1/relay/0/power", true},
		{"$share/hearth", "hearth", false},
	} {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

// Subscribe refuses what is not a topic name, skips what a configured filter already
// matches, and holds no more than MaxExtraSubscriptions, all or nothing.
func TestExternalSubscribeChecked(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(Options{URL: "tcp://127.0.0.1:1", ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#", "tele/+/SENSOR"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{}}, MaxExtraSubscriptions: 3, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 1025)
	for _, c := range []struct{ topic, want string }{
		{"kitchen/sensor/+/state", `"kitchen/sensor/+/state"`},
		{"kitchen/#", `"kitchen/#"`},
		{"kitchen/\x00/state", "NUL"},
		{long, "1025 bytes"},
		{"kitchen/\xff", "UTF-8"},
		{"", "empty"},
	} {
		err := e.Subscribe("ok/first", c.topic)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Subscribe(%q): %v, want an error with %q", conv.Truncate(c.topic, 40), err, c.want)
		}
	}
	if got := e.Added(); len(got) != 0 {
		t.Fatalf("after refusals, added %q, want nothing (all or nothing)", got)
	}
	// Covered by zigbee2mqtt/# and tele/+/SENSOR: nothing to add, nothing counted.
	if err := e.Subscribe("zigbee2mqtt/0x00158d00029b063b", "tele/plug1/SENSOR"); err != nil {
		t.Fatal(err)
	}
	if err := e.Subscribe("kitchen/sensor/fridge_temp/state", "kitchen/status", "kitchen/sensor/fridge_temp/state"); err != nil {
		t.Fatal(err)
	}
	if err := e.Subscribe("kitchen/status"); err != nil { // again: already there
		t.Fatal(err)
	}
	if got, want := e.Added(), []string{"kitchen/sensor/fridge_temp/state", "kitchen/status"}; !slices.Equal(got, want) {
		t.Fatalf("added %q, want %q", got, want)
	}
	// Two more would make 4 of 3: neither is added.
	err = e.Subscribe("shellies/plug1/relay/0/power", "shellies/plug1/online")
	if !errors.Is(err, mqtt.ErrLimit) || !strings.Contains(err.Error(), "shellies/plug1/relay/0/power") || !strings.Contains(err.Error(), "max 3") {
		t.Fatalf("beyond the limit: %v, want mqtt.ErrLimit naming the topic and the maximum", err)
	}
	if err := e.Subscribe("shellies/plug1/relay/0/power"); err != nil {
		t.Fatalf("the third: %v", err)
	}
	if got := e.Added(); len(got) != 3 {
		t.Fatalf("added %q, want 3 topics", got)
	}
	if n := gauge(t, reg, "hearth_mqtt_external_added_topics"); n != 3 {
		t.Errorf("hearth_mqtt_external_added_topics = %v, want 3", n)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// An ESPHome fridge thermometer, as its firmware announces it: its state topic is
// under none of the configured filters.
const (
	esphomeFridgeConfigTopic = "homeassistant/sensor/kitchen/fridge_temp/config"
	esphomeFridgeConfig      = `{"dev_cla":"temperature","unit_of_meas":"°C","stat_cla":"measurement","name":"Fridge Temp","stat_t":"esphome/kitchen/sensor/fridge_temp/state","avty_t":"esphome/kitchen/status","uniq_id":"ESPsensorfridge_temp","dev":{"ids":"a4cf12a1b2c3","name":"kitchen","sw":"esphome v2023.2.0","mdl":"esp32dev","mf":"espressif"}}`
	esphomeFridgeState       = "esphome/kitchen/sensor/fridge_temp/state"
)

// esphomeFridge is the HAState reading the accepted ESPHome thermometer.
func esphomeFridge(t *testing.T) *hadiscovery.State {
	t.Helper()
	d, err := hadiscovery.NewLearner(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Learn(esphomeFridgeConfigTopic, []byte(esphomeFridgeConfig), adaptertest.T0); err != nil {
		t.Fatal(err)
	}
	ps := d.Proposals()
	if len(ps) != 1 {
		t.Fatalf("proposals %+v, want the thermometer's", ps)
	}
	p := ps[0]
	if p.StateTopic != esphomeFridgeState || p.Signal != device.SignalTemperature {
		t.Fatalf("proposal %+v", p)
	}
	st, err := hadiscovery.NewState([]hadiscovery.Proposal{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// kickSession connects as clientID with a clean session: the broker drops hearth's
// connection and forgets its session and subscriptions, as a broker restarted
// without persistence does. hearth reconnects into a new, empty session (and may
// take the client id back before mosquitto_pub is done: its exit status is not
// the test's business; the caller checks hearth lost its connection).
func kickSession(t *testing.T, addr, clientID string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-i", clientID, "-q", "1",
		"-t", "kick/"+clientID, "-m", "x").CombinedOutput()
	t.Logf("mosquitto_pub -i %s (clean session): %v %s", clientID, err, out)
}

func publish(t *testing.T, addr, topic, payload string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -t %s: %v: %s", topic, err, out)
	}
}

// A topic added while connected is subscribed at once (Subscribe returns after the
// SUBACK), and again after the broker lost the session.
func TestExternalSubscribeAtRunTime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := startMosquitto(t)
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e, err := New(Options{URL: "tcp://" + addr, ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{esphomeFridge(t), z2m}}, ReconnectMax: 2 * time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{values: map[float64]int{}}
	stop := run(t, e, sink)
	defer stop()
	waitUntil(t, "the configured subscription", 10*time.Second, func() bool {
		publishBurst(t, addr, -1, 0)
		return sink.distinct() > 0
	})
	publish(t, addr, esphomeFridgeState, "4.25") // not subscribed yet: the broker drops it
	if err := e.Subscribe(esphomeFridgeState); err != nil {
		t.Fatal(err)
	}
	publish(t, addr, esphomeFridgeState, "4.5") // once: the SUBACK came before Subscribe returned
	waitUntil(t, "the reading on the added topic", 10*time.Second, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.values[4.5] == 1
	})
	sink.mu.Lock()
	early := sink.values[4.25]
	sink.mu.Unlock()
	if early != 0 {
		t.Errorf("a message published before Subscribe arrived: the topic was subscribed before it was added")
	}

	kickSession(t, addr, "hearth-test")
	waitUntil(t, "the connection taken over", 20*time.Second, func() bool { return counter(t, reg, "hearth_mqtt_external_connects_total", "lost") >= 1 })
	waitUntil(t, "the reconnect", 20*time.Second, func() bool { return counter(t, reg, "hearth_mqtt_external_connects_total", "ok") >= 2 })
	waitUntil(t, "a reading on the added topic in the new session", 20*time.Second, func() bool {
		publish(t, addr, esphomeFridgeState, "5.5")
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.values[5.5] > 0
	})
}

// freePort returns an address where nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A broker that is not there, and one that refuses the password: each failed attempt
// is counted, Status and Ready say why, and a right password gets through.
func TestExternalConnectFailuresReported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	nothing := freePort(t)
	mq := mosquittotest.Run(t, &mosquittotest.Options{Users: map[string]string{"hearth": "right"}})
	for _, tc := range []struct {
		name, addr, password, want string
	}{
		{"nothing listens", nothing, "", "nothing listens at the address of mqtt.external.url"},
		{"wrong password", mq.Addr, "wrong", "the broker refused hearth's credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e, err := New(Options{URL: "tcp://" + tc.addr, ClientID: "hearth-test", Username: "hearth", Password: tc.password,
				Topics: []string{"zigbee2mqtt/#"}, Handler: mqtt.Adapters{Decoder: mqtt.Router{}}, ReconnectMax: time.Second, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Ready(); err == nil || !strings.Contains(err.Error(), "connecting") {
				t.Errorf("Ready before the first attempt: %v, want not ready (connecting)", err)
			}
			stop := run(t, e, &memSink{values: map[float64]int{}})
			defer stop()
			waitUntil(t, "two failed attempts", 20*time.Second, func() bool { return e.Status().FailedConnects >= 2 })
			st := e.Status()
			if st.State == StateConnected || !strings.Contains(st.LastError, tc.want) || st.LastErrorAt.IsZero() {
				t.Errorf("status %+v, want not connected with last error %q", st, tc.want)
			}
			if err := e.Ready(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.addr) {
				t.Errorf("Ready: %v, want an error naming the broker and %q", err, tc.want)
			}
			if n := counter(t, reg, "hearth_mqtt_external_connects_total", "failed"); n < 2 {
				t.Errorf("connects failed = %v, want ≥ 2", n)
			}
		})
	}
	// The right password: connected, subscribed, ready.
	reg := prometheus.NewRegistry()
	e, err := New(Options{URL: "tcp://" + mq.Addr, ClientID: "hearth-test", Username: "hearth", Password: "right",
		Topics: []string{"zigbee2mqtt/#"}, Handler: mqtt.Adapters{Decoder: mqtt.Router{}}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, e, &memSink{values: map[float64]int{}})
	defer stop()
	waitUntil(t, "connected", 20*time.Second, func() bool { return e.Ready() == nil })
	if st := e.Status(); st.State != StateConnected || st.FailedConnects != 0 {
		t.Errorf("status %+v, want connected without failures", st)
	}
}

// errFull stands for a store that is full (a refusal that may pass); errNever for
// ingest refusing a reading it can never take.
var (
	errFull  = errors.New("disk quota exceeded")
	errNever = errors.New("impossible timestamp")
)

// judgingSink refuses, for good, readings with a device time after 2200 and commits
// the others, recording their temperatures in order.
type judgingSink struct {
	mu   sync.Mutex
	vals []float64
}

func (s *judgingSink) Submit(rs []device.Reading, done func(error)) {
	for _, r := range rs {
		if r.DeviceTime.Year() > 2200 {
			go done(errNever)
			return
		}
	}
	s.mu.Lock()
	for _, r := range rs {
		if r.Signal == device.SignalTemperature {
			s.vals = append(s.vals, r.Value)
		}
	}
	s.mu.Unlock()
	go done(nil)
}

func (s *judgingSink) values() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.vals)
}

// A message the sink refuses for good is acknowledged and counted, by reason and
// topic: the messages after it are stored without a reconnect.
func TestExternalRejectedIsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := startMosquitto(t)
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e, err := New(Options{URL: "tcp://" + addr, ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{z2m}}, ReconnectMax: 2 * time.Second, Registerer: reg,
		Retryable: func(err error) bool { return errors.Is(err, errFull) }})
	if err != nil {
		t.Fatal(err)
	}
	sink := &judgingSink{}
	stop := run(t, e, sink)
	defer stop()
	waitUntil(t, "subscribed", 10*time.Second, func() bool { return e.Ready() == nil })
	publish(t, addr, "zigbee2mqtt/Fridge door", `{"temperature":-1,"last_seen":"2201-01-01T00:00:00Z"}`)
	publishBurst(t, addr, 0, 20)
	waitUntil(t, "the messages after the poison one", 10*time.Second, func() bool { return len(sink.values()) == 20 })
	if got := sink.values(); got[0] != 0 || got[19] != 19 {
		t.Errorf("stored %v, want 0..19", got)
	}
	// The sink's verdicts come on their own goroutines: the poison one may be counted
	// after the valid ones were recorded.
	waitUntil(t, "the poison message counted", 10*time.Second, func() bool {
		return counter(t, reg, "hearth_mqtt_external_messages_total", "rejected") == 1
	})
	if n := counter(t, reg, "hearth_mqtt_external_connects_total", "ok"); n != 1 {
		t.Errorf("connects = %v, want 1 (no reconnect for a message that can never be stored)", n)
	}
	ts := e.Status().Topics
	if len(ts) != 1 || ts[0].Topic != "zigbee2mqtt/Fridge door" || ts[0].Problems["rejected"] != 1 || !strings.Contains(ts[0].LastError, "impossible timestamp") {
		t.Errorf("topics %+v, want zigbee2mqtt/Fridge door with 1 rejected and its error", ts)
	}
}

// Unmatched topics are counted by topic, up to MaxTopicLabels; the rest as "other".
func TestExternalProblemsByTopicBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := startMosquitto(t)
	z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e, err := New(Options{URL: "tcp://" + addr, ClientID: "hearth-test", Topics: []string{"zigbee2mqtt/#"},
		Handler: mqtt.Adapters{Decoder: mqtt.Router{z2m}}, MaxTopicLabels: 2, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{values: map[float64]int{}}
	stop := run(t, e, sink)
	defer stop()
	waitUntil(t, "subscribed", 10*time.Second, func() bool { return e.Ready() == nil })
	for _, name := range []string{"Fridge dor", "Fridge dor", "Garage", "Cellar", "Attic"} {
		publish(t, addr, "zigbee2mqtt/"+name, `{"contact":true}`)
	}
	publish(t, addr, "zigbee2mqtt/Fridge door", `{"temperature":"cold","contact":true}`)
	// Messages are handled in order: once the last one's readings are committed,
	// every problem before it is counted.
	waitUntil(t, "the last message committed", 10*time.Second, func() bool {
		return counter(t, reg, "hearth_mqtt_external_messages_total", "committed") == 1
	})
	want := map[string]float64{"zigbee2mqtt/Fridge dor": 2, "zigbee2mqtt/Garage": 1, "other": 2}
	for topic, n := range want {
		if got := problemCount(t, reg, "unknown_device", topic); got != n {
			t.Errorf("problems{unknown_device, %s} = %v, want %v", topic, got, n)
		}
	}
	if got := problemCount(t, reg, "field", "other"); got != 1 {
		t.Errorf("problems{field, other} = %v, want 1 (the table is full)", got)
	}
	if n := counter(t, reg, "hearth_mqtt_external_fields_refused_total", "temperature"); n != 1 {
		t.Errorf("fields_refused{temperature} = %v, want 1", n)
	}
	if n := e.Status().Messages; n != 6 {
		t.Errorf("messages = %v, want 6", n)
	}
}

func problemCount(t *testing.T, reg *prometheus.Registry, reason, topic string) float64 {
	t.Helper()
	v, err := metricset.Value(reg, "hearth_mqtt_external_problems_total", "reason", reason, "topic", topic)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The rule for retained messages: a reading repeats the latest one of its device,
// signal and label when its device time is not later, or, without device times, when
// value and unit are the same. What the sink refused is taken back.
func TestRetainCache(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	stored := []device.Reading{
		{Device: "fridge", Signal: device.SignalTemperature, Value: 4, Unit: "°C"},
		{Device: "fridge", Signal: device.SignalDoor, Value: 0, DeviceTime: t1},
		{Device: "fridge", Signal: device.SignalBattery, Value: 90, Unit: "%", Label: "Fridge Door"},
	}
	c := newRetainCache(func() ([]device.Reading, error) { return stored, nil })
	log := slog.New(slog.DiscardHandler)
	in := []device.Reading{
		{Device: "fridge", Signal: device.SignalTemperature, Value: 4, Unit: "°C"},                          // repeat
		{Device: "fridge", Signal: device.SignalTemperature, Value: 4, Unit: "°F"},                          // other unit: new
		{Device: "fridge", Signal: device.SignalDoor, Value: 1, DeviceTime: t1},                             // same time: repeat
		{Device: "fridge", Signal: device.SignalDoor, Value: 0, DeviceTime: t1.Add(time.Second)},            // later: new
		{Device: "fridge", Signal: device.SignalBattery, Value: 90, Unit: "%", Label: "Fridge Thermometer"}, // other sensor: new
		{Device: "freezer", Signal: device.SignalTemperature, Value: -18, Unit: "°C"},                       // never stored: new
	}
	got := c.fresh(slices.Clone(in), log)
	if want := []device.Reading{in[1], in[3], in[4], in[5]}; !slices.EqualFunc(got, want, func(a, b device.Reading) bool { return a == b }) {
		t.Fatalf("fresh = %+v, want %+v", got, want)
	}
	// Handed to the sink: they repeat now; refused: they are new again.
	u := c.submitted(got)
	if again := c.fresh(slices.Clone(got), log); len(again) != 0 {
		t.Errorf("after submitting, fresh = %+v, want nothing", again)
	}
	c.undo(u)
	if again := c.fresh(slices.Clone(got), log); len(again) != len(got) {
		t.Errorf("after undo, fresh = %+v, want all %d", again, len(got))
	}
	// No Latest: every retained reading is new, and nothing is kept.
	var none *retainCache = newRetainCache(nil)
	if got := none.fresh(slices.Clone(in), log); len(got) != len(in) {
		t.Errorf("without Latest: %d of %d", len(got), len(in))
	}
}
