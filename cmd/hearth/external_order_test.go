package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/external"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/mosquittotest"
)

// fridgeDoorTopic is the Zigbee2MQTT topic of the contact sensor on the fridge door,
// mapped by withFridgeDoor to the device kitchen-fridge.
const fridgeDoorTopic = "zigbee2mqtt/Fridge Door"

// withFridgeDoor maps the Zigbee2MQTT friendly_name "Fridge Door" to the fridge
// kitchen-fridge in cfg.
func withFridgeDoor(cfg config.Config) config.Config {
	cfg.MQTT.Mappings = append(cfg.MQTT.Mappings, config.MQTTMapping{Source: devmqtt.SourceZigbee2MQTT, Name: "Fridge Door",
		Device: "kitchen-fridge", Kind: device.KindFridge})
	return cfg
}

// doorPayload is message i of a back-to-back open/close series: the door opens
// (contact false) on even i and closes on odd i, and power carries i, so the order
// the store kept is visible.
func doorPayload(i int) string {
	return fmt.Sprintf(`{"contact":%v,"power":%d,"linkquality":90}`, i%2 == 1, i)
}

// waitSubscribed waits until the agent's external source is connected and subscribed.
func waitSubscribed(t testing.TB, a *agent) {
	t.Helper()
	waitFor(t, "the external broker's SUBACK", 20*time.Second, func() bool {
		return a.mq.ext.Status().State == external.StateConnected
	})
}

// publisher is a paho client publishing to the test's mosquitto.
func publisher(tb testing.TB, addr, id string) paho.Client {
	tb.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(true).
		SetOrderMatters(true).SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publisher connect: %v", tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publishDoor publishes doorPayload(from..to-1) to fridgeDoorTopic at qos, back to
// back (a window of unacknowledged publishes, as a real Zigbee2MQTT does), and waits
// for the broker to have them all.
func publishDoor(tb testing.TB, c paho.Client, qos byte, from, to int) {
	tb.Helper()
	toks := make([]paho.Token, 0, to-from)
	for i := from; i < to; i++ {
		toks = append(toks, c.Publish(fridgeDoorTopic, qos, false, doorPayload(i)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			tb.Fatalf("publish: %v", tok.Error())
		}
	}
}

// BenchmarkExternalIngest measures the external-broker source end to end: a paho
// publisher sends b.N Zigbee2MQTT door messages back to back through a real mosquitto,
// and hearth (real store, group commit, ack after commit) stores each one's two
// readings. msgs/s is messages stored per second of wall time.
func BenchmarkExternalIngest(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			mq := startMosquitto(b)
			cfg := withFridgeDoor(externalConfig(b, mq))
			a, stop := startAgent(b, cfg)
			defer stop()
			pc := publisher(b, mq, "bench-pub")
			waitSubscribed(b, a)
			base := a.st.LastSeq()
			b.ResetTimer()
			start := time.Now()
			publishDoor(b, pc, qos, 0, b.N)
			want := base + 2*uint64(b.N)
			waitFor(b, "every reading", 5*time.Minute, func() bool { return a.st.LastSeq() >= want })
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
	}
}

// doorOrder reads the store's readings of kitchen-fridge after sequence after, in
// store order, and counts how many break publish order: a power reading (message i)
// after one with a higher i, or a door reading equal to the one before it (an open
// after an open). n is the number of power readings.
func doorOrder(t testing.TB, a *agent, after uint64) (n, violations int, firstBad string) {
	t.Helper()
	lastPower, lastDoor := -1.0, -1.0
	if _, err := a.st.ReadEvents(after, 0, func(seq uint64, r *device.Reading) error {
		if r.Device != "kitchen-fridge" {
			return nil
		}
		bad := ""
		switch r.Signal {
		case device.SignalPower:
			n++
			if r.Value <= lastPower {
				bad = fmt.Sprintf("seq %d: power %v after %v", seq, r.Value, lastPower)
			}
			lastPower = r.Value
		case device.SignalDoor:
			if r.Value == lastDoor {
				bad = fmt.Sprintf("seq %d: door %v twice in a row", seq, r.Value)
			}
			lastDoor = r.Value
		}
		if bad != "" {
			violations++
			if firstBad == "" {
				firstBad = bad
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, violations, firstBad
}

// 1,000 back-to-back open/close messages from one Zigbee2MQTT contact sensor, at QoS
// 0 and at QoS 1, are stored in the order they were published.
func TestExternalKeepsPublishOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			mq := startMosquitto(t)
			a, _ := startAgent(t, withFridgeDoor(externalConfig(t, mq)))
			pc := publisher(t, mq, "z2m")
			waitSubscribed(t, a)
			base := a.st.LastSeq()
			const N = 1000
			publishDoor(t, pc, qos, 0, N)
			waitFor(t, "every reading", 30*time.Second, func() bool { n, _, _ := doorOrder(t, a, base); return n >= N })
			n, bad, first := doorOrder(t, a, base)
			t.Logf("QoS %d: order violations %d of %d readings (%d messages)", qos, bad, 2*n, n)
			if bad > 0 {
				t.Errorf("QoS %d: %d of %d readings out of publish order; first: %s", qos, bad, 2*n, first)
			}
			// Item 8: a source publishing at QoS 0 through hearth's persistent session is
			// warned about, naming its topic and what to set.
			warned := slices.ContainsFunc(a.status().Warnings, func(w string) bool {
				return strings.HasPrefix(w, fridgeDoorTopic+" publishes at QoS 0") && strings.Contains(w, "queue_qos0_messages")
			})
			if warned != (qos == 0) {
				t.Errorf("QoS %d: warnings %q", qos, a.status().Warnings)
			}
		})
	}
}

// child is `hearth run` in a copy of this test binary (TestCLIHelperProcess), so
// that the test can SIGKILL it.
type child struct {
	cmd   *exec.Cmd
	admin string // its admin.listen address
}

// startChild runs `hearth run --config cfgFile` and waits for its admin address.
func startChild(t *testing.T, cfgFile string) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestCLIHelperProcess$", "--", "run", "--config", cfgFile)
	cmd.Env = append(os.Environ(), "HEARTH_TEST_CLI_HELPER=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() { c.kill() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := adminAddrLog.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case c.admin = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("the child hearth did not start within 30s")
	}
	return c
}

var adminAddrLog = regexp.MustCompile(`msg="hearth running".* admin=(\S+)`)

// kill SIGKILLs the child and waits for it.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func (c *child) status(t *testing.T) Status {
	t.Helper()
	var s Status
	getJSON(t, "http://"+c.admin+"/v1/status", &s)
	return s
}

// Back-to-back open/close messages from one contact sensor, published at a steady
// pace while hearth is SIGKILLed and started again: the ones in flight at the kill,
// the backlog the broker kept while hearth was down and the ones after are stored in
// publish order. Zigbee2MQTT payloads carry no sequence number, so messages committed
// but not yet acknowledged at the kill come again: at most hearth's window of messages
// awaiting their commit (mqtt.external.max_inflight). Not the broker's in-flight
// window: mosquitto 2.0.11 sends past max_inflight_messages once acknowledgements
// flow (a subscriber that acknowledged one message received 39 with a window of 20),
// and this test, bounded by it, failed 4 runs in 20 under load with 28–65 duplicates.
func TestExternalOrderAcrossKill(t *testing.T) {
	const hearthInflight = 20
	if testing.Short() {
		t.Skip("starts mosquitto and hearth processes")
	}
	for _, qos := range []byte{1, 0} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			// queue_qos0_messages: the broker keeps QoS 0 messages for hearth's
			// session while it is down, as docs/mqtt.md tells households to set.
			mq := mosquittotest.Start(t, fmt.Sprintf("max_inflight_messages %d", mosquittoInflight), "queue_qos0_messages true")
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "hearth.yaml")
			if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`data_dir: %s
broker:
  enabled: false
admin:
  listen: 127.0.0.1:0
  readings_max: 5000
sim:
  enabled: false
report:
  interval: 0s
mqtt:
  external:
    url: tcp://%s
    client_id: hearth-test
    reconnect_max: 1s
    max_inflight: %d
  mappings:
    - {source: zigbee2mqtt, name: Fridge Door, device: kitchen-fridge, kind: fridge}
`, filepath.Join(dir, "data"), mq, hearthInflight)), 0o600); err != nil {
				t.Fatal(err)
			}
			h := startChild(t, cfgFile)
			waitFor(t, "the first hearth subscribed", 20*time.Second, func() bool {
				s := h.status(t)
				return s.External != nil && s.External.State == external.StateConnected
			})
			const N = 1000
			pc := publisher(t, mq, "z2m")
			published := make(chan struct{})
			go func() {
				defer close(published)
				tick := time.NewTicker(time.Millisecond) // a steady stream, not one burst
				defer tick.Stop()
				for i := range N {
					<-tick.C
					pc.Publish(fridgeDoorTopic, qos, false, doorPayload(i))
				}
			}()
			waitFor(t, "part of the stream", 30*time.Second, func() bool { return h.status(t).Raw.Items >= 2*N/3 })
			h.kill()
			h = startChild(t, cfgFile)
			<-published
			distinct := func() int {
				var rep ReadingsReply
				getJSON(t, "http://"+h.admin+"/v1/devices/kitchen-fridge/readings?signal=power&last=5000", &rep)
				seen := map[float64]bool{}
				for _, r := range rep.Readings {
					seen[r.Value] = true
				}
				return len(seen)
			}
			if qos == 1 {
				waitFor(t, "every message", 60*time.Second, func() bool { return distinct() == N })
			} else {
				// What was written to the killed hearth's socket is lost at QoS 0; the
				// rest arrives. Wait for the last message.
				waitFor(t, "the last message", 60*time.Second, func() bool {
					var rep ReadingsReply
					getJSON(t, "http://"+h.admin+"/v1/devices/kitchen-fridge/readings?signal=power&last=1", &rep)
					return len(rep.Readings) == 1 && rep.Readings[0].Value == N-1
				})
			}
			h.kill()

			st, err := store.Open(filepath.Join(dir, "data", "hearth.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var powers []float64
			if _, err := st.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error {
				if r.Signal == device.SignalPower {
					powers = append(powers, r.Value)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// Order: the first time each message appears, messages come in publish
			// order. A message appearing again is a redelivery (a duplicate).
			seen := map[float64]bool{}
			violations, dups, last := 0, 0, -1.0
			for _, p := range powers {
				if seen[p] {
					dups++
					continue
				}
				seen[p] = true
				if p < last {
					violations++
				}
				last = p
			}
			t.Logf("QoS %d across a SIGKILL: order violations %d of %d messages stored, %d duplicates, %d lost",
				qos, violations, len(seen), dups, N-len(seen))
			if violations > 0 {
				t.Errorf("QoS %d: %d messages stored out of publish order", qos, violations)
			}
			if qos == 1 && dups > hearthInflight {
				t.Errorf("%d duplicates: more than hearth's window of messages awaiting their commit (mqtt.external.max_inflight %d)", dups, hearthInflight)
			}
		})
	}
}
