package main

import (
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/internal/config"
)

// fridgeDoorTopic is the Zigbee2MQTT topic of the contact sensor on the fridge door,
// mapped by withFridgeDoor to the device kitchen-fridge.
const fridgeDoorTopic = "zigbee2mqtt/Fridge Door"

// withFridgeDoor maps the Zigbee2MQTT friendly_name "Fridge Door" to the fridge
// kitchen-fridge in cfg.
func withFridgeDoor(cfg config.Config) config.Config {
	cfg.MQTT.Mappings = append(cfg.MQTT.Mappings, devmqtt.Mapping{Source: devmqtt.SourceZigbee2MQTT, Name: "Fridge Door",
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
		return a.mq.ext.Status().State == devmqtt.StateConnected
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
		})
	}
}
