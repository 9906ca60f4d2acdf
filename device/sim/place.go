package sim

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Minimum idle time between two uses of one appliance.
const (
	doorGap   = 2_000
	activeGap = 5_000
	cycleGap  = minuteMs
)

// placeAll places the unit's planned uses on their appliances in requested-time
// order, each no earlier than the end of the appliance's previous use plus a gap
// (so uses of one appliance never overlap, also across units), and emits their
// readings and truth.
func (h *Household) placeAll(g *unit) {
	slices.SortStableFunc(g.uses, func(a, b use) int {
		if c := cmp.Compare(a.dev, b.dev); c != 0 {
			return c
		}
		return cmp.Compare(a.req, b.req)
	})
	for i := range g.uses {
		h.place(g, &g.uses[i])
	}
	if g.day < h.startDay {
		return
	}
	a := h.acc(g.day)
	for m := range g.meals {
		rec := &g.meals[m]
		if !rec.planned {
			continue
		}
		at := rec.at
		if rec.first != 0 {
			at = rec.first
		}
		tt := time.UnixMilli(at).In(h.loc)
		switch m {
		case mealBreakfast:
			a.Breakfast, a.BreakfastAt = true, tt
		case mealLunch:
			a.Lunch, a.LunchAt = true, tt
		case mealDinner:
			a.Dinner, a.DinnerAt = true, tt
		}
	}
}

func (h *Household) place(g *unit, u *use) {
	dev := u.dev
	kind := h.apps[dev].Kind
	gap := int64(activeGap)
	switch kind {
	case device.KindFridge, device.KindFreezer:
		gap = doorGap
	case device.KindWasher, device.KindDishwasher:
		gap = cycleGap
	}
	start := max(u.req, h.busy[dev]+gap)
	end := start + u.dur
	h.busy[dev] = end
	a := h.acc(g.dayOf(start))
	a.done(end)

	switch kind {
	case device.KindFridge, device.KindFreezer:
		g.emit(dev, start, device.SignalDoor, 1, "", 0)
		h.activation(g, kind, start)
		if kind == device.KindFridge {
			a.FridgeOpenings++
			a.FridgeOpenSeconds += float64(u.dur) / 1000
			if u.dur > LongOpening.Milliseconds() {
				a.FridgeLongOpenings++
			}
			h.inventoryOps(g, u, start)
		} else {
			a.FreezerOpenings++
		}
		g.emit(dev, end, device.SignalDoor, 0, "", 0)
		c := h.cold[dev]
		c.sessions = append(c.sessions, span{start, end})
	case device.KindWasher, device.KindDishwasher:
		wh := h.cycle(g, u, kind, start, end)
		if kind == device.KindWasher {
			a.WasherCycles++
			a.WasherEnergyWh += wh
		} else {
			a.DishwasherCycles++
		}
	default:
		g.emit(dev, start, device.SignalActive, 1, "", 0)
		h.activation(g, kind, start)
		if u.watts > 0 {
			g.emit(dev, start, device.SignalPower, u.watts, "", 0)
			g.emit(dev, end, device.SignalPower, 0, "", 0)
		}
		g.emit(dev, end, device.SignalActive, 0, "", 0)
		switch kind {
		case device.KindOven:
			a.OvenUses++
			a.CookingMinutes += float64(u.dur) / minuteMs
		case device.KindStove:
			a.StoveUses++
			a.CookingMinutes += float64(u.dur) / minuteMs
		case device.KindMicrowave:
			a.MicrowaveUses++
		case device.KindKettle:
			a.KettleUses++
		case device.KindToaster:
			a.ToasterUses++
		case device.KindKitchenCabinet:
			a.CabinetOpenings++
		}
	}
	if u.meal >= 0 {
		m := &g.meals[u.meal]
		if m.first == 0 || start < m.first {
			m.first = start
		}
	}
}

// activation counts a kitchen activation at t: for its date, and for the late-night
// window it falls in (local [22:00, 24:00) of date D or [00:00, 04:00) of D+1).
func (h *Household) activation(g *unit, k device.Kind, t int64) {
	if !k.Kitchen() {
		return
	}
	d := g.dayOf(t)
	h.acc(d).KitchenActivations++
	hr := time.UnixMilli(t).In(h.loc).Hour()
	switch {
	case hr >= 22:
	case hr < 4:
		d--
	default:
		return
	}
	a := h.acc(d)
	a.LateNightActivations++
	a.LateNight = true
}

// inventoryOps emits the inventory readings of a fridge session, spread evenly
// inside it: discarded items first, then stocked ones, then taken ones.
func (h *Household) inventoryOps(g *unit, u *use, start int64) {
	today := g.dayOf(start)
	nClean := 0
	if u.clean {
		nClean = h.inv.countBefore(today - 1)
	}
	n := nClean + int(u.stock) + int(u.takes)
	for i := range n {
		t := start + int64(i+1)*u.dur/int64(n+1)
		d := g.dayOf(t)
		h.finalizeInventory(d - 1)
		var it item
		v := -1.0
		switch {
		case i < nClean:
			it = h.inv.removeBefore(today - 1)
		case i < nClean+int(u.stock):
			c := h.pickCat()
			life := shelfLife[c]
			it = item{cat: uint8(c), bb: today + int64(life[0]+h.rng.IntN(life[1]-life[0]+1))}
			h.inv.items = append(h.inv.items, it)
			v = 1
		default:
			var ok bool
			if it, ok = h.inv.take(h.rng, u.mask); !ok {
				continue
			}
		}
		g.emit(u.dev, t, device.SignalInventory, v, catNames[it.cat], it.bb)
		a := h.acc(d)
		if v > 0 {
			a.ItemsStocked++
		} else {
			a.ItemsTaken++
		}
	}
}

// finalizeInventory records the inventory at the end of every day up to through.
func (h *Household) finalizeInventory(through int64) {
	for ; h.invDay <= through; h.invDay++ {
		a := h.acc(h.invDay)
		a.InventoryItems = len(h.inv.items)
		a.ExpiredItems = h.inv.countBefore(h.invDay)
	}
}

func (h *Household) pickCat() int {
	w := &h.hab.catWeights
	var total float64
	for _, x := range w {
		total += x
	}
	x := h.rng.Float64() * total
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return numCats - 1
}

// programme is a washer or dishwasher programme: its length and the minutes of its
// heating and final (spin or drying) phases.
type programme struct {
	name                  string
	minutes, heat, finish int
	weight                float64
}

var washerProgs = [...]programme{
	{"cotton40", 105, 12, 10, 0.30},
	{"cotton60", 125, 20, 12, 0.12},
	{"eco", 150, 10, 12, 0.20},
	{"quick30", 30, 4, 5, 0.18},
	{"synthetics40", 80, 10, 6, 0.12},
	{"wool30", 50, 5, 3, 0.08},
}

var dishProgs = [...]programme{
	{"eco50", 170, 12, 30, 0.45},
	{"auto55", 125, 14, 20, 0.30},
	{"quick45", 45, 8, 5, 0.15},
	{"intensive65", 140, 18, 20, 0.10},
}

// cycle emits a cycle: cycle=1, a power reading every minute, power 0.5 W standby
// and cycle=0 with the energy in Wh (the integral of its power readings, rounded).
func (h *Household) cycle(g *unit, u *use, kind device.Kind, start, end int64) int64 {
	washer := kind == device.KindWasher
	var p programme
	if washer {
		p = washerProgs[u.prog]
	} else {
		p = dishProgs[u.prog]
	}
	g.emit(u.dev, start, device.SignalCycle, 1, p.name, 0)
	n := int(u.dur / minuteMs)
	var wh float64
	for k := range n {
		var w float64
		switch {
		case k < 2: // filling
			w = h.uni(10, 35)
		case k < 2+p.heat:
			w = h.uni(1900, 2150)
		case k >= n-p.finish:
			if washer {
				w = h.uni(300, 600) // spin
			} else {
				w = h.uni(5, 20) // drying
			}
		case !washer && k >= n-p.finish-8:
			w = h.uni(1800, 2100) // hot rinse
		case washer:
			w = h.uni(150, 500)
		default:
			w = h.uni(60, 150)
		}
		w = math.Round(w*10) / 10
		g.emit(u.dev, start+int64(k)*minuteMs, device.SignalPower, w, "", 0)
		wh += w / 60
	}
	g.emit(u.dev, end, device.SignalPower, 0.5, "", 0)
	e := int64(math.Round(wh))
	g.emit(u.dev, end, device.SignalCycle, 0, p.name, e)
	return e
}
