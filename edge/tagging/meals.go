package tagging

import (
	"fmt"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/rollup"
)

// Meal detection.
//
// The detector works from whatever kitchen appliances a home has and learns each
// household's own meal times; nothing in it names a house or a clock hour other than
// the broad band of each meal.
//
//  1. Kitchen events: every off→on of a door or active signal of a kitchen appliance
//     (fridge, freezer, microwave, oven, stove, toaster, kettle, dishwasher door,
//     kitchen cabinets), at its local minute (rollup.Day.Starts; the middle of the
//     hour for days rolled up before Starts existed). Programme cycles and compressor
//     power are not kitchen events: no one is in the kitchen for them.
//  2. Episodes: a date's events, in time order, split wherever two are more than
//     EpisodeGap (20 min) apart; an episode spans from its first event to its last.
//     Preparing a meal is distinguished from fetching a snack or a drink by how long
//     the activity lasts, not by how many doors it opens: a dinner episode is
//     meal-like with at least 2 events spanning DinnerMinSpan (10 min) or more (the
//     fridge, the oven, the fridge again); a burst of a few minutes is a drink, a
//     snack (even with the microwave or kettle) or shopping being put away, however
//     many doors it opens. Breakfast is quick (a kettle and the fridge in three
//     minutes), so a breakfast episode is meal-like with at least 3 events, or 2 one
//     of which is a cooking appliance (microwave, oven, stove, toaster, kettle).
//  3. The household's meal time: within the meal's broad band (breakfast 04:00-13:00,
//     dinner 15:00-24:00), the centre c (in 10-minute steps) for which the most
//     dates have a meal-like episode starting within c ± MealTolerance (100 min).
//     Weekdays and weekend days get their own centre when the window has at least 3
//     weekend dates with a meal-like episode in the band (weekend breakfast is often
//     two hours later); otherwise one centre serves all dates.
//  4. A date had the meal when a meal-like episode starts within its centre ±
//     MealTolerance (and within the band).
//
// meal_days counts those dates; docs/tags.md defines the tags over it.
const (
	EpisodeGap    = 20  // minutes
	MealTolerance = 100 // minutes
	DinnerMinSpan = 10  // minutes
)

// mealBand is a meal's broad band, [from, to) in minutes of the day, and what a
// meal-like episode is: one spanning at least minSpan minutes, with at least
// minEvents events, or minCook with a cooking appliance among them.
type mealBand struct{ from, to, minEvents, minCook, minSpan int }

var mealBands = map[string]mealBand{
	"breakfast": {4 * 60, 13 * 60, 3, 2, 0},
	"dinner":    {15 * 60, 24 * 60, 2, 2, DinnerMinSpan},
}

// episode is a burst of kitchen activity on one date.
type episode struct {
	start, end, events int
	cooking            bool
}

func (e episode) mealLike(b mealBand) bool {
	if e.end-e.start < b.minSpan {
		return false
	}
	return e.events >= b.minEvents || (e.events >= b.minCook && e.cooking)
}

type kitchenEvent struct {
	minute  int
	cooking bool
}

func cookingKind(k device.Kind) bool {
	switch k {
	case device.KindMicrowave, device.KindOven, device.KindStove, device.KindToaster, device.KindKettle:
		return true
	}
	return false
}

// episodes returns each date's kitchen episodes (computed once per window).
func (w *window) episodes() map[string][]episode {
	if w.eps != nil {
		return w.eps
	}
	byDate := map[string][]kitchenEvent{}
	for _, d := range w.days {
		if !d.Kind.Kitchen() || (d.Signal != device.SignalDoor && d.Signal != device.SignalActive) {
			continue
		}
		cook := cookingKind(d.Kind)
		evs := byDate[d.Date]
		if n := d.TotalActivations(0, 24); len(d.Starts) >= n || len(d.Starts) == rollup.MaxStarts {
			for _, m := range d.Starts {
				evs = append(evs, kitchenEvent{int(m), cook})
			}
		} else {
			for h, n := range d.Activations {
				for range n {
					evs = append(evs, kitchenEvent{h*60 + 30, cook})
				}
			}
		}
		byDate[d.Date] = evs
	}
	w.eps = make(map[string][]episode, len(byDate))
	for date, evs := range byDate {
		slices.SortFunc(evs, func(a, b kitchenEvent) int { return a.minute - b.minute })
		var out []episode
		cur := episode{start: -1}
		last := -1000
		for _, e := range evs {
			if e.minute-last > EpisodeGap {
				if cur.start >= 0 {
					out = append(out, cur)
				}
				cur = episode{start: e.minute}
			}
			cur.events++
			cur.cooking = cur.cooking || e.cooking
			cur.end = e.minute
			last = e.minute
		}
		if cur.start >= 0 {
			out = append(out, cur)
		}
		w.eps[date] = out
	}
	return w.eps
}

// mealDays counts the dates of the window on which the meal was prepared at home.
func (w *window) mealDays(meal string) (float64, error) {
	if v, ok := w.meals[meal]; ok {
		return v, nil
	}
	dates, err := w.mealDates(meal)
	if err != nil {
		return 0, err
	}
	if w.meals == nil {
		w.meals = map[string]float64{}
	}
	w.meals[meal] = float64(len(dates))
	return float64(len(dates)), nil
}

// datedStarts are the starts of one date's meal-like episodes in a meal's band.
type datedStarts struct {
	date   string
	starts []int
}

// mealDates returns the dates of the window on which the meal was prepared at home,
// each with the start minute of its meal episode.
func (w *window) mealDates(meal string) (map[string]int, error) {
	b, ok := mealBands[meal]
	if !ok {
		return nil, fmt.Errorf("unknown meal %q (have breakfast, dinner)", meal)
	}
	eps := w.episodes()
	weekendOf := w.weekendDates()
	// Meal-like episode starts in the band, per date, split by day type.
	var all, wkend, wkday []datedStarts
	for date, es := range eps {
		var starts []int
		for _, e := range es {
			if e.mealLike(b) && e.start >= b.from && e.start < b.to {
				starts = append(starts, e.start)
			}
		}
		if len(starts) == 0 {
			continue
		}
		ds := datedStarts{date, starts}
		all = append(all, ds)
		if weekendOf[date] {
			wkend = append(wkend, ds)
		} else {
			wkday = append(wkday, ds)
		}
	}
	out := map[string]int{}
	if len(wkend) >= 3 {
		addNear(out, wkend, bestCentre(wkend, b))
		addNear(out, wkday, bestCentre(wkday, b))
	} else {
		addNear(out, all, bestCentre(all, b))
	}
	return out, nil
}

// nearest returns the start in starts nearest to c, and whether it is within
// MealTolerance of it.
func nearest(starts []int, c int) (int, bool) {
	best, bestD := -1, MealTolerance+1
	for _, s := range starts {
		if d := max(s-c, c-s); d < bestD {
			best, bestD = s, d
		}
	}
	return best, best >= 0
}

func addNear(out map[string]int, dates []datedStarts, c int) {
	for _, d := range dates {
		if s, ok := nearest(d.starts, c); ok {
			out[d.date] = s
		}
	}
}

// bestCentre is the minute of the day, in the band, near which the most dates have
// a meal-like episode (the earliest such minute on a tie).
func bestCentre(dates []datedStarts, b mealBand) int {
	best, bestN := b.from, -1
	for c := b.from; c < b.to; c += 10 {
		n := 0
		for _, d := range dates {
			if _, ok := nearest(d.starts, c); ok {
				n++
			}
		}
		if n > bestN {
			best, bestN = c, n
		}
	}
	return best
}

// weekendDates reports, per date of the window, whether it is a Saturday or Sunday.
func (w *window) weekendDates() map[string]bool {
	out := map[string]bool{}
	for _, d := range w.days {
		out[d.Date] = d.Weekday == time.Saturday || d.Weekday == time.Sunday
	}
	return out
}
