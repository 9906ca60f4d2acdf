package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/devicetest"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/poll"
)

// The embedded broker is not a device.Source: it is a server the agent builds with its
// sink (Options.Sink) and serves on listeners it binds first, so that a busy port is
// reported before anything starts. Run here is the 20 lines that make it one — build,
// serve on 127.0.0.1:0, close when ctx ends — and the broker passes the suite every
// source passes, with a real MQTT 3.1.1 client (whose PUBACKs carry no reason: a
// refusal for now is no PUBACK at all).
func TestSourceSuite(t *testing.T) {
	devicetest.Run(t, devicetest.Harness{
		Sink: devicetest.SinkOptions{Retryable: store.ErrQuota, Permanent: ingest.ErrRejected},
		Start: func(t *testing.T) devicetest.Instance {
			s := &brokerSource{creds: NewCredentials(), reg: prometheus.NewRegistry()}
			_, pw, err := s.creds.Add("fridge1", device.KindFridge)
			if err != nil {
				t.Fatal(err)
			}
			d := &mqttDevice{src: s, pw: pw, ids: map[uint16]float64{}, first: map[float64]devicetest.Outcome{}, acked: map[float64]bool{}}
			return devicetest.Instance{Source: s, Device: d,
				Rejected: func() float64 { return gathered(t, s.reg, "hearth_broker_publishes_total", "rejected") }}
		},
	})
}

// brokerSource runs a Broker as a device.Source.
type brokerSource struct {
	creds *Credentials
	reg   *prometheus.Registry
	addr  atomic.Value // string, once serving
}

func (s *brokerSource) Name() string { return "mqtt broker (embedded)" }

func (s *brokerSource) Run(ctx context.Context, sink device.Sink) error {
	b, err := New(Options{Auth: s.creds, Sink: sink, Registerer: s.reg})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := b.Serve(ln); err != nil {
		return err
	}
	s.addr.Store(ln.Addr().String())
	<-ctx.Done()
	return b.Close()
}

// mqttDevice is a device publishing native readings at QoS 1 over MQTT 3.1.1.
type mqttDevice struct {
	src *brokerSource
	pw  string

	mu    sync.Mutex
	c     *raw
	next  uint16
	ids   map[uint16]float64 // packet id → value
	first map[float64]devicetest.Outcome
	acked map[float64]bool
	pings int
}

func (d *mqttDevice) conn(t testing.TB) *raw {
	d.mu.Lock()
	c := d.c
	d.mu.Unlock()
	if c != nil {
		return c
	}
	poll.Until(t, "the broker serving", 30*time.Second, func() bool { return d.src.addr.Load() != nil })
	c = dialRaw(t.(*testing.T), d.src.addr.Load().(string), "fridge1", d.pw, false)
	d.mu.Lock()
	d.c = c
	d.mu.Unlock()
	go d.read(c)
	return c
}

// read records the broker's answers until the connection ends. PUBACKs come in the
// order of the publishes: one acknowledges its publish, and tells that every earlier
// publish still unacknowledged got none (MQTT 3.1.1: refused for now).
func (d *mqttDevice) read(c *raw) {
	for {
		_ = c.c.SetReadDeadline(time.Time{})
		h, err := c.rd.ReadByte()
		if err != nil {
			return
		}
		n, mul := 0, 1
		for {
			b, err := c.rd.ReadByte()
			if err != nil {
				return
			}
			n += int(b&0x7f) * mul
			mul *= 128
			if b&0x80 == 0 {
				break
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.rd, p); err != nil {
			return
		}
		d.mu.Lock()
		switch h & 0xF0 {
		case 0x40:
			id := binary.BigEndian.Uint16(p)
			for prev := uint16(1); prev < id; prev++ {
				if v, ok := d.ids[prev]; ok && !d.acked[v] && d.first[v] == devicetest.Pending {
					d.first[v] = devicetest.Refused
				}
			}
			if v, ok := d.ids[id]; ok {
				d.acked[v] = true
				if d.first[v] == devicetest.Pending {
					d.first[v] = devicetest.Acked
				}
			}
		case 0xD0:
			d.pings++
		}
		d.mu.Unlock()
	}
}

// Send implements devicetest.Device.
func (d *mqttDevice) Send(t testing.TB, v float64) {
	c := d.conn(t)
	d.mu.Lock()
	d.next++
	id := d.next
	d.ids[id] = v
	d.mu.Unlock()
	c.publish(id, "hearth/v1/fridge1/readings", fmt.Sprintf(`{"signal":"power","value":%v}`, v))
}

// First implements devicetest.Device.
func (d *mqttDevice) First(v float64) devicetest.Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first[v]
}

// Acked implements devicetest.Device.
func (d *mqttDevice) Acked(v float64) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.acked[v] }

// Sync implements devicetest.Device: the broker answers a PINGREQ in order behind the
// packets it wrote before.
func (d *mqttDevice) Sync(t testing.TB) {
	c := d.conn(t)
	d.mu.Lock()
	n := d.pings
	d.mu.Unlock()
	c.write([]byte{0xC0, 0})
	poll.Until(t, "the PINGRESP", 30*time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.pings > n })
}

// gathered returns the value of counter name with the given label value (0 when
// there is none).
func gathered(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
