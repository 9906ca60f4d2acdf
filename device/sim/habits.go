package sim

import (
	"math/rand/v2"

	"github.com/hearth-iot/hearth/device"
)

// window is a span of local clock time in minutes after midnight; to may pass 1440
// (then it is on the next date).
type window struct{ from, to float64 }

func (w window) len() float64 { return w.to - w.from }

// dayHabits are the habits of a weekday or of a weekend day.
type dayHabits struct {
	breakfastP, breakfastAt float64 // chance, mean minute of day
	brunch                  bool    // breakfast may use the stove
	lunchP, lunchAt         float64
	dinnerP, dinnerAt       float64
	dinnerPrep              [2]int  // fridge sessions while preparing dinner (min, max)
	dinnerBig               bool    // long oven and stove uses
	ovenP, stoveP, microP   float64 // chance dinner uses each
	snacks                  [2]int  // snacks at home (min, max)
	snackWins               []window
	washer                  window // washer cycles start in this window
	shop                    window
}

// habits of one household: its persona's, varied per household.
type habits struct {
	days       [2]dayHabits // weekday, weekend
	sigma      float64      // day-to-day jitter of meal times, minutes
	lateP      float64      // chance of late-night kitchen activity on a night
	lateN      [2]int       // snacks on such a night
	late       window
	washWeek   float64          // washer cycles per week
	washWE     float64          // share of them on Saturday and Sunday
	shopItems  [7]int           // items bought per weekday (Sunday first); 0 = no shopping
	water      [2]int           // water dispensed events per day at home
	people     int              // multiplies fridge sessions at meals
	longP      float64          // chance a door session is long (61-150 s)
	ajarP      float64          // chance a door session is left ajar (90-480 s)
	cleanupP   float64          // daily chance of discarding items 2+ days past best-before
	dishP      float64          // chance the dishwasher runs after dinner
	catWeights [numCats]float64 // what is bought
	awayFrom   int64            // index of the first away day, -1 for none
	worn       bool
}

// defaultKinds returns the persona's appliances.
func defaultKinds(p Persona) []device.Kind {
	base := []device.Kind{device.KindFridge, device.KindWasher, device.KindOven}
	switch p {
	case PersonaEarlyRiser:
		return append(base, device.KindKettle, device.KindToaster)
	case PersonaWeekendCook:
		return append(base, device.KindStove, device.KindMicrowave)
	case PersonaFamily:
		return append(base, device.KindStove, device.KindMicrowave, device.KindToaster, device.KindDishwasher)
	}
	return append(base, device.KindMicrowave, device.KindKettle)
}

func hm(h, m float64) float64 { return h*60 + m }

// baseHabits returns the persona's habits before per-household variation.
func baseHabits(p Persona) habits {
	def := habits{
		days: [2]dayHabits{{
			breakfastP: 0.8, breakfastAt: hm(7, 0),
			lunchP: 0.05, lunchAt: hm(12, 30),
			dinnerP: 0.85, dinnerAt: hm(19, 15), dinnerPrep: [2]int{2, 5},
			ovenP: 0.35, stoveP: 0.6, microP: 0.3,
			snacks:    [2]int{2, 5},
			snackWins: []window{{hm(6, 30), hm(8, 0)}, {hm(18, 0), hm(21, 50)}},
			washer:    window{hm(18, 30), hm(20, 30)},
			shop:      window{hm(18, 15), hm(19, 30)},
		}, {
			breakfastP: 0.85, breakfastAt: hm(9, 0),
			lunchP: 0.6, lunchAt: hm(12, 45),
			dinnerP: 0.8, dinnerAt: hm(19, 30), dinnerPrep: [2]int{2, 5},
			ovenP: 0.55, stoveP: 0.6, microP: 0.2,
			snacks:    [2]int{4, 8},
			snackWins: []window{{hm(9, 0), hm(21, 50)}},
			washer:    window{hm(9, 0), hm(16, 0)},
			shop:      window{hm(10, 0), hm(16, 0)},
		}},
		sigma:      30,
		lateP:      0.06,
		lateN:      [2]int{1, 2},
		late:       window{hm(22, 0), hm(24, 30)},
		washWeek:   3,
		washWE:     0.5,
		water:      [2]int{2, 5},
		people:     1,
		longP:      0.025,
		cleanupP:   0.15,
		dishP:      0.6,
		catWeights: [numCats]float64{3, 4, 2, 1, 2, 2, 0.5, 2},
		awayFrom:   -1,
	}
	def.shopItems[3] = 8  // Wednesday
	def.shopItems[6] = 16 // Saturday

	h := def
	switch p {
	case PersonaEarlyRiser:
		wd, we := &h.days[0], &h.days[1]
		wd.breakfastP, wd.breakfastAt = 0.9, hm(6, 10)
		we.breakfastP, we.breakfastAt = 0.9, hm(6, 35)
		wd.dinnerAt, we.dinnerAt = hm(18, 0), hm(18, 0)
		we.lunchAt = hm(12, 0)
		wd.snacks, we.snacks = [2]int{2, 4}, [2]int{3, 6}
		wd.snackWins = []window{{hm(5, 30), hm(7, 0)}, {hm(16, 30), hm(20, 45)}}
		we.snackWins = []window{{hm(6, 0), hm(20, 45)}}
		wd.washer, we.washer = window{hm(17, 0), hm(19, 0)}, window{hm(8, 0), hm(15, 0)}
		wd.shop, we.shop = window{hm(17, 0), hm(18, 0)}, window{hm(9, 0), hm(12, 0)}
		h.sigma = 22
		h.lateP, h.lateN, h.late = 0.01, [2]int{1, 1}, window{hm(22, 0), hm(23, 0)}
	case PersonaNightOwl:
		wd, we := &h.days[0], &h.days[1]
		wd.breakfastP, wd.breakfastAt, wd.brunch = 0.7, hm(10, 45), true
		we.breakfastP, we.breakfastAt, we.brunch = 0.75, hm(11, 30), true
		wd.lunchP, we.lunchP = 0, 0
		wd.dinnerP, wd.dinnerAt = 0.8, hm(21, 0)
		we.dinnerP, we.dinnerAt = 0.8, hm(21, 15)
		wd.snacks, we.snacks = [2]int{3, 6}, [2]int{3, 7}
		wd.snackWins = []window{{hm(11, 0), hm(21, 50)}}
		we.snackWins = []window{{hm(12, 0), hm(21, 50)}}
		wd.washer, we.washer = window{hm(12, 0), hm(19, 0)}, window{hm(13, 0), hm(19, 0)}
		wd.shop, we.shop = window{hm(17, 0), hm(19, 0)}, window{hm(13, 0), hm(18, 0)}
		h.lateP, h.lateN, h.late = 0.85, [2]int{2, 6}, window{hm(22, 0), hm(27, 0)}
		h.washWE = 0.4
		h.cleanupP = 0.1
	case PersonaWeekendCook:
		wd, we := &h.days[0], &h.days[1]
		wd.breakfastP, wd.breakfastAt = 0.4, hm(7, 15)
		wd.dinnerP, wd.dinnerAt, wd.dinnerPrep = 0.25, hm(19, 45), [2]int{1, 2}
		wd.ovenP, wd.stoveP, wd.microP = 0.05, 0.1, 0.9
		wd.snacks = [2]int{1, 3}
		wd.snackWins = []window{{hm(6, 40), hm(7, 50)}, {hm(18, 30), hm(21, 50)}}
		we.breakfastP, we.breakfastAt, we.brunch = 0.9, hm(10, 0), true
		we.lunchP, we.lunchAt = 0.3, hm(14, 0)
		we.dinnerP, we.dinnerAt, we.dinnerPrep, we.dinnerBig = 0.95, hm(19, 0), [2]int{6, 12}, true
		we.ovenP, we.stoveP, we.microP = 0.9, 0.8, 0.1
		h.shopItems = [7]int{}
		h.shopItems[5] = 6  // Friday
		h.shopItems[6] = 22 // Saturday
		wd.shop, we.shop = window{hm(18, 30), hm(19, 30)}, window{hm(9, 30), hm(12, 0)}
		h.lateP = 0.05
		h.catWeights = [numCats]float64{2, 5, 4, 2, 2, 3, 1, 2}
	case PersonaFamily:
		wd, we := &h.days[0], &h.days[1]
		wd.breakfastP, wd.breakfastAt = 0.97, hm(6, 50)
		we.breakfastP, we.breakfastAt = 0.95, hm(8, 30)
		we.lunchP, we.lunchAt = 0.85, hm(12, 30)
		wd.dinnerP, wd.dinnerAt = 0.95, hm(18, 30)
		we.dinnerP, we.dinnerAt = 0.9, hm(18, 30)
		wd.ovenP, wd.stoveP, wd.microP = 0.45, 0.8, 0.4
		wd.snacks, we.snacks = [2]int{8, 14}, [2]int{12, 20}
		wd.snackWins = []window{{hm(6, 20), hm(8, 0)}, {hm(15, 30), hm(21, 30)}}
		we.snackWins = []window{{hm(8, 0), hm(21, 30)}}
		wd.washer, we.washer = window{hm(7, 0), hm(19, 0)}, window{hm(8, 30), hm(15, 0)}
		wd.shop, we.shop = window{hm(17, 0), hm(18, 30)}, window{hm(9, 30), hm(12, 0)}
		h.washWeek, h.washWE = 8, 0.4
		h.shopItems = [7]int{}
		h.shopItems[2] = 15 // Tuesday
		h.shopItems[4] = 12 // Thursday
		h.shopItems[6] = 28 // Saturday
		h.water = [2]int{5, 10}
		h.people = 2
		h.cleanupP = 0.3
		h.dishP = 0.9
		h.catWeights = [numCats]float64{5, 5, 3, 1, 3, 2, 0.5, 3}
	case PersonaAway:
		h.awayFrom = 0 // drawn in personalize
	case PersonaDoorAjar:
		h.ajarP = 0.22
		h.cleanupP = 0.1
	case PersonaWornFridge:
		h.worn = true
	}
	return h
}

// personalize draws one household's variation of its persona's habits, so that
// nothing is tuned to one house: meal times shift by up to ±20 minutes (±10 for the
// early riser), the daily jitter sigma is 20-40 minutes (20-25 for the early
// riser), chances move by up to ±0.05 and the washer rate by ±20%.
func personalize(p Persona, r *rand.Rand) habits {
	h := baseHabits(p)
	shift := 20.0
	if p == PersonaEarlyRiser {
		shift = 10
		h.sigma = 20 + 5*r.Float64()
	} else {
		h.sigma = 20 + 20*r.Float64()
	}
	jp := func(x float64) float64 {
		if x <= 0 {
			return x
		}
		return min(0.99, max(0.01, x+0.1*r.Float64()-0.05))
	}
	for i := range h.days {
		d := &h.days[i]
		d.breakfastAt += shift * (2*r.Float64() - 1)
		d.lunchAt += shift * (2*r.Float64() - 1)
		d.dinnerAt += shift * (2*r.Float64() - 1)
		d.breakfastP, d.lunchP, d.dinnerP = jp(d.breakfastP), jp(d.lunchP), jp(d.dinnerP)
	}
	h.lateP = jp(h.lateP)
	h.washWeek *= 0.8 + 0.4*r.Float64()
	if h.awayFrom >= 0 {
		h.awayFrom = 3 + int64(r.IntN(8))
	}
	return h
}
