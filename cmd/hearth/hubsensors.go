package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/internal/config"
)

// hubSources builds the device/periph Source for the hub_sensors section (none when
// it is empty). periph's host is initialised once, when the first sensor opens.
func (a *agent) hubSources() ([]device.Source, error) {
	if len(a.cfg.HubSensors) == 0 {
		return nil, nil
	}
	sensors := make([]periph.Sensor, 0, len(a.cfg.HubSensors))
	for _, c := range a.cfg.HubSensors {
		sensors = append(sensors, hubSensor(c))
	}
	src, err := periph.New(&periph.Options{Sensors: sensors, Host: periph.NewHost(), Retryable: ingest.Retryable,
		Logger: a.log, Registerer: a.reg})
	if err != nil {
		return nil, fmt.Errorf("hub_sensors: %w", err)
	}
	a.hub = src
	return []device.Source{src}, nil
}

// hubSensor maps a validated config entry to the Source's.
func hubSensor(c config.HubSensor) periph.Sensor {
	s := periph.Sensor{Name: c.Name, Device: c.Device, Kind: device.Kind(c.Kind)}
	switch {
	case c.GPIO != nil:
		g := c.GPIO
		s.GPIO = &periph.GPIO{Pin: g.Pin, Signal: device.Signal(g.Signal), Pull: config.GPIOPulls[g.Pull], Edge: config.GPIOEdges[g.Edge],
			Debounce: g.Debounce.D(), ActiveLow: g.ActiveLow, Recheck: g.Recheck.D()}
	case c.I2C != nil:
		i := c.I2C
		s.I2C = &periph.I2C{Bus: i.Bus, Addr: i.I2CAddress(), Driver: i.Driver, Period: i.Period.D(), StuckAfter: i.StuckAfter}
	case c.OneWire != nil:
		w := c.OneWire
		s.OneWire = &periph.OneWire{Path: w.Path, Period: w.Period.D(), StuckAfter: w.StuckAfter}
	case c.HX711 != nil:
		h := c.HX711
		s.HX711 = &periph.HX711{Clock: h.Clock, Data: h.Data, Gain: h.Gain, Offset: h.Offset, Scale: h.Scale,
			Period: h.Period.D(), Samples: h.Samples, OutlierGrams: h.OutlierGrams, Retries: h.Retries,
			ReadyTimeout: h.ReadyTimeout.D(), ClockHighLimit: h.ClockHighLimit.D(), Deadband: h.DeadbandGrams,
			Heartbeat: h.Heartbeat.D(), StuckAfter: h.StuckAfter, Door: h.Door, Settle: h.Settle.D(),
			MinChange: h.MinChangeGrams, Category: h.Category, ItemGrams: h.ItemGrams, MaxItems: h.MaxItems}
	}
	return s
}

// hubStatus is the hub sensors' part of `hearth status` (nil without any).
func (a *agent) hubStatus() []periph.SensorStatus {
	if a.hub == nil {
		return nil
	}
	return a.hub.Status()
}

// printHubStatus prints one line per hub sensor.
func printHubStatus(out io.Writer, ss []periph.SensorStatus) {
	if len(ss) == 0 {
		return
	}
	fmt.Fprintln(out, "hub sensors:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range ss {
		line := fmt.Sprintf("  %s\t%s\t%s\t%s\t%d committed", s.Name, s.Bus, s.Device, s.State, s.Committed)
		sigs := slices.Sorted(maps.Keys(s.Last))
		for _, sig := range sigs {
			line += fmt.Sprintf(" · %s %v", sig, s.Last[sig])
		}
		if len(s.Faults) > 0 {
			line += " · faults " + evidence(toFloat(s.Faults))
		}
		if s.Error != "" {
			line += " · " + s.Error
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func toFloat(m map[string]uint64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if v > 0 {
			out[k] = float64(v)
		}
	}
	return out
}

// cmdSensors is `hearth sensors scan`.
func cmdSensors(args []string, out, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "scan" {
		return fmt.Errorf("%w: hearth sensors scan [--json]", errUsage)
	}
	fs := flag.NewFlagSet("sensors scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dev := fs.String("dev", "/dev", "the /dev to look in (for tests and chroots)")
	sys := fs.String("sys", "/sys", "the /sys to look in")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: sensors scan takes no arguments, got %q", errUsage, fs.Args())
	}
	r := periph.Scan(periph.ScanOptions{Dev: *dev, Sys: *sys})
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printScan(out, r)
	if len(r.GPIOChips) == 0 && len(r.I2CBuses) == 0 && len(r.W1Probes) == 0 {
		return errors.New("no GPIO chip, I2C bus or 1-Wire probe found (see docs/hub-sensors.md to enable them)")
	}
	return nil
}

func printScan(out io.Writer, r periph.ScanReport) {
	fmt.Fprintln(out, "GPIO chips:")
	if len(r.GPIOChips) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, c := range r.GPIOChips {
		fmt.Fprintf(out, "  %s  %s  %d lines   (gpio: {pin: GPIO<n>})\n", c.Path, c.Label, c.Lines)
	}
	fmt.Fprintln(out, "I2C buses:")
	if len(r.I2CBuses) == 0 {
		fmt.Fprintln(out, "  none (enable with dtparam=i2c_arm=on, or modprobe i2c-dev)")
	}
	for _, b := range r.I2CBuses {
		fmt.Fprintf(out, "  %s  %s\n", b.Path, b.Name)
		if b.Error != "" {
			fmt.Fprintf(out, "    cannot open: %s\n", b.Error)
			continue
		}
		if len(b.Devices) == 0 {
			fmt.Fprintln(out, "    nothing answers on the common addresses")
		}
		for _, d := range b.Devices {
			hint := ""
			if d.Driver != "" {
				hint = fmt.Sprintf("   i2c: {bus: \"%d\", address: %#x, driver: %s}", b.Number, d.Addr, d.Driver)
			}
			fmt.Fprintf(out, "    %#04x  %s%s\n", d.Addr, d.What, hint)
		}
	}
	fmt.Fprintln(out, "1-Wire probes:")
	if len(r.W1Probes) == 0 {
		fmt.Fprintln(out, "  none (enable with dtoverlay=w1-gpio)")
	}
	for _, p := range r.W1Probes {
		if p.Error != "" {
			fmt.Fprintf(out, "  %s  %s\n", filepath.Base(p.Path), p.Error)
			continue
		}
		fmt.Fprintf(out, "  %s  %.3f °C   onewire: {path: %s}\n", filepath.Base(p.Path), p.Celsius, p.Path)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(out, "note: %s\n", e)
	}
}
