package sim_test

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

// ref is a naive consumer of readings that computes the countable part of DayTruth
// straight from the package documentation's definitions. It shares no code with the
// generator.
type ref struct {
	loc  *time.Location
	now  time.Time
	days map[string]*sim.DayTruth

	open      map[string]time.Time // door session / use / cycle start per device
	lastPower map[string]device.Reading
	inv       []device.Reading // inventory readings in order
	problems  []string
}

func dateOf(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

func (r *ref) day(date string) *sim.DayTruth {
	d := r.days[date]
	if d == nil {
		d = &sim.DayTruth{Date: date}
		r.days[date] = d
	}
	return d
}

func (r *ref) problem(format string, args ...any) {
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// reference consumes rs, the readings emitted up to now.
func reference(rs []device.Reading, loc *time.Location, now time.Time) *ref {
	r := &ref{loc: loc, now: now, days: map[string]*sim.DayTruth{},
		open: map[string]time.Time{}, lastPower: map[string]device.Reading{}}
	for _, x := range rs {
		r.add(x)
	}
	// The fridge's step function runs on until now.
	for _, p := range r.lastPower {
		if p.Kind == device.KindFridge {
			r.integrate(p, now)
		}
	}
	return r
}

func (r *ref) add(x device.Reading) {
	t := x.DeviceTime
	date := dateOf(t, r.loc)
	kitchenActivation := x.Kind.Kitchen() && (x.Signal == device.SignalDoor || x.Signal == device.SignalActive) && x.Value == 1
	if kitchenActivation {
		r.day(date).KitchenActivations++
		lt := t.In(r.loc)
		var night string
		switch {
		case lt.Hour() >= 22:
			night = date
		case lt.Hour() < 4:
			y, m, d := lt.Date()
			night = time.Date(y, m, d-1, 12, 0, 0, 0, r.loc).Format(time.DateOnly)
		}
		if night != "" {
			r.day(night).LateNightActivations++
			r.day(night).LateNight = true
		}
	}
	switch x.Signal {
	case device.SignalDoor, device.SignalActive, device.SignalCycle:
		if x.Value == 1 {
			if _, busy := r.open[x.Device]; busy {
				r.problem("%s: %s=1 at %v while already on", x.Device, x.Signal, t)
			}
			r.open[x.Device] = t
			return
		}
		start, ok := r.open[x.Device]
		if !ok {
			r.problem("%s: %s=0 at %v without a start", x.Device, x.Signal, t)
			return
		}
		delete(r.open, x.Device)
		d := r.day(dateOf(start, r.loc))
		dur := t.Sub(start)
		switch x.Kind {
		case device.KindFridge:
			d.FridgeOpenings++
			d.FridgeOpenSeconds += dur.Seconds()
			if dur > sim.LongOpening {
				d.FridgeLongOpenings++
			}
		case device.KindFreezer:
			d.FreezerOpenings++
		case device.KindOven:
			d.OvenUses++
			d.CookingMinutes += dur.Minutes()
		case device.KindStove:
			d.StoveUses++
			d.CookingMinutes += dur.Minutes()
		case device.KindMicrowave:
			d.MicrowaveUses++
		case device.KindKettle:
			d.KettleUses++
		case device.KindToaster:
			d.ToasterUses++
		case device.KindKitchenCabinet:
			d.CabinetOpenings++
		case device.KindWasher:
			d.WasherCycles++
			d.WasherEnergyWh += x.Aux
		case device.KindDishwasher:
			d.DishwasherCycles++
		}
	case device.SignalWater:
		d := r.day(date)
		d.WaterLitres += x.Value
		d.WaterEvents++
	case device.SignalFilter:
		r.day(date).FilterChanged = true
	case device.SignalInventory:
		d := r.day(date)
		if x.Value > 0 {
			d.ItemsStocked++
		} else {
			d.ItemsTaken++
		}
		r.inv = append(r.inv, x)
	case device.SignalPower:
		if x.Kind == device.KindFridge {
			if p, ok := r.lastPower[x.Device]; ok {
				r.integrate(p, t)
			}
			r.lastPower[x.Device] = x
		}
	}
}

// integrate adds power reading p's value over [p.DeviceTime, to) to the days it spans.
func (r *ref) integrate(p device.Reading, to time.Time) {
	for from := p.DeviceTime; from.Before(to); {
		y, m, d := from.In(r.loc).Date()
		mid := time.Date(y, m, d+1, 0, 0, 0, 0, r.loc)
		end := to
		if mid.Before(end) {
			end = mid
		}
		day := r.day(from.In(r.loc).Format(time.DateOnly))
		day.FridgeEnergyWh += p.Value * end.Sub(from).Hours()
		if p.Value >= sim.CompressorOnWatts {
			day.FridgeCompressorOnSeconds += end.Sub(from).Seconds()
		}
		from = end
	}
}

// inventoryAt returns the fridge content (items, expired) at the end of date, and
// reports takes of items never stocked.
func (r *ref) inventoryAt(date string) (items, expired int) {
	d, err := time.ParseInLocation(time.DateOnly, date, r.loc)
	if err != nil {
		panic(err)
	}
	end := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, r.loc)
	dayNum := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
	type key struct {
		label string
		bb    int64
	}
	stock := map[key]int{}
	for _, x := range r.inv {
		if !x.DeviceTime.Before(end) {
			break
		}
		k := key{x.Label, x.Aux}
		if x.Value > 0 {
			stock[k]++
		} else if stock[k] == 0 {
			r.problem("inventory: took %v never stocked at %v", k, x.DeviceTime)
		} else {
			stock[k]--
		}
	}
	for k, n := range stock {
		items += n
		if k.bb < dayNum {
			expired += n
		}
	}
	return items, expired
}

// compareDay returns the differences between the generator's truth and the
// reference's for one day.
func (r *ref) compareDay(want sim.DayTruth) []string {
	got := r.days[want.Date]
	if got == nil {
		got = &sim.DayTruth{Date: want.Date}
	}
	var diffs []string
	ints := []struct {
		name      string
		truth, rf int64
	}{
		{"KitchenActivations", int64(want.KitchenActivations), int64(got.KitchenActivations)},
		{"LateNightActivations", int64(want.LateNightActivations), int64(got.LateNightActivations)},
		{"FridgeOpenings", int64(want.FridgeOpenings), int64(got.FridgeOpenings)},
		{"FridgeLongOpenings", int64(want.FridgeLongOpenings), int64(got.FridgeLongOpenings)},
		{"FreezerOpenings", int64(want.FreezerOpenings), int64(got.FreezerOpenings)},
		{"OvenUses", int64(want.OvenUses), int64(got.OvenUses)},
		{"StoveUses", int64(want.StoveUses), int64(got.StoveUses)},
		{"MicrowaveUses", int64(want.MicrowaveUses), int64(got.MicrowaveUses)},
		{"KettleUses", int64(want.KettleUses), int64(got.KettleUses)},
		{"ToasterUses", int64(want.ToasterUses), int64(got.ToasterUses)},
		{"CabinetOpenings", int64(want.CabinetOpenings), int64(got.CabinetOpenings)},
		{"WasherCycles", int64(want.WasherCycles), int64(got.WasherCycles)},
		{"WasherEnergyWh", want.WasherEnergyWh, got.WasherEnergyWh},
		{"DishwasherCycles", int64(want.DishwasherCycles), int64(got.DishwasherCycles)},
		{"WaterEvents", int64(want.WaterEvents), int64(got.WaterEvents)},
		{"ItemsStocked", int64(want.ItemsStocked), int64(got.ItemsStocked)},
		{"ItemsTaken", int64(want.ItemsTaken), int64(got.ItemsTaken)},
	}
	for _, c := range ints {
		if c.truth != c.rf {
			diffs = append(diffs, fmt.Sprintf("%s %s: truth %d, readings %d", want.Date, c.name, c.truth, c.rf))
		}
	}
	floats := []struct {
		name      string
		truth, rf float64
	}{
		{"FridgeOpenSeconds", want.FridgeOpenSeconds, got.FridgeOpenSeconds},
		{"CookingMinutes", want.CookingMinutes, got.CookingMinutes},
		{"WaterLitres", want.WaterLitres, got.WaterLitres},
		{"FridgeEnergyWh", want.FridgeEnergyWh, got.FridgeEnergyWh},
		{"FridgeCompressorOnSeconds", want.FridgeCompressorOnSeconds, got.FridgeCompressorOnSeconds},
	}
	for _, c := range floats {
		if math.Abs(c.truth-c.rf) > 1e-6*max(1, math.Abs(c.rf)) {
			diffs = append(diffs, fmt.Sprintf("%s %s: truth %v, readings %v", want.Date, c.name, c.truth, c.rf))
		}
	}
	if want.LateNight != got.LateNight {
		diffs = append(diffs, fmt.Sprintf("%s LateNight: truth %v, readings %v", want.Date, want.LateNight, got.LateNight))
	}
	if want.FilterChanged != got.FilterChanged {
		diffs = append(diffs, fmt.Sprintf("%s FilterChanged: truth %v, readings %v", want.Date, want.FilterChanged, got.FilterChanged))
	}
	items, expired := r.inventoryAt(want.Date)
	if items != want.InventoryItems || expired != want.ExpiredItems {
		diffs = append(diffs, fmt.Sprintf("%s inventory: truth %d items %d expired, readings %d, %d",
			want.Date, want.InventoryItems, want.ExpiredItems, items, expired))
	}
	return diffs
}

// activationsAt returns the times of every kitchen activation, sorted.
func activationsAt(rs []device.Reading) []time.Time {
	var ts []time.Time
	for _, x := range rs {
		if x.Kind.Kitchen() && (x.Signal == device.SignalDoor || x.Signal == device.SignalActive) && x.Value == 1 {
			ts = append(ts, x.DeviceTime)
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}
