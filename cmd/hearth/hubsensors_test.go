package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/periph/periphtest"
	"github.com/hearth-iot/hearth/internal/config"
)

// copyW1 copies a w1 fixture of device/periph/ds18b20 to dst.
func copyW1(t *testing.T, fixture, dst string) {
	periphtest.CopyW1(t, filepath.Join("../../device/periph/ds18b20/testdata", fixture), dst)
}

// An agent configured with hub sensors, on a machine without the GPIO pin or the
// I2C bus: it runs, stores the 1-Wire probe's readings, and `hearth status` reports
// the missing ones down with the reason while it keeps retrying them.
func TestHubSensorsMissingHardwareAgentAlive(t *testing.T) {
	probe := filepath.Join(t.TempDir(), "28-0316a2797cff")
	copyW1(t, "28-0316a2797cff", probe)
	cfg := testConfig(t)
	door, air, w1 := config.DefaultHubGPIO(), config.DefaultHubI2C(), config.DefaultHubOneWire()
	door.Pin = "GPIO999"
	air.Bus, air.Driver = "77", "sht3x"
	w1.Path, w1.Period = probe, config.Duration(time.Second)
	cfg.HubSensors = []config.HubSensor{
		{Name: "fridge-door", Device: "kitchen-fridge", Kind: "fridge", GPIO: &door},
		{Name: "fridge-air", Device: "kitchen-fridge", Kind: "fridge", I2C: &air},
		{Name: "freezer-probe", Device: "kitchen-freezer", Kind: "freezer", OneWire: &w1},
	}
	a, _ := startAgent(t, cfg)
	waitFor(t, "the probe's reading stored", 30*time.Second, func() bool {
		n := 0
		a.st.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error {
			if r.Device == "kitchen-freezer" && r.Signal == device.SignalTemperature && r.Value == 23.125 {
				n++
			}
			return nil
		})
		return n > 0
	})
	waitFor(t, "the missing sensors reported down", 30*time.Second, func() bool {
		st := a.status().HubSensors
		return len(st) == 3 && st[0].State == periph.StateDown && st[1].State == periph.StateDown && st[2].State == periph.StateUp &&
			st[2].Committed > 0 // the store has it before the source counts it
	})
	out, err := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hub sensors:", "fridge-door", `GPIO pin "GPIO999": not found`, "fridge-air", "/dev/i2c-77",
		"freezer-probe", "up", "temperature 23.125"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if err := a.ready(); err != nil {
		t.Errorf("agent not ready with missing hub sensors: %v", err)
	}
}

// `hearth sensors scan` over fixture /dev and /sys: the 1-Wire probes with the
// config line to use, and a clear word where there is nothing.
func TestSensorsScan(t *testing.T) {
	dev, sys := t.TempDir(), t.TempDir()
	w1 := filepath.Join(sys, "bus", "w1", "devices")
	copyW1(t, "28-0316a2797cff", filepath.Join(w1, "28-0316a2797cff"))
	copyW1(t, "28-0000000000b1", filepath.Join(w1, "28-0000000000b1"))
	code, out, errs := runCLI(t, "sensors", "scan", "--dev", dev, "--sys", sys)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"I2C buses:\n  none", "28-0316a2797cff  23.125 °C   onewire: {path: " + filepath.Join(w1, "28-0316a2797cff") + "}",
		"28-0000000000b1  ", "CRC mismatch"} {
		if !strings.Contains(out, want) {
			t.Errorf("scan output lacks %q:\n%s", want, out)
		}
	}
	code, _, errs = runCLI(t, "sensors", "scan", "--dev", dev, "--sys", t.TempDir())
	if code != 1 || !strings.Contains(errs, "no GPIO chip, I2C bus or 1-Wire probe found") {
		t.Errorf("scan of an empty machine: exit %d, %s", code, errs)
	}
	if code, _, _ := runCLI(t, "sensors"); code != 2 {
		t.Errorf("hearth sensors: exit %d, want 2 (usage)", code)
	}
}
