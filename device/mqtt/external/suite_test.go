package external

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/devicetest"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/poll"
)

// The external-broker source passes the suite every source passes. The household's
// broker is a real mochi-mqtt server (not mosquitto: its hooks show exactly which
// PUBACK the source sends for which message, and when the source's connection ends).
func TestSourceSuite(t *testing.T) {
	devicetest.Run(t, devicetest.Harness{
		Sink: devicetest.SinkOptions{Retryable: store.ErrQuota, Permanent: ingest.ErrRejected},
		Start: func(t *testing.T) devicetest.Instance {
			b := newHouseBroker(t)
			z2m, err := zigbee2mqtt.New(mqtt.Mappings{{Source: mqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			src, err := New(Options{URL: "tcp://" + b.addr, ClientID: houseClient, Topics: []string{"zigbee2mqtt/#"},
				Handler: mqtt.Adapters{Decoder: mqtt.Router{z2m}}, ReconnectMax: time.Second, Retryable: ingest.Retryable,
				Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			return devicetest.Instance{Source: src, Device: b,
				// Owned is not set: the source is given the broker's address only.
				Rejected: func() float64 { return counter(t, reg, "hearth_mqtt_external_messages_total", "rejected") }}
		},
	})
}

// houseClient is the source's client id on the household broker.
const houseClient = "hearth-suite"

// houseBroker is the household's broker with a Zigbee2MQTT device behind it: Send
// publishes the device's state; a hook watches what the source's client is sent and
// acknowledges.
type houseBroker struct {
	mochi.HookBase
	srv  *mochi.Server
	addr string

	mu         sync.Mutex
	subscribed bool
	sent       map[uint16]float64 // packet id → value, of messages the source has not acknowledged
	acked      map[float64]bool
	first      map[float64]devicetest.Outcome
}

func newHouseBroker(t *testing.T) *houseBroker {
	t.Helper()
	b := &houseBroker{sent: map[uint16]float64{}, acked: map[float64]bool{}, first: map[float64]devicetest.Outcome{}}
	b.srv = mochi.New(&mochi.Options{InlineClient: true})
	if err := b.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.AddHook(b, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	if err := b.srv.AddListener(listeners.NewNet("suite", ln)); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// ID implements mochi.Hook.
func (b *houseBroker) ID() string { return "devicetest" }

// Provides implements mochi.Hook.
func (b *houseBroker) Provides(h byte) bool {
	return h == mochi.OnPacketEncode || h == mochi.OnPacketRead || h == mochi.OnDisconnect || h == mochi.OnSubscribed
}

// OnSubscribed: the source can receive.
func (b *houseBroker) OnSubscribed(cl *mochi.Client, _ packets.Packet, _ []byte) {
	if cl.ID == houseClient {
		b.mu.Lock()
		b.subscribed = true
		b.mu.Unlock()
	}
}

// OnPacketEncode records each PUBLISH the source's client is about to be sent (again,
// with the same id, after a reconnect): before the write, so that its PUBACK cannot
// come first.
func (b *houseBroker) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if cl.ID != houseClient || pk.FixedHeader.Type != packets.Publish {
		return pk
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(string(pk.Payload), `{"temperature":`), "}"), 64)
	if err == nil {
		b.mu.Lock()
		b.sent[pk.PacketID] = v
		b.mu.Unlock()
	}
	return pk
}

// OnPacketRead sees the source's PUBACKs.
func (b *houseBroker) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.ID == houseClient && pk.FixedHeader.Type == packets.Puback {
		b.mu.Lock()
		if v, ok := b.sent[pk.PacketID]; ok {
			delete(b.sent, pk.PacketID)
			b.acked[v] = true
			if b.first[v] == devicetest.Pending {
				b.first[v] = devicetest.Acked
			}
		}
		b.mu.Unlock()
	}
	return pk, nil
}

// OnDisconnect: what the source had not acknowledged when its connection ended was
// not taken (the broker sends it again on the next connection).
func (b *houseBroker) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	if cl.ID != houseClient {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subscribed = false
	for _, v := range b.sent {
		if b.first[v] == devicetest.Pending {
			b.first[v] = devicetest.Refused
		}
	}
}

// Send implements devicetest.Device: the Zigbee2MQTT device reports a temperature.
func (b *houseBroker) Send(t testing.TB, v float64) {
	poll.Until(t, "the source subscribed", 30*time.Second, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.subscribed })
	if err := b.srv.Publish("zigbee2mqtt/Fridge door", fmt.Appendf(nil, `{"temperature":%v}`, v), false, 1); err != nil {
		t.Fatal(err)
	}
}

// First implements devicetest.Device.
func (b *houseBroker) First(v float64) devicetest.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first[v]
}

// Acked implements devicetest.Device.
func (b *houseBroker) Acked(v float64) bool { b.mu.Lock(); defer b.mu.Unlock(); return b.acked[v] }

// Sync implements devicetest.Device: MQTT has no round trip behind a client's PUBACKs
// that the broker could start.
func (b *houseBroker) Sync(testing.TB) {}
