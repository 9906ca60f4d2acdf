package periph_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/periph/periphtest"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/internal/poll"
)

const boot = 0xB007

// rig is a hub: a real store behind ingest, a hub-sensor Source on fake hardware.
type rig struct {
	t    *testing.T
	st   *store.Store
	reg  *prometheus.Registry
	host *periphtest.Host
	src  *periph.Source
	stop func()
}

// pulseSleep sleeps for real only below a millisecond: the HX711's Reset holds its
// clock high for 100µs so that the fake chip, which times by the wall clock, powers
// down (a no-op left it mid-word after a discarded read, and the next word came out
// shifted a bit: 3999.1 g for 1990); the waits of milliseconds (conversions, the
// fakes answer at once) are skipped to keep the tests fast.
func pulseSleep(d time.Duration) {
	if d < time.Millisecond {
		time.Sleep(d)
	}
}

// start runs a Source over sensors on host, handing readings to sink (nil: ingest
// in front of the rig's store).
func start(t *testing.T, host *periphtest.Host, sensors []periph.Sensor, wrap func(device.Sink) device.Sink) *rig {
	t.Helper()
	r := &rig{t: t, st: storetest.Open(t, nil), reg: prometheus.NewRegistry(), host: host}
	var err error
	r.src, err = periph.New(&periph.Options{Sensors: sensors, Host: host, Boot: boot, Registerer: r.reg, Retryable: ingest.Retryable,
		RetryMin: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond, FailAfter: 2, Sleep: pulseSleep})
	if err != nil {
		t.Fatal(err)
	}
	var sink device.Sink = ingest.New(r.st, nil)
	if wrap != nil {
		sink = wrap(sink)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.src.Run(ctx, sink) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("Run did not return after its context ended")
			}
			// A batch submitted as Run was stopped may still be committing: let it
			// finish before storetest checks the file (bbolt's Check must not run
			// beside a write).
			poll.Until(t, "the store's queue to drain", time.Minute, func() bool { return r.st.Pending() == 0 })
		})
	}
	t.Cleanup(r.stop)
	return r
}

// stored returns the readings in the store.
func (r *rig) stored() []device.Reading {
	var out []device.Reading
	if _, err := r.st.ReadEvents(0, 0, func(_ uint64, rd *device.Reading) error {
		out = append(out, *rd)
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *rig) count(dev string, sig device.Signal) int {
	n := 0
	for _, rd := range r.stored() {
		if rd.Device == dev && rd.Signal == sig {
			n++
		}
	}
	return n
}

func (r *rig) values(dev string, sig device.Signal) []float64 {
	var v []float64
	for _, rd := range r.stored() {
		if rd.Device == dev && rd.Signal == sig {
			v = append(v, rd.Value)
		}
	}
	return v
}

// metric returns a hearth_hub_sensor_ counter or gauge with the given labels.
func (r *rig) metric(name string, labels ...string) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range m.Label {
					ok = ok || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func (r *rig) status(name string) periph.SensorStatus {
	for _, s := range r.src.Status() {
		if s.Name == name {
			return s
		}
	}
	r.t.Fatalf("no sensor %q in Status", name)
	return periph.SensorStatus{}
}

func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	poll.Until(r.t, what, time.Minute, cond)
}

// checkSeqs asserts every stored reading carries the source's boot and a sequence
// number used once per device.
func (r *rig) checkSeqs() {
	r.t.Helper()
	seen := map[string]map[uint64]bool{}
	for _, rd := range r.stored() {
		if rd.Boot != boot || rd.Seq == 0 {
			r.t.Errorf("%s %s: boot %x seq %d", rd.Device, rd.Signal, rd.Boot, rd.Seq)
		}
		if seen[rd.Device] == nil {
			seen[rd.Device] = map[uint64]bool{}
		}
		if seen[rd.Device][rd.Seq] {
			r.t.Errorf("%s seq %d stored twice", rd.Device, rd.Seq)
		}
		seen[rd.Device][rd.Seq] = true
	}
}

func doorPin() *gpiotest.Pin {
	// A reed switch to ground, pulled up: reads high while the door is open.
	return &gpiotest.Pin{N: "GPIO17", L: gpio.Low, EdgesChan: make(chan gpio.Level, 16)}
}

func doorSensor() periph.Sensor {
	return periph.Sensor{Name: "fridge-door", Device: "kitchen-fridge", Kind: device.KindFridge,
		GPIO: &periph.GPIO{Pin: "GPIO17", Signal: device.SignalDoor, Pull: gpio.Float, Debounce: 5 * time.Millisecond,
			Recheck: 20 * time.Millisecond}}
}

// sht3xConst is a simulated SHT3x that measures 25 °C and 50 %RH, with noise in
// the last bit so it is not stuck.
func sht3xConst() *periphtest.SHT3x {
	var n uint16
	var mu sync.Mutex
	return &periphtest.SHT3x{Next: func() (uint16, uint16, bool) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return 0x6666 + n%2, 0x8000, false
	}}
}

// Every kind of sensor at once, through ingest into a real store: a fridge with a
// reed switch on its door, an SHT3x inside, a DS18B20 in the freezer and a shelf on
// a load cell. Opening the door, taking three 330 g cans and closing it stores the
// door's session and three "take" inventory readings.
func TestSourceThroughStore(t *testing.T) {
	host := periphtest.NewHost()
	door := doorPin()
	host.SetPin("GPIO17", door)
	host.SetBus("1", periphtest.NewBus("i2c-1", map[uint16]periphtest.Device{0x44: sht3xConst()}))
	const offset, scale = 8000, 420.0 // counts at zero load; counts per gram
	grams := func(g float64) int32 { return int32(offset + g*scale) }
	chip := &periphtest.HX711{Samples: []int32{grams(1990)}, Conversion: 100 * time.Microsecond}
	clk, data := chip.Pins()
	host.SetPin("GPIO5", clk)
	host.SetPin("GPIO6", data)
	w1 := filepath.Join(t.TempDir(), "28-0316a2797cff")
	periphtest.CopyW1(t, "ds18b20/testdata/28-0316a2797cff", w1)

	r := start(t, host, []periph.Sensor{
		doorSensor(),
		{Name: "fridge-air", Device: "kitchen-fridge", Kind: device.KindFridge,
			I2C: &periph.I2C{Bus: "1", Addr: 0x44, Driver: periph.DriverSHT3x, Period: 5 * time.Millisecond, StuckAfter: 30}},
		{Name: "freezer-probe", Device: "kitchen-freezer", Kind: device.KindFreezer,
			OneWire: &periph.OneWire{Path: w1, Period: 5 * time.Millisecond}},
		{Name: "drinks-shelf", Device: "kitchen-fridge", Kind: device.KindFridge,
			HX711: &periph.HX711{Clock: "GPIO5", Data: "GPIO6", Gain: 128, Offset: offset, Scale: scale,
				Period: 2 * time.Millisecond, Samples: 3, OutlierGrams: 50, Retries: 3, ReadyTimeout: time.Second,
				// ClockHighLimit left at the driver's 50µs: the fake chip powers down after 60µs
				// of clock high by the wall clock, and a slow host (qemu, a loaded machine)
				// must see those reads discarded and retried, as a Pi would, not stored.
				Deadband: 5, Heartbeat: time.Hour, StuckAfter: 0,
				Door: "fridge-door", Settle: 20 * time.Millisecond, MinChange: 20, Category: "drinks", ItemGrams: 330, MaxItems: 10}},
	}, nil)

	r.waitFor("every sensor's first readings", func() bool {
		return r.count("kitchen-fridge", device.SignalDoor) == 1 && r.count("kitchen-fridge", device.SignalHumidity) >= 3 &&
			r.count("kitchen-freezer", device.SignalTemperature) >= 3 && r.count("kitchen-fridge", device.SignalWeight) == 1
	})
	if v := r.values("kitchen-fridge", device.SignalWeight); v[0] != 1990 {
		t.Errorf("weight %v g, want 1990", v)
	}
	if v := r.values("kitchen-freezer", device.SignalTemperature); v[0] != 23.125 {
		t.Errorf("freezer probe %v °C, want 23.125 (the fixture)", v[0])
	}

	// Two measurements (3 words each) after the door's state was committed: the
	// shelf has its baseline.
	r.waitFor("the door state in the source", func() bool { _, ok := r.status("fridge-door").Last[device.SignalDoor]; return ok })
	words := len(chip.Delivered())
	r.waitFor("the shelf measured with the door closed", func() bool { return len(chip.Delivered()) >= words+6 })
	door.EdgesChan <- gpio.High
	r.waitFor("the door open", func() bool { return len(r.values("kitchen-fridge", device.SignalDoor)) == 2 })
	chip.Load(grams(1990 - 3*330))
	r.waitFor("the lighter shelf reported", func() bool { return r.count("kitchen-fridge", device.SignalWeight) == 2 })
	if n := r.count("kitchen-fridge", device.SignalInventory); n != 0 {
		t.Fatalf("%d inventory readings while the door is open, want none until it closes", n)
	}
	door.EdgesChan <- gpio.Low
	r.waitFor("three takes after the door closed", func() bool { return r.count("kitchen-fridge", device.SignalInventory) == 3 })
	r.stop()

	if got := r.values("kitchen-fridge", device.SignalDoor); len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 0 {
		t.Errorf("door readings %v, want 0 1 0", got)
	}
	for _, rd := range r.stored() {
		if rd.Signal == device.SignalInventory && (rd.Value != -1 || rd.Label != "drinks") {
			t.Errorf("inventory reading %+v, want -1 drinks", rd)
		}
	}
	r.checkSeqs()
	// Ack after commit: what the source counts as committed is what the store holds.
	var committed float64
	for _, s := range r.src.Status() {
		committed += float64(s.Committed)
		if got := r.metric("hearth_hub_sensor_readings_total", "sensor", s.Name, "result", "committed"); got != float64(s.Committed) {
			t.Errorf("%s: metric committed %v, status %d", s.Name, got, s.Committed)
		}
	}
	// Stopping may leave one batch per sensor committed but not yet counted, never
	// the other way round.
	if n := float64(len(r.stored())); n < committed || n > committed+2+1+1+11 { // sht3x, door, w1, weight + max_items
		t.Errorf("store holds %v readings, the source counted %v committed", n, committed)
	}
	if s := r.status("drinks-shelf"); s.Last[device.SignalWeight] != 1000 {
		t.Errorf("shelf status %+v, want last weight 1000 g", s)
	}
}

// gate holds every batch before it reaches the store until released.
type gate struct {
	next    device.Sink
	mu      sync.Mutex
	held    []func()
	refuse  int // refuse this many batches first, as a full store does
	refused int
	reject  int // then reject this many for good, as ingest does an impossible reading
}

func (g *gate) Submit(rs []device.Reading, done func(error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refused < g.refuse {
		g.refused++
		done(fmt.Errorf("store full: %w", store.ErrQuota))
		return
	}
	if g.reject > 0 {
		g.reject--
		done(errors.New("impossible timestamp"))
		return
	}
	cp := append([]device.Reading(nil), rs...)
	g.held = append(g.held, func() { g.next.Submit(cp, done) })
}

func (g *gate) release() {
	g.mu.Lock()
	h := g.held
	g.held = nil
	g.mu.Unlock()
	for _, f := range h {
		f()
	}
}

func (g *gate) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

// A batch the store refuses for good (a reading ingest will never take) is counted
// as rejected and dropped, never submitted again: one bad reading does not stall
// its sensor, and the next ones are stored.
func TestRejectedReadingsDoNotStallTheSensor(t *testing.T) {
	host := periphtest.NewHost()
	door := doorPin()
	host.SetPin("GPIO17", door)
	g := &gate{reject: 1}
	r := start(t, host, []periph.Sensor{doorSensor()}, func(s device.Sink) device.Sink { g.next = s; return g })
	r.waitFor("the first batch rejected", func() bool {
		return r.metric("hearth_hub_sensor_readings_total", "sensor", "fridge-door", "result", "rejected") == 1
	})
	door.EdgesChan <- gpio.High
	r.waitFor("the opening held at the gate", func() bool { return g.pending() == 1 })
	g.release()
	r.waitFor("the opening committed", func() bool { return r.status("fridge-door").Last[device.SignalDoor] == 1 })
	if n := r.metric("hearth_hub_sensor_readings_total", "sensor", "fridge-door", "result", "refused"); n != 0 {
		t.Errorf("a final refusal was submitted again (%v refusals counted)", n)
	}
	r.stop()
	if got := r.values("kitchen-fridge", device.SignalDoor); len(got) != 1 || got[0] != 1 {
		t.Errorf("stored door readings %v, want only the opening (the rejected state dropped)", got)
	}
}

// Readings count only once committed: while the store has not taken a batch, the
// source's counters, status and the door state a load cell reads do not move; a
// batch the store refused is submitted again and stored once.
func TestCountsOnlyAfterCommit(t *testing.T) {
	host := periphtest.NewHost()
	door := doorPin()
	host.SetPin("GPIO17", door)
	g := &gate{refuse: 2}
	r := start(t, host, []periph.Sensor{doorSensor()}, func(s device.Sink) device.Sink { g.next = s; return g })
	r.waitFor("the first batch held at the gate", func() bool { return g.pending() == 1 })
	if g.refused != 2 || r.metric("hearth_hub_sensor_readings_total", "sensor", "fridge-door", "result", "refused") != 2 {
		t.Errorf("refused %d, metric %v; want 2 refusals counted", g.refused,
			r.metric("hearth_hub_sensor_readings_total", "sensor", "fridge-door", "result", "refused"))
	}
	if s := r.status("fridge-door"); s.Committed != 0 || len(s.Last) != 0 || len(r.stored()) != 0 {
		t.Fatalf("before commit: status %+v, %d stored; want nothing counted", s, len(r.stored()))
	}
	g.release()
	r.waitFor("the door state committed", func() bool { return r.status("fridge-door").Committed == 1 })
	door.EdgesChan <- gpio.High
	r.waitFor("the opening held", func() bool { return g.pending() == 1 })
	if s := r.status("fridge-door"); s.Last[device.SignalDoor] != 0 {
		t.Errorf("door reported open before the store committed it: %+v", s)
	}
	g.release()
	r.waitFor("the opening committed", func() bool { return r.status("fridge-door").Last[device.SignalDoor] == 1 })
	r.stop()
	if got := r.values("kitchen-fridge", device.SignalDoor); len(got) != 2 {
		t.Errorf("stored door readings %v, want 0 then 1, each once", got)
	}
	r.checkSeqs()
}

// Bad hardware, all at once, while a door keeps working: a bus that appears late,
// a sensor that NACKs, one with CRC errors, one stuck, a bus that vanishes and comes
// back, a 1-Wire probe that is not there yet. Each is counted; Run survives; the
// door's readings are stored throughout.
func TestBadHardware(t *testing.T) {
	host := periphtest.NewHost()
	door := doorPin()
	host.SetPin("GPIO17", door)
	var mu sync.Mutex
	n := 0
	crcy := &periphtest.SHT3x{Next: func() (uint16, uint16, bool) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return 0x6666 + uint16(n), 0x8000, n%3 == 0
	}}
	stuckDev := &periphtest.SHT3x{Next: func() (uint16, uint16, bool) { return 0x6666, 0x8000, false }}
	bus1 := periphtest.NewBus("i2c-1", map[uint16]periphtest.Device{0x44: crcy, 0x45: stuckDev})
	host.SetBus("1", bus1)
	vanishing := periphtest.NewBus("i2c-3", map[uint16]periphtest.Device{0x44: sht3xConst()})
	host.SetBus("3", vanishing)
	w1 := filepath.Join(t.TempDir(), "28-0000000000a2")

	i2cSensor := func(name, dev, bus string, addr uint16, stuck int) periph.Sensor {
		return periph.Sensor{Name: name, Device: dev, Kind: device.KindSensor,
			I2C: &periph.I2C{Bus: bus, Addr: addr, Driver: periph.DriverSHT3x, Period: 2 * time.Millisecond, StuckAfter: stuck}}
	}
	r := start(t, host, []periph.Sensor{
		doorSensor(),
		i2cSensor("late-bus", "pantry", "9", 0x44, 0),
		i2cSensor("absent", "cellar", "1", 0x46, 0),
		i2cSensor("noisy", "garage", "1", 0x44, 0),
		i2cSensor("frozen", "attic", "1", 0x45, 3),
		i2cSensor("vanishing", "shed", "3", 0x44, 0),
		{Name: "late-probe", Device: "kitchen-freezer", Kind: device.KindFreezer,
			OneWire: &periph.OneWire{Path: w1, Period: 2 * time.Millisecond}},
	}, nil)

	r.waitFor("missing and absent sensors reported down, retried", func() bool {
		return r.metric("hearth_hub_sensor_opens_total", "sensor", "late-bus", "result", "failed") >= 2 &&
			r.metric("hearth_hub_sensor_opens_total", "sensor", "absent", "result", "failed") >= 2 &&
			r.metric("hearth_hub_sensor_opens_total", "sensor", "late-probe", "result", "failed") >= 2
	})
	if s := r.status("absent"); s.State != periph.StateDown || !strings.Contains(s.Error, "remote I/O error") {
		t.Errorf("absent sensor status %+v, want down with the NACK", s)
	}
	if s := r.status("late-bus"); s.State != periph.StateDown || !strings.Contains(s.Error, `"9" not found`) {
		t.Errorf("late bus status %+v, want down, bus not found", s)
	}
	r.waitFor("CRC errors counted, good readings stored", func() bool {
		return r.metric("hearth_hub_sensor_faults_total", "sensor", "noisy", "reason", "crc") >= 3 && r.count("garage", device.SignalTemperature) >= 6
	})
	r.waitFor("the frozen sensor found stuck", func() bool {
		return r.status("frozen").State == periph.StateStuck && r.metric("hearth_hub_sensor_faults_total", "sensor", "frozen", "reason", "stuck") >= 3
	})
	if n := r.count("attic", device.SignalTemperature); n != 2 {
		t.Errorf("frozen sensor: %d readings stored, want the 2 before stuck_after (3)", n)
	}

	// The door works throughout.
	door.EdgesChan <- gpio.High
	r.waitFor("the door opening stored", func() bool { return len(r.values("kitchen-fridge", device.SignalDoor)) == 2 })

	// A bus vanishes: I/O errors, the sensor is lost, reopening fails while it is gone.
	r.waitFor("the vanishing sensor read", func() bool { return r.count("shed", device.SignalTemperature) >= 2 })
	vanishing.SetGone(true)
	r.waitFor("the gone bus counted lost and down", func() bool {
		return r.metric("hearth_hub_sensor_lost_total", "sensor", "vanishing") == 1 &&
			r.metric("hearth_hub_sensor_faults_total", "sensor", "vanishing", "reason", "io") >= 2 &&
			r.status("vanishing").State == periph.StateDown
	})
	before := r.count("shed", device.SignalTemperature)
	vanishing.SetGone(false)
	host.SetBus("9", periphtest.NewBus("i2c-9", map[uint16]periphtest.Device{0x44: sht3xConst()}))
	periphtest.CopyW1(t, "ds18b20/testdata/28-0000000000a2", w1)
	r.waitFor("the bus back, the late bus and probe found", func() bool {
		return r.count("shed", device.SignalTemperature) > before && r.count("pantry", device.SignalTemperature) >= 1 &&
			r.count("kitchen-freezer", device.SignalTemperature) >= 1
	})
	for _, name := range []string{"vanishing", "late-bus", "late-probe", "noisy", "fridge-door"} {
		if s := r.status(name); s.State != periph.StateUp || r.metric("hearth_hub_sensor_up", "sensor", name) != 1 {
			t.Errorf("%s: %+v, up %v; want up", name, s, r.metric("hearth_hub_sensor_up", "sensor", name))
		}
	}
	r.stop()
	r.checkSeqs()
	if v := r.values("kitchen-freezer", device.SignalTemperature); v[0] != -10.125 {
		t.Errorf("late probe read %v, want -10.125 °C", v[0])
	}
	for _, s := range r.src.Status() {
		if s.State != periph.StateStopped {
			t.Errorf("%s: %s after Run returned, want stopped", s.Name, s.State)
		}
	}
}

// The configuration is checked: a load cell's door must be a GPIO sensor.
func TestNewChecks(t *testing.T) {
	for _, c := range []struct {
		s    []periph.Sensor
		want string
	}{
		{[]periph.Sensor{{Name: "x", Device: "d", Kind: device.KindFridge}}, "no bus"},
		{[]periph.Sensor{doorSensor(), doorSensor()}, "name used twice"},
		{[]periph.Sensor{{Name: "x", Device: "bad id", Kind: device.KindFridge, GPIO: &periph.GPIO{}}}, "device"},
		{[]periph.Sensor{{Name: "shelf", Device: "d", Kind: device.KindFridge, HX711: &periph.HX711{Door: "nope", Period: time.Second}}}, `door "nope" is not a gpio sensor`},
		// A polling period of 0 would panic in the sensor's goroutine (time.NewTicker).
		{[]periph.Sensor{{Name: "air", Device: "d", Kind: device.KindFridge, I2C: &periph.I2C{Bus: "1", Addr: 0x44, Driver: periph.DriverSHT3x}}}, `hub sensor "air": i2c polling period 0s: must be positive`},
		{[]periph.Sensor{{Name: "probe", Device: "d", Kind: device.KindFridge, OneWire: &periph.OneWire{Path: "/sys/bus/w1/devices/28-1", Period: -time.Second}}}, "polling period -1s: must be positive"},
		{[]periph.Sensor{{Name: "shelf", Device: "d", Kind: device.KindFridge, HX711: &periph.HX711{}}}, "polling period 0s: must be positive"},
	} {
		if _, err := periph.New(&periph.Options{Sensors: c.s}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}
