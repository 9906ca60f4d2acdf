package rollup

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// CycleOptions tunes detection for one appliance class.
type CycleOptions struct {
	// OnWatts: a sample at or above this starts a cycle, or resumes a paused one.
	OnWatts float64 `json:"on_w"`
	// OffWatts: below this the appliance is idle. OffWatts <= OnWatts; samples in
	// between keep the previous state (hysteresis).
	OffWatts float64 `json:"off_w"`
	// MaxGap is the idle time tolerated inside one cycle (a washer pauses while
	// soaking): a cycle idle for longer has ended where the idle time began.
	MaxGap time.Duration `json:"max_gap"`
	// MinLength: shorter runs are not cycles.
	MinLength time.Duration `json:"min_len"`
	// MinEnergyWh: runs with less energy are not cycles.
	MinEnergyWh float64 `json:"min_wh"`
	// MaxSampleGap: a gap in the data longer than this ends the cycle and is not
	// integrated (missing data is not energy). Zero means no limit.
	MaxSampleGap time.Duration `json:"max_sample_gap"`
}

// Validate reports the first problem with o, naming the field.
func (o CycleOptions) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(o.OnWatts) || o.OnWatts <= 0:
		return fmt.Errorf("rollup: cycle options: OnWatts %v: want a finite value > 0", o.OnWatts)
	case bad(o.OffWatts) || o.OffWatts <= 0 || o.OffWatts > o.OnWatts:
		return fmt.Errorf("rollup: cycle options: OffWatts %v: want 0 < OffWatts <= OnWatts (%v)", o.OffWatts, o.OnWatts)
	case o.MaxGap < 0:
		return errors.New("rollup: cycle options: MaxGap is negative")
	case o.MinLength < 0:
		return errors.New("rollup: cycle options: MinLength is negative")
	case bad(o.MinEnergyWh) || o.MinEnergyWh < 0:
		return fmt.Errorf("rollup: cycle options: MinEnergyWh %v: want a finite value >= 0", o.MinEnergyWh)
	case o.MaxSampleGap < 0:
		return errors.New("rollup: cycle options: MaxSampleGap is negative")
	}
	return nil
}

// cycleGeneric is the default for kinds without tuned values: any sustained draw of
// 25 W or more for a minute is a use.
var cycleGeneric = CycleOptions{OnWatts: 25, OffWatts: 10, MaxGap: 2 * time.Minute,
	MinLength: time.Minute, MinEnergyWh: 1, MaxSampleGap: 10 * time.Minute}

// CycleDefaults returns tuned defaults for a kind name: "washer", "dishwasher",
// "dryer", "kettle", "oven", "microwave" and "fridge" (compressor runs; "freezer" shares
// them, "stove" shares the oven's). Other kinds of hearth's vocabulary get a generic
// default; a name outside it gets the generic default and ok=false.
//
// The values are starting points for a plug that measures one appliance, drawn from
// how the appliances work and checked against REFIT (testdata/refit). On-thresholds
// follow Kelly & Knottenbelt, "Neural NILM" (BuildSys 2015), where they fit; every
// value can be overridden per device.
func CycleDefaults(kind string) (CycleOptions, bool) {
	switch device.Kind(kind) {
	case device.KindWasher:
		// Motor 100–500 W, heater ~2 kW; between tumbles, while filling and soaking the
		// draw falls to the electronics (≈5 W), for minutes. Standby and "End" displays
		// draw < 5 W. 5 min bridges rinse and soak pauses yet splits back-to-back loads
		// (unload, reload, restart rarely takes less). A quick wash lasts 15 min. Not yet
		// checked on a real washer: the REFIT sample has none running.
		return CycleOptions{OnWatts: 20, OffWatts: 8, MaxGap: 5 * time.Minute,
			MinLength: 10 * time.Minute, MinEnergyWh: 20, MaxSampleGap: 10 * time.Minute}, true
	case device.KindDishwasher:
		// Valves and electronics 10–25 W, pump 25–70 W, heater ~2.2 kW; standby up to
		// 6 W (REFIT house 5). Drying is passive for up to half an hour and may end with
		// a short pump run: 30 min, as Kelly & Knottenbelt. Programmes last 1–3 h. A
		// machine idling at 8 W or more needs OffWatts raised for that device.
		return CycleOptions{OnWatts: 10, OffWatts: 8, MaxGap: 30 * time.Minute,
			MinLength: 20 * time.Minute, MinEnergyWh: 50, MaxSampleGap: 10 * time.Minute}, true
	case device.KindDryer:
		// Drum motor 200–300 W throughout, heater ~2 kW cycling on its thermostat. After
		// the programme the anti-crease phase tumbles for seconds every few minutes: a
		// 2 min gap keeps those out of the cycle (each is rejected as too small).
		return CycleOptions{OnWatts: 50, OffWatts: 15, MaxGap: 2 * time.Minute,
			MinLength: 10 * time.Minute, MinEnergyWh: 50, MaxSampleGap: 10 * time.Minute}, true
	case device.KindKettle:
		// Resistive: 1–3 kW or nothing (REFIT's plugs show 23–41 W for a few seconds after
		// the switch-off, kept below OffWatts). 400 W covers 1 kW travel and US kettles.
		// A re-boil within 2 min is the same use. A boil of a cup takes ~30 s.
		return CycleOptions{OnWatts: 400, OffWatts: 50, MaxGap: 2 * time.Minute,
			MinLength: 10 * time.Second, MinEnergyWh: 3, MaxSampleGap: 5 * time.Minute}, true
	case device.KindOven, device.KindStove:
		// Elements 1–3 kW switched by the thermostat: off for minutes once at
		// temperature, while fan and lamp draw 20–60 W (kept running by OffWatts 15).
		return CycleOptions{OnWatts: 300, OffWatts: 15, MaxGap: 10 * time.Minute,
			MinLength: 5 * time.Minute, MinEnergyWh: 50, MaxSampleGap: 10 * time.Minute}, true
	case device.KindMicrowave:
		// Magnetron ~1–1.5 kW; lamp, fan and turntable 20–100 W run on when power levels
		// duty-cycle the magnetron. The door lamp alone (20–40 W) never starts a cycle.
		// Stir and restart within 2 min is the same use.
		return CycleOptions{OnWatts: 200, OffWatts: 20, MaxGap: 2 * time.Minute,
			MinLength: 10 * time.Second, MinEnergyWh: 1, MaxSampleGap: 5 * time.Minute}, true
	case device.KindFridge, device.KindFreezer:
		// Compressor 60–150 W with a defrost heater up to 1.3 kW; idle 0–10 W, door lamp
		// 15–40 W. Runs last 10–30 min and do not pause; a compressor never runs for less
		// than a couple of minutes. REFIT's plugs report a partial reading (28–43 W) as
		// the compressor stops: it is still the run (OffWatts 20).
		return CycleOptions{OnWatts: 50, OffWatts: 20, MaxGap: time.Minute,
			MinLength: 2 * time.Minute, MinEnergyWh: 1, MaxSampleGap: 10 * time.Minute}, true
	}
	return cycleGeneric, device.Kind(kind).Valid()
}

// Cycle is one completed cycle of an appliance.
type Cycle struct {
	Start time.Time `json:"start"` // first running sample (UTC)
	// End is when the appliance was first seen idle after its last running sample; if
	// the data stopped while it was running, the last sample or the Flush time (see
	// Truncated).
	End      time.Time `json:"end"`
	EnergyWh float64   `json:"wh"`     // energy over [Start, End), pauses included
	PeakW    float64   `json:"peak_w"` // highest running sample
	// Truncated reports that part of the cycle is missing from the data: it was
	// already running at the first sample after a gap longer than MaxSampleGap (or at
	// the first sample seen), or still running when the data stopped (such a gap, or
	// Flush). Its true length and energy may be larger.
	Truncated bool `json:"truncated,omitempty"`
}

// Length returns End - Start.
func (c Cycle) Length() time.Duration { return c.End.Sub(c.Start) }

// CycleDetector is a state machine fed one appliance's power samples in time order. It
// finds the appliance's cycles (a wash programme, a boil, a compressor run) when the
// appliance reports nothing but watts, as from a smart plug.
//
// Hysteresis decides whether the appliance is running: a sample at or above OnWatts
// sets it running, a sample below OffWatts clears it, a sample in between keeps the
// previous state. A cycle starts at the first running sample and pauses at the first
// sample below OffWatts; it resumes if a sample at or above OnWatts comes within MaxGap
// of the pause, and otherwise ends where the pause began. A gap in the data longer than
// MaxSampleGap ends it at its last sample. A cycle shorter than MinLength or with less
// than MinEnergyWh is not reported (Rejected counts it).
//
// Energy is integrated by steps, not trapezoids: a sample's watts hold until the next
// sample, so the interval [t(i), t(i+1)) belongs to sample i. Plugs that report on
// change (Zigbee, Tasmota) say "2000 W" once and then nothing until the value changes:
// the reading really holds, and a trapezoid would ramp it down across the silent
// interval and halve a boil. REFIT's cleaned data forward-fills each plug's last
// reading in the same way. And each interval belongs to exactly one state (running,
// paused, idle), so a cycle's energy is its integral over [Start, End) and a pause
// splits cleanly. With regular sampling the two rules differ by half a sample at each
// edge (about 2% of a kettle boil at 8 s). An interval longer than MaxSampleGap is
// never integrated: missing data is not energy.
//
// The exported fields are the whole state: encoded as JSON between batches and decoded
// after a restart, the detector resumes mid-cycle with the result an uninterrupted run
// would have given. The zero value is not usable: use NewCycleDetector, or decode a
// saved one (and set Options afterwards to apply new tuning). A CycleDetector is not
// safe for concurrent use. Add, Flush and Expire do not allocate.
type CycleDetector struct {
	Options CycleOptions `json:"options"`

	Seen    bool      `json:"seen,omitempty"`    // a valid sample has been accepted
	LastT   time.Time `json:"last_t,omitzero"`   // time of the last accepted sample (UTC)
	LastW   float64   `json:"last_w,omitempty"`  // its watts, held until the next sample
	Open    bool      `json:"open,omitempty"`    // a cycle is in progress
	Running bool      `json:"running,omitempty"` // hysteresis state inside a cycle: running, else paused
	// Cur is the cycle in progress. While running Cur.End is the last sample; while
	// paused it is when the pause began.
	Cur Cycle `json:"cur,omitzero"`
	// PauseWh is the energy drawn since the pause began; it joins Cur if the cycle
	// resumes and is dropped if it ends.
	PauseWh float64 `json:"pause_wh,omitempty"`

	Stale    uint64 `json:"stale,omitempty"`    // samples at or before LastT, ignored
	Invalid  uint64 `json:"invalid,omitempty"`  // NaN, infinite or negative watts, ignored
	Rejected uint64 `json:"rejected,omitempty"` // runs shorter than MinLength or below MinEnergyWh
	Cycles   uint64 `json:"cycles,omitempty"`   // cycles returned
}

// NewCycleDetector returns a detector with options o. It does not validate them: do
// that where they are configured (CycleOptions.Validate).
func NewCycleDetector(o CycleOptions) *CycleDetector {
	return &CycleDetector{Options: o}
}

// Active reports whether a cycle is in progress (running or paused).
func (d *CycleDetector) Active() bool { return d.Open }

// Add feeds one sample; it returns a completed cycle when this sample ends one. A
// sample at or before the last accepted one is ignored (Stale), as are NaN, infinite
// and negative watts (Invalid). Times are kept and returned in UTC.
func (d *CycleDetector) Add(t time.Time, watts float64) (Cycle, bool) {
	if math.IsNaN(watts) || math.IsInf(watts, 0) || watts < 0 {
		d.Invalid++
		return Cycle{}, false
	}
	t = t.UTC() // also drops any monotonic reading: a restored detector computes the same
	if d.Seen && !t.After(d.LastT) {
		d.Stale++
		return Cycle{}, false
	}
	o := &d.Options
	gap := d.Seen && o.MaxSampleGap > 0 && t.Sub(d.LastT) > o.MaxSampleGap

	var done Cycle
	var ok bool
	if d.Open {
		if gap {
			done, ok = d.end(d.Running)
		} else {
			d.hold(t)
		}
	}
	if d.Open {
		switch {
		case watts >= o.OnWatts && !d.Running:
			if t.Sub(d.Cur.End) > o.MaxGap {
				done, ok = d.end(false)
				d.begin(t, watts, false)
			} else {
				d.Running = true
				d.Cur.End = t
				d.Cur.EnergyWh += d.PauseWh
				d.PauseWh = 0
				d.Cur.PeakW = max(d.Cur.PeakW, watts)
			}
		case d.Running && watts < o.OffWatts:
			d.Running = false // the pause begins at t, which hold made Cur.End
		case d.Running:
			d.Cur.PeakW = max(d.Cur.PeakW, watts)
		case t.Sub(d.Cur.End) > o.MaxGap: // paused, and not resuming
			done, ok = d.end(false)
		}
	} else if watts >= o.OnWatts {
		d.begin(t, watts, !d.Seen || gap)
	}
	d.Seen, d.LastT, d.LastW = true, t, watts
	return done, ok
}

// Flush ends the cycle in progress as if the data stopped at t (end of a replay, a
// device removed): a running appliance is held at its last reading until t (if t is
// within MaxSampleGap of it) and the cycle is Truncated; a paused one ends where the
// pause began. It returns the cycle if it qualifies. Later samples at or before t are
// Stale. To carry a cycle across a restart, save the detector instead.
func (d *CycleDetector) Flush(t time.Time) (Cycle, bool) {
	if !d.Seen {
		return Cycle{}, false
	}
	t = t.UTC()
	if !t.After(d.LastT) {
		t = d.LastT
	}
	var done Cycle
	var ok bool
	if d.Open {
		if d.Running && t.After(d.LastT) && (d.Options.MaxSampleGap == 0 || t.Sub(d.LastT) <= d.Options.MaxSampleGap) {
			d.hold(t)
		}
		done, ok = d.end(d.Running)
	}
	d.LastT, d.LastW = t, 0
	return done, ok
}

// Expire ends the cycle in progress if no later sample can extend it: the appliance has
// been paused for longer than MaxGap by now, or the data has been silent for longer
// than MaxSampleGap. Call it on a timer for plugs that report only on change, which may
// say "0 W" once and then nothing for hours. It returns what the next Add would have,
// and leaves the detector as that Add would (so calling it never changes the cycles
// found).
func (d *CycleDetector) Expire(now time.Time) (Cycle, bool) {
	if !d.Open || !now.After(d.LastT) {
		return Cycle{}, false
	}
	if g := d.Options.MaxSampleGap; g > 0 && now.Sub(d.LastT) > g {
		return d.end(d.Running)
	}
	if !d.Running && now.Sub(d.Cur.End) > d.Options.MaxGap {
		return d.end(false)
	}
	return Cycle{}, false
}

// begin opens a cycle at a running sample.
func (d *CycleDetector) begin(t time.Time, watts float64, truncated bool) {
	d.Open, d.Running, d.PauseWh = true, true, 0
	d.Cur = Cycle{Start: t, End: t, PeakW: watts, Truncated: truncated}
}

// hold integrates the last sample's watts up to t, into the cycle while running (which
// then lasts until t) or into PauseWh while paused.
func (d *CycleDetector) hold(t time.Time) {
	wh := d.LastW * t.Sub(d.LastT).Seconds() / 3600
	if d.Running {
		d.Cur.EnergyWh += wh
		d.Cur.End = t
	} else {
		d.PauseWh += wh
	}
}

// end closes the cycle in progress and returns it if it qualifies.
func (d *CycleDetector) end(truncated bool) (Cycle, bool) {
	c := d.Cur
	c.Truncated = c.Truncated || truncated
	d.Open, d.Running, d.PauseWh, d.Cur = false, false, 0, Cycle{}
	if c.Length() < d.Options.MinLength || c.EnergyWh < d.Options.MinEnergyWh {
		d.Rejected++
		return Cycle{}, false
	}
	d.Cycles++
	return c, true
}
