package rollup

import (
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/record"
)

// MaxSession caps a session: an "on" state longer than this (a sensor that missed its
// "off") is closed at the cap and counted in Sessions.Capped.
const MaxSession = 12 * time.Hour

// The records a rollup writes are edge/record's: pure data that the store keeps and
// that tagging and sync read without this package.
type (
	Stats     = record.SignalStats
	Sessions  = record.Sessions
	Cycles    = record.Cycles
	Inventory = record.Inventory
	Day       = record.Day
	DayKey    = record.DayKey
)

// MaxStarts bounds Day.Starts; activations past it still count in Activations.
const MaxStarts = record.MaxStarts

// MaxPowerHold is the longest a power reading is taken to hold: a device silent for
// longer is treated as unknown, not as drawing its last value, past this.
const MaxPowerHold = 12 * time.Hour

// StateKey identifies the running state of one device's signal.
type StateKey struct {
	Device string
	Signal device.Signal
}

// Item is a stocked food item, kept until taken.
type Item struct {
	Category   string `json:"c"`
	BestBefore int64  `json:"bb"` // days since 1970-01-01, 0 unknown
	Stocked    int64  `json:"at"` // unix seconds
}

// MaxStock bounds the items kept per fridge; the oldest are dropped past it.
const MaxStock = 500

// State is what must survive between readings of one device's signal: an open
// session, a cycle in progress, the stock of items.
type State struct {
	Kind      device.Kind    `json:"kind"`
	On        bool           `json:"on"`
	OnSince   time.Time      `json:"on_since,omitzero"`
	LastAt    time.Time      `json:"last_at,omitzero"`
	LastValue float64        `json:"last_value"`
	Detector  *CycleDetector `json:"detector,omitempty"`
	Stock     []Item         `json:"stock,omitempty"`
	// Water since the last filter change (water signal's State only): litres, and
	// since when they are counted (the change, else the first water reading).
	// FilterSeen reports whether a filter change was ever seen.
	SinceLitres float64   `json:"since_l,omitempty"`
	SinceAt     time.Time `json:"since_at,omitzero"`
	FilterSeen  bool      `json:"filter_seen,omitempty"`
	Out         uint64    `json:"out_of_order,omitempty"` // readings older than LastAt (aggregated, not sessionised)
}

// Aggregator folds readings into Days. It is pure: Load and LoadState supply what was
// persisted, Dirty returns what changed; the caller persists it.
type Aggregator struct {
	Loc       *time.Location
	Load      func(DayKey) (*Day, bool) // nil or !ok: a new Day
	LoadState func(StateKey) (*State, bool)

	days   map[DayKey]*Day
	states map[StateKey]*State
}

// NewAggregator returns an Aggregator for local time loc (nil: UTC).
func NewAggregator(loc *time.Location) *Aggregator {
	if loc == nil {
		loc = time.UTC
	}
	return &Aggregator{Loc: loc, days: map[DayKey]*Day{}, states: map[StateKey]*State{}}
}

func (a *Aggregator) day(dev string, kind device.Kind, sig device.Signal, t time.Time) (*Day, int) {
	lt := t.In(a.Loc)
	k := DayKey{Date: lt.Format(time.DateOnly), Device: dev, Signal: sig}
	d, ok := a.days[k]
	if !ok {
		if a.Load != nil {
			d, ok = a.Load(k)
		}
		if !ok || d == nil {
			d = &Day{Date: k.Date, Device: dev, Kind: kind, Signal: sig, Weekday: lt.Weekday()}
		}
		a.days[k] = d
	}
	d.Kind = kind
	return d, lt.Hour()
}

func (a *Aggregator) state(dev string, sig device.Signal, kind device.Kind) *State {
	k := StateKey{dev, sig}
	st, ok := a.states[k]
	if !ok {
		if a.LoadState != nil {
			st, ok = a.LoadState(k)
		}
		if !ok || st == nil {
			st = &State{}
		}
		a.states[k] = st
	}
	st.Kind = kind
	return st
}

// Add folds one reading in, by its event time (Reading.Time).
func (a *Aggregator) Add(r *device.Reading) {
	t := r.Time()
	d, h := a.day(r.Device, r.Kind, r.Signal, t)
	d.Stats.Add(r.Value)
	d.Hours[h].Add(r.Value)
	if d.First.IsZero() || t.Before(d.First) {
		d.First = t
	}
	if t.After(d.Last) {
		d.Last = t
	}
	st := a.state(r.Device, r.Signal, r.Kind)
	if !st.LastAt.IsZero() && t.Before(st.LastAt) {
		// Late reading: its values count in its day, but it must not open or close
		// sessions out of order.
		st.Out++
		return
	}
	switch {
	case r.Signal.Binary():
		on := r.Value != 0
		if on && !st.On {
			d.Activations[h]++
			addStart(d, t.In(a.Loc))
			st.On, st.OnSince = true, t
		} else if !on && st.On {
			a.closeSession(r.Device, r.Kind, r.Signal, st, t)
		} else if on && st.On && t.Sub(st.OnSince) > MaxSession {
			a.closeSession(r.Device, r.Kind, r.Signal, st, st.OnSince.Add(MaxSession))
			d.Activations[h]++
			addStart(d, t.In(a.Loc))
			st.On, st.OnSince = true, t
		}
	case r.Signal == device.SignalPower:
		if !st.LastAt.IsZero() {
			a.integrate(r.Device, r.Kind, st.LastAt, t, st.LastValue)
		}
		if st.Detector == nil {
			o, _ := CycleDefaults(string(r.Kind))
			st.Detector = NewCycleDetector(o)
		}
		if c, ok := st.Detector.Add(t, r.Value); ok {
			a.addCycle(r.Device, r.Kind, c)
		}
	case r.Signal == device.SignalWater:
		if st.SinceAt.IsZero() {
			st.SinceAt = t
		}
		st.SinceLitres += r.Value
	case r.Signal == device.SignalFilter:
		if r.Value != 0 {
			ws := a.state(r.Device, device.SignalWater, r.Kind)
			ws.SinceLitres, ws.SinceAt, ws.FilterSeen = 0, t, true
		}
	case r.Signal == device.SignalInventory:
		cat := r.Label
		if cat == "" {
			cat = "other"
		}
		if r.Value > 0 {
			if d.Inventory.Stocked == nil {
				d.Inventory.Stocked = map[string]uint32{}
			}
			d.Inventory.Stocked[cat]++
			st.Stock = append(st.Stock, Item{Category: cat, BestBefore: r.Aux, Stocked: t.Unix()})
			if len(st.Stock) > MaxStock {
				st.Stock = append(st.Stock[:0], st.Stock[len(st.Stock)-MaxStock:]...)
			}
		} else if r.Value < 0 {
			if d.Inventory.Taken == nil {
				d.Inventory.Taken = map[string]uint32{}
			}
			d.Inventory.Taken[cat]++
			st.Stock = takeItem(st.Stock, cat, r.Aux)
		}
	}
	st.LastAt, st.LastValue = t, r.Value
}

func addStart(d *Day, lt time.Time) {
	if len(d.Starts) < MaxStarts {
		d.Starts = append(d.Starts, uint16(lt.Hour()*60+lt.Minute()))
	}
}

// integrate adds the energy of watts held over [from, to) (at most MaxPowerHold) to
// the Days and hours it covers.
func (a *Aggregator) integrate(dev string, kind device.Kind, from, to time.Time, watts float64) {
	if to.Sub(from) > MaxPowerHold {
		to = from.Add(MaxPowerHold)
	}
	for from.Before(to) {
		lt := from.In(a.Loc)
		next := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), 0, 0, 0, a.Loc).Add(time.Hour)
		if !next.After(from) { // a DST fold: move on by a whole hour
			next = from.Add(time.Hour)
		}
		if next.After(to) {
			next = to
		}
		sec := next.Sub(from).Seconds()
		d, h := a.day(dev, kind, device.SignalPower, from)
		if d.HourWh == nil {
			d.HourWh = make([]float64, 24)
		}
		wh := watts * sec / 3600
		d.EnergyWh += wh
		d.HourWh[h] += wh
		d.PowerSec += sec
		from = next
	}
}

// takeItem removes the item of cat with best-before bb (or, failing that, the oldest
// item of cat: food is used first-in first-out).
func takeItem(stock []Item, cat string, bb int64) []Item {
	idx := -1
	for i, it := range stock {
		if it.Category == cat {
			if idx < 0 {
				idx = i
			}
			if bb != 0 && it.BestBefore == bb {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return stock
	}
	return append(stock[:idx], stock[idx+1:]...)
}

func (a *Aggregator) closeSession(dev string, kind device.Kind, sig device.Signal, st *State, end time.Time) {
	dur := end.Sub(st.OnSince)
	capped := false
	if dur > MaxSession {
		dur, capped = MaxSession, true
	}
	sd, _ := a.day(dev, kind, sig, st.OnSince) // attributed to the day it started
	sd.Sessions.Add(math.Max(dur.Seconds(), 0))
	if capped {
		sd.Sessions.Capped++
	}
	st.On, st.OnSince = false, time.Time{}
}

func (a *Aggregator) addCycle(dev string, kind device.Kind, c Cycle) {
	d, h := a.day(dev, kind, device.SignalPower, c.Start)
	d.Cycles.Count++
	d.Cycles.EnergyWh += c.EnergyWh
	d.Cycles.TotalSec += c.Length().Seconds()
	d.Cycles.Hours[h]++
}

// Dirty returns every Day and State touched since the last call, and forgets them.
func (a *Aggregator) Dirty() (map[DayKey]*Day, map[StateKey]*State) {
	d, s := a.days, a.states
	a.days, a.states = map[DayKey]*Day{}, map[StateKey]*State{}
	return d, s
}

// SpoiledItems counts the items in stock whose best-before day is before day (days
// since 1970-01-01).
func (st *State) SpoiledItems(day int64) int {
	n := 0
	for _, it := range st.Stock {
		if it.BestBefore != 0 && it.BestBefore < day {
			n++
		}
	}
	return n
}
