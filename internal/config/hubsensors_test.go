package config

import "testing"

// An i2c entry without an address takes its driver's usual one.
func TestHubI2CAddress(t *testing.T) {
	for drv, want := range map[string]uint16{"sht3x": 0x44, "bme280": 0x76} {
		c := DefaultHubI2C()
		c.Driver = drv
		if got := c.I2CAddress(); got != want {
			t.Errorf("%s: address %#x, want %#x", drv, got, want)
		}
		c.Address = want + 1
		if got := c.I2CAddress(); got != want+1 {
			t.Errorf("%s with address %#x: %#x", drv, want+1, got)
		}
	}
}
