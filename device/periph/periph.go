package periph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph/bme280"
	"github.com/hearth-iot/hearth/device/periph/ds18b20"
	"github.com/hearth-iot/hearth/device/periph/hx711"
	"github.com/hearth-iot/hearth/device/periph/reed"
	"github.com/hearth-iot/hearth/device/periph/sht3x"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// Sensor is one sensor wired to the hub. Exactly one of GPIO, I2C, OneWire and HX711
// is set.
type Sensor struct {
	Name   string      // unique among the sensors: labels metrics, logs, status
	Device string      // the hearth device id its readings belong to
	Kind   device.Kind // that device's kind

	GPIO    *GPIO
	I2C     *I2C
	OneWire *OneWire
	HX711   *HX711
}

// period is how often a polled sensor is read (I2C, 1-Wire, HX711); a GPIO contact
// is not polled.
func (c *Sensor) period() (time.Duration, bool) {
	switch {
	case c.I2C != nil:
		return c.I2C.Period, true
	case c.OneWire != nil:
		return c.OneWire.Period, true
	case c.HX711 != nil:
		return c.HX711.Period, true
	}
	return 0, false
}

// GPIO is a contact on one pin: a reed switch on a door, a button.
type GPIO struct {
	Pin    string        // as periph names it: GPIO17
	Signal device.Signal // door or active
	// Pull, Edge, Debounce, ActiveLow, Recheck: see reed.Opts.
	Pull      gpio.Pull
	Edge      gpio.Edge
	Debounce  time.Duration
	ActiveLow bool
	Recheck   time.Duration
}

// I2C drivers.
const (
	DriverSHT3x  = "sht3x"
	DriverBME280 = "bme280"
)

// I2C is a sensor on an I²C bus, polled.
type I2C struct {
	Bus        string // "1" or "/dev/i2c-1"
	Addr       uint16
	Driver     string // DriverSHT3x or DriverBME280
	Period     time.Duration
	StuckAfter int // identical raw readings in a row that make the sensor stuck; 0: never
}

// OneWire is a DS18B20 probe through the kernel's w1 sysfs directory.
type OneWire struct {
	Path       string // /sys/bus/w1/devices/28-...
	Period     time.Duration
	StuckAfter int
}

// HX711 is a load cell behind an HX711 on two pins.
type HX711 struct {
	Clock, Data    string // PD_SCK and DOUT pins
	Gain           int    // 128, 64 or 32
	Offset         float64
	Scale          float64 // counts per gram (negative if the cell is mounted the other way)
	Period         time.Duration
	Samples        int     // conversions per measurement (median)
	OutlierGrams   float64 // samples further than this from the median are dropped
	Retries        int     // discarded reads retried per measurement
	ReadyTimeout   time.Duration
	ClockHighLimit time.Duration
	Deadband       float64       // grams a weight must move to be reported again
	Heartbeat      time.Duration // a weight is reported at least this often
	StuckAfter     int

	// Door names the GPIO sensor of the door in front of the shelf ("" for none).
	// A weight change of at least MinChange grams, measured Settle after that door
	// closed against the weight before it opened, becomes inventory readings.
	Door      string
	Settle    time.Duration
	MinChange float64
	Category  string  // the inventory readings' label (food category); "" other
	ItemGrams float64 // grams of one item: round(|change|/ItemGrams) readings; 0: one
	MaxItems  int     // most inventory readings for one change
}

// Bus names the kind of a Sensor.
func (s *Sensor) Bus() string {
	switch {
	case s.GPIO != nil:
		return "gpio"
	case s.I2C != nil:
		return "i2c"
	case s.OneWire != nil:
		return "onewire"
	case s.HX711 != nil:
		return "hx711"
	}
	return ""
}

// Options configure a Source. Zero fields take the defaults given.
type Options struct {
	Sensors []Sensor
	// Host hands out pins and buses (required when a sensor needs a pin or a bus).
	Host Host
	// Boot identifies this run of the source in its readings (default: the time of
	// New in nanoseconds). Readings are numbered from 1 per device within it.
	Boot uint64
	// RetryMin and RetryMax bound the back-off between attempts to open a missing
	// sensor, and between attempts to commit readings the sink refused (defaults 1s
	// and 5m).
	RetryMin, RetryMax time.Duration
	// Retryable says whether a refusal of the Sink may pass (a full store): those
	// readings are submitted again after back-off. Any other refusal is final (a
	// reading ingest will never take): counted as rejected and dropped, so that one
	// bad reading never stalls its sensor. Nil: every refusal may pass.
	Retryable func(error) bool
	// FailAfter is how many I/O failures in a row make an open sensor count as lost:
	// it is closed and opened again after back-off (default 3).
	FailAfter int
	// Sleep and Now are handed to drivers that wait for a conversion or time a
	// pulse (defaults time.Sleep and time.Now).
	Sleep func(time.Duration)
	Now   func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Source reads the hub's own sensors. It implements device.Source.
type Source struct {
	o       Options
	log     *slog.Logger
	m       *metrics
	set     *metricset.Set
	sensors []*sensor
}

// New checks the sensors and returns their Source.
func New(o *Options) (*Source, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Boot == 0 {
		opts.Boot = uint64(time.Now().UnixNano())
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.FailAfter <= 0 {
		opts.FailAfter = 3
	}
	if opts.Sleep == nil {
		opts.Sleep = time.Sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{o: opts, log: opts.Logger.With("component", "hub_sensors"), m: newMetrics()}
	seqs := map[string]*atomic.Uint64{}
	byName := map[string]*sensor{}
	for i := range opts.Sensors {
		c := opts.Sensors[i]
		if c.Bus() == "" {
			return nil, fmt.Errorf("hub sensor %q: no bus (gpio, i2c, onewire or hx711)", c.Name)
		}
		if byName[c.Name] != nil {
			return nil, fmt.Errorf("hub sensor %q: name used twice", c.Name)
		}
		if err := device.ValidID(c.Device); err != nil {
			return nil, fmt.Errorf("hub sensor %q: device: %w", c.Name, err)
		}
		if err := c.Kind.Check(); err != nil {
			return nil, fmt.Errorf("hub sensor %q: %w", c.Name, err)
		}
		if p, polled := c.period(); polled && p <= 0 {
			return nil, fmt.Errorf("hub sensor %q: %s polling period %s: must be positive", c.Name, c.Bus(), p)
		}
		if seqs[c.Device] == nil {
			seqs[c.Device] = new(atomic.Uint64)
		}
		sn := &sensor{cfg: c, seq: seqs[c.Device], log: s.log.With("sensor", c.Name, "bus", c.Bus()),
			st: SensorStatus{Name: c.Name, Bus: c.Bus(), Device: c.Device, State: StateStarting, Faults: map[string]uint64{}}}
		if c.GPIO != nil {
			sn.door = &doorState{}
		}
		sn.mc = s.m.forSensor(c.Name, faultReasons(c.Bus()))
		byName[c.Name] = sn
		s.sensors = append(s.sensors, sn)
	}
	for _, sn := range s.sensors {
		if h := sn.cfg.HX711; h != nil && h.Door != "" {
			d := byName[h.Door]
			if d == nil || d.door == nil {
				return nil, fmt.Errorf("hub sensor %q: door %q is not a gpio sensor", sn.cfg.Name, h.Door)
			}
			sn.linked = d.door
		}
	}
	var err error
	if s.set, err = metricset.Register(opts.Registerer, s.m.cs...); err != nil {
		return nil, fmt.Errorf("hub sensors: metrics: %w", err)
	}
	return s, nil
}

// Name implements device.Source.
func (s *Source) Name() string { return "hub_sensors" }

// Unregister removes the source's metrics from the registerer given to New.
func (s *Source) Unregister() { s.set.Unregister() }

// Run serves every sensor until ctx ends, then returns nil. A sensor whose pin or
// bus is missing, or that stops answering, is reported (log, metrics, Status) and
// opened again with back-off; no sensor's failure ends Run. Run must not be called
// twice at once.
func (s *Source) Run(ctx context.Context, sink device.Sink) error {
	var wg sync.WaitGroup
	for _, sn := range s.sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.supervise(ctx, sn, sink)
		}()
	}
	wg.Wait()
	return nil
}

// Status reports every sensor's state, in configuration order.
func (s *Source) Status() []SensorStatus {
	out := make([]SensorStatus, len(s.sensors))
	for i, sn := range s.sensors {
		out[i] = sn.status()
	}
	return out
}

// supervise opens the sensor and serves it, again and again with back-off, until
// ctx ends.
func (s *Source) supervise(ctx context.Context, sn *sensor, sink device.Sink) {
	bo := s.backoff()
	failures := 0
	for ctx.Err() == nil {
		opened, err := s.serve(ctx, sn, sink)
		s.m.up.WithLabelValues(sn.cfg.Name).Set(0)
		if ctx.Err() != nil {
			break
		}
		if opened {
			bo.Reset()
			failures = 0
			sn.mc.lost.Inc()
			sn.log.Warn("hub sensor lost; opening it again with back-off", "err", err)
		} else {
			failures++
			sn.mc.opens.WithLabelValues("failed").Inc()
			if failures == 1 {
				sn.log.Warn("hub sensor cannot be opened; retrying with back-off", "err", err)
			} else {
				sn.log.Debug("hub sensor still cannot be opened", "err", err, "attempts", failures)
			}
		}
		sn.setDown(err, s.o.Now())
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	sn.setState(StateStopped, s.o.Now())
}

func (s *Source) backoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = s.o.RetryMin, s.o.RetryMax, 0
	bo.RandomizationFactor, bo.Multiplier = 0.2, 2
	bo.Reset()
	return bo
}

// serve opens the sensor and runs it until ctx ends or it is lost. opened reports
// whether it got as far as serving.
func (s *Source) serve(ctx context.Context, sn *sensor, sink device.Sink) (opened bool, err error) {
	c := &sn.cfg
	switch {
	case c.GPIO != nil:
		return s.serveGPIO(ctx, sn, sink)
	case c.I2C != nil:
		return s.serveI2C(ctx, sn, sink)
	case c.OneWire != nil:
		return s.serveOneWire(ctx, sn, sink)
	default:
		return s.serveHX711(ctx, sn, sink)
	}
}

func (s *Source) pin(name string) (gpio.PinIO, error) {
	if s.o.Host == nil {
		return nil, fmt.Errorf("GPIO pin %q: %w: no host", name, ErrMissing)
	}
	return s.o.Host.Pin(name)
}

func (s *Source) opened(sn *sensor) {
	sn.mc.opens.WithLabelValues("ok").Inc()
	s.m.up.WithLabelValues(sn.cfg.Name).Set(1)
	sn.setState(StateUp, s.o.Now())
	sn.log.Info("hub sensor open")
}

func (s *Source) serveGPIO(ctx context.Context, sn *sensor, sink device.Sink) (bool, error) {
	g := sn.cfg.GPIO
	p, err := s.pin(g.Pin)
	if err != nil {
		return false, err
	}
	sw, err := reed.New(p, &reed.Opts{Pull: g.Pull, Edge: g.Edge, Debounce: g.Debounce, ActiveLow: g.ActiveLow,
		Recheck: g.Recheck, Count: sn.fault})
	if err != nil {
		return false, err
	}
	s.opened(sn)
	stop := context.AfterFunc(ctx, func() { _ = p.Halt() }) // ends a pending WaitForEdge
	defer stop()
	// The state at open is a reading too: the door may have moved while the agent
	// was away.
	active := sw.Active()
	for {
		v := 0.0
		if active {
			v = 1
		}
		if err := s.commit(ctx, sn, sink, []device.Reading{{Signal: g.Signal, Value: v}}); err != nil {
			return true, nil // ctx ended
		}
		sn.door.set(active, s.o.Now())
		if active, err = sw.Wait(ctx); err != nil {
			return true, nil
		}
	}
}

// value is one quantity of a measurement.
type value struct {
	signal device.Signal
	v      float64
	unit   string
}

func (s *Source) serveI2C(ctx context.Context, sn *sensor, sink device.Sink) (bool, error) {
	c := sn.cfg.I2C
	if s.o.Host == nil {
		return false, fmt.Errorf("I2C bus %q: %w: no host", c.Bus, ErrMissing)
	}
	bus, err := s.o.Host.I2C(c.Bus)
	if err != nil {
		return false, err
	}
	defer bus.Close()
	var measure func() ([]value, uint64, error)
	switch c.Driver {
	case DriverSHT3x:
		d, err := sht3x.New(bus, c.Addr, &sht3x.Opts{Sleep: s.o.Sleep})
		if err != nil {
			return false, err
		}
		measure = func() ([]value, uint64, error) {
			e, err := d.Sense()
			return []value{{device.SignalTemperature, round(e.Temperature, 100), "°C"}, {device.SignalHumidity, round(e.Humidity, 100), "%RH"}},
				uint64(e.RawT)<<16 | uint64(e.RawRH), err
		}
	case DriverBME280:
		d, err := bme280.New(bus, c.Addr, &bme280.Opts{Sleep: s.o.Sleep})
		if err != nil {
			return false, err
		}
		measure = func() ([]value, uint64, error) {
			e, err := d.Sense()
			return []value{{device.SignalTemperature, e.Temperature, "°C"}, {device.SignalHumidity, round(e.Humidity, 100), "%RH"},
					{device.SignalPressure, round(e.Pressure, 100), "hPa"}},
				uint64(e.RawT)<<36 | uint64(e.RawP)<<16 | uint64(e.RawH), err
		}
	default:
		return false, fmt.Errorf("I2C driver %q: not one of %s, %s", c.Driver, DriverSHT3x, DriverBME280)
	}
	s.opened(sn)
	return true, s.poll(ctx, sn, sink, c.Period, c.StuckAfter, measure)
}

func (s *Source) serveOneWire(ctx context.Context, sn *sensor, sink device.Sink) (bool, error) {
	c := sn.cfg.OneWire
	// The probe is "open" once its file reads at all: a missing directory is a
	// probe not (yet) found by the kernel's bus master.
	if _, err := ds18b20.Read(c.Path); err != nil && !faulty(err) {
		return false, fmt.Errorf("1-Wire probe %s: %w", c.Path, err)
	}
	s.opened(sn)
	return true, s.poll(ctx, sn, sink, c.Period, c.StuckAfter, func() ([]value, uint64, error) {
		r, err := ds18b20.Read(c.Path)
		return []value{{device.SignalTemperature, round(r.Celsius, 10000), "°C"}}, uint64(uint16(r.Raw)), err
	})
}

// poll measures every period until ctx ends (nil) or FailAfter I/O failures in a row
// (the last one's error).
func (s *Source) poll(ctx context.Context, sn *sensor, sink device.Sink, period time.Duration, stuckAfter int,
	measure func() ([]value, uint64, error)) error {
	t := time.NewTicker(period)
	defer t.Stop()
	fails := 0
	for {
		vals, raw, err := measure()
		switch {
		case err == nil:
			fails = 0
			if sn.stuck.same(raw, stuckAfter) {
				sn.fault(FaultStuck)
				sn.setState(StateStuck, s.o.Now())
				break
			}
			sn.unstuck(s.o.Now())
			rs := make([]device.Reading, len(vals))
			for i, v := range vals {
				rs[i] = device.Reading{Signal: v.signal, Value: v.v, Unit: v.unit}
			}
			if s.commit(ctx, sn, sink, rs) != nil {
				return nil
			}
		case faulty(err):
			fails = 0
			sn.faultErr(reasonOf(err), err)
		default:
			fails++
			sn.faultErr(ioReason(err), err)
			if fails >= s.o.FailAfter {
				return fmt.Errorf("%d failures in a row, the last: %w", fails, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// stuck counts identical raw readings in a row, across reopens of the sensor.
type stuck struct {
	last uint64
	n    int
}

// same records raw and reports whether it is the limit-th identical one in a row or
// later (limit 0: never).
func (s *stuck) same(raw uint64, limit int) bool {
	if s.n > 0 && raw == s.last {
		s.n++
	} else {
		s.last, s.n = raw, 1
	}
	return limit > 0 && s.n >= limit
}

func (s *Source) serveHX711(ctx context.Context, sn *sensor, sink device.Sink) (bool, error) {
	c := sn.cfg.HX711
	clk, err := s.pin(c.Clock)
	if err != nil {
		return false, fmt.Errorf("clock: %w", err)
	}
	data, err := s.pin(c.Data)
	if err != nil {
		return false, fmt.Errorf("data: %w", err)
	}
	dev, err := hx711.New(clk, data, &hx711.Opts{Gain: c.Gain, ClockHighLimit: c.ClockHighLimit, ReadyTimeout: c.ReadyTimeout,
		Now: s.o.Now, Sleep: s.o.Sleep, Count: sn.fault})
	if err != nil {
		return false, err
	}
	s.opened(sn)
	t := time.NewTicker(c.Period)
	defer t.Stop()
	fails := 0
	var w scale
	maxDev := int32(min(math.Abs(c.OutlierGrams*c.Scale), math.MaxInt32))
	for {
		res, err := dev.Measure(ctx, c.Samples, maxDev, c.Retries)
		switch {
		case ctx.Err() != nil:
			return true, nil
		case errors.Is(err, hx711.ErrUnstable):
			fails = 0
			sn.faultErr(FaultUnstable, err)
		case errors.Is(err, hx711.ErrTimeout):
			fails++
			sn.faultErr(FaultTimeout, err)
		case err != nil:
			fails++
			sn.faultErr(FaultIO, err)
		case sn.stuck.same(uint64(uint32(res.Raw)), c.StuckAfter):
			fails = 0
			sn.fault(FaultStuck)
			sn.setState(StateStuck, s.o.Now())
		default:
			fails = 0
			sn.unstuck(s.o.Now())
			grams := round((float64(res.Raw)-c.Offset)/c.Scale, 10)
			rs, next := w.step(c, sn.linked, grams, s.o.Now())
			if len(rs) > 0 {
				if s.commit(ctx, sn, sink, rs) != nil {
					return true, nil
				}
			}
			w = next
		}
		if fails >= s.o.FailAfter {
			return true, fmt.Errorf("%d failures in a row, the last: %w", fails, err)
		}
		select {
		case <-ctx.Done():
			return true, nil
		case <-t.C:
		}
	}
}

// scale is the weight logic of a load cell: what was last reported, and the weight
// on the shelf while the door was last closed and settled (the baseline a change is
// measured against).
type scale struct {
	reported   bool
	last       float64
	reportedAt time.Time
	based      bool
	base       float64
	baseGen    uint64
}

// step returns the readings a new weight makes (a weight reading past the deadband
// or heartbeat; inventory readings for a settled change after the door closed) and
// the state to keep once they are committed.
func (w scale) step(c *HX711, door *doorState, grams float64, now time.Time) ([]device.Reading, scale) {
	var rs []device.Reading
	next := w
	if !w.reported || math.Abs(grams-w.last) >= c.Deadband || now.Sub(w.reportedAt) >= c.Heartbeat {
		rs = append(rs, device.Reading{Signal: device.SignalWeight, Value: grams, Unit: "g"})
		next.reported, next.last, next.reportedAt = true, grams, now
	}
	if door == nil {
		return rs, next
	}
	known, open, gen, at := door.get()
	switch {
	case !known || open:
		// The baseline stays what the shelf held before the door opened.
	case !w.based && gen == 1:
		// Closed since the source started: no closing to settle from.
		next.based, next.base, next.baseGen = true, grams, gen
	case gen != w.baseGen && now.Sub(at) < c.Settle:
		// Closed, still settling (a hand on the shelf, a swinging bottle).
	case gen != w.baseGen:
		if d := grams - w.base; w.based && math.Abs(d) >= c.MinChange {
			n := 1
			if c.ItemGrams > 0 {
				n = int(math.Round(math.Abs(d) / c.ItemGrams))
				n = min(max(n, 1), max(c.MaxItems, 1))
			}
			v := 1.0
			if d < 0 {
				v = -1
			}
			for range n {
				rs = append(rs, device.Reading{Signal: device.SignalInventory, Value: v, Label: c.Category})
			}
		}
		next.based, next.base, next.baseGen = true, grams, gen
	case !w.based || math.Abs(grams-w.base) < c.MinChange:
		next.based, next.base = true, grams // closed and settled: follow slow drift
	default:
		// A change this large with the door closed belongs to a door event not
		// seen yet (its commit still under way) or missed: it stays to be counted
		// at the next closing.
	}
	return rs, next
}

// commit stamps rs as the sensor's and hands them to sink until they are durable or
// ctx ends (ctx's error). A refusal (store full, shutting down) is counted and the
// same readings — same sequence numbers, so nothing is stored twice — are submitted
// again after back-off.
func (s *Source) commit(ctx context.Context, sn *sensor, sink device.Sink, rs []device.Reading) error {
	c := &sn.cfg
	valid := rs[:0]
	for _, r := range rs {
		r.Device, r.Kind, r.Boot, r.Seq = c.Device, c.Kind, s.o.Boot, sn.seq.Add(1)
		if err := r.Validate(); err != nil {
			sn.faultErr(FaultInvalid, err)
			continue
		}
		valid = append(valid, r)
	}
	if len(valid) == 0 {
		return nil
	}
	var bo *backoff.ExponentialBackOff
	for {
		err := device.Commit(ctx, sink, valid)
		if err == nil {
			sn.mc.committed.Add(float64(len(valid)))
			sn.committed(valid, s.m)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.o.Retryable != nil && !s.o.Retryable(err) {
			sn.mc.rejected.Add(float64(len(valid)))
			sn.log.Error("readings rejected by the store for good: dropped", "err", err, "readings", len(valid))
			return nil
		}
		sn.mc.refused.Add(float64(len(valid)))
		if bo == nil {
			bo = s.backoff()
			sn.log.Warn("readings refused by the store; submitting them again with back-off", "err", err, "readings", len(valid))
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Garbage and failure reasons, the "reason" label of hearth_hub_sensor_faults_total.
const (
	FaultCRC         = "crc"      // a checksum failed (SHT3x word, DS18B20 scratchpad)
	FaultRange       = "range"    // a value the sensor cannot produce
	FaultStuck       = "stuck"    // stuck_after identical raw readings in a row: dropped
	FaultNoData      = "no_data"  // BME280 data registers at their reset value
	FaultBusy        = "busy"     // BME280 conversion did not finish
	FaultPowerOn     = "power_on" // DS18B20 power-on value 85 °C
	FaultFormat      = "format"   // unreadable w1_slave
	FaultNACK        = "nack"     // no acknowledge on the bus (device absent, busy, miswired)
	FaultIO          = "io"       // any other I/O failure
	FaultTimeout     = "timeout"  // HX711: no conversion ready
	FaultUnstable    = "unstable" // HX711: too many discarded reads or outliers
	FaultInvalid     = "invalid"  // a reading hearth refuses (not a finite number): dropped
	FaultSlowClock   = hx711.FaultSlowClock
	FaultNotReleased = hx711.FaultNotReleased
	FaultSaturated   = hx711.FaultSaturated
	FaultOutlier     = hx711.FaultOutlier
	FaultGlitch      = reed.FaultGlitch
	FaultChatter     = reed.FaultChatter
	FaultMissedEdge  = reed.FaultMissed
)

func faultReasons(bus string) []string {
	switch bus {
	case "gpio":
		return []string{FaultGlitch, FaultChatter, FaultMissedEdge}
	case "i2c":
		return []string{FaultCRC, FaultRange, FaultStuck, FaultNoData, FaultBusy, FaultNACK, FaultIO}
	case "onewire":
		return []string{FaultCRC, FaultRange, FaultStuck, FaultPowerOn, FaultFormat, FaultIO}
	}
	return []string{FaultTimeout, FaultSlowClock, FaultNotReleased, FaultSaturated, FaultOutlier, FaultUnstable, FaultStuck, FaultIO}
}

// garbage maps the drivers' errors for bad data (as opposed to failed I/O) to their
// reasons.
var garbage = []struct {
	err    error
	reason string
}{
	{sht3x.ErrCRC, FaultCRC}, {sht3x.ErrRange, FaultRange},
	{bme280.ErrNoData, FaultNoData}, {bme280.ErrBusy, FaultBusy}, {bme280.ErrRange, FaultRange},
	{ds18b20.ErrCRC, FaultCRC}, {ds18b20.ErrFormat, FaultFormat}, {ds18b20.ErrPowerOn, FaultPowerOn}, {ds18b20.ErrRange, FaultRange},
}

// faulty reports whether err is bad data from a sensor that answered.
func faulty(err error) bool { return reasonOf(err) != "" }

func reasonOf(err error) string {
	for _, g := range garbage {
		if errors.Is(err, g.err) {
			return g.reason
		}
	}
	return ""
}

// ioReason tells a NACK (EREMOTEIO; periph's sysfs bus formats it with %v, so the
// text is matched too) from other I/O errors.
func ioReason(err error) string {
	if errors.Is(err, syscall.EREMOTEIO) || strings.Contains(err.Error(), syscall.EREMOTEIO.Error()) {
		return FaultNACK
	}
	return FaultIO
}

// round rounds v to 1/per.
func round(v, per float64) float64 { return math.Round(v*per) / per }
