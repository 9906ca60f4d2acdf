// Package stage is the rollup stage of the pipeline: it reads the event log from its
// cursor, folds the readings into rollups with edge/rollup's pure Aggregator, and
// persists the Days and its own States through edge/store in the same transaction
// as its cursor, so a restart resumes exactly where the last commit ended.
package stage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// CursorName is the rollup consumer's cursor in the store.
const CursorName = "rollup"

// stateOwner is the rollup's part of the store's state bucket: one State per device
// and signal, keyed "device NUL signal", JSON (the rollup's own record).
const stateOwner = "rollup"

func stateKey(k rollup.StateKey) string { return k.Device + "\x00" + string(k.Signal) }

// Consumer reads the event log from its cursor and persists rollups.
type Consumer struct {
	st    *store.Store
	loc   *time.Location
	batch int
	log   *slog.Logger

	processed prometheus.Counter
	lag       prometheus.GaugeFunc
	set       *metricset.Set

	// days and states hold the records the last steps wrote, decoded, so that the
	// next step need not read and decode them again: at 200 devices and a step every
	// 500ms, decoding each device's Day from JSON was most of the consumer's work. The
	// consumer is the only writer of both buckets; the caches are dropped whenever a
	// step fails (its aggregator changed the cached records in place) and when they
	// outgrow maxCached.
	days   map[rollup.DayKey]*rollup.Day
	states map[rollup.StateKey]*rollup.State

	buf []device.Reading // decoded events, reused from step to step

	clocked bool // the store's data clocks are known to be there (seedClocks)

	// endSeq is the store's LastSeq as of the last step that found no event after
	// its cursor (ended: there was one): while LastSeq stays there, no event has
	// been logged since and a step has nothing to read.
	endSeq uint64
	ended  bool
	reads  int // steps that read the store (tests)

	// failStep, in tests, fails a step after its aggregator has changed the records.
	failStep func() error
}

// maxCached bounds Consumer.days and Consumer.states (a Day is about 1.5 KB).
const maxCached = 1024

// ConsumerOptions tune a Consumer.
type ConsumerOptions struct {
	Location   *time.Location // local time zone of the household (nil: UTC)
	Batch      int            // most events per transaction (default 5000)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConsumerOptions are the documented defaults: the one place they are written.
func DefaultConsumerOptions() ConsumerOptions { return ConsumerOptions{Batch: 5000} }

// NewConsumer returns a Consumer over st.
func NewConsumer(st *store.Store, o *ConsumerOptions) *Consumer {
	var opts ConsumerOptions
	if o != nil {
		opts = *o
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultConsumerOptions().Batch
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{st: st, loc: opts.Location, batch: opts.Batch, log: opts.Logger.With("component", "rollup"),
		processed: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_rollup_events_total", Help: "Events folded into rollups."})}
	c.lag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_rollup_lag_events", Help: "Committed events not yet rolled up."},
		func() float64 {
			var cur uint64
			_ = st.View(func(tx *store.Tx) error { cur = tx.Cursor(CursorName); return nil })
			return float64(st.LastSeq() - cur)
		})
	c.set = metricset.Must(opts.Registerer, c.processed, c.lag)
	return c
}

// Unregister removes the consumer's metrics.
func (c *Consumer) Unregister() { c.set.Unregister() }

// Step rolls up at most one batch of new events; it returns how many it processed.
func (c *Consumer) Step() (int, error) {
	// LastSeq before reading: every event up to it is readable by the View below.
	end := c.st.LastSeq()
	if c.ended && c.clocked && end == c.endSeq {
		return 0, nil // nothing logged since the log was read to its end
	}
	c.ended = false
	c.reads++
	var cur uint64
	if err := c.st.View(func(tx *store.Tx) error { cur = tx.Cursor(CursorName); return nil }); err != nil {
		return 0, err
	}
	// Decode outside the write transaction, so the ingest writer is held up only by
	// the short update below.
	rs := c.buf[:0]
	last, err := c.st.ReadEvents(cur, c.batch, func(_ uint64, r *device.Reading) error {
		rs = append(rs, *r)
		return nil
	})
	c.buf = rs[:0] // the next step decodes into the same array (at most Batch readings of ~160 B)
	if err == nil && len(rs) == 0 && !c.clocked {
		if err = c.st.Update(c.seedClocks); err == nil {
			c.clocked = true
		}
	}
	if err != nil || len(rs) == 0 {
		if err == nil && last > cur { // nothing readable between cursor and last
			err = c.st.Update(func(tx *store.Tx) error { return tx.SetCursor(CursorName, last) })
		}
		if err == nil {
			c.ended, c.endSeq = true, end
		}
		return 0, err
	}
	var (
		days  map[rollup.DayKey]*rollup.Day
		dirty map[rollup.StateKey]*rollup.State
	)
	err = c.st.Update(func(tx *store.Tx) error {
		if tx.Cursor(CursorName) != cur {
			return fmt.Errorf("rollup: cursor moved under us (two consumers?)")
		}
		// A record that does not decode is quarantined (moved to the audit trail,
		// counted) and started afresh from what follows: never a stalled pipeline,
		// never a silent restart.
		var qerr error
		quarantine := func(err error) {
			var re *store.RecordError
			if errors.As(err, &re) {
				if e := tx.Quarantine(re); e != nil && qerr == nil {
					qerr = e
				}
				c.log.Error("rollup record unreadable: quarantined, started afresh", "err", err)
				return
			}
			if qerr == nil {
				qerr = err
			}
		}
		a := rollup.NewAggregator(c.loc)
		a.Load = func(k rollup.DayKey) (*rollup.Day, bool) {
			if d, ok := c.days[k]; ok {
				return d, true
			}
			d, err := tx.Day(k)
			if err != nil {
				quarantine(err)
				return nil, false
			}
			return d, d != nil
		}
		states := tx.StateOf(stateOwner)
		a.LoadState = func(k rollup.StateKey) (*rollup.State, bool) {
			if st, ok := c.states[k]; ok {
				return st, true
			}
			v := states.Get(stateKey(k))
			if v == nil {
				return nil, false
			}
			var st rollup.State
			if err := json.Unmarshal(v, &st); err != nil {
				quarantine(states.Unreadable(stateKey(k), err))
				return nil, false
			}
			return &st, true
		}
		if !c.clocked {
			// A store from before the data clocks had its rollup states only: each
			// device's clock is its states' newest reading.
			if err := c.seedClocks(tx); err != nil {
				return err
			}
		}
		for i := range rs {
			a.Add(&rs[i])
		}
		if qerr != nil {
			return qerr
		}
		days, dirty = a.Dirty()
		if c.failStep != nil {
			if err := c.failStep(); err != nil {
				return err
			}
		}
		for _, d := range days {
			if err := tx.PutDay(d); err != nil {
				return err
			}
		}
		clocks, err := tx.DataClocks()
		if err != nil {
			return err
		}
		for k, st := range dirty {
			v, err := json.Marshal(st)
			if err != nil {
				return fmt.Errorf("rollup: state %s %s: %w", k.Device, k.Signal, err)
			}
			if err := states.Put(stateKey(k), v); err != nil {
				return err
			}
			if st.LastAt.After(clocks[k.Device]) {
				clocks[k.Device] = st.LastAt
				if err := tx.PutDataClock(k.Device, st.LastAt); err != nil {
					return err
				}
			}
		}
		return tx.SetCursor(CursorName, last)
	})
	if err != nil {
		c.days, c.states = nil, nil
		return 0, err
	}
	c.remember(days, dirty)
	c.clocked = true
	c.processed.Add(float64(len(rs)))
	return len(rs), nil
}

// remember keeps the records a step has just committed for the next steps.
func (c *Consumer) remember(days map[rollup.DayKey]*rollup.Day, states map[rollup.StateKey]*rollup.State) {
	if c.days == nil || len(c.days)+len(days) > maxCached {
		c.days = make(map[rollup.DayKey]*rollup.Day, len(days))
	}
	if c.states == nil || len(c.states)+len(states) > maxCached {
		c.states = make(map[rollup.StateKey]*rollup.State, len(states))
	}
	for k, d := range days {
		if len(c.days) < maxCached {
			c.days[k] = d
		}
	}
	for k, st := range states {
		if len(c.states) < maxCached {
			c.states[k] = st
		}
	}
}

// CatchUp steps until the cursor reaches the end of the log.
func (c *Consumer) CatchUp() (int, error) {
	total := 0
	for {
		n, err := c.Step()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// seedClocks writes each device's data clock from its rollup states when the store
// has none yet (a store written before the clocks were).
func (c *Consumer) seedClocks(tx *store.Tx) error {
	have, err := tx.DataClocks()
	if err != nil || len(have) > 0 {
		return err
	}
	var states map[rollup.StateKey]rollup.State
	for range 100 { // quarantine what does not decode, at most this many records a step
		states, err = States(tx)
		var re *store.RecordError
		if !errors.As(err, &re) {
			break
		}
		if err = tx.Quarantine(re); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	clocks := map[string]time.Time{}
	for k, st := range states {
		if st.LastAt.After(clocks[k.Device]) {
			clocks[k.Device] = st.LastAt
		}
	}
	for dev, at := range clocks {
		if err := tx.PutDataClock(dev, at); err != nil {
			return err
		}
	}
	return nil
}

// States returns the rollup states of every device's signals (the rollup's own
// records: only the rollup and its tests read them).
func States(tx *store.Tx) (map[rollup.StateKey]rollup.State, error) {
	out := map[rollup.StateKey]rollup.State{}
	states := tx.StateOf(stateOwner)
	err := states.Each(func(k string, v []byte) error {
		dev, sig, ok := strings.Cut(k, "\x00")
		if !ok {
			return states.Unreadable(k, errors.New("key is not device NUL signal"))
		}
		var s rollup.State
		if err := json.Unmarshal(v, &s); err != nil {
			return states.Unreadable(k, err)
		}
		out[rollup.StateKey{Device: dev, Signal: device.Signal(sig)}] = s
		return nil
	})
	return out, err
}
