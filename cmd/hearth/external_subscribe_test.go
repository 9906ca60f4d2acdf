package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/external"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/edge/registry"
)

// ESPHome thermometers as their firmware announces them (topic_prefix esphome/kitchen):
// their state topics are under none of the filters hearth subscribes to by default.
const (
	espFridgeConfigTopic  = "homeassistant/sensor/kitchen/fridge_temp/config"
	espFridgeConfig       = `{"dev_cla":"temperature","unit_of_meas":"°C","stat_cla":"measurement","name":"Fridge Temp","stat_t":"esphome/kitchen/sensor/fridge_temp/state","avty_t":"esphome/kitchen/status","uniq_id":"ESPsensorfridge_temp","dev":{"ids":"a4cf12a1b2c3","name":"kitchen","sw":"esphome v2023.2.0","mdl":"esp32dev","mf":"espressif"}}`
	espFridgeName         = "ESPsensorfridge_temp"
	espFridgeState        = "esphome/kitchen/sensor/fridge_temp/state"
	espFreezerConfigTopic = "homeassistant/sensor/kitchen/freezer_temp/config"
	espFreezerConfig      = `{"dev_cla":"temperature","unit_of_meas":"°C","name":"Freezer Temp","stat_t":"esphome/kitchen/sensor/freezer_temp/state","uniq_id":"ESPsensorfreezer_temp","dev":{"ids":"a4cf12a1b2c3","name":"kitchen"}}`
	espFreezerName        = "ESPsensorfreezer_temp"
)

// metricValue is the value of a counter or gauge in reg (a counter's with label value
// label; "" for an unlabelled gauge or counter), 0 when absent.
func metricValue(t testing.TB, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// temperatures are the values of the store's temperature readings, in order; it
// fails the test on a reading that is not the accepted fridge thermometer's.
func temperatures(t *testing.T, a *agent) []float64 {
	t.Helper()
	var vs []float64
	if _, err := a.st.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error {
		if r.Device != "kitchen-fridge" || r.Kind != device.KindFridge || r.Signal != device.SignalTemperature || r.Unit != "°C" {
			t.Errorf("reading %+v, want kitchen-fridge (fridge) temperature in °C", *r)
		}
		vs = append(vs, r.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return vs
}

func waitProposal(t *testing.T, a *agent, name string) {
	t.Helper()
	waitFor(t, "the discovery proposal "+name, 10*time.Second, func() bool {
		return slices.ContainsFunc(a.mq.disc.Proposals(), func(p hadiscovery.Proposal) bool { return p.Mapping.Name == name })
	})
}

// An ESPHome thermometer whose state topic (esphome/kitchen/...) no configured filter
// covers: accepting it subscribes to that topic at once, without a restart; the
// subscription survives the broker losing hearth's session; and an agent started
// later with the acceptance in its store subscribes to it from the start.
func TestExternalAcceptSubscribesStateTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	if out, err := mosquittoPub(t, mq, "-r", "-q", "1", "-t", espFridgeConfigTopic, "-m", espFridgeConfig); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cfg := externalConfig(t, mq)
	a, stop := startAgent(t, cfg)
	waitProposal(t, a, espFridgeName)
	// Published before the acceptance: no filter covers it, the broker drops it.
	if out, err := mosquittoPub(t, mq, "-q", "1", "-t", espFridgeState, "-m", "3.25"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p, err := a.accept(acceptRequest{Name: espFridgeName, Device: "kitchen-fridge", Kind: device.KindFridge})
	if err != nil {
		t.Fatal(err)
	}
	if p.StateTopic != espFridgeState {
		t.Fatalf("accepted state topic %q, want %q", p.StateTopic, espFridgeState)
	}
	// Once: accept returns after the broker's SUBACK.
	if out, err := mosquittoPub(t, mq, "-q", "1", "-t", espFridgeState, "-m", "4.5"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitFor(t, "the reading on the accepted state topic", 10*time.Second, func() bool { return a.st.LastSeq() >= 1 })
	if got := temperatures(t, a); !slices.Equal(got, []float64{4.5}) {
		t.Fatalf("temperatures %v, want [4.5] (3.25 was published before the acceptance)", got)
	}
	if devs := a.st.Devices(); len(devs) != 1 || devs[0].ID != "kitchen-fridge" || devs[0].Kind != device.KindFridge {
		t.Errorf("devices %+v, want kitchen-fridge (fridge)", devs)
	}
	if n := metricValue(t, a.reg, "hearth_mqtt_external_added_topics", ""); n != 1 {
		t.Errorf("hearth_mqtt_external_added_topics = %v, want 1", n)
	}

	// A client connecting as hearth-test with a clean session takes the client id
	// over: mosquitto closes hearth's connection and discards its session with its
	// subscriptions, as a broker restarted without persistence does. hearth
	// reconnects into a new session and must subscribe to the state topic again.
	out, err := mosquittoPub(t, mq, "-i", "hearth-test", "-q", "1", "-t", "kick", "-m", "x")
	t.Logf("clean-session takeover: %v %s", err, out) // hearth may take the id back first
	waitFor(t, "the connection taken over", 20*time.Second, func() bool {
		return metricValue(t, a.reg, "hearth_mqtt_external_connects_total", "lost") >= 1
	})
	waitFor(t, "a reading after the reconnect", 20*time.Second, func() bool {
		if out, err := mosquittoPub(t, mq, "-q", "1", "-t", espFridgeState, "-m", "5.5"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return slices.Contains(temperatures(t, a), 5.5)
	})
	stop()

	// A new agent with the acceptance in its store, under a new client id: the broker
	// holds no session, hence no subscription, for it.
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.MQTT.External.ClientID = "hearth-test-2"
	a2, _ := startAgent(t, cfg)
	waitFor(t, "a reading in the new agent", 20*time.Second, func() bool {
		if out, err := mosquittoPub(t, mq, "-q", "1", "-t", espFridgeState, "-m", "6.5"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return slices.Contains(temperatures(t, a2), 6.5)
	})
	if got := temperatures(t, a2); slices.Contains(got, 3.25) {
		t.Errorf("temperatures %v hold 3.25, published before the acceptance", got)
	}
}

// mqtt.external.max_extra_subscriptions bounds the state topics subscribed to beyond
// the configured filters: the acceptance that needs one more is refused, naming the
// key and the entity, and nothing of it is kept; an entity whose state topic a
// configured filter covers needs none. An agent whose store holds more accepted
// entities than the bound allows refuses to start.
func TestExternalAcceptBeyondExtraSubscriptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	for topic, payload := range map[string]string{espFridgeConfigTopic: espFridgeConfig, espFreezerConfigTopic: espFreezerConfig,
		"homeassistant/binary_sensor/0x00158d00029b063b/contact/config": z2mContactConfig} {
		if out, err := mosquittoPub(t, mq, "-r", "-q", "1", "-t", topic, "-m", payload); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	cfg := externalConfig(t, mq)
	cfg.MQTT.External.MaxExtraSubscriptions = 1
	a, stop := startAgent(t, cfg)
	for _, n := range []string{espFridgeName, espFreezerName, z2mContactName} {
		waitProposal(t, a, n)
	}
	if _, err := a.accept(acceptRequest{Name: espFridgeName, Device: "kitchen-fridge"}); err != nil {
		t.Fatal(err)
	}
	_, err := a.accept(acceptRequest{Name: espFreezerName, Device: "kitchen-freezer"})
	if err == nil || !strings.Contains(err.Error(), "mqtt.external.max_extra_subscriptions") || !strings.Contains(err.Error(), espFreezerName) ||
		!strings.Contains(err.Error(), "esphome/kitchen/sensor/freezer_temp/state") {
		t.Fatalf("accepting beyond the bound: %v, want an error naming the key, the entity and its state topic", err)
	}
	// zigbee2mqtt/# covers the door sensor's state topic: no extra subscription.
	if _, err := a.accept(acceptRequest{Name: z2mContactName, Device: "front-door", Kind: device.KindEntryDoor}); err != nil {
		t.Fatalf("an entity under a configured filter: %v", err)
	}
	_, accepted, err := registry.Load(a.st)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range accepted {
		names = append(names, p.Mapping.Name)
	}
	slices.Sort(names)
	if want := []string{z2mContactName, espFridgeName}; !slices.Equal(names, want) {
		t.Errorf("persisted acceptances %q, want %q", names, want)
	}
	// hadiscovery.State does not read the refused entity.
	if _, err := a.mq.ha.Decode("esphome/kitchen/sensor/freezer_temp/state", []byte("-18"), time.Now()); err == nil {
		t.Errorf("hadiscovery.State reads the refused entity's state topic")
	}
	if _, err := a.accept(acceptRequest{Name: espFreezerName, Device: "kitchen-freezer"}); err == nil {
		t.Errorf("the refused entity was accepted on a second try")
	}
	stop()

	// Two accepted entities with uncovered state topics, a bound of one: no start.
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.MQTT.External.MaxExtraSubscriptions = 2
	a2, stop2 := startAgent(t, cfg)
	waitProposal(t, a2, espFreezerName)
	if _, err := a2.accept(acceptRequest{Name: espFreezerName, Device: "kitchen-freezer"}); err != nil {
		t.Fatal(err)
	}
	stop2()
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.MQTT.External.MaxExtraSubscriptions = 1
	if a3, err := newAgent(cfg, testLogger(t), io.Discard); err == nil {
		closeAgent(t, a3)
		t.Fatal("an agent started with 2 accepted entities beyond the configured filters and max_extra_subscriptions 1")
	} else if !strings.Contains(err.Error(), "mqtt.external.max_extra_subscriptions") || !strings.Contains(err.Error(), "max 1") {
		t.Errorf("start error %q, want one naming mqtt.external.max_extra_subscriptions and its value", err)
	}
}

// nopSink commits nothing and says so.
type nopSink struct{}

func (nopSink) Submit(_ []device.Reading, done func(error)) { done(nil) }

// A broker that refuses a subscription (SUBACK 0x80: hearth's own embedded broker lets
// a device subscribe to nothing but hearth/v1/<id>/#) makes Subscribe fail naming the
// topic, and the topic is not kept for the next connect.
func TestExternalSubscribeRefusedByBroker(t *testing.T) {
	cfg := testConfig(t)
	a, _ := startAgent(t, cfg)
	cr, pw, err := registry.Add(a.st, "gateway", device.KindSensor)
	if err != nil {
		t.Fatal(err)
	}
	a.creds.Set(cr)
	reg := prometheus.NewRegistry()
	src, err := external.New(external.Options{URL: "tcp://" + a.brokerLn.Addr().String(), ClientID: "gateway",
		Username: "gateway", Password: pw, Topics: []string{"hearth/v1/gateway/#"}, Handler: devmqtt.Adapters{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, nopSink{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "the connection", 10*time.Second, func() bool { return metricValue(t, reg, "hearth_mqtt_external_connects_total", "ok") >= 1 })
	err = src.Subscribe("shellies/plug1/relay/0/power")
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), `"shellies/plug1/relay/0/power"`) {
		t.Fatalf("Subscribe to a topic the broker refuses: %v, want its refusal naming the topic", err)
	}
	if got := src.Added(); len(got) != 0 {
		t.Errorf("added %q after the refusal, want nothing", got)
	}
}

// Accepting an entity again (another device) and failing must leave the earlier
// acceptance as it was: hadiscovery.State still reads the entity's state as the first device's.
func TestFailedReacceptKeepsEarlierAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	if out, err := mosquittoPub(t, mq, "-r", "-q", "1", "-t", espFridgeConfigTopic, "-m", espFridgeConfig); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cfg := externalConfig(t, mq)
	a, _ := startAgent(t, cfg)
	waitProposal(t, a, espFridgeName)
	if _, err := a.accept(acceptRequest{Name: espFridgeName, Device: "kitchen-fridge", Kind: device.KindFridge}); err != nil {
		t.Fatal(err)
	}
	a.mq.mu.Lock()
	subscribe := a.mq.onAccept
	a.mq.onAccept = func(hadiscovery.Proposal) error { return errors.New("injected: the broker refused the subscription") }
	a.mq.mu.Unlock()
	if _, err := a.accept(acceptRequest{Name: espFridgeName, Device: "garage-fridge", Kind: device.KindFridge}); err == nil {
		t.Fatal("the re-acceptance did not fail")
	}
	a.mq.mu.Lock()
	a.mq.onAccept = subscribe
	a.mq.mu.Unlock()
	rs, err := a.mq.ha.Decode(espFridgeState, []byte("4.5"), time.Now())
	if err != nil || len(rs) != 1 || rs[0].Device != "kitchen-fridge" {
		t.Fatalf("after the failed re-acceptance hadiscovery.State reads %s as %+v (%v), want kitchen-fridge", espFridgeState, rs, err)
	}
	_, accepted, err := registry.Load(a.st)
	if err != nil {
		t.Fatal(err)
	}
	if len(accepted) != 1 || accepted[0].Mapping.Device != "kitchen-fridge" {
		t.Errorf("persisted acceptances %+v, want the first one only", accepted)
	}
}
