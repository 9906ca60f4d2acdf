package tagging

import (
	"fmt"
	"sort"
)

// Meal detection.
//
// A meal is prepared at home on a date when kitchen appliances together show a burst of
// activity (at least mealMinActivity activations or cycles) within the household's own
// meal period. The periods are not fixed clock hours: within a broad band for each
// meal (breakfast 04:00-12:00, dinner 15:00-23:00) the detector finds the 3-hour span
// in which this household's kitchen is busiest over the window, and counts the dates
// with a burst inside that span. An early riser's breakfast at 05:30 and a night owl's
// at 10:30 are both found; nothing is tuned to one house.

const mealMinActivity = 2

type mealBand struct{ from, to, span int }

var mealBands = map[string]mealBand{
	"breakfast": {4, 12, 3},
	"dinner":    {15, 23, 3},
}

func (w *window) mealDays(meal string) (float64, error) {
	b, ok := mealBands[meal]
	if !ok {
		names := make([]string, 0, len(mealBands))
		for k := range mealBands {
			names = append(names, k)
		}
		sort.Strings(names)
		return 0, fmt.Errorf("unknown meal %q (have %v)", meal, names)
	}
	// Hourly kitchen activity over the window, to find the household's meal span.
	var hourly [24]int
	for h := b.from; h < b.to; h++ {
		for _, v := range w.kitchenByDate(h, h+1) {
			hourly[h] += v
		}
	}
	best, bestSum := b.from, -1
	for start := b.from; start+b.span <= b.to; start++ {
		s := 0
		for h := start; h < start+b.span; h++ {
			s += hourly[h]
		}
		if s > bestSum {
			best, bestSum = start, s
		}
	}
	n := 0
	for _, v := range w.kitchenByDate(best, best+b.span) {
		if v >= mealMinActivity {
			n++
		}
	}
	return float64(n), nil
}
