package periph

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/i2c"

	"github.com/hearth-iot/hearth/device/periph/ds18b20"
	"github.com/hearth-iot/hearth/device/periph/sht3x"
)

// ScanOptions say where Scan looks. Zero fields take the defaults given.
type ScanOptions struct {
	// Dev and Sys are the roots of /dev and /sys (defaults "/dev" and "/sys").
	Dev, Sys string
	// OpenI2C opens bus n (default: Host.I2C of a PeriphHost).
	OpenI2C func(n int) (i2c.BusCloser, error)
	// GPIOChips lists the GPIO chips (default: PeriphHost.GPIOChips).
	GPIOChips func() ([]GPIOChip, error)
}

// GPIOChip is one GPIO controller.
type GPIOChip struct {
	Path  string // /dev/gpiochipN
	Label string // the kernel's label, e.g. pinctrl-bcm2711
	Lines int
}

// I2CBus is one bus and what answered on it.
type I2CBus struct {
	Path    string // /dev/i2c-N
	Number  int
	Name    string // the adapter's name, e.g. bcm2835 (i2c@7e804000)
	Error   string `json:",omitempty"` // the bus could not be opened
	Devices []I2CDevice
}

// I2CDevice is an address that answered.
type I2CDevice struct {
	Addr   uint16
	Driver string // sht3x or bme280 when identified (and hearth can read it)
	What   string // what was recognised
}

// W1Probe is one DS18B20 the kernel found.
type W1Probe struct {
	Path    string
	Celsius float64
	Error   string `json:",omitempty"`
}

// ScanReport is what Scan found.
type ScanReport struct {
	GPIOChips []GPIOChip
	I2CBuses  []I2CBus
	W1Probes  []W1Probe
	Errors    []string `json:",omitempty"` // what could not be looked at
}

// probeAddrs are the addresses Scan tries: the chips hearth reads, and common
// others a user may find on a breakout (each asked with a benign read).
var probeAddrs = []struct {
	addr uint16
	what string
}{
	{0x23, "BH1750 light sensor?"}, {0x38, "AHT10/AHT20?"}, {0x40, "HTU21D/Si7021/INA219?"},
	{0x44, ""}, {0x45, ""}, {0x48, "ADS1115/TMP102?"}, {0x5C, "AM2320/BH1750?"}, {0x68, "DS3231/DS1307 clock?"},
	{0x76, ""}, {0x77, ""},
}

// Scan lists the GPIO chips, the I²C buses with the devices answering on common
// addresses (identifying SHT3x and BME280), and the DS18B20 probes of the w1 bus.
// Problems (a bus it may not open) are reported in the result, never fatal.
func Scan(o ScanOptions) ScanReport {
	if o.Dev == "" {
		o.Dev = "/dev"
	}
	if o.Sys == "" {
		o.Sys = "/sys"
	}
	if o.OpenI2C == nil || o.GPIOChips == nil {
		h := NewHost()
		if o.OpenI2C == nil {
			o.OpenI2C = func(n int) (i2c.BusCloser, error) { return h.I2C(strconv.Itoa(n)) }
		}
		if o.GPIOChips == nil {
			o.GPIOChips = h.GPIOChips
		}
	}
	var r ScanReport
	chips, err := o.GPIOChips()
	if err != nil {
		r.Errors = append(r.Errors, "GPIO chips: "+err.Error())
	}
	r.GPIOChips = chips
	paths, _ := filepath.Glob(filepath.Join(o.Dev, "i2c-*"))
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "i2c-"))
		if err != nil {
			continue
		}
		b := I2CBus{Path: p, Number: n, Name: readTrim(filepath.Join(o.Sys, "class", "i2c-dev", filepath.Base(p), "name"))}
		bus, err := o.OpenI2C(n)
		if err != nil {
			b.Error = err.Error()
		} else {
			b.Devices = probeBus(bus)
			bus.Close()
		}
		r.I2CBuses = append(r.I2CBuses, b)
	}
	slices.SortFunc(r.I2CBuses, func(a, b I2CBus) int { return a.Number - b.Number })
	probes, err := ds18b20.Probes(filepath.Join(o.Sys, "bus", "w1", "devices"))
	if err != nil {
		r.Errors = append(r.Errors, "1-Wire: "+err.Error())
	}
	for _, p := range probes {
		w := W1Probe{Path: p}
		if rd, err := ds18b20.Read(p); err != nil {
			w.Error = err.Error()
		} else {
			w.Celsius = rd.Celsius
		}
		r.W1Probes = append(r.W1Probes, w)
	}
	return r
}

func probeBus(bus i2c.Bus) []I2CDevice {
	var out []I2CDevice
	for _, p := range probeAddrs {
		switch p.addr {
		case 0x44, 0x45:
			if _, err := sht3x.New(bus, p.addr, nil); err == nil {
				out = append(out, I2CDevice{Addr: p.addr, Driver: DriverSHT3x, What: "Sensirion SHT3x (status register CRC ok)"})
			}
		case 0x76, 0x77:
			var id [1]byte
			if bus.Tx(p.addr, []byte{0xD0}, id[:]) == nil {
				d := I2CDevice{Addr: p.addr, What: fmt.Sprintf("chip id %#02x", id[0])}
				switch id[0] {
				case 0x60:
					d.Driver, d.What = DriverBME280, "Bosch BME280"
				case 0x58:
					d.What = "Bosch BMP280 (no humidity; not supported)"
				case 0x61:
					d.What = "Bosch BME680 (not supported)"
				}
				out = append(out, d)
			}
		default:
			var b [1]byte
			if bus.Tx(p.addr, nil, b[:]) == nil {
				out = append(out, I2CDevice{Addr: p.addr, What: "answers: " + p.what})
			}
		}
	}
	return out
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
