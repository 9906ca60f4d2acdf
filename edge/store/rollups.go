package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/hearth-iot/hearth/edge/record"
)

// The rollups bucket: one Day per device, signal and local date, written by
// edge/rollup and read by edge/tagging and sync/summary through these typed views.
// The store defines the record, so that a reader needs no other stage's package:
// sync sees the edge only through the store.

// The records are edge/record's (pure data, shared with the stages that make them).
type (
	SignalStats = record.SignalStats
	Sessions    = record.Sessions
	Cycles      = record.Cycles
	Inventory   = record.Inventory
	Day         = record.Day
	DayKey      = record.DayKey
)

// MaxStarts bounds Day.Starts.
const MaxStarts = record.MaxStarts

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
	// The rollups bucket's check (checkJSONValue: JSON in valid UTF-8) is what
	// json.Marshal writes by construction: not run again on each Day (15 a second
	// at 30 devices, a json.Valid each).
	return t.putUnchecked(Rollups, dayKey(d.Key()), v)
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

// decodeRecord reads a JSON record written with encoding/json (record.Decode).
func decodeRecord(v []byte, x any) error { return record.Decode(v, x) }

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
