package rollup

import (
	"math"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Power integrates as a step function split at local hours and dates; switch-ons are
// kept at minute resolution; water counts from the last filter change.
func TestEnergyStartsAndWater(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	a := NewAggregator(loc)
	t0 := time.Date(2026, 3, 2, 23, 30, 0, 0, loc)
	add := func(at time.Time, sig device.Signal, v float64) {
		a.Add(&device.Reading{Device: "f", Kind: device.KindFridge, Signal: sig, Value: v, DeviceTime: at})
	}
	add(t0, device.SignalPower, 100)                   // 100 W from 23:30 ...
	add(t0.Add(time.Hour), device.SignalPower, 0)      // ... to 00:30: 50 Wh on each date
	add(t0.Add(-90*time.Minute), device.SignalDoor, 1) // 22:00
	add(t0.Add(-89*time.Minute), device.SignalDoor, 0)
	add(t0.Add(-47*time.Minute), device.SignalDoor, 1) // 22:43
	add(t0, device.SignalWater, 2)
	add(t0.Add(time.Minute), device.SignalFilter, 1)
	add(t0.Add(2*time.Minute), device.SignalWater, 0.5)
	days, states := a.Dirty()
	d1 := days[DayKey{Date: "2026-03-02", Device: "f", Signal: device.SignalPower}]
	d2 := days[DayKey{Date: "2026-03-03", Device: "f", Signal: device.SignalPower}]
	if d1 == nil || d2 == nil || math.Abs(d1.EnergyWh-50) > 1e-9 || math.Abs(d2.EnergyWh-50) > 1e-9 || math.Abs(d1.HourWh[23]-50) > 1e-9 || d2.PowerSec != 1800 {
		t.Fatalf("energy: %+v / %+v", d1, d2)
	}
	door := days[DayKey{Date: "2026-03-02", Device: "f", Signal: device.SignalDoor}]
	if len(door.Starts) != 2 || door.Starts[0] != 22*60 || door.Starts[1] != 22*60+43 {
		t.Errorf("starts %v", door.Starts)
	}
	w := states[StateKey{"f", device.SignalWater}]
	if w == nil || w.SinceLitres != 0.5 || !w.FilterSeen || !w.SinceAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("water state %+v", w)
	}
}
