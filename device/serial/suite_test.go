package serial_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device/devicetest"
	"github.com/hearth-iot/hearth/device/serial"
	"github.com/hearth-iot/hearth/device/serial/serialtest"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
	"github.com/hearth-iot/hearth/internal/poll"
)

// The serial source passes the suite every source passes, over a real pty with a
// device that speaks the firmware protocol.
func TestSourceSuite(t *testing.T) {
	devicetest.Run(t, devicetest.Harness{
		Sink: devicetest.SinkOptions{Retryable: store.ErrQuota, Permanent: ingest.ErrRejected},
		Start: func(t *testing.T) devicetest.Instance {
			p, err := serialtest.OpenPTY()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			reg := prometheus.NewRegistry()
			src, err := serial.New(&serial.Options{Path: p.Path, Name: "suite", ReadTimeout: 50 * time.Millisecond,
				ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, TimeSync: -1,
				Retryable: ingest.Retryable, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			d := newUART(t, p)
			return devicetest.Instance{Source: src, Device: d,
				Rejected: func() float64 { return gather(t, reg, "hearth_serial_items_total", "rejected") },
				Owned: func() error {
					if _, err := p.Master.Write([]byte{0}); err != nil {
						return fmt.Errorf("the pty's device end: %w", err)
					}
					return nil
				}}
		},
	})
}

// uart is a device on the pty's master end: a Hello, then one Readings frame per
// Send (signal power, the value sent), sent again after a Nack BUSY.
type uart struct {
	t    testing.TB
	p    *serialtest.PTY
	boot uint64

	mu      sync.Mutex
	session bool
	acks    int                // Ack frames received
	seqOf   map[float64]uint64 // value → seq
	valOf   map[uint64]float64
	next    uint64
	acked   uint64 // the boot's acknowledged prefix
	first   map[float64]devicetest.Outcome
}

func newUART(t testing.TB, p *serialtest.PTY) *uart {
	d := &uart{t: t, p: p, boot: 0xB007, seqOf: map[float64]uint64{}, valOf: map[uint64]float64{}, next: 1,
		first: map[float64]devicetest.Outcome{}}
	go d.read()
	return d
}

func (d *uart) write(m proto.Message) {
	b, err := frame.AppendMessage([]byte{0}, m)
	if err == nil {
		_, err = d.p.Master.Write(b)
	}
	if err != nil {
		d.t.Errorf("device: write %T: %v", m, err)
	}
}

// read handles the hub's frames until the pty is closed.
func (d *uart) read() {
	p := frame.NewParser(frame.MaxHubFrame)
	buf := make([]byte, 256)
	for {
		n, err := d.p.Master.Read(buf)
		p.Feed(buf[:n], func(f frame.Frame) {
			m, err := f.Decode()
			if err != nil {
				return
			}
			d.hub(m)
		})
		if err != nil {
			return
		}
	}
}

func (d *uart) hub(m proto.Message) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch m := m.(type) {
	case *fwpb.Ack:
		if m.BootId != d.boot {
			return
		}
		d.acks++
		d.session = true
		d.acked = max(d.acked, m.Seq)
		for s := uint64(1); s <= d.acked; s++ {
			if v, ok := d.valOf[s]; ok && d.first[v] == devicetest.Pending {
				d.first[v] = devicetest.Acked
			}
		}
	case *fwpb.Nack:
		if m.Reason != fwpb.NackReason_NACK_REASON_BUSY || m.BootId != d.boot {
			return
		}
		for s := m.Seq; s < d.next; s++ {
			if v, ok := d.valOf[s]; ok && s > d.acked {
				if d.first[v] == devicetest.Pending {
					d.first[v] = devicetest.Refused
				}
				// The device keeps what was refused and sends it again (a real one
				// waits retry_after_ms; the suite's sink takes it at once).
				go d.write(readingsOf(d.boot, s, v))
			}
		}
	}
}

func readingsOf(boot, seq uint64, v float64) *fwpb.Readings {
	return &fwpb.Readings{BootId: boot, Readings: []*fwpb.Reading{{Seq: seq, Signal: fwpb.Signal_SIGNAL_POWER, Value: v}}}
}

func (d *uart) hello(t testing.TB) {
	d.mu.Lock()
	ok := d.session
	d.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for !ok {
		// The source opens the port on its own schedule: say Hello until it answers.
		if time.Now().After(deadline) {
			t.Fatal("the source never answered the Hello")
		}
		d.write(&fwpb.Hello{DeviceId: "fridge-sim", Kind: "fridge", BootId: d.boot})
		ok = poll.Try(time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.session })
	}
}

// Send implements devicetest.Device.
func (d *uart) Send(t testing.TB, v float64) {
	d.hello(t)
	d.mu.Lock()
	s := d.next
	d.next++
	d.seqOf[v], d.valOf[s] = s, v
	d.mu.Unlock()
	d.write(readingsOf(d.boot, s, v))
}

// First implements devicetest.Device.
func (d *uart) First(v float64) devicetest.Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first[v]
}

// Acked implements devicetest.Device: the Ack is cumulative.
func (d *uart) Acked(v float64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.seqOf[v]
	return ok && s <= d.acked
}

// Sync implements devicetest.Device: the hub answers a Hello with an Ack, written after
// every frame it queued before.
func (d *uart) Sync(t testing.TB) {
	d.mu.Lock()
	n := d.acks
	d.mu.Unlock()
	d.write(&fwpb.Hello{DeviceId: "fridge-sim", Kind: "fridge", BootId: d.boot})
	poll.Until(t, "the Ack of a Hello", 30*time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.acks > n })
}

// gather returns a counter's value with the given label value.
func gather(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
