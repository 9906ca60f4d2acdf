package periph_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"periph.io/x/conn/v3/i2c"

	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/periph/periphtest"
)

// Scan over a fixture /dev and /sys: two I²C buses (one may not be opened), an
// SHT3x, a BME280, a BMP280 and an unknown device, and the w1 fixtures.
func TestScan(t *testing.T) {
	dev, sys := t.TempDir(), t.TempDir()
	for _, n := range []string{"i2c-1", "i2c-3"} {
		if err := os.WriteFile(filepath.Join(dev, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(sys, "class", "i2c-dev", "i2c-1")
	os.MkdirAll(name, 0o755)
	os.WriteFile(filepath.Join(name, "name"), []byte("bcm2835 (i2c@7e804000)\n"), 0o644)
	w1 := filepath.Join(sys, "bus", "w1", "devices")
	periphtest.CopyW1(t, "ds18b20/testdata/28-0316a2797cff", filepath.Join(w1, "28-0316a2797cff"))
	periphtest.CopyW1(t, "ds18b20/testdata/28-0000000000b4", filepath.Join(w1, "28-0000000000b4"))
	os.MkdirAll(filepath.Join(w1, "w1_bus_master1"), 0o755)

	bus1 := periphtest.NewBus("i2c-1", map[uint16]periphtest.Device{
		0x44: sht3xConst(), 0x76: periphtest.ChipID(0x60), 0x77: periphtest.ChipID(0x58),
		0x38: periphtest.DeviceFunc(func(w, r []byte) error { return nil }),
	})
	r := periph.Scan(periph.ScanOptions{Dev: dev, Sys: sys,
		OpenI2C: func(n int) (i2c.BusCloser, error) {
			if n == 1 {
				return bus1.Open(), nil
			}
			return nil, errors.New("permission denied: i2c-" + strconv.Itoa(n))
		},
		GPIOChips: func() ([]periph.GPIOChip, error) {
			return []periph.GPIOChip{{Path: "/dev/gpiochip0", Label: "pinctrl-bcm2711", Lines: 58}}, nil
		}})
	if len(r.GPIOChips) != 1 || len(r.I2CBuses) != 2 || len(r.W1Probes) != 2 {
		t.Fatalf("report %+v", r)
	}
	b := r.I2CBuses[0]
	if b.Number != 1 || b.Name != "bcm2835 (i2c@7e804000)" || b.Error != "" {
		t.Errorf("bus 1: %+v", b)
	}
	want := map[uint16]string{0x38: "", 0x44: periph.DriverSHT3x, 0x76: periph.DriverBME280, 0x77: ""}
	if len(b.Devices) != len(want) {
		t.Errorf("bus 1 devices %+v, want %v", b.Devices, want)
	}
	for _, d := range b.Devices {
		if drv, ok := want[d.Addr]; !ok || drv != d.Driver {
			t.Errorf("device %+v, want driver %q", d, drv)
		}
	}
	if r.I2CBuses[1].Error == "" {
		t.Errorf("bus 3 opened, want the permission error reported")
	}
	if p := r.W1Probes; p[1].Celsius != 23.125 || p[0].Error == "" {
		t.Errorf("w1 probes %+v: want the power-on probe's error and 23.125 °C", p)
	}
}
