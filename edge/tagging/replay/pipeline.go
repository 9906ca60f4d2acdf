// Package replay feeds a recorded history of readings through the agent's own
// ingest → store → rollup → tagging path, in a temporary store, with a simulated
// clock: the hub's clock reads the time of the reading being ingested, so ingest
// stamps, rollups and tag evaluations see the history as if it were happening.
//
// It is used by `hearth replay` (HA CSV or JSONL input) and by the tagging
// evaluation over simulated households (edge/tagging/eval).
//
// # Clock
//
// Readings must be handed to Add in time order. Each carries its event time in
// DeviceTime; ingest is given a clock that returns that time, so HubTime equals it
// too (a history from before 2020, which ingest would not trust as a device time,
// still lands on its own dates). At every local midnight the pipeline waits for the
// store to commit, rolls up and, with Options.Daily, evaluates the tags as of the
// end of the finished day; Finish does the same for the last one.
package replay

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/pipeline"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
)

// Options tune a Pipeline.
type Options struct {
	Location  *time.Location // household time zone (nil: UTC)
	Rules     *tagging.RuleSet
	PeakHours [2]int                // see tagging.Options.PeakHours
	Consent   func(cat string) bool // nil: usage only
	// Daily evaluates the tags at the end of every local day (else only in Finish);
	// OnEvaluate, if set, sees each evaluation.
	Daily      bool
	OnEvaluate func(at time.Time, tags []tagging.Tag)
	// QuotaBytes of the temporary store (default DefaultQuotaBytes): raw readings are
	// rolled up every RollEvery readings and at every local midnight, and those rolled
	// up are evicted to stay under it, so the store does not grow with the input.
	QuotaBytes int64
	// RollEvery: the readings after which the store is committed, rolled up and its
	// mapped pages released from memory, midnight or not (default DefaultRollEvery).
	RollEvery int
}

// Defaults of Options.
const (
	DefaultQuotaBytes = 32 << 20
	DefaultRollEvery  = 20000
)

// Pipeline is one replay in progress. It is not safe for concurrent use.
type Pipeline struct {
	st     *store.Store
	in     device.Sink // the pipeline's ingest
	roller *rollupstage.Consumer
	eng    *tagging.Engine
	loc    *time.Location
	opts   Options

	mu    sync.Mutex
	clock time.Time
	wg    sync.WaitGroup
	err   error

	day       string    // local date of the last reading
	first     time.Time // first and last reading times
	last      time.Time
	n         int
	sinceRoll int // readings added since the last roll-up
	tags      []tagging.Tag
}

// Open starts a pipeline with its store in dir (which must exist; a temporary
// directory is the caller's to remove).
func Open(dir string, o Options) (*Pipeline, error) {
	if o.Rules == nil {
		return nil, errors.New("replay: no rules")
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.QuotaBytes <= 0 {
		o.QuotaBytes = DefaultQuotaBytes
	}
	if o.RollEvery <= 0 {
		o.RollEvery = DefaultRollEvery
	}
	p := &Pipeline{loc: o.Location, opts: o}
	now := func() time.Time {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.clock
	}
	// The agent's own pipeline; raw readings are kept only until rolled up (the
	// pipeline protects the rollup cursor from eviction).
	pl, err := pipeline.Open(filepath.Join(dir, "replay.db"), pipeline.Options{Location: o.Location, Rules: o.Rules, Now: now,
		Store:   store.Options{QuotaBytes: o.QuotaBytes, MaxAge: 100 * 365 * 24 * time.Hour},
		Tagging: tagging.Options{Consent: o.Consent, PeakHours: o.PeakHours}})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	p.st, p.in, p.roller, p.eng = pl.Store, pl.Ingest, pl.Rollup, pl.Tags
	return p, nil
}

// Store is the pipeline's store (for reading rollups after Finish).
func (p *Pipeline) Store() *store.Store { return p.st }

// Engine is the pipeline's tag engine.
func (p *Pipeline) Engine() *tagging.Engine { return p.eng }

// Add ingests one reading at its DeviceTime, which must not be before the previous
// reading's.
func (p *Pipeline) Add(r device.Reading) error {
	t := r.DeviceTime
	if t.IsZero() {
		return errors.New("replay: reading without a time")
	}
	if t.Before(p.last) {
		return fmt.Errorf("replay: reading at %s before the previous one at %s", t.Format(time.RFC3339), p.last.Format(time.RFC3339))
	}
	date := t.In(p.loc).Format(time.DateOnly)
	if p.day != "" && date != p.day {
		// The end of the finished day (not of the day before this reading: days
		// without readings may lie between).
		d, _ := time.ParseInLocation(time.DateOnly, p.day, p.loc)
		midnight := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, p.loc)
		if err := p.endDay(midnight.Add(-time.Second)); err != nil {
			return err
		}
	}
	if p.sinceRoll >= p.opts.RollEvery {
		if err := p.roll(); err != nil {
			return err
		}
	}
	if p.n == 0 {
		p.first = t
	}
	p.sinceRoll++
	p.day, p.last = date, t
	p.n++
	p.mu.Lock()
	p.clock = t
	p.mu.Unlock()
	p.wg.Add(1)
	p.in.Submit([]device.Reading{r}, func(err error) {
		if err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
		}
		p.wg.Done()
	})
	return nil
}

// roll waits for the store, rolls up what it holds and drops the store file's
// pages from the process's memory (they stay in the page cache).
func (p *Pipeline) roll() error {
	p.wg.Wait()
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("replay: store: %w", err)
	}
	if _, err := p.roller.CatchUp(); err != nil {
		return fmt.Errorf("replay: rollup: %w", err)
	}
	p.sinceRoll = 0
	if err := p.st.ReleaseMapped(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// endDay waits for the store, rolls up and evaluates (when daily) as of at.
func (p *Pipeline) endDay(at time.Time) error {
	if err := p.roll(); err != nil {
		return err
	}
	if !p.opts.Daily {
		return nil
	}
	return p.evaluate(at)
}

func (p *Pipeline) evaluate(at time.Time) error {
	tags, err := p.eng.Evaluate(at)
	if err != nil {
		return fmt.Errorf("replay: tagging: %w", err)
	}
	p.tags = tags
	if p.opts.OnEvaluate != nil {
		p.opts.OnEvaluate(at, tags)
	}
	return nil
}

// Finish commits and rolls up what is left and evaluates the tags as of the last
// reading (the data clock).
func (p *Pipeline) Finish() ([]tagging.Tag, error) {
	if p.n == 0 {
		return nil, errors.New("replay: no readings")
	}
	p.wg.Wait()
	if err := p.endDayNoEval(); err != nil {
		return nil, err
	}
	if err := p.evaluate(p.last); err != nil {
		return nil, err
	}
	return p.tags, nil
}

func (p *Pipeline) endDayNoEval() error {
	daily := p.opts.Daily
	p.opts.Daily = false
	defer func() { p.opts.Daily = daily }()
	return p.endDay(p.last)
}

// Span returns the times of the first and last reading and how many were added.
func (p *Pipeline) Span() (first, last time.Time, n int) { return p.first, p.last, p.n }

// Close closes the store.
func (p *Pipeline) Close() error {
	p.wg.Wait()
	p.eng.Unregister()
	return p.st.Close()
}

// DeviceSummary is what the replay saw of one device: its kind and the off→on
// transitions of its binary signals, by local hour.
type DeviceSummary struct {
	ID          string      `json:"id"`
	Kind        device.Kind `json:"kind"`
	Signals     []string    `json:"signals"`
	Readings    int         `json:"readings"`
	Activations int         `json:"activations"`
	Hourly      [24]int     `json:"hourly_activations"`
	Sessions    int         `json:"sessions"`
	EnergyWh    float64     `json:"energy_wh"`
	Cycles      int         `json:"cycles"`
}

// Devices summarises every device from the rollups in the store.
func (p *Pipeline) Devices() ([]DeviceSummary, error) {
	by := map[string]*DeviceSummary{}
	sigs := map[string]map[string]bool{}
	err := p.st.View(func(tx *store.Tx) error {
		return tx.Days("0000-00-00", "9999-99-99", func(d *store.Day) error {
			s := by[d.Device]
			if s == nil {
				s = &DeviceSummary{ID: d.Device, Kind: d.Kind}
				by[d.Device] = s
				sigs[d.Device] = map[string]bool{}
			}
			sigs[d.Device][string(d.Signal)] = true
			s.Readings += int(d.Stats.Count)
			s.EnergyWh += d.EnergyWh
			s.Cycles += int(d.Cycles.Count)
			if d.Signal.Binary() {
				s.Sessions += int(d.Sessions.Count)
				for h, n := range d.Activations {
					s.Hourly[h] += int(n)
					s.Activations += int(n)
				}
			}
			return nil
		})
	})
	out := make([]DeviceSummary, 0, len(by))
	for id, s := range by {
		for sg := range sigs[id] {
			s.Signals = append(s.Signals, sg)
		}
		sort.Strings(s.Signals)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}
