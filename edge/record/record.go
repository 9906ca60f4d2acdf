// Package record defines the records of hearth's store that more than one stage
// reads: the rollups (Day and its aggregates) and the tags (Tag, TagChange). Pure
// data and its decoding, no I/O: edge/rollup aggregates into them without touching
// the store, and edge/store stores and serves them through its typed views
// (FORMAT.md describes their bytes), so that a reader — tagging, sync — needs no
// package of the stage that wrote them.
package record

import (
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/hearth-iot/hearth/device"
)

// SessionEdges are the lower edges, in seconds, of the session-duration histogram
// buckets: Sessions.Hist[i] counts sessions lasting at least SessionEdges[i] and less
// than SessionEdges[i+1].
var SessionEdges = [...]float64{0, 10, 30, 60, 120, 300, 600, 1800}

// SignalStats are the plain aggregates of a signal's values.
type SignalStats struct {
	Count uint32  `json:"n"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Last  float64 `json:"last"`
}

// Mean is Sum/Count, or 0 without values.
func (s *SignalStats) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

// Add folds v into the aggregates.
func (s *SignalStats) Add(v float64) {
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

// Add counts a session of sec seconds.
func (s *Sessions) Add(sec float64) {
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

// Day is the rollup of one device's signal over one local day (FORMAT.md, rollups).
type Day struct {
	Date    string        `json:"date"` // YYYY-MM-DD, local
	Device  string        `json:"device"`
	Kind    device.Kind   `json:"kind"`
	Signal  device.Signal `json:"signal"`
	Weekday time.Weekday  `json:"weekday"`

	Stats SignalStats `json:"stats"`
	// Hours holds the per-hour aggregates (index: local hour); hours without data are zero.
	Hours [24]SignalStats `json:"hours"`
	// Activations counts off→on transitions per local hour (binary signals).
	Activations [24]uint16 `json:"activations"`
	Sessions    Sessions   `json:"sessions"`
	Cycles      Cycles     `json:"cycles"`
	Inventory   Inventory  `json:"inventory"`
	First       time.Time  `json:"first"`
	Last        time.Time  `json:"last"` // the latest reading's time (never earlier than one before it)

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

// TotalActivations sums Activations over the hours in [from, to), wrapping past midnight
// when from > to.
func (d *Day) TotalActivations(from, to int) int {
	n := 0
	for h := range 24 {
		if from <= to && h >= from && h < to || from > to && (h >= from || h < to) {
			n += int(d.Activations[h])
		}
	}
	return n
}

// DayKey identifies a Day.
type DayKey struct {
	Date   string
	Device string
	Signal device.Signal
}

// Key is the Day's key.
func (d *Day) Key() DayKey { return DayKey{Date: d.Date, Device: d.Device, Signal: d.Signal} }

// Tag is what hearth has learned about the household under one rule.
type Tag struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Consent     string             `json:"consent"`
	Score       float64            `json:"score"`
	Confidence  float64            `json:"confidence"` // how much evidence backed the score, in [0,1] (the rule's confidence)
	Active      bool               `json:"active"`
	Status      string             `json:"status"`
	Error       string             `json:"error,omitempty"`
	Evidence    map[string]float64 `json:"evidence"`
	Days        int                `json:"days"`     // days with data from the rule's kinds in the window
	MinDays     int                `json:"min_days"` // days needed before the tag may turn active
	WindowDays  float64            `json:"window_days"`
	From        string             `json:"from"`                // first date of the window
	To          string             `json:"to"`                  // last date of the window (the data clock's date)
	FirstSeen   time.Time          `json:"first_seen,omitzero"` // first evaluation that found it active
	LastSeen    time.Time          `json:"last_seen,omitzero"`  // last evaluation that found it active
	Expires     time.Time          `json:"expires,omitzero"`    // when an active tag lapses unless confirmed again
	Evaluated   time.Time          `json:"evaluated"`           // data-clock time of the evaluation
}

// TagChange is one entry of the tag log: a tag that appeared, turned on or off,
// changed status, or moved its score.
type TagChange struct {
	Tag        string    `json:"tag"`
	Score      float64   `json:"score"`
	Confidence float64   `json:"confidence"`
	Active     bool      `json:"active"`
	Status     string    `json:"status"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`            // new, activated, deactivated, score, status
	Consent    string    `json:"consent,omitempty"` // the tag's consent category (usage, sensitive)
}

// Decode reads a JSON record written with encoding/json. It decodes with
// github.com/go-json-experiment/json, the implementation of encoding/json/v2: 3x
// faster than encoding/json on a Day (23 µs against 73 on the dev machine, 6
// allocations against 17), and the summaries and tag rules decode every Day of their
// window each time they run. The records are encoding/json's output, so the stricter
// v2 rules (valid UTF-8, no duplicate names, exact member names) always hold; v1's
// forms that v2 reads differently by default are asked for (durations in
// nanoseconds, byte arrays as arrays, fixed arrays of any stored length).
func Decode(v []byte, x any) error { return jsonv2.Unmarshal(v, x, v1Forms) }

var v1Forms = jsonv2.JoinOptions(jsonv1.FormatDurationAsNano(true), jsonv1.FormatByteArrayAsArray(true),
	jsonv1.UnmarshalArrayFromAnyLength(true))
