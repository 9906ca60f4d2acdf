package config

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph/hx711"
	"github.com/hearth-iot/hearth/device/periph/reed"
)

// HubSensor is one sensor wired to the hub's own pins, read by device/periph. Every
// key is documented under `hub_sensors:` in configs/hearth.yaml. Exactly one of gpio,
// i2c, onewire and hx711 is given; its keys left out take the defaults of
// DefaultHubGPIO, DefaultHubI2C, DefaultHubOneWire and DefaultHubHX711.
type HubSensor struct {
	Name    string      `yaml:"name"`
	Device  string      `yaml:"device"`
	Kind    string      `yaml:"kind"`
	GPIO    *HubGPIO    `yaml:"gpio"`
	I2C     *HubI2C     `yaml:"i2c"`
	OneWire *HubOneWire `yaml:"onewire"`
	HX711   *HubHX711   `yaml:"hx711"`
}

// HubGPIO is a reed switch or button on one pin.
type HubGPIO struct {
	Pin       string   `yaml:"pin"`
	Signal    string   `yaml:"signal"` // door | active
	Pull      string   `yaml:"pull"`   // up | down | none
	Edge      string   `yaml:"edge"`   // both | rising | falling
	Debounce  Duration `yaml:"debounce"`
	ActiveLow bool     `yaml:"active_low"`
	Recheck   Duration `yaml:"recheck"`
}

// HubI2C is an SHT3x or BME280 on an I²C bus.
type HubI2C struct {
	Bus        string   `yaml:"bus"`
	Address    uint16   `yaml:"address"` // 0: the driver's usual address
	Driver     string   `yaml:"driver"`  // sht3x | bme280
	Period     Duration `yaml:"period"`
	StuckAfter int      `yaml:"stuck_after"`
}

// HubOneWire is a DS18B20 through the kernel's w1 sysfs directory.
type HubOneWire struct {
	Path       string   `yaml:"path"`
	Period     Duration `yaml:"period"`
	StuckAfter int      `yaml:"stuck_after"`
}

// HubHX711 is a load cell behind an HX711.
type HubHX711 struct {
	Clock          string   `yaml:"clock"`
	Data           string   `yaml:"data"`
	Gain           int      `yaml:"gain"`
	Offset         float64  `yaml:"offset"`
	Scale          float64  `yaml:"scale"`
	Period         Duration `yaml:"period"`
	Samples        int      `yaml:"samples"`
	OutlierGrams   float64  `yaml:"outlier_grams"`
	Retries        int      `yaml:"retries"`
	ReadyTimeout   Duration `yaml:"ready_timeout"`
	ClockHighLimit Duration `yaml:"clock_high_limit"`
	DeadbandGrams  float64  `yaml:"deadband_grams"`
	Heartbeat      Duration `yaml:"heartbeat"`
	StuckAfter     int      `yaml:"stuck_after"`
	Door           string   `yaml:"door"`
	Settle         Duration `yaml:"settle"`
	MinChangeGrams float64  `yaml:"min_change_grams"`
	Category       string   `yaml:"category"`
	ItemGrams      float64  `yaml:"item_grams"`
	MaxItems       int      `yaml:"max_items"`
}

// GPIOPulls and GPIOEdges are the values of hub_sensors[].gpio.pull and .edge, as
// periph knows them.
var (
	GPIOPulls = map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float}
	GPIOEdges = map[string]gpio.Edge{"both": gpio.BothEdges, "rising": gpio.RisingEdge, "falling": gpio.FallingEdge}
)

// nameOf returns the key of names whose value is v ("" if none).
func nameOf[V comparable](names map[string]V, v V) string {
	for k, x := range names {
		if x == v {
			return k
		}
	}
	return ""
}

// DefaultHubGPIO: a door's reed switch, with the driver's own defaults (reed.DefaultOpts:
// the pin's pull-up, both edges, 50ms debounce, a recheck every second).
func DefaultHubGPIO() HubGPIO {
	d := reed.DefaultOpts()
	return HubGPIO{Signal: "door", Pull: nameOf(GPIOPulls, d.Pull), Edge: nameOf(GPIOEdges, d.Edge),
		Debounce: Duration(d.Debounce), Recheck: Duration(d.Recheck)}
}

// DefaultHubI2C: bus 1 (the Raspberry Pi's header pins 3 and 5), every 30s.
func DefaultHubI2C() HubI2C {
	return HubI2C{Bus: "1", Period: Duration(30 * time.Second), StuckAfter: 30}
}

// DefaultHubOneWire: every 60s; a DS18B20's 1/16 °C steps repeat legitimately in a
// steady freezer, so no stuck detection.
func DefaultHubOneWire() HubOneWire { return HubOneWire{Period: Duration(time.Minute)} }

// DefaultHubHX711: a median of 7 every 2s, with the driver's own gain (channel A ×128),
// ready timeout and clock-high limit (hx711.DefaultOpts).
func DefaultHubHX711() HubHX711 {
	d := hx711.DefaultOpts()
	return HubHX711{Gain: d.Gain, Scale: 1, Period: Duration(2 * time.Second), Samples: 7, OutlierGrams: 50, Retries: 5,
		ReadyTimeout: Duration(d.ReadyTimeout), ClockHighLimit: Duration(d.ClockHighLimit), DeadbandGrams: 5,
		Heartbeat: Duration(15 * time.Minute), StuckAfter: 10, Settle: Duration(3 * time.Second), MinChangeGrams: 20, MaxItems: 20}
}

// UnmarshalYAML decodes over DefaultHubGPIO, strictly.
func (g *HubGPIO) UnmarshalYAML(unmarshal func(any) error) error {
	type plain HubGPIO
	v := plain(DefaultHubGPIO())
	err := unmarshal(&v)
	*g = HubGPIO(v)
	return err
}

// UnmarshalYAML decodes over DefaultHubI2C, strictly.
func (c *HubI2C) UnmarshalYAML(unmarshal func(any) error) error {
	type plain HubI2C
	v := plain(DefaultHubI2C())
	err := unmarshal(&v)
	*c = HubI2C(v)
	return err
}

// UnmarshalYAML decodes over DefaultHubOneWire, strictly.
func (w *HubOneWire) UnmarshalYAML(unmarshal func(any) error) error {
	type plain HubOneWire
	v := plain(DefaultHubOneWire())
	err := unmarshal(&v)
	*w = HubOneWire(v)
	return err
}

// UnmarshalYAML decodes over DefaultHubHX711, strictly.
func (h *HubHX711) UnmarshalYAML(unmarshal func(any) error) error {
	type plain HubHX711
	v := plain(DefaultHubHX711())
	err := unmarshal(&v)
	*h = HubHX711(v)
	return err
}

// I2CAddress is the address to use: the configured one, or the driver's usual.
func (c *HubI2C) I2CAddress() uint16 {
	if c.Address != 0 {
		return c.Address
	}
	return i2cAddrs[c.Driver][0]
}

// i2cAddrs are the addresses each driver's chip can answer on, the usual first.
var i2cAddrs = map[string][]uint16{"sht3x": {0x44, 0x45}, "bme280": {0x76, 0x77}}

// validateHubSensors checks the hub_sensors section.
func (c *Config) validateHubSensors(bad func(key, format string, a ...any)) {
	names := map[string]int{}
	pins := map[string]string{}
	doors := map[string]bool{}
	for _, s := range c.HubSensors {
		if s.GPIO != nil && s.GPIO.Signal == "door" {
			doors[s.Name] = true
		}
	}
	usePin := func(key, pin, who string) {
		if pin == "" {
			bad(key, "required: the pin as periph names it (e.g. GPIO17)")
			return
		}
		if other, dup := pins[pin]; dup {
			bad(key, "pin %s is also %s", pin, other)
		}
		pins[pin] = who
	}
	for i, s := range c.HubSensors {
		k := func(field string) string { return fmt.Sprintf("hub_sensors[%d].%s", i, field) }
		if err := device.ValidID(s.Name); err != nil {
			bad(k("name"), "%v", err)
		} else if j, dup := names[s.Name]; dup {
			bad(k("name"), "%q is also hub_sensors[%d]", s.Name, j)
		}
		names[s.Name] = i
		if err := device.ValidID(s.Device); err != nil {
			bad(k("device"), "%v", err)
		}
		if err := device.Kind(s.Kind).Check(); err != nil {
			bad(k("kind"), "%v", err)
		}
		n := 0
		for _, set := range []bool{s.GPIO != nil, s.I2C != nil, s.OneWire != nil, s.HX711 != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad(k("name"), "give exactly one of gpio, i2c, onewire, hx711 (got %d)", n)
			continue
		}
		who := fmt.Sprintf("hub_sensors[%d]", i)
		durIn := func(key string, d Duration, lo, hi time.Duration) {
			if d.D() < lo || d.D() > hi {
				bad(k(key), "%s is not between %s and %s", d.D(), lo, hi)
			}
		}
		intIn := func(key string, v, lo, hi int) {
			if v < lo || v > hi {
				bad(k(key), "%d is not between %d and %d", v, lo, hi)
			}
		}
		switch {
		case s.GPIO != nil:
			g := s.GPIO
			usePin(k("gpio.pin"), g.Pin, who)
			oneOfKey(bad, k("gpio.signal"), g.Signal, "door", "active")
			oneOfKey(bad, k("gpio.pull"), g.Pull, "up", "down", "none")
			oneOfKey(bad, k("gpio.edge"), g.Edge, "both", "rising", "falling")
			durIn("gpio.debounce", g.Debounce, time.Millisecond, time.Second)
			durIn("gpio.recheck", g.Recheck, 10*time.Millisecond, time.Hour)
		case s.I2C != nil:
			b := s.I2C
			if n, err := strconv.Atoi(strings.TrimPrefix(b.Bus, "/dev/i2c-")); err != nil || n < 0 {
				bad(k("i2c.bus"), "%q is not a bus number or /dev/i2c-N", b.Bus)
			}
			if addrs, ok := i2cAddrs[b.Driver]; !ok {
				bad(k("i2c.driver"), "%q is not one of sht3x, bme280", b.Driver)
			} else if b.Address != 0 && b.Address != addrs[0] && b.Address != addrs[1] {
				bad(k("i2c.address"), "%#x: a %s answers on %#x or %#x", b.Address, b.Driver, addrs[0], addrs[1])
			}
			durIn("i2c.period", b.Period, time.Second, 24*time.Hour)
			intIn("i2c.stuck_after", b.StuckAfter, 0, 1000000)
		case s.OneWire != nil:
			w := s.OneWire
			if !filepath.IsAbs(w.Path) || !strings.HasPrefix(filepath.Base(w.Path), "28-") {
				bad(k("onewire.path"), "%q is not a DS18B20's sysfs directory (/sys/bus/w1/devices/28-...)", w.Path)
			}
			durIn("onewire.period", w.Period, time.Second, 24*time.Hour)
			intIn("onewire.stuck_after", w.StuckAfter, 0, 1000000)
		default:
			h := s.HX711
			usePin(k("hx711.clock"), h.Clock, who)
			usePin(k("hx711.data"), h.Data, who)
			if h.Gain != 128 && h.Gain != 64 && h.Gain != 32 {
				bad(k("hx711.gain"), "%d is not 128, 64 or 32", h.Gain)
			}
			if h.Scale == 0 || math.IsNaN(h.Scale) || math.IsInf(h.Scale, 0) || math.IsNaN(h.Offset) || math.IsInf(h.Offset, 0) {
				bad(k("hx711.scale"), "scale %v and offset %v: want finite numbers, scale not 0 (counts per gram)", h.Scale, h.Offset)
			}
			durIn("hx711.period", h.Period, 100*time.Millisecond, time.Hour)
			intIn("hx711.samples", h.Samples, 1, 99)
			intIn("hx711.retries", h.Retries, 0, 100)
			durIn("hx711.ready_timeout", h.ReadyTimeout, 10*time.Millisecond, 10*time.Second)
			durIn("hx711.clock_high_limit", h.ClockHighLimit, time.Microsecond, 60*time.Microsecond)
			durIn("hx711.heartbeat", h.Heartbeat, time.Second, 7*24*time.Hour)
			durIn("hx711.settle", h.Settle, 0, time.Minute)
			intIn("hx711.stuck_after", h.StuckAfter, 0, 1000000)
			intIn("hx711.max_items", h.MaxItems, 1, 100)
			for key, v := range map[string]float64{"hx711.outlier_grams": h.OutlierGrams, "hx711.deadband_grams": h.DeadbandGrams,
				"hx711.item_grams": h.ItemGrams} {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					bad(k(key), "%v: want a finite number, 0 or more", v)
				}
			}
			if !(h.MinChangeGrams > 0) || math.IsInf(h.MinChangeGrams, 0) {
				bad(k("hx711.min_change_grams"), "%v: want a finite number above 0", h.MinChangeGrams)
			}
			if h.Door != "" && !doors[h.Door] {
				bad(k("hx711.door"), "%q is not a hub sensor on gpio with signal door", h.Door)
			}
			if len(h.Category) > device.MaxLabelLen {
				bad(k("hx711.category"), "longer than %d bytes", device.MaxLabelLen)
			}
		}
	}
}

func oneOfKey(bad func(key, format string, a ...any), key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
}
