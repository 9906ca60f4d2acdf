package sim_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

// population is several households of one persona, their truth and readings.
type population struct {
	persona sim.Persona
	homes   []home
}

type home struct {
	h    *sim.Household
	days []sim.DayTruth
	rs   []device.Reading
}

const (
	popSize = 8
	popDays = 35
)

func populationOf(t *testing.T, p sim.Persona) population {
	t.Helper()
	pop := population{persona: p}
	for seed := range int64(popSize) {
		h, rs := run(t, sim.Options{Persona: p, Seed: 1000 + seed, Kinds: allKinds}, popDays*day+6*time.Hour)
		days := h.Truth()
		if len(days) != popDays {
			t.Fatalf("%s seed %d: %d days", p, seed, len(days))
		}
		pop.homes = append(pop.homes, home{h, days, rs})
	}
	return pop
}

// mean of f over every (home, day) with keep(day).
func (p population) mean(keep func(sim.DayTruth) bool, f func(sim.DayTruth) float64) float64 {
	var sum, n float64
	for _, h := range p.homes {
		for _, d := range h.days {
			if keep(d) {
				sum += f(d)
				n++
			}
		}
	}
	return sum / n
}

func all(sim.DayTruth) bool      { return true }
func atHome(d sim.DayTruth) bool { return !d.Away }
func weekday(d sim.DayTruth) bool {
	return !d.Away && d.Weekday != time.Saturday && d.Weekday != time.Sunday
}
func weekend(d sim.DayTruth) bool {
	return !d.Away && (d.Weekday == time.Saturday || d.Weekday == time.Sunday)
}
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func minuteOfDay(t time.Time) float64 {
	return float64(t.Hour()*60+t.Minute()) + float64(t.Second())/60
}

// firstMorningActivation returns, per home day, the minute of day of the first
// kitchen activation at or after 04:00, from the readings alone.
func (p population) firstMorningActivations() []float64 {
	var out []float64
	for _, h := range p.homes {
		seen := map[string]bool{}
		for _, t := range activationsAt(h.rs) {
			if t.Hour() < 4 || seen[t.Format(time.DateOnly)] {
				continue
			}
			seen[t.Format(time.DateOnly)] = true
			out = append(out, minuteOfDay(t))
		}
	}
	slices.Sort(out)
	return out
}

func TestPersonaTraits(t *testing.T) {
	pops := map[sim.Persona]population{}
	for _, p := range sim.Personas() {
		pops[p] = populationOf(t, p)
	}
	def := pops[sim.PersonaDefault]

	t.Run("default", func(t *testing.T) {
		bw := def.mean(weekday, func(d sim.DayTruth) float64 { return b2f(d.Breakfast) })
		dn := def.mean(atHome, func(d sim.DayTruth) float64 { return b2f(d.Dinner) })
		wash := def.mean(all, func(d sim.DayTruth) float64 { return float64(d.WasherCycles) }) * 7
		t.Logf("weekday breakfast %.2f, dinner %.2f, washer %.1f/week", bw, dn, wash)
		if bw < 0.65 || dn < 0.7 {
			t.Errorf("breakfast on %.2f of weekdays, dinner on %.2f of days: want most", bw, dn)
		}
		if wash < 2 || wash > 4 {
			t.Errorf("couple washes %.1f times a week, want 2-4", wash)
		}
	})

	t.Run("early riser vs night owl", func(t *testing.T) {
		at := func(p population) float64 {
			return p.mean(func(d sim.DayTruth) bool { return d.Breakfast }, func(d sim.DayTruth) float64 { return minuteOfDay(d.BreakfastAt) })
		}
		er, no := at(pops[sim.PersonaEarlyRiser]), at(pops[sim.PersonaNightOwl])
		t.Logf("mean breakfast: early riser %02.0f:%02.0f, night owl %02.0f:%02.0f", math.Floor(er/60), math.Mod(er, 60), math.Floor(no/60), math.Mod(no, 60))
		if er < 5*60+30 || er > 7*60 || no < 9*60+30 {
			t.Errorf("mean breakfast early riser %.0f min, night owl %.0f min", er, no)
		}
		// From readings alone: the first kitchen activation of the morning.
		e, n := pops[sim.PersonaEarlyRiser].firstMorningActivations(), pops[sim.PersonaNightOwl].firstMorningActivations()
		em, nm := e[len(e)/2], n[len(n)/2]
		t.Logf("median first activation after 04:00: early riser %.0f min, night owl %.0f min", em, nm)
		if em > 7*60 || nm < em+3*60 {
			t.Errorf("median first activation: early riser %.0f min, night owl %.0f min", em, nm)
		}
		var in, cnt float64
		for _, h := range pops[sim.PersonaEarlyRiser].homes {
			for _, d := range h.days {
				if !d.Breakfast {
					continue
				}
				cnt++
				if m := minuteOfDay(d.BreakfastAt); m >= 5*60+30 && m <= 7*60 {
					in++
				}
			}
		}
		if share := in / cnt; share < 0.85 {
			t.Errorf("early riser: %.2f of breakfasts within 05:30-07:00", share)
		}
	})

	t.Run("late night", func(t *testing.T) {
		late := func(p sim.Persona) float64 {
			return pops[p].mean(atHome, func(d sim.DayTruth) float64 { return b2f(d.LateNight) })
		}
		no, df, er := late(sim.PersonaNightOwl), late(sim.PersonaDefault), late(sim.PersonaEarlyRiser)
		t.Logf("late-night nights: night owl %.2f, default %.2f, early riser %.2f", no, df, er)
		if no < 0.7 || df > 0.2 || er > 0.1 {
			t.Errorf("late-night share: night owl %.2f, default %.2f, early riser %.2f", no, df, er)
		}
	})

	t.Run("away", func(t *testing.T) {
		for _, h := range pops[sim.PersonaAway].homes {
			doorDays := map[string]bool{}
			for _, r := range h.rs {
				if r.Signal == device.SignalDoor && r.Value == 1 {
					doorDays[r.DeviceTime.Format(time.DateOnly)] = true
				}
			}
			var quiet, away []int
			for i, d := range h.days {
				if !doorDays[d.Date] {
					quiet = append(quiet, i)
				}
				if d.Away {
					away = append(away, i)
				}
			}
			if len(away) != sim.AwayDays || away[6]-away[0] != 6 {
				t.Errorf("away days %v, want 7 consecutive", away)
			}
			if !slices.Equal(quiet, away) {
				t.Errorf("days without door activity %v, away days %v", quiet, away)
			}
		}
		for _, p := range sim.Personas() {
			if n := pops[p].mean(all, func(d sim.DayTruth) float64 { return b2f(d.Away) }); p != sim.PersonaAway && n != 0 {
				t.Errorf("%s: away on %.2f of days", p, n)
			}
		}
	})

	t.Run("door ajar", func(t *testing.T) {
		share := func(p sim.Persona) float64 {
			var long, all float64
			for _, h := range pops[p].homes {
				for _, d := range h.days {
					long += float64(d.FridgeLongOpenings)
					all += float64(d.FridgeOpenings)
				}
			}
			return long / all
		}
		aj, df := share(sim.PersonaDoorAjar), share(sim.PersonaDefault)
		t.Logf("long-opening share: door_ajar %.3f, default %.3f", aj, df)
		if aj < 0.15 || aj < 2.5*df {
			t.Errorf("long-opening share door_ajar %.3f, default %.3f", aj, df)
		}
	})

	t.Run("weekend cook", func(t *testing.T) {
		wc := pops[sim.PersonaWeekendCook]
		cook := func(d sim.DayTruth) float64 { return d.CookingMinutes }
		hot := func(d sim.DayTruth) float64 { return float64(d.OvenUses + d.StoveUses) }
		dinner := func(d sim.DayTruth) float64 { return b2f(d.Dinner) }
		cwe, cwd := wc.mean(weekend, cook), wc.mean(weekday, cook)
		hwe, hwd := wc.mean(weekend, hot), wc.mean(weekday, hot)
		dwe, dwd := wc.mean(weekend, dinner), wc.mean(weekday, dinner)
		t.Logf("weekend cook: cooking minutes/day weekend %.0f weekday %.0f; oven+stove uses %.2f vs %.2f; dinner %.2f vs %.2f", cwe, cwd, hwe, hwd, dwe, dwd)
		if cwe < 5*cwd || hwe < 4*hwd || dwe < 0.8 || dwd > 0.4 {
			t.Error("weekend cook does not cook mostly on weekends")
		}
		// The default couple cooks on weekdays too.
		if r := def.mean(weekend, cook) / def.mean(weekday, cook); r > 2 {
			t.Errorf("default: weekend/weekday cooking %.2f", r)
		}
	})

	t.Run("family", func(t *testing.T) {
		fam := pops[sim.PersonaFamily]
		open := func(d sim.DayTruth) float64 { return float64(d.FridgeOpenings) }
		wash := func(d sim.DayTruth) float64 { return float64(d.WasherCycles) }
		fo, do := fam.mean(all, open), def.mean(all, open)
		fw := fam.mean(all, wash) * 7
		t.Logf("fridge openings/day: family %.1f, default %.1f; family washer %.1f/week", fo, do, fw)
		if fo < 2*do {
			t.Errorf("family opens the fridge %.1f times a day, default %.1f", fo, do)
		}
		if fw < 6 || fw > 10 {
			t.Errorf("family washes %.1f times a week, want 6-10", fw)
		}
	})

	t.Run("worn fridge", func(t *testing.T) {
		week := func(p population, w int) float64 {
			return p.mean(func(d sim.DayTruth) bool {
				i := slices.IndexFunc(p.homes[0].days, func(x sim.DayTruth) bool { return x.Date == d.Date })
				return i >= 7*w && i < 7*(w+1)
			}, func(d sim.DayTruth) float64 { return d.FridgeEnergyWh })
		}
		wf := pops[sim.PersonaWornFridge]
		w0, w4 := week(wf, 0), week(wf, 4)
		d0, d4 := week(def, 0), week(def, 4)
		t.Logf("fridge Wh/day week 1 → week 5: worn %.0f → %.0f, default %.0f → %.0f", w0, w4, d0, d4)
		if w4 < 1.25*w0 || d4 > 1.1*d0 || d4 < 0.9*d0 {
			t.Error("worn fridge energy does not rise, or default's is not flat")
		}
		// And it rises week after week for each worn fridge.
		for _, h := range wf.homes {
			prev := 0.0
			for w := range popDays / 7 {
				var e float64
				for _, d := range h.days[7*w : 7*w+7] {
					e += d.FridgeEnergyWh
				}
				if e <= prev {
					t.Errorf("worn fridge: week %d energy %.0f Wh after %.0f", w+1, e, prev)
				}
				prev = e
			}
		}
	})

	t.Run("inventory", func(t *testing.T) {
		expiredDays, stocked := 0, 0
		for _, p := range pops {
			for _, h := range p.homes {
				for _, d := range h.days {
					if d.ExpiredItems > 0 {
						expiredDays++
					}
					stocked += d.ItemsStocked
					if d.InventoryItems < 0 || d.InventoryItems > 120 {
						t.Errorf("%s: %d items in the fridge", d.Date, d.InventoryItems)
					}
				}
			}
		}
		t.Logf("%d home days with items past best-before, %d items stocked", expiredDays, stocked)
		if expiredDays < 50 {
			t.Errorf("only %d home days with items past their best-before", expiredDays)
		}
	})
}

// TestTemperatureRisesAfterLongOpenings compares fridge temperature readings taken
// within 10 minutes after a door session of over 2 minutes with all readings.
func TestTemperatureRisesAfterLongOpenings(t *testing.T) {
	_, rs := run(t, sim.Options{Persona: sim.PersonaDoorAjar, Seed: 8}, 21*day)
	var openAt, lastLongEnd time.Time
	var after, all []float64
	for _, r := range rs {
		if r.Kind != device.KindFridge {
			continue
		}
		switch r.Signal {
		case device.SignalDoor:
			if r.Value == 1 {
				openAt = r.DeviceTime
			} else if r.DeviceTime.Sub(openAt) > 2*time.Minute {
				lastLongEnd = r.DeviceTime
			}
		case device.SignalTemperature:
			all = append(all, r.Value)
			if !lastLongEnd.IsZero() && r.DeviceTime.Sub(lastLongEnd) < 10*time.Minute {
				after = append(after, r.Value)
			}
		}
	}
	avg := func(xs []float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	t.Logf("fridge mean %.2f °C over %d readings, %.2f °C in %d readings after long openings", avg(all), len(all), avg(after), len(after))
	if len(after) < 10 || avg(after) < avg(all)+1 {
		t.Error("temperature does not rise after long openings")
	}
	if m := avg(all); m < 3 || m > 6 {
		t.Errorf("mean fridge temperature %.2f °C", m)
	}
}

// TestFilterChanges runs fridges for 14 months: filters are changed every 150-240
// days, and some households are due for a while.
func TestFilterChanges(t *testing.T) {
	dueDays := 0
	for seed := range int64(6) {
		h, rs := run(t, sim.Options{Seed: seed, Kinds: []device.Kind{device.KindFridge}}, 425*day)
		var changes []time.Time
		for _, r := range rs {
			if r.Signal == device.SignalFilter {
				changes = append(changes, r.DeviceTime)
			}
		}
		if len(changes) < 1 || len(changes) > 3 {
			t.Errorf("seed %d: %d filter changes in 14 months", seed, len(changes))
		}
		for i := 1; i < len(changes); i++ {
			if gap := changes[i].Sub(changes[i-1]); gap < 149*day || gap > 242*day {
				t.Errorf("seed %d: filter changes %v apart", seed, gap)
			}
		}
		days := h.Truth()
		for _, d := range days {
			if d.FilterDue {
				dueDays++
			}
			if d.FilterAgeDays < 0 || d.FilterAgeDays > 300 {
				t.Errorf("seed %d %s: filter age %d", seed, d.Date, d.FilterAgeDays)
			}
		}
		checkDayFacts(t, h, days, rs, time.UTC)
	}
	if dueDays == 0 {
		t.Error("no household ever had its filter due")
	}
}

// TestVolume measures readings per device per day for the busiest persona with every
// appliance, and bounds them so the demo (a week per minute over MQTT) stays light.
func TestVolume(t *testing.T) {
	for _, p := range []sim.Persona{sim.PersonaDefault, sim.PersonaFamily} {
		h, rs := run(t, sim.Options{Persona: p, Seed: 1, Kinds: allKinds}, 28*day)
		per := map[string]float64{}
		for _, r := range rs {
			per[r.Device] += 1.0 / 28
		}
		for _, a := range h.Appliances() {
			n := per[a.ID]
			t.Logf("%s %-16s %6.1f readings/day", p, a.ID, n)
			if n > 500 {
				t.Errorf("%s: %s sends %.0f readings a day", p, a.ID, n)
			}
		}
		if f := per["fridge"]; f < 150 {
			t.Errorf("%s: fridge sends only %.0f readings a day", p, f)
		}
	}
}
