package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/hearth-iot/hearth/device"
)

// The rollups bucket: one Day per device, signal and local date, written by
// edge/rollup and read by edge/tagging and sync/summary through these typed views.
// The store defines the record, so that a reader needs no other stage's package:
// sync sees the edge only through the store.

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

// dayKey is the bucket key of a Day: date, device and signal joined by NUL, so that
// a window of dates is one range scan.
func dayKey(k DayKey) []byte { return []byte(k.Date + "\x00" + k.Device + "\x00" + string(k.Signal)) }

// Day returns the Day of k; nil without one. An unreadable record is a *RecordError
// (the caller quarantines it: Tx.Quarantine).
func (t *Tx) Day(k DayKey) (*Day, error) {
	key := dayKey(k)
	v := t.bucket(Rollups).Get(key)
	if v == nil {
		return nil, nil
	}
	var d Day
	if err := decodeRecord(v, &d); err != nil {
		return nil, &RecordError{Bucket: Rollups, Key: key, Err: err}
	}
	return &d, nil
}

// PutDay stores d under its key.
func (t *Tx) PutDay(d *Day) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: rollup %s %s %s: %w", d.Date, d.Device, d.Signal, err)
	}
	return t.put(Rollups, dayKey(d.Key()), v)
}

// Days calls fn for every Day dated from from to to (YYYY-MM-DD, inclusive), in
// key order (date, device, signal), until fn returns an error. An unreadable record
// stops the scan with a *RecordError.
func (t *Tx) Days(from, to string, fn func(*Day) error) error {
	c := t.bucket(Rollups).Cursor()
	for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
		date, _, _ := bytes.Cut(k, []byte{0})
		if string(date) > to {
			return nil
		}
		var d Day
		if err := decodeRecord(v, &d); err != nil {
			return &RecordError{Bucket: Rollups, Key: append([]byte(nil), k...), Err: err}
		}
		if err := fn(&d); err != nil {
			return err
		}
	}
	return nil
}

// DataClocks returns each device's newest reading time rolled up so far, as the
// rollup consumer records it with its Days (PutDataClock): tags are evaluated, and
// a device's days closed for its summaries, as of these clocks.
func (t *Tx) DataClocks() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	c := t.bucket(State).Cursor()
	prefix := []byte(clockPrefix)
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var at time.Time
		if err := json.Unmarshal(v, &at); err != nil {
			return nil, &RecordError{Bucket: State, Key: append([]byte(nil), k...), Err: err}
		}
		out[string(k[len(prefix):])] = at
	}
	return out, nil
}

// DataClock is the newest of DataClocks (zero without one).
func (t *Tx) DataClock() (time.Time, error) {
	cs, err := t.DataClocks()
	var last time.Time
	for _, at := range cs {
		if at.After(last) {
			last = at
		}
	}
	return last, err
}

// PutDataClock records the newest reading time of dev rolled up so far.
func (t *Tx) PutDataClock(dev string, at time.Time) error {
	return t.putJSON(State, []byte(clockPrefix+dev), at.UTC())
}

// clockPrefix keys the data clocks in the state bucket ("clock" NUL device).
const clockPrefix = "clock\x00"

// decodeRecord reads a JSON record written with encoding/json. It decodes with
// github.com/go-json-experiment/json, the implementation of encoding/json/v2: 3x
// faster than encoding/json on a Day (23 µs against 73 on the dev machine, 6
// allocations against 17), and the summaries and tag rules decode every Day of their
// window each time they run. The records are encoding/json's output, so the stricter
// v2 rules (valid UTF-8, no duplicate names, exact member names) always hold; v1's
// forms that v2 reads differently by default are asked for (durations in
// nanoseconds, byte arrays as arrays, fixed arrays of any stored length).
func decodeRecord(v []byte, x any) error { return jsonv2.Unmarshal(v, x, v1Forms) }

var v1Forms = jsonv2.JoinOptions(jsonv1.FormatDurationAsNano(true), jsonv1.FormatByteArrayAsArray(true),
	jsonv1.UnmarshalArrayFromAnyLength(true))

// DayCache keeps the Days decoded by its last Window, each with a hash of its stored
// bytes: a Window decodes only the Days that changed since (today's, mostly).
// Decoding every Day of a 28-day window is most of a tag evaluation's cost
// otherwise. Entries not in the latest window are dropped, so it holds one window.
// The zero value is ready; a DayCache is not safe for concurrent use.
type DayCache struct {
	seed    maphash.Seed
	entries map[string]cachedDay
}

type cachedDay struct {
	sum uint64
	day *Day
}

// Window returns the Days dated from from to to (inclusive), as Tx.Days. The Days
// are shared with the cache: callers must not modify them.
func (c *DayCache) Window(tx *Tx, from, to string) ([]*Day, error) {
	if c.entries == nil {
		c.seed = maphash.MakeSeed()
		c.entries = map[string]cachedDay{}
	}
	next := make(map[string]cachedDay, len(c.entries))
	var out []*Day
	cur := tx.bucket(Rollups).Cursor()
	for k, v := cur.Seek([]byte(from)); k != nil; k, v = cur.Next() {
		date, _, _ := bytes.Cut(k, []byte{0})
		if string(date) > to {
			break
		}
		sum := maphash.Bytes(c.seed, v)
		e, ok := c.entries[string(k)]
		if !ok || e.sum != sum {
			d := new(Day)
			if err := decodeRecord(v, d); err != nil {
				return nil, &RecordError{Bucket: Rollups, Key: append([]byte(nil), k...), Err: err}
			}
			e = cachedDay{sum, d}
		}
		next[string(k)] = e
		out = append(out, e.day)
	}
	c.entries = next
	return out, nil
}
