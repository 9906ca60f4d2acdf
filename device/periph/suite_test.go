package periph_test

import (
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/devicetest"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/periph/periphtest"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/internal/poll"
)

// The hub sensors' Source passes the suite every source passes. The device is a load
// cell on an HX711 (scale 1: a reading's grams are the chip's counts): sending a
// value puts that weight on the cell. The chip and the driver share a fake clock
// that moves only when the driver waits, so no read is discarded for a slow clock
// however loaded the machine. A load cell gets no acknowledgement, hence
// NoDeviceAcks.
func TestSourceSuite(t *testing.T) {
	devicetest.Run(t, devicetest.Harness{
		Sink:         devicetest.SinkOptions{Retryable: store.ErrQuota, Permanent: ingest.ErrRejected},
		NoDeviceAcks: "a load cell on GPIO pins is told nothing: a reading refused for now is kept and submitted again by the source",
		Start: func(t *testing.T) devicetest.Instance {
			fc := clockwork.NewFakeClock()
			c := &cell{host: periphtest.NewHost(), chip: &periphtest.HX711{Now: fc.Now, Advance: fc.Advance}}
			reg := prometheus.NewRegistry()
			var err error
			c.src, err = periph.New(&periph.Options{Host: c.host, Boot: boot, Registerer: reg, Retryable: ingest.Retryable,
				RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Now: fc.Now, Sleep: fc.Advance,
				Sensors: []periph.Sensor{{Name: "shelf", Device: "pantry-shelf", Kind: device.KindKitchenCabinet,
					HX711: &periph.HX711{Clock: "GPIO5", Data: "GPIO6", Gain: 128, Scale: 1, Period: 2 * time.Millisecond,
						Samples: 1, Retries: 5, ReadyTimeout: time.Second, ClockHighLimit: 50 * time.Microsecond,
						Deadband: 0.5, Heartbeat: 24 * time.Hour}}}})
			if err != nil {
				t.Fatal(err)
			}
			return devicetest.Instance{Source: c.src, Device: c, Rejected: func() float64 {
				v, err := metricset.Value(reg, "hearth_hub_sensor_readings_total", "result", "rejected")
				if err != nil {
					t.Fatal(err)
				}
				return v
			}}
		},
	})
}

// cell is a load cell behind an HX711 whose pins appear on the host at the first
// Send (before it the sensor is down: an empty cell would read 0 g, a reading
// nobody sent).
type cell struct {
	host *periphtest.Host
	chip *periphtest.HX711
	src  *periph.Source

	mu   sync.Mutex
	sent []float64
}

// Send implements devicetest.Device: it puts v grams on the cell and returns once
// the driver has read a word of v (the fake clock never makes it discard one).
func (c *cell) Send(t testing.TB, v float64) {
	c.mu.Lock()
	first := len(c.sent) == 0
	c.sent = append(c.sent, v)
	c.mu.Unlock()
	_, before := c.chip.Last()
	c.chip.Load(int32(v))
	if first {
		clk, data := c.chip.Pins()
		c.host.SetPin("GPIO5", clk)
		c.host.SetPin("GPIO6", data)
	}
	poll.Until(t, "the driver to read the weight", time.Minute, func() bool {
		for _, d := range c.chip.Delivered()[before:] {
			if d.Sample == int32(v) && !d.Corrupt {
				return true
			}
		}
		return false
	})
}

// Acked implements devicetest.Device: v is committed once the last committed weight
// is v or a value sent after it (one sensor commits its readings in order; a reading
// refused for good is dropped, and the suite asks nothing of it).
func (c *cell) Acked(v float64) bool {
	st := c.src.Status()[0]
	last, ok := st.Last[device.SignalWeight]
	if !ok || st.Committed == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	iv, il := -1, -1
	for i, s := range c.sent {
		if s == v {
			iv = i
		}
		if s == last {
			il = i
		}
	}
	return iv >= 0 && il >= iv
}

// First implements devicetest.Device: a load cell only ever learns Acked.
func (c *cell) First(v float64) devicetest.Outcome {
	if c.Acked(v) {
		return devicetest.Acked
	}
	return devicetest.Pending
}

// Sync implements devicetest.Device: there is no round trip to the cell.
func (c *cell) Sync(testing.TB) {}
