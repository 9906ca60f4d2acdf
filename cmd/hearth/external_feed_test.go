package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/edge/registry"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/internal/mosquittotest"
)

// storedOf returns the readings of dev in store order.
func storedOf(t testing.TB, a *agent, dev string) []device.Reading {
	t.Helper()
	var out []device.Reading
	if _, err := a.st.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error {
		if r.Device == dev {
			out = append(out, *r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// problems is hearth_mqtt_external_problems_total{reason, topic}.
func problems(t testing.TB, a *agent, reason, topic string) float64 {
	t.Helper()
	v, err := metricset.Value(a.reg, "hearth_mqtt_external_problems_total", "reason", reason, "topic", topic)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A Zigbee2MQTT message that ingest can never store (last_seen in 2201: "impossible
// timestamp") is acknowledged and counted for its topic; the messages published after
// it are stored at once, without a reconnect.
func TestExternalPoisonMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	a, _ := startAgent(t, withFridgeDoor(externalConfig(t, mq)))
	waitSubscribed(t, a)
	pc := publisher(t, mq, "z2m")
	start := time.Now()
	if tok := pc.Publish(fridgeDoorTopic, 1, false, `{"contact":false,"power":-1,"last_seen":"2201-01-01T00:00:00Z"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	const N = 100
	publishDoor(t, pc, 1, 0, N)
	waitFor(t, "the valid messages after the poison one", 10*time.Second, func() bool { return len(storedOf(t, a, "kitchen-fridge")) == 2*N })
	took := time.Since(start)
	t.Logf("%d valid messages after the poison one: all stored %v after the poison one was published", N, took.Round(time.Millisecond))
	if n := problems(t, a, "rejected", fridgeDoorTopic); n != 1 {
		t.Errorf("problems{rejected, %s} = %v, want 1", fridgeDoorTopic, n)
	}
	if n := metricValue(t, a.reg, "hearth_mqtt_external_connects_total", "ok"); n != 1 {
		t.Errorf("connects ok = %v, want 1: no reconnect for a message that can never be stored", n)
	}
	// "as received" counts the external broker's payloads too (it said 0 B).
	want := 0
	for i := range N {
		want += len(doorPayload(i))
	}
	if got := a.status().Raw.Bytes; got != int64(want) {
		t.Errorf("status raw bytes %d, want %d: the payloads of the %d stored messages", got, want, N)
	}
	out, err := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fridgeDoorTopic) || !strings.Contains(out, "rejected 1") || !strings.Contains(out, "impossible timestamp 2201-01-01") {
		t.Errorf("hearth status does not show the rejected message:\n%s", out)
	}
}

// The household's broker down, or refusing hearth's password: /readyz is not ready and
// says why, and `hearth status` shows the state, the error and the failed attempts.
func TestExternalBrokerProblemsShown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := ln.Addr().String()
	ln.Close()
	mq := mosquittotest.Run(t, &mosquittotest.Options{Users: map[string]string{"hearth": "right"}})
	pwFile := filepath.Join(t.TempDir(), "mqtt-password")
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr, user, want string
	}{
		{"nothing listens", nothing, "", "nothing listens at the address of mqtt.external.url"},
		{"wrong password", mq.Addr, "hearth", "the broker refused hearth's credentials (mqtt.external.username, password_file)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := externalConfig(t, tc.addr)
			cfg.MQTT.External.ReconnectMax = config.Duration(time.Second)
			if tc.user != "" {
				cfg.MQTT.External.Username, cfg.MQTT.External.PasswordFile = tc.user, pwFile
			}
			a, _ := startAgent(t, cfg)
			admin := "http://" + a.adminLn.Addr().String()
			waitFor(t, "two failed attempts", 20*time.Second, func() bool {
				return metricValue(t, a.reg, "hearth_mqtt_external_connects_total", "failed") >= 2
			})
			code, _, body := adminCall(t, http.MethodGet, admin+"/readyz", nil, "")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) || !strings.Contains(body, tc.addr) {
				t.Errorf("/readyz: %d %q, want 503 naming the broker and %q", code, body, tc.want)
			}
			out, err := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"NOT READY", "external broker tcp://" + tc.addr + ": DISCONNECTED", "failed connection attempts", "last error", tc.want} {
				if !strings.Contains(out, want) {
					t.Errorf("hearth status lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// A Homie fridge sensor: its six values are retained, as Homie requires. Stored once
// at the first start, they are not stored again by two more starts of hearth nor by
// a restart of mosquitto; a retained value that changed is stored.
const homieFridge = "fridge-sensor"

var homieFridgeValues = [][2]string{
	{"climate/temperature", "4.5"}, {"climate/humidity", "61"}, {"door/door", "false"},
	{"power/power", "85"}, {"power/energy", "12.5"}, {"battery/battery", "90"},
}

func TestExternalRetainedStoredOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := mosquittotest.Run(t, &mosquittotest.Options{Persistent: true})
	for _, kv := range append([][2]string{{"$homie", "4.0.0"}, {"$name", "Fridge sensor"}, {"$state", "ready"}, {"$nodes", "climate,door,power,battery"}},
		homieFridgeValues...) {
		if out, err := mosquittoPub(t, mq.Addr, "-r", "-q", "1", "-t", "homie/"+homieFridge+"/"+kv[0], "-m", kv[1]); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	cfg := externalConfig(t, mq.Addr)
	cfg.MQTT.Mappings = append(cfg.MQTT.Mappings, config.MQTTMapping{Source: devmqtt.SourceHomie, Name: homieFridge, Device: "kitchen-fridge",
		Kind: device.KindFridge})
	n := len(homieFridgeValues)

	a, stop := startAgent(t, cfg)
	waitFor(t, "the retained values", 10*time.Second, func() bool { return len(storedOf(t, a, "kitchen-fridge")) == n })
	stop()
	for start := 2; start <= 3; start++ {
		cfg.Admin.Listen = "127.0.0.1:0"
		a, stop = startAgent(t, cfg)
		// 30s: under -race on a loaded 2-core machine, connect, subscribe and the
		// broker's retained replay once took more than 10s (a bound, not a figure).
		waitFor(t, fmt.Sprintf("start %d: the retained values again", start), 30*time.Second, func() bool {
			return metricValue(t, a.reg, "hearth_mqtt_external_messages_total", "retained_repeat") == float64(n)
		})
		if start == 2 {
			mq.Restart() // retained messages and hearth's session are in its persistence file
			waitFor(t, "the retained values after mosquitto's restart", 20*time.Second, func() bool {
				return metricValue(t, a.reg, "hearth_mqtt_external_messages_total", "retained_repeat") == float64(2*n)
			})
		}
		if got := storedOf(t, a, "kitchen-fridge"); len(got) != n {
			t.Fatalf("start %d: %d readings stored for %d retained values: %d retained duplicates", start, len(got), n, len(got)-n)
		}
		if start == 3 {
			break
		}
		stop()
	}
	t.Logf("%d retained values across 3 starts of hearth and 1 restart of mosquitto: stored %d times (retained duplicates 0)", n, n)
	// A retained value that changed is new.
	if out, err := mosquittoPub(t, mq.Addr, "-r", "-q", "1", "-t", "homie/"+homieFridge+"/climate/temperature", "-m", "5"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitFor(t, "the changed value", 10*time.Second, func() bool { return len(storedOf(t, a, "kitchen-fridge")) == n+1 })
	if got := storedOf(t, a, "kitchen-fridge"); got[n].Signal != device.SignalTemperature || got[n].Value != 5 {
		t.Errorf("the new reading is %+v, want temperature 5", got[n])
	}
}

// Zigbee2MQTT's discovery config for the battery of the sensor the configuration maps
// as the fridge door: its state topic is the sensor's, zigbee2mqtt/Fridge Door.
const (
	fridgeDoorBatteryConfigTopic = "homeassistant/sensor/0x00158d00029b063b/battery/config"
	fridgeDoorBatteryConfig      = `{"unit_of_measurement":"%","device_class":"battery","value_template":"{{ value_json.battery }}","state_topic":"zigbee2mqtt/Fridge Door","json_attributes_topic":"zigbee2mqtt/Fridge Door","name":"Fridge Door battery","unique_id":"0x00158d00029b063b_battery_zigbee2mqtt","device":{"identifiers":["zigbee2mqtt_0x00158d00029b063b"],"name":"Fridge Door","model":"MiJia door & window contact sensor (MCCGQ01LM)","manufacturer":"Xiaomi"},"availability_topic":"zigbee2mqtt/bridge/state"}`
	fridgeDoorBatteryName        = "0x00158d00029b063b_battery_zigbee2mqtt"
)

// Accepting a discovered entity beside a configured mapping of the same topic: a kind
// that contradicts the configuration is refused with the reason; an accepted entity
// adds its readings and the configured fridge door keeps storing; `hearth device
// unaccept` undoes the acceptance.
func TestExternalAcceptBesideMapping(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	if out, err := mosquittoPub(t, mq, "-r", "-q", "1", "-t", fridgeDoorBatteryConfigTopic, "-m", fridgeDoorBatteryConfig); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	a, _ := startAgent(t, withFridgeDoor(externalConfig(t, mq)))
	waitProposal(t, a, fridgeDoorBatteryName)
	admin := a.adminLn.Addr().String()
	cli := func(args ...string) (string, error) {
		return hearthCLI(t, append(args, "--addr", admin, "--token-file", a.tokenFile)...)
	}
	out, err := cli("device", "accept", fridgeDoorBatteryName, "--device", "kitchen-fridge", "--kind", "freezer")
	if err == nil || !strings.Contains(out, `device "kitchen-fridge" is a fridge (mqtt.mappings[0]: zigbee2mqtt "Fridge Door"), not a freezer`) {
		t.Fatalf("accept --kind freezer onto the configured fridge: %v\n%s\nwant a refusal naming the mapping", err, out)
	}
	if _, accepted, _ := registry.Load(a.st); len(accepted) != 0 {
		t.Fatalf("a refused acceptance was kept: %+v", accepted)
	}
	if out, err := cli("device", "accept", fridgeDoorBatteryName, "--device", "door-sensor"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	publish := func(payload string) {
		t.Helper()
		if out, err := mosquittoPub(t, mq, "-q", "1", "-t", fridgeDoorTopic, "-m", payload); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	publish(`{"battery":91,"contact":false,"linkquality":120}`)
	waitFor(t, "the readings of both", 10*time.Second, func() bool { return a.st.LastSeq() == 3 })
	fridge, sensor := storedOf(t, a, "kitchen-fridge"), storedOf(t, a, "door-sensor")
	if len(fridge) != 2 || fridge[0].Signal != device.SignalBattery || fridge[0].Label != "Fridge Door" || fridge[1].Signal != device.SignalDoor || fridge[1].Value != 1 {
		t.Errorf("kitchen-fridge readings %+v, want its battery (Fridge Door) and door 1: the configured mapping must keep storing", fridge)
	}
	if len(sensor) != 1 || sensor[0].Signal != device.SignalBattery || sensor[0].Value != 91 {
		t.Errorf("door-sensor readings %+v, want battery 91 from the accepted entity", sensor)
	}

	out, err = cli("device", "unaccept", fridgeDoorBatteryName)
	if err != nil || !strings.Contains(out, "unaccepted "+fridgeDoorBatteryName) {
		t.Fatalf("unaccept: %v\n%s", err, out)
	}
	if out, err := cli("device", "unaccept", fridgeDoorBatteryName); err == nil || !strings.Contains(out, "not registered") {
		t.Errorf("unaccepting twice: %v\n%s, want a not-registered error", err, out)
	}
	list, err := cli("device", "list")
	if err != nil || strings.Contains(list, "door-sensor") {
		t.Errorf("device list after unaccept: %v\n%s", err, list)
	}
	publish(`{"battery":90,"contact":true,"linkquality":120}`)
	waitFor(t, "the configured readings", 10*time.Second, func() bool { return a.st.LastSeq() == 5 })
	if got := storedOf(t, a, "door-sensor"); len(got) != 1 {
		t.Errorf("door-sensor has %d readings after unaccept, want still 1", len(got))
	}

	// Accepted onto the mapped device itself, with no --kind: it takes the device's
	// kind, and the battery both give is stored once.
	out, err = cli("device", "accept", fridgeDoorBatteryName, "--device", "kitchen-fridge")
	if err != nil || !strings.Contains(out, "device kitchen-fridge (fridge)") {
		t.Fatalf("accept onto kitchen-fridge: %v\n%s", err, out)
	}
	publish(`{"battery":89,"contact":false,"linkquality":120}`)
	waitFor(t, "the next message", 10*time.Second, func() bool { return a.st.LastSeq() >= 7 })
	if got := storedOf(t, a, "kitchen-fridge"); len(got) != 6 {
		t.Errorf("kitchen-fridge has %d readings after 3 messages of battery and contact, want 6 (nothing twice)", len(got))
	}
}

// A discovery config that is not retained (a firmware announcing itself once) is
// still proposed after hearth restarts.
func TestProposalsSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	cfg := externalConfig(t, mq)
	a, stop := startAgent(t, cfg)
	waitSubscribed(t, a)
	if out, err := mosquittoPub(t, mq, "-q", "1", "-t", fridgeDoorBatteryConfigTopic, "-m", fridgeDoorBatteryConfig); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitProposal(t, a, fridgeDoorBatteryName)
	stop()
	cfg.Admin.Listen = "127.0.0.1:0"
	a2, _ := startAgent(t, cfg)
	out, err := hearthCLI(t, "device", "proposals", "--addr", a2.adminLn.Addr().String(), "--token-file", a2.tokenFile)
	if err != nil || !strings.Contains(out, fridgeDoorBatteryName) || !strings.Contains(out, "zigbee2mqtt/Fridge Door") {
		t.Fatalf("proposals after a restart: %v\n%s\nwant the proposal learned before", err, out)
	}
	// Removed by an empty config: gone after the next restart too.
	waitSubscribed(t, a2)
	if out, err := mosquittoPub(t, mq, "-q", "1", "-t", fridgeDoorBatteryConfigTopic, "-n"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Discovery forgets it, then persists that (OnProposal runs after its lock).
	waitFor(t, "the proposal removed, also from the store", 10*time.Second, func() bool {
		known, err := registry.Proposals(a2.st)
		if err != nil {
			t.Fatal(err)
		}
		return len(a2.mq.disc.Proposals()) == 0 && len(known) == 0
	})
}
