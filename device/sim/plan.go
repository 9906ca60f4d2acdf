package sim

import (
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// use is one planned use of one appliance: a door session, an active period or a
// cycle. Placement moves it later when the appliance is still busy.
type use struct {
	dev   int
	req   int64 // requested start, unix ms
	dur   int64 // ms
	watts float64
	meal  int8 // mealBreakfast..mealDinner, or -1
	prog  int8 // programme index of a cycle
	takes int8 // fridge: items to take
	mask  uint8
	stock int16 // fridge: items to stock
	clean bool  // fridge: discard items 2+ days past best-before
}

const (
	mealBreakfast = iota
	mealLunch
	mealDinner
	numMeals
	noMeal = -1
)

type mealRec struct {
	planned   bool
	at, first int64
}

// unit is the scratch state of the unit being generated.
type unit struct {
	h          *Household
	day        int64 // civil day of the plan
	ws, we     int64 // window
	mid        [3]int64
	wd         time.Weekday
	weekend    bool
	minT, maxT int64 // user activity is allowed in [minT, maxT)
	uses       []use
	events     []event
	meals      [numMeals]mealRec
}

func (g *unit) reset(h *Household, day int64) {
	g.h = h
	g.day = day
	g.uses = g.uses[:0]
	g.events = g.events[:0]
	g.meals = [numMeals]mealRec{}
	y, m, d := civilDate(day)
	g.wd = time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
	g.weekend = g.wd == time.Saturday || g.wd == time.Sunday
}

// at returns local clock time minute minutes after midnight of the unit's day.
func (g *unit) at(minute float64) int64 {
	return g.h.localMs(g.day, int64(math.Round(minute*minuteMs)))
}

func (g *unit) ok(t int64) bool { return t >= g.minT && t < g.maxT }

func (g *unit) dayOf(t int64) int64 {
	if t >= g.mid[0] {
		if t < g.mid[1] {
			return g.day
		}
		if t < g.mid[2] {
			return g.day + 1
		}
	}
	return g.h.dayOfMs(t)
}

// midAfter returns the local midnight ending civil day d.
func (g *unit) midAfter(d int64) int64 {
	switch d {
	case g.day:
		return g.mid[1]
	case g.day + 1:
		return g.mid[2]
	}
	return g.h.localMs(d+1, 0)
}

func (g *unit) emit(dev int, t int64, sig device.Signal, val float64, label string, aux int64) {
	g.events = append(g.events, event{t: t, dev: dev, sig: sig, val: val, label: label, aux: aux})
}

// add plans u on the appliance of kind k, if the household has one and the use fits
// in the allowed span.
func (g *unit) add(k device.Kind, u use) {
	dev, ok := g.h.devOf[k]
	if !ok || u.req < g.minT || u.req+u.dur > g.maxT {
		return
	}
	u.dev = dev
	g.uses = append(g.uses, u)
}

func (g *unit) door(k device.Kind, req, dur int64, meal int8, takes int8, mask uint8) {
	g.add(k, use{req: req, dur: dur, meal: meal, takes: takes, mask: mask})
}

func (g *unit) active(k device.Kind, req, dur int64, watts float64, meal int8) {
	g.add(k, use{req: req, dur: dur, watts: math.Round(watts*10) / 10, meal: meal})
}

// Random helpers.

func (h *Household) uni(a, b float64) float64 { return a + (b-a)*h.rng.Float64() }

// mins returns a uniform duration of a..b minutes in ms.
func (h *Household) mins(a, b float64) int64 { return int64(h.uni(a, b) * minuteMs) }

// secs returns a uniform duration of a..b seconds in ms.
func (h *Household) secs(a, b float64) int64 { return int64(h.uni(a, b) * 1000) }

func (h *Household) between(r [2]int) int { return r[0] + h.rng.IntN(r[1]-r[0]+1) }

func (h *Household) chance(p float64) bool { return h.rng.Float64() < p }

// pickIn returns a uniform minute of day in the windows, weighted by their length.
func (h *Household) pickIn(ws []window) float64 {
	var total float64
	for _, w := range ws {
		total += w.len()
	}
	x := h.rng.Float64() * total
	for _, w := range ws {
		if x < w.len() {
			return w.from + x
		}
		x -= w.len()
	}
	return ws[len(ws)-1].to
}

// mealTime draws the day's time of a meal whose mean is at: Normal(at, sigma),
// clipped to ±2.5 sigma and to no earlier than lo.
func (h *Household) mealTime(at, lo float64) float64 {
	s := h.hab.sigma
	x := at + s*max(-2.5, min(2.5, h.rng.NormFloat64()))
	return max(x, lo)
}

// doorDur draws the length of an ordinary door session in ms: lognormal around 14 s
// (mostly 5-40 s, below 58 s), long (61-150 s) with chance longP, left ajar
// (90-480 s) with chance ajarP.
func (h *Household) doorDur() int64 {
	x := h.rng.Float64()
	switch {
	case x < h.hab.ajarP:
		return h.secs(90, 480)
	case x < h.hab.ajarP+h.hab.longP:
		return h.secs(61, 150)
	}
	s := 14 * math.Exp(0.55*h.rng.NormFloat64())
	return int64(max(2, min(58, s)) * 1000)
}

// takes draws 0, 1 or 2 items to take: one with chance p, a second with chance p/3.
func (h *Household) takes(p float64) int8 {
	var n int8
	if h.chance(p) {
		n++
		if h.chance(p / 3) {
			n++
		}
	}
	return n
}

// plan plans the unit's user activity. Nothing is planned on an away day; on the
// day before, nothing that would reach the last 45 minutes before midnight; on the
// first day back, nothing before the return (12:00-18:00).
func (h *Household) plan(g *unit) {
	idx := g.day - h.startDay
	g.minT, g.maxT = g.ws, math.MaxInt64
	if h.away(idx) {
		return
	}
	if h.away(idx + 1) {
		g.maxT = g.mid[1] - 45*minuteMs
	}
	returning := h.away(idx - 1)
	var back float64
	if returning {
		back = h.uni(hm(12, 0), hm(18, 0))
		g.minT = max(g.minT, g.at(back))
	}
	hb := &h.hab
	dh := &hb.days[0]
	if g.weekend {
		dh = &hb.days[1]
	}

	if h.chance(dh.breakfastP) {
		h.breakfast(g, dh, h.mealTime(dh.breakfastAt, hm(4, 30)))
	}
	if h.chance(dh.lunchP) {
		h.lunch(g, h.mealTime(dh.lunchAt, hm(11, 0)))
	}
	if h.chance(dh.dinnerP) {
		h.dinner(g, dh, h.mealTime(dh.dinnerAt, hm(16, 0)))
	}
	for range h.between(dh.snacks) {
		h.snack(g, g.at(h.pickIn(dh.snackWins)), false)
	}
	if h.chance(hb.lateP) {
		for range h.between(hb.lateN) {
			h.snack(g, g.at(h.uni(hb.late.from, hb.late.to)), true)
		}
	}

	// Shopping: on the persona's days, on the start date and on the day back.
	items := hb.shopItems[g.wd]
	shopAt := h.uni(dh.shop.from, dh.shop.to)
	if idx == 0 || returning {
		items = max(items, 12+h.rng.IntN(8))
		if returning {
			shopAt = back + h.uni(30, 90)
		}
	}
	if items > 0 {
		items = min(items, max(0, 80-len(h.inv.items)))
		h.shopping(g, g.at(shopAt), items)
	}

	// Discarding items 2+ days past their best-before.
	if h.chance(hb.cleanupP) && h.inv.countBefore(g.day-1) > 0 {
		g.add(device.KindFridge, use{req: g.at(h.pickIn(dh.snackWins)), dur: h.secs(20, 60), meal: noMeal, clean: true})
	}

	// Water dispensed.
	for range h.between(hb.water) {
		t := g.at(h.pickIn(dh.snackWins))
		v := math.Round(h.uni(0.15, 0.9)*100) / 100
		if g.ok(t) && h.fridge >= 0 {
			g.emit(h.fridge, t, device.SignalWater, v, "", 0)
			a := h.acc(g.dayOf(t))
			a.WaterLitres += v
			a.WaterEvents++
		}
	}

	// Water filter change, when it is time (postponed while nobody is home).
	if g.day >= h.filterNext && h.fridge >= 0 {
		t := g.at(h.pickIn(dh.snackWins))
		if g.ok(t) {
			g.emit(h.fridge, t, device.SignalFilter, 1, "water", 0)
			h.acc(g.dayOf(t)).FilterChanged = true
			h.filterLast = g.day
			h.filterNext = g.day + 150 + int64(h.rng.IntN(91))
		}
	}

	// Washer cycles: a Poisson-like count around the day's share of the weekly rate.
	share := (1 - hb.washWE) / 5
	if g.weekend {
		share = hb.washWE / 2
	}
	lambda := hb.washWeek * share
	n := int(lambda)
	if h.chance(lambda - float64(n)) {
		n++
	}
	t := h.uni(dh.washer.from, dh.washer.to)
	for range n {
		if t > dh.washer.to+90 {
			break
		}
		p := h.pickProg(washerProgs[:])
		dur := washerProgs[p].minutes + h.rng.IntN(6)
		g.add(device.KindWasher, use{req: g.at(t), dur: int64(dur) * minuteMs, prog: int8(p), meal: noMeal})
		t += float64(dur) + h.uni(10, 60)
	}
}

func (h *Household) breakfast(g *unit, dh *dayHabits, minute float64) {
	t := g.at(minute)
	if !h.startMeal(g, mealBreakfast, t) {
		return
	}
	n := h.hab.people * (1 + h.rng.IntN(3))
	tt := t
	for range n {
		g.door(device.KindFridge, tt, h.doorDur(), mealBreakfast, h.takes(0.6), maskBreakfast)
		tt += h.mins(0.5, 5.5)
	}
	if h.chance(0.8) {
		g.active(device.KindKettle, t+h.mins(0, 3), h.mins(2, 4), h.uni(1800, 2200), mealBreakfast)
	}
	if h.chance(0.5) {
		g.active(device.KindToaster, t+h.mins(1, 5), h.mins(2, 4), h.uni(800, 950), mealBreakfast)
	}
	if h.chance(0.25) {
		g.active(device.KindMicrowave, t+h.mins(0, 8), h.mins(1, 3), h.uni(700, 1200), mealBreakfast)
	}
	if dh.brunch && h.chance(0.5) {
		g.active(device.KindStove, t+h.mins(2, 10), h.mins(10, 25), h.uni(1200, 2000), mealBreakfast)
	}
	for range h.rng.IntN(3) {
		g.active(device.KindKitchenCabinet, t+h.mins(0, 10), h.secs(3, 15), 0, mealBreakfast)
	}
}

func (h *Household) lunch(g *unit, minute float64) {
	t := g.at(minute)
	if !h.startMeal(g, mealLunch, t) {
		return
	}
	n := h.hab.people * (1 + h.rng.IntN(3))
	tt := t
	for range n {
		g.door(device.KindFridge, tt, h.doorDur(), mealLunch, h.takes(0.5), maskMeal)
		tt += h.mins(0.5, 6)
	}
	if h.chance(0.5) {
		g.active(device.KindMicrowave, t+h.mins(1, 8), h.mins(2, 5), h.uni(700, 1200), mealLunch)
	}
	if h.chance(0.3) {
		g.active(device.KindKitchenCabinet, t+h.mins(0, 5), h.secs(3, 15), 0, mealLunch)
	}
}

func (h *Household) dinner(g *unit, dh *dayHabits, minute float64) {
	t := g.at(minute)
	if !h.startMeal(g, mealDinner, t) {
		return
	}
	big := dh.dinnerBig
	span := 45.0
	if big {
		span = 75
	}
	mask := maskMeal
	if dh.microP > 0.5 && dh.ovenP < 0.2 {
		mask = maskQuick
	}
	n := h.hab.people * h.between(dh.dinnerPrep)
	for i := range n {
		req := t
		if i > 0 {
			req += h.mins(0, span)
		}
		g.door(device.KindFridge, req, h.doorDur(), mealDinner, h.takes(0.7), mask)
	}
	end := t + int64(span*minuteMs)
	if h.chance(dh.ovenP) {
		dur := h.mins(30, 70)
		if big {
			dur = h.mins(90, 180)
		}
		req := t + h.mins(5, 15)
		g.active(device.KindOven, req, dur, h.uni(2000, 3000), mealDinner)
		end = max(end, req+dur)
	}
	if h.chance(dh.stoveP) {
		dur := h.mins(15, 40)
		if big {
			dur = h.mins(30, 60)
		}
		req := t + h.mins(5, 25)
		g.active(device.KindStove, req, dur, h.uni(1200, 2000), mealDinner)
		end = max(end, req+dur)
	}
	if h.chance(dh.microP) {
		g.active(device.KindMicrowave, t+h.mins(0, 20), h.mins(2, 8), h.uni(700, 1200), mealDinner)
	}
	if h.chance(0.3) {
		g.door(device.KindFreezer, t+h.mins(0, 10), h.secs(5, 20), mealDinner, 0, 0)
	}
	for range h.hab.people * (1 + h.rng.IntN(3)) {
		g.active(device.KindKitchenCabinet, t+h.mins(0, 30), h.secs(3, 15), 0, mealDinner)
	}
	// Putting leftovers away.
	for range h.hab.people * (1 + h.rng.IntN(2)) {
		g.door(device.KindFridge, end+h.mins(5, 25), h.doorDur(), noMeal, 0, 0)
	}
	if h.chance(h.hab.dishP) {
		p := h.pickProg(dishProgs[:])
		dur := dishProgs[p].minutes + h.rng.IntN(6)
		g.add(device.KindDishwasher, use{req: end + h.mins(30, 120), dur: int64(dur) * minuteMs, prog: int8(p), meal: noMeal})
	}
}

// snack is a short visit to the kitchen; late marks a late-night one.
func (h *Household) snack(g *unit, t int64, late bool) {
	g.door(device.KindFridge, t, h.doorDur(), noMeal, h.takes(0.4), maskSnack)
	if h.chance(0.15) {
		g.door(device.KindFridge, t+h.mins(1, 3), h.doorDur(), noMeal, 0, 0)
	}
	pk, pm := 0.1, 0.1
	if late {
		pk, pm = 0.2, 0.35
	}
	if h.chance(pk) {
		g.active(device.KindKettle, t+h.mins(0, 2), h.mins(2, 4), h.uni(1800, 2200), noMeal)
	}
	if h.chance(pm) {
		g.active(device.KindMicrowave, t+h.mins(0, 3), h.mins(1, 4), h.uni(700, 1200), noMeal)
	}
	if h.chance(0.3) {
		g.active(device.KindKitchenCabinet, t+h.mins(0, 2), h.secs(3, 15), 0, noMeal)
	}
	if h.chance(0.05) {
		g.door(device.KindFreezer, t+h.mins(0, 2), h.secs(4, 15), noMeal, 0, 0)
	}
}

// shopping puts items away in 2-3 fridge sessions of 35-100 s.
func (h *Household) shopping(g *unit, t int64, items int) {
	k := 2 + h.rng.IntN(2)
	tt := t
	for i := range k {
		n := items / k
		if i == 0 {
			n += items % k
		}
		dur := h.secs(35, 100)
		g.add(device.KindFridge, use{req: tt, dur: dur, meal: noMeal, stock: int16(n)})
		tt += dur + h.mins(1, 4)
	}
	g.door(device.KindFreezer, t+h.mins(0, 10), h.secs(20, 60), noMeal, 0, 0)
	for range 2 + h.rng.IntN(2) {
		g.active(device.KindKitchenCabinet, t+h.mins(0, 10), h.secs(5, 20), 0, noMeal)
	}
}

// startMeal records a planned meal at t, unless t is outside the allowed span.
func (h *Household) startMeal(g *unit, m int, t int64) bool {
	if !g.ok(t) || !g.ok(t+hourMs) {
		return false
	}
	g.meals[m] = mealRec{planned: true, at: t}
	return true
}

func (h *Household) pickProg(ps []programme) int {
	var total float64
	for _, p := range ps {
		total += p.weight
	}
	x := h.rng.Float64() * total
	for i, p := range ps {
		if x < p.weight {
			return i
		}
		x -= p.weight
	}
	return len(ps) - 1
}
