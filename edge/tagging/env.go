package tagging

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
)

// window is the data one evaluation sees: the rollup days of the rule's window.
type window struct {
	days   []*store.Day
	states map[rollup.StateKey]rollup.State
	now    time.Time
	loc    *time.Location
	kinds  map[device.Kind]bool
	peak   [2]int // configured peak hours [from, to)

	meals     *MealReport // computed once per window (meals.go)
	mealsUsed []string    // the meals the rule asked about, for its evidence
}

func checkKind(k string) (device.Kind, error) {
	if err := device.Kind(k).Check(); err != nil {
		return "", err
	}
	return device.Kind(k), nil
}

func checkSignal(s string) (device.Signal, error) {
	if !device.Signal(s).Valid() {
		return "", fmt.Errorf("unknown signal %q", s)
	}
	return device.Signal(s), nil
}

func checkHours(from, to int) error {
	if from < 0 || from > 23 || to < 0 || to > 24 {
		return fmt.Errorf("hours %d..%d out of range 0..24", from, to)
	}
	return nil
}

// each calls fn for every day of kind k and signal s in the window.
func (w *window) each(k, s string, fn func(d *store.Day)) error {
	kind, err := checkKind(k)
	if err != nil {
		return err
	}
	sig, err := checkSignal(s)
	if err != nil {
		return err
	}
	for _, d := range w.days {
		if d.Kind == kind && d.Signal == sig {
			fn(d)
		}
	}
	return nil
}

// dataDays counts distinct dates with any rollup from the given kinds (all when empty).
func (w *window) dataDays(kinds ...device.Kind) int {
	seen := map[string]bool{}
	for _, d := range w.days {
		if len(kinds) == 0 || containsKind(kinds, d.Kind) {
			seen[d.Date] = true
		}
	}
	return len(seen)
}

// hasSignal reports whether the window holds any of signals from kinds.
func (w *window) hasSignal(kinds []device.Kind, signals []device.Signal) bool {
	for _, d := range w.days {
		if containsKind(kinds, d.Kind) && slices.Contains(signals, d.Signal) {
			return true
		}
	}
	return false
}

func containsKind(ks []device.Kind, k device.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// kitchenByDate sums kitchen activity (activations of binary signals and power
// cycles of kitchen appliances) within local hours [from, to) per date.
func (w *window) kitchenByDate(from, to int) map[string]int {
	out := map[string]int{}
	for _, d := range w.days {
		if !d.Kind.Kitchen() {
			continue
		}
		// Door and active signals only: a programme cycle or a compressor run is not
		// someone in the kitchen.
		if d.Signal != device.SignalDoor && d.Signal != device.SignalActive {
			continue
		}
		if n := d.TotalActivations(from, to); n > 0 {
			out[d.Date] += n
		}
	}
	return out
}

func inHours(h, from, to int) bool {
	if from <= to {
		return h >= from && h < to
	}
	return h >= from || h < to
}

// cycles counts appliance cycles of kind k, on the weekdays accepted by keep: the
// starts of an explicit cycle signal where a device reports one, else cycles
// detected from its power draw (never both for one device).
func (w *window) cycles(k string, keep func(time.Weekday) bool) (float64, error) {
	kind, err := checkKind(k)
	if err != nil {
		return 0, err
	}
	explicit := map[string]bool{}
	for _, d := range w.days {
		if d.Kind == kind && d.Signal == device.SignalCycle {
			explicit[d.Device] = true
		}
	}
	n := 0
	for _, d := range w.days {
		if d.Kind != kind || !keep(d.Weekday) {
			continue
		}
		switch {
		case d.Signal == device.SignalCycle:
			n += d.TotalActivations(0, 24)
		case d.Signal == device.SignalPower && !explicit[d.Device]:
			n += int(d.Cycles.Count)
		}
	}
	return float64(n), nil
}

func weekend(wd time.Weekday) bool { return wd == time.Saturday || wd == time.Sunday }

// dayType selects dates by weekday: "weekend" (Saturday, Sunday), "weekday", "all".
func dayType(s string) (func(time.Weekday) bool, error) {
	switch s {
	case "weekend":
		return weekend, nil
	case "weekday":
		return func(wd time.Weekday) bool { return !weekend(wd) }, nil
	case "all":
		return func(time.Weekday) bool { return true }, nil
	}
	return nil, fmt.Errorf("unknown day type %q (have weekend, weekday, all)", s)
}

// dayCount counts the dates with data from any device whose weekday keep accepts.
func (w *window) dayCount(keep func(time.Weekday) bool) float64 {
	seen := map[string]bool{}
	for _, d := range w.days {
		if keep(d.Weekday) {
			seen[d.Date] = true
		}
	}
	return float64(len(seen))
}

// cookingMinutes sums the use of oven, stove and microwave (active sessions) on the
// dates keep accepts, in minutes.
func (w *window) cookingMinutes(keep func(time.Weekday) bool) float64 {
	sec := 0.0
	for _, d := range w.days {
		if d.Signal == device.SignalActive && keep(d.Weekday) &&
			(d.Kind == device.KindOven || d.Kind == device.KindStove || d.Kind == device.KindMicrowave) {
			sec += d.Sessions.TotalSec
		}
	}
	return sec / 60
}

// completeEnergyDays returns the daily energy (Wh) of kind's power signals, by date,
// for dates whose power readings cover at least 20 h and that are not the data
// clock's own (unfinished) date, in date order.
func (w *window) completeEnergyDays(kind device.Kind) []float64 {
	today := w.now.In(w.loc).Format(time.DateOnly)
	per := map[string]float64{}
	cover := map[string]float64{}
	for _, d := range w.days {
		if d.Kind == kind && d.Signal == device.SignalPower && d.Date != today {
			per[d.Date] += d.EnergyWh
			cover[d.Date] = math.Max(cover[d.Date], d.PowerSec)
		}
	}
	dates := make([]string, 0, len(per))
	for date := range per {
		if cover[date] >= 20*3600 {
			dates = append(dates, date)
		}
	}
	sort.Strings(dates)
	out := make([]float64, len(dates))
	for i, date := range dates {
		out[i] = per[date]
	}
	return out
}

// energyTrend is the least-squares slope of the daily energy of kind over the
// complete days, per week, relative to their mean (0.1: +10% a week). Fewer than
// 7 complete days, or no energy: 0.
func (w *window) energyTrend(kind device.Kind) float64 {
	ys := w.completeEnergyDays(kind)
	n := float64(len(ys))
	if n < 7 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	mean := sy / n
	if den == 0 || mean <= 0 {
		return 0
	}
	slope := (n*sxy - sx*sy) / den
	return slope * 7 / mean
}

// peakShare is the share of all appliances' energy in the window that fell in the
// configured peak hours.
func (w *window) peakShare() float64 {
	var peak, total float64
	for _, d := range w.days {
		if d.Signal != device.SignalPower || len(d.HourWh) != 24 {
			continue
		}
		for h, wh := range d.HourWh {
			total += wh
			if inHours(h, w.peak[0], w.peak[1]) {
				peak += wh
			}
		}
	}
	if total == 0 {
		return 0
	}
	return peak / total
}

// stocked counts items stocked in the window, of category cat ("" for all).
func (w *window) stocked(cat string) float64 {
	n := 0
	for _, d := range w.days {
		for c, v := range d.Inventory.Stocked {
			if cat == "" || c == cat {
				n += int(v)
			}
		}
	}
	return float64(n)
}

// water returns, over every device's water signal, the most litres dispensed since
// a filter change, the days since that change (or since water was first seen), and
// whether a change was ever seen.
func (w *window) water() (litres, days float64, seen bool) {
	for k, st := range w.states {
		if k.Signal != device.SignalWater || st.SinceAt.IsZero() {
			continue
		}
		if st.SinceLitres >= litres {
			litres, days, seen = st.SinceLitres, w.now.Sub(st.SinceAt).Hours()/24, st.FilterSeen
		}
	}
	return litres, days, seen
}

// envTemplate gives the compiler the names and types the expressions may use.
func envTemplate() map[string]any { return (&window{}).env() }

// env returns the functions of the rule language bound to w. docs/tags.md documents
// each; every function returns a float64.
func (w *window) env() map[string]any {
	return map[string]any{
		// days(): dates in the window with data from any device.
		"days": func() float64 { return float64(w.dataDays()) },
		// kind_days(kind): dates with data from devices of kind.
		"kind_days": func(k string) (float64, error) {
			kind, err := checkKind(k)
			return float64(w.dataDays(kind)), err
		},
		// count(kind, signal): readings.
		"count": func(k, s string) (float64, error) {
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += float64(d.Stats.Count) })
			return n, err
		},
		// sum(kind, signal): sum of values (e.g. litres of water).
		"sum": func(k, s string) (float64, error) {
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += d.Stats.Sum })
			return n, err
		},
		// mean(kind, signal): mean of values.
		"mean": func(k, s string) (float64, error) {
			var sum, n float64
			err := w.each(k, s, func(d *store.Day) { sum += d.Stats.Sum; n += float64(d.Stats.Count) })
			if n == 0 {
				return 0, err
			}
			return sum / n, err
		},
		// sessions(kind, signal): on-periods (door openings, uses) that ended.
		"sessions": func(k, s string) (float64, error) {
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += float64(d.Sessions.Count) })
			return n, err
		},
		// sessions_over(kind, signal, seconds): sessions at least that long (rounded up
		// to the histogram edges 10, 30, 60, 120, 300, 600, 1800 s).
		"sessions_over": func(k, s string, sec float64) (float64, error) {
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += float64(d.Sessions.Over(sec)) })
			return n, err
		},
		// session_seconds(kind, signal): total duration of sessions.
		"session_seconds": func(k, s string) (float64, error) {
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += d.Sessions.TotalSec })
			return n, err
		},
		// activations(kind, signal, from, to): off→on transitions in local hours [from, to) (wraps midnight when from > to).
		"activations": func(k, s string, from, to int) (float64, error) {
			if err := checkHours(from, to); err != nil {
				return 0, err
			}
			n := 0.0
			err := w.each(k, s, func(d *store.Day) { n += float64(d.TotalActivations(from, to)) })
			return n, err
		},
		// active_days(kind, signal, from, to, min): dates with at least min activations in hours [from, to).
		"active_days": func(k, s string, from, to, min int) (float64, error) {
			if err := checkHours(from, to); err != nil {
				return 0, err
			}
			per := map[string]int{}
			err := w.each(k, s, func(d *store.Day) { per[d.Date] += d.TotalActivations(from, to) })
			n := 0
			for _, v := range per {
				if v >= min {
					n++
				}
			}
			return float64(n), err
		},
		// kitchen_days(from, to, min): dates on which kitchen appliances together had at
		// least min activations or cycles in local hours [from, to).
		"kitchen_days": func(from, to, min int) (float64, error) {
			if err := checkHours(from, to); err != nil {
				return 0, err
			}
			n := 0
			for _, v := range w.kitchenByDate(from, to) {
				if v >= min {
					n++
				}
			}
			return float64(n), nil
		},
		// meal_days(meal): dates on which the meal ("breakfast", "lunch" or "dinner")
		// was prepared or had at home, by the built-in meal detector (meals.go).
		"meal_days": func(meal string) (float64, error) {
			f, err := w.meal(meal)
			if err != nil {
				return 0, err
			}
			return float64(len(f.Dates)), nil
		},
		// meal_observed(meal): the dates that count in the meal's share: occupied and
		// observed (a kitchen, entry-door or motion switch-on), the data clock's own
		// date only once the meal's window has passed.
		"meal_observed": func(meal string) (float64, error) {
			f, err := w.meal(meal)
			if err != nil {
				return 0, err
			}
			return float64(f.Observed), nil
		},
		// meal_confidence(meal): how much evidence backs the meal's share: the sensor
		// set's weight (cooking appliance 1, microwave or kettle only 0.9, cupboards 0.8,
		// the fridge alone 0.6) times the observed dates over 14 (at most 1).
		"meal_confidence": func(meal string) (float64, error) {
			f, err := w.meal(meal)
			if err != nil {
				return 0, err
			}
			return f.Confidence, nil
		},
		// occupied_days(): dates with a switch-on of a kitchen appliance, an entry door
		// or a motion sensor: the home was occupied and observed.
		"occupied_days": func() float64 { return float64(len(w.mealReport().Occupied)) },
		// cycles(kind): appliance cycles (programme runs) started in the window.
		"cycles": func(k string) (float64, error) { return w.cycles(k, func(time.Weekday) bool { return true }) },
		// weekend_cycles(kind): of those, started on Saturday or Sunday.
		"weekend_cycles": func(k string) (float64, error) { return w.cycles(k, weekend) },
		// spoiled_items(): items in the fridge past their best-before date now.
		"spoiled_items": func() float64 {
			today := w.now.Unix() / 86400
			n := 0
			for _, st := range w.states {
				n += st.SpoiledItems(today)
			}
			return float64(n)
		},
		// hours_since_activity(): hours since the last activation of any binary signal.
		"hours_since_activity": func() float64 {
			var last time.Time
			for k, st := range w.states {
				if k.Signal.Binary() && st.LastAt.After(last) {
					last = st.LastAt
				}
			}
			if last.IsZero() {
				return 0
			}
			return w.now.Sub(last).Hours()
		},
		// day_count(type): dates with data from any device, of day type "weekend",
		// "weekday" or "all".
		"day_count": func(t string) (float64, error) {
			keep, err := dayType(t)
			if err != nil {
				return 0, err
			}
			return w.dayCount(keep), nil
		},
		// cooking_minutes(type): minutes of oven, stove and microwave use on dates of
		// the day type.
		"cooking_minutes": func(t string) (float64, error) {
			keep, err := dayType(t)
			if err != nil {
				return 0, err
			}
			return w.cookingMinutes(keep), nil
		},
		// energy_per_day(kind): mean Wh per complete day (≥ 20 h of power readings,
		// not today) of kind's power signals; 0 without one.
		"energy_per_day": func(k string) (float64, error) {
			kind, err := checkKind(k)
			if err != nil {
				return 0, err
			}
			ys := w.completeEnergyDays(kind)
			if len(ys) == 0 {
				return 0, nil
			}
			s := 0.0
			for _, y := range ys {
				s += y
			}
			return s / float64(len(ys)), nil
		},
		// energy_days(kind): the number of those complete days.
		"energy_days": func(k string) (float64, error) {
			kind, err := checkKind(k)
			return float64(len(w.completeEnergyDays(kind))), err
		},
		// energy_trend(kind): the weekly rise of kind's daily energy relative to its
		// mean, by least squares over the complete days (0.1 = +10% a week; 0 with
		// fewer than 7 complete days).
		"energy_trend": func(k string) (float64, error) {
			kind, err := checkKind(k)
			if err != nil {
				return 0, err
			}
			return w.energyTrend(kind), nil
		},
		// peak_energy_share(): share of all appliances' energy in the configured peak
		// hours (tagging.peak_hours in hearth.yaml).
		"peak_energy_share": func() float64 { return w.peakShare() },
		// peak_hours(): how many hours the configured peak spans.
		"peak_hours": func() float64 {
			n := 0
			for h := 0; h < 24; h++ {
				if inHours(h, w.peak[0], w.peak[1]) {
					n++
				}
			}
			return float64(n)
		},
		// energy_wh(): all appliances' energy in the window, Wh.
		"energy_wh": func() float64 {
			s := 0.0
			for _, d := range w.days {
				s += d.EnergyWh
			}
			return s
		},
		// stocked(category): food items stocked in the window of that category;
		// stocked("") counts every category.
		"stocked": func(c string) float64 { return w.stocked(c) },
		// water_since_filter(): litres dispensed since the last filter change (since
		// water was first seen when no change was seen).
		"water_since_filter": func() float64 { l, _, _ := w.water(); return l },
		// filter_age_days(): days since that change (or since water was first seen).
		"filter_age_days": func() float64 { _, d, _ := w.water(); return d },
		// filter_change_seen(): 1 when a filter change was ever seen, else 0.
		"filter_change_seen": func() float64 {
			if _, _, s := w.water(); s {
				return 1
			}
			return 0
		},
		// ratio(a, b): a/b, or 0 when b is 0.
		"ratio": func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		},
		// clamp(x): x limited to [0,1].
		"clamp": func(x float64) float64 { return math.Min(1, math.Max(0, x)) },
	}
}
