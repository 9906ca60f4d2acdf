package rollup

import (
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// SessionEdges are the lower edges, in seconds, of the session-duration histogram
// buckets: Sessions.Hist[i] counts sessions lasting at least SessionEdges[i] and less
// than SessionEdges[i+1].
var SessionEdges = [...]float64{0, 10, 30, 60, 120, 300, 600, 1800}

// MaxSession caps a session: an "on" state longer than this (a sensor that missed its
// "off") is closed at the cap and counted in Sessions.Capped.
const MaxSession = 12 * time.Hour

// Stats are the plain aggregates of a signal's values.
type Stats struct {
	Count uint32  `json:"n"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Last  float64 `json:"last"`
}

// Mean is Sum/Count, or 0 without values.
func (s *Stats) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

func (s *Stats) add(v float64) {
	if s.Count == 0 || v < s.Min {
		s.Min = v
	}
	if s.Count == 0 || v > s.Max {
		s.Max = v
	}
	s.Count++
	s.Sum += v
	s.Last = v
}

// Sessions aggregates the "on" periods of a binary signal (door open, appliance
// active, cycle running), each attributed to the local day and hour it started.
type Sessions struct {
	Count      uint32                    `json:"n"`
	TotalSec   float64                   `json:"total_s"`
	LongestSec float64                   `json:"longest_s"`
	Hist       [len(SessionEdges)]uint32 `json:"hist"`
	Capped     uint32                    `json:"capped,omitempty"`
}

func (s *Sessions) add(sec float64) {
	s.Count++
	s.TotalSec += sec
	if sec > s.LongestSec {
		s.LongestSec = sec
	}
	i := len(SessionEdges) - 1
	for i > 0 && sec < SessionEdges[i] {
		i--
	}
	s.Hist[i]++
}

// Over returns the sessions at least sec long. The histogram keeps no finer detail
// than its edges: sec is rounded up to the next edge (Over(45) counts sessions ≥ 60 s).
func (s *Sessions) Over(sec float64) uint32 {
	var n uint32
	for i, e := range SessionEdges {
		if e >= sec {
			n += s.Hist[i]
		}
	}
	return n
}

// Cycles aggregates appliance cycles detected from power draw, by start.
type Cycles struct {
	Count    uint32     `json:"n"`
	EnergyWh float64    `json:"energy_wh"`
	TotalSec float64    `json:"total_s"`
	Hours    [24]uint16 `json:"hours"`
}

// Inventory aggregates food-inventory movements by category.
type Inventory struct {
	Stocked map[string]uint32 `json:"stocked,omitempty"`
	Taken   map[string]uint32 `json:"taken,omitempty"`
}

// Day is the rollup of one device's signal over one local day.
type Day struct {
	Date    string        `json:"date"` // YYYY-MM-DD, local
	Device  string        `json:"device"`
	Kind    device.Kind   `json:"kind"`
	Signal  device.Signal `json:"signal"`
	Weekday time.Weekday  `json:"weekday"`

	Stats Stats `json:"stats"`
	// Hours holds the per-hour aggregates (index: local hour); hours without data are zero.
	Hours [24]Stats `json:"hours"`
	// Activations counts off→on transitions per local hour (binary signals).
	Activations [24]uint16 `json:"activations"`
	Sessions    Sessions   `json:"sessions"`
	Cycles      Cycles     `json:"cycles"`
	Inventory   Inventory  `json:"inventory"`
	First       time.Time  `json:"first"`
	Last        time.Time  `json:"last"`

	// Starts lists the local minute of the day (0..1439) of each off→on transition of
	// a binary signal, in arrival order, at most MaxStarts a day: the kitchen-episode
	// detectors need finer times than Activations' hours. Days written before it
	// existed have none (the detectors then fall back to Activations).
	Starts []uint16 `json:"starts,omitempty"`
	// EnergyWh integrates a power signal as a step function (each reading holds until
	// the next one of the device, at most MaxPowerHold), split at local hour
	// boundaries: EnergyWh is the day's total, HourWh (24 entries, or none) per hour.
	EnergyWh float64   `json:"energy_wh,omitempty"`
	HourWh   []float64 `json:"hour_wh,omitempty"`
	// PowerSec is the time covered by that step function on this day.
	PowerSec float64 `json:"power_s,omitempty"`
}

// MaxStarts bounds Day.Starts; activations past it still count in Activations.
const MaxStarts = 720

// MaxPowerHold is the longest a power reading is taken to hold: a device silent for
// longer is treated as unknown, not as drawing its last value, past this.
const MaxPowerHold = 12 * time.Hour

// TotalActivations sums Activations over the hours in [from, to), wrapping past midnight
// when from > to.
func (d *Day) TotalActivations(from, to int) int {
	n := 0
	for h := 0; h < 24; h++ {
		if inHours(h, from, to) {
			n += int(d.Activations[h])
		}
	}
	return n
}

func inHours(h, from, to int) bool {
	if from <= to {
		return h >= from && h < to
	}
	return h >= from || h < to
}

// DayKey identifies a Day.
type DayKey struct {
	Date   string
	Device string
	Signal device.Signal
}

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
	d.Stats.add(r.Value)
	d.Hours[h].add(r.Value)
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
			d.addStart(t.In(a.Loc))
			st.On, st.OnSince = true, t
		} else if !on && st.On {
			a.closeSession(r.Device, r.Kind, r.Signal, st, t)
		} else if on && st.On && t.Sub(st.OnSince) > MaxSession {
			a.closeSession(r.Device, r.Kind, r.Signal, st, st.OnSince.Add(MaxSession))
			d.Activations[h]++
			d.addStart(t.In(a.Loc))
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

func (d *Day) addStart(lt time.Time) {
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
	sd.Sessions.add(math.Max(dur.Seconds(), 0))
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
