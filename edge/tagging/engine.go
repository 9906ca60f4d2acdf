package tagging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// Tag statuses.
const (
	StatusOK       = "ok"       // scored on enough evidence
	StatusLearning = "learning" // fewer than min_days of data: scored, never newly active
	StatusStale    = "stale"    // the last evaluation failed; Error says why
	StatusNoData   = "no_data"  // none of the rule's signals in its window: score 0, never active
	// StatusUncertain: scored, but on less evidence than the rule's min_confidence:
	// never newly active (an active tag stands until it expires, as when learning).
	StatusUncertain = "uncertain"
)

// Tag is what hearth has learned about the household under one rule, and Change one
// entry of the tag log that sync sends upstream: records the store defines
// (edge/store/tags.go), so that their readers need no package of the tagging.
type (
	Tag    = store.Tag
	Change = store.TagChange
)

// Options tune an Engine.
type Options struct {
	Location *time.Location // household time zone (nil: UTC)
	// Consent reports whether the household consented to a category; nil: usage only.
	Consent func(category string) bool
	// PeakHours are the local hours [from, to) of peak_energy_share (wrapping past
	// midnight when from > to); zero: 17..21.
	PeakHours  [2]int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Engine evaluates the rules over the store's rollups and records tag changes.
type Engine struct {
	st      *store.Store
	rules   atomic.Pointer[RuleSet]
	loc     *time.Location
	consent func(string) bool
	peak    [2]int
	log     *slog.Logger

	mu   sync.Mutex
	tags []Tag

	evalMu sync.Mutex // one evaluation at a time: it owns cache and last
	cache  store.DayCache
	last   inputs // what the last evaluation by Refresh read (Refresh)

	evals   prometheus.Counter
	errs    prometheus.Counter
	seconds prometheus.Histogram
	set     *metricset.Set
}

// DefaultOptions are the documented defaults: the one place they are written.
func DefaultOptions() Options { return Options{PeakHours: [2]int{17, 21}} }

// New returns an Engine evaluating rs over st.
func New(st *store.Store, rs *RuleSet, o *Options) *Engine {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Consent == nil {
		opts.Consent = func(c string) bool { return c == ConsentUsage }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PeakHours == [2]int{} {
		opts.PeakHours = DefaultOptions().PeakHours
	}
	e := &Engine{st: st, loc: opts.Location, consent: opts.Consent, peak: opts.PeakHours, log: opts.Logger.With("component", "tagging"),
		evals:   prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_tagging_evaluations_total", Help: "Evaluations of the whole rule set."}),
		errs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_tagging_rule_errors_total", Help: "Rule evaluations that failed (the tag turned stale)."}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_tagging_evaluation_seconds", Help: "Duration of one evaluation of the rule set.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	e.rules.Store(rs)
	e.set = metricset.Must(opts.Registerer, e.evals, e.errs, e.seconds)
	// The tags as last evaluated, until the next evaluation; one that does not read is
	// quarantined by that evaluation (it is evaluated afresh).
	_ = st.View(func(tx *store.Tx) error {
		return tx.EachTag(func(t *Tag) error { e.tags = append(e.tags, *t); return nil })
	})
	return e
}

// Unregister removes the engine's metrics.
func (e *Engine) Unregister() { e.set.Unregister() }

// SetRules swaps in a new, already validated rule set.
func (e *Engine) SetRules(rs *RuleSet) { e.rules.Store(rs) }

// Rules returns the rule set in use.
func (e *Engine) Rules() *RuleSet { return e.rules.Load() }

// Tags returns the tags as last evaluated (or loaded from the store), by name.
func (e *Engine) Tags() []Tag {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Tag, len(e.tags))
	copy(out, e.tags)
	return out
}

// DataClock returns the newest event time rolled up so far (zero if none): tags are
// evaluated as of this time, so a replayed or back-filled history is scored as of
// its own days, not the wall clock's.
func DataClock(tx *store.Tx) (time.Time, error) { return tx.DataClock() }

// inputs are what an evaluation as of the data clock depends on besides the
// engine's fixed options: the store's records (its Changes count, which the data
// clock, rollups and stored tags are part of), the rules, and the consent to
// sensitive categories. ok: an evaluation with them succeeded.
type inputs struct {
	changes   uint64
	rules     *RuleSet
	sensitive bool
	ok        bool
}

// Refresh is Evaluate as of the data clock, skipped when nothing it reads has
// changed since the last Refresh that evaluated: an evaluation is a function of the
// store's records, the rules and consent (the data clock is a record, the wall
// clock is not read), and evaluating a second time with the same ones gives the
// same tags and writes nothing (save), so the tags as read are the same as if it
// had run. The evaluation after one that wrote tags runs once more (its own write
// changed the store) and finds nothing to write. It reports whether it evaluated.
func (e *Engine) Refresh() (bool, error) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	// Read before evaluating: a change while it runs makes the next Refresh run.
	in := inputs{changes: e.st.Changes(), rules: e.rules.Load(), sensitive: e.consent(ConsentSensitive), ok: true}
	if in == e.last {
		return false, nil
	}
	if _, err := e.evaluate(time.Time{}); err != nil {
		e.last = inputs{}
		return true, err
	}
	e.last = in
	return true, nil
}

// Evaluate scores every rule as of now (zero: the data clock), persists the tags and
// logs their changes. A rule whose evaluation fails is marked stale with the error;
// the others are unaffected.
func (e *Engine) Evaluate(now time.Time) ([]Tag, error) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	return e.evaluate(now)
}

// evaluate is Evaluate, with evalMu held.
func (e *Engine) evaluate(now time.Time) ([]Tag, error) {
	start := time.Now()
	rs := e.rules.Load()
	// Read what the rules need in a read transaction, evaluate outside any
	// transaction, and only then write the results: a slow rule must never hold the
	// store's single write transaction, which every reading's commit waits for.
	type job struct {
		r       *Rule
		w       *window
		from    string
		prev    Tag
		hadPrev bool
	}
	var jobs []job
	var lnow time.Time
	err := e.st.View(func(tx *store.Tx) error {
		if now.IsZero() {
			var err error
			if now, err = DataClock(tx); err != nil {
				return err
			}
			if now.IsZero() {
				return nil // no data yet
			}
		}
		states, err := rollupstage.States(tx)
		if err != nil {
			return err
		}
		maxWin := time.Duration(0)
		for _, r := range rs.Rules {
			maxWin = max(maxWin, time.Duration(r.Window))
		}
		lnow = now.In(e.loc)
		all, err := e.cache.Window(tx, dateOf(lnow.Add(-maxWin)), dateOf(lnow))
		if err != nil {
			return err
		}
		for _, r := range rs.Rules {
			if r.Consent == ConsentSensitive && !e.consent(ConsentSensitive) {
				continue // never computed without separate consent
			}
			from := dateOf(lnow.Add(-time.Duration(r.Window)).Add(24 * time.Hour))
			w := &window{states: states, now: now, loc: e.loc, peak: e.peak, kinds: map[device.Kind]bool{}}
			for _, d := range all {
				if d.Date >= from {
					w.days = append(w.days, d)
					w.kinds[d.Kind] = true
				}
			}
			applies := false
			for _, k := range r.Kinds {
				applies = applies || w.kinds[k]
			}
			if !applies {
				continue
			}
			p, err := tx.Tag(r.Name)
			if err != nil {
				return err
			}
			var prev Tag
			if p != nil {
				prev = *p
			}
			jobs = append(jobs, job{r: r, w: w, from: from, prev: prev, hadPrev: p != nil})
		}
		return nil
	})
	if re := (*store.RecordError)(nil); errors.As(err, &re) {
		// A record the window needs does not read: quarantined now (moved to the audit
		// trail, counted), so the next evaluation goes on without it. This one fails,
		// and says so.
		if qerr := e.st.Update(func(tx *store.Tx) error { return tx.Quarantine(re) }); qerr != nil {
			return nil, errors.Join(err, qerr)
		}
		e.log.Error("unreadable record quarantined", "err", err)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	var out []Tag
	for _, j := range jobs {
		t := e.evalRule(j.r, j.w, j.prev, j.hadPrev, now)
		t.From, t.To = j.from, dateOf(lnow)
		out = append(out, t)
	}
	if len(out) > 0 {
		// Only this engine writes tags, one evaluation at a time (evalMu): prev is
		// still what is stored.
		err = e.st.Update(func(tx *store.Tx) error {
			for i, j := range jobs {
				if err := e.save(tx, out[i], j.prev, j.hadPrev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	e.evals.Inc()
	e.seconds.Observe(time.Since(start).Seconds())
	if out != nil {
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		e.mu.Lock()
		e.tags = out
		e.mu.Unlock()
	}
	return out, nil
}

// sameRecord reports whether t and prev are stored as the same record (their JSON,
// as the store keeps tags): prev was decoded from one, and times and numbers
// survive the round trip unchanged.
func sameRecord(t, prev *Tag) bool {
	a, err := json.Marshal(t)
	if err != nil {
		return false
	}
	b, err := json.Marshal(prev)
	return err == nil && bytes.Equal(a, b)
}

func dateOf(t time.Time) string { return t.Format(time.DateOnly) }

func (e *Engine) evalRule(r *Rule, w *window, prev Tag, hadPrev bool, now time.Time) Tag {
	t := Tag{Name: r.Name, Description: r.Description, Consent: r.Consent, MinDays: r.MinDays,
		WindowDays: time.Duration(r.Window).Hours() / 24, Evaluated: now, Evidence: map[string]float64{},
		FirstSeen: prev.FirstSeen, LastSeen: prev.LastSeen, Expires: prev.Expires}
	t.Days = w.dataDays(r.Kinds...)
	if len(r.Signals) > 0 && !w.hasSignal(r.Kinds, r.Signals) {
		t.Status = StatusNoData
		t.Active = prev.Active && hadPrev && now.Before(prev.Expires) // it stands until it expires, as with too little data
		return t
	}
	env := w.env()
	score, err := runFloat(r.score, env)
	if err == nil {
		t.Confidence = math.Min(1, float64(t.Days)/math.Max(t.WindowDays, 1))
		if r.confidence != nil {
			var c float64
			if c, err = runFloat(r.confidence, env); err != nil {
				err = fmt.Errorf("confidence: %w", err)
			}
			t.Confidence = math.Min(1, math.Max(0, c))
		}
	}
	if err == nil {
		for _, k := range r.evNames {
			v, evErr := runFloat(r.evidence[k], env)
			if evErr != nil {
				err = fmt.Errorf("evidence %s: %w", k, evErr)
				break
			}
			t.Evidence[k] = v
		}
	}
	if err == nil {
		for _, meal := range w.mealsUsed { // the signals the meal detector used
			for k, v := range w.mealEvidence(meal) {
				t.Evidence[k] = v
			}
		}
	}
	if err != nil {
		e.errs.Inc()
		e.log.Warn("tag evaluation failed: marked stale", "tag", r.Name, "err", err)
		t.Status, t.Error = StatusStale, err.Error()
		t.Score, t.Confidence, t.Active = prev.Score, prev.Confidence, prev.Active && hadPrev && now.Before(prev.Expires)
		return t
	}
	t.Score = math.Min(1, math.Max(0, score))
	t.Status = StatusOK
	switch {
	case t.Days < r.MinDays:
		t.Status = StatusLearning
	case t.Confidence < r.MinConfidence:
		t.Status = StatusUncertain
	}
	threshold := r.Activate
	if hadPrev && prev.Active {
		threshold = r.Deactivate
	}
	confirmed := t.Status == StatusOK && t.Score >= threshold
	switch {
	case confirmed:
		t.Active = true
		if t.FirstSeen.IsZero() || !prev.Active {
			t.FirstSeen = now
		}
		t.LastSeen = now
		t.Expires = now.Add(time.Duration(r.Expiry))
	case t.Status != StatusOK && prev.Active && now.Before(prev.Expires):
		t.Active = true // too little recent data to refute it: it stands until it expires
	default:
		t.Active = false
	}
	return t
}

// runFloat runs a compiled expression; a result that is not a finite number (a
// division by zero, an overflow) is an error, not a score.
func runFloat(p *vm.Program, env map[string]any) (float64, error) {
	v, err := expr.Run(p, env)
	if err != nil {
		return 0, fmt.Errorf("%s", oneLine(err))
	}
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("result %v is not a number", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("result is %v (division by zero?)", f)
	}
	return f, nil
}

func (e *Engine) save(tx *store.Tx, t, prev Tag, hadPrev bool) error {
	if hadPrev && sameRecord(&t, &prev) {
		return nil // stored as it is: writing it again changes nothing but the file
	}
	if err := tx.PutTag(&t); err != nil {
		return err
	}
	reason := ""
	switch {
	case !hadPrev:
		reason = "new"
	case t.Active && !prev.Active:
		reason = "activated"
	case !t.Active && prev.Active:
		reason = "deactivated"
	case t.Status != prev.Status:
		reason = "status"
	case math.Abs(t.Score-prev.Score) >= 0.05:
		reason = "score"
	}
	if reason == "" {
		return nil
	}
	_, err := tx.AppendTagChange(&Change{Tag: t.Name, Score: t.Score, Confidence: t.Confidence, Active: t.Active, Status: t.Status,
		At: t.Evaluated, Reason: reason, Consent: t.Consent})
	return err
}
