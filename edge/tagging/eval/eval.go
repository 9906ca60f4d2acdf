// Package eval measures the standard tags against ground truth: simulated households
// (device/sim, whose DayTruth says what really happened) and real homes with activity
// labels (Kasteren house A: the share of days with a labelled meal).
//
// Each simulated household is replayed for Days days through edge/tagging/replay (the
// agent's own ingest → store → rollup → tagging path). The tags as evaluated at the
// end of the last day are compared with the truth of the same 28 dates; presence.away
// is compared at the end of every day from MinDay on. The truth of each tag is
// defined in Truth (and in docs/tags.md).
package eval

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// Days simulated per household (the rules' window).
const Days = 28

// Household names one simulated home.
type Household struct {
	Persona sim.Persona
	Seed    int64
}

// Households returns perPersona households of every persona, seeds from first on.
func Households(first int64, perPersona int) []Household {
	var out []Household
	for _, p := range sim.Personas() {
		for i := range perPersona {
			out = append(out, Household{p, first + int64(i)})
		}
	}
	return out
}

// Outcome is one comparison of a tag's active flag (and score, where the truth has
// one) with the truth.
type Outcome struct {
	Tag       string
	Household Household
	Active    bool
	Truth     bool
	Score     float64
	TruthVal  float64 // the truth's value on the score's scale, NaN if it has none
	Evidence  map[string]float64
}

// Truth is the ground truth of the standard tags over the dates ds (in order), as
// (active, value on the score's scale; NaN when the truth has no such value). A tag
// missing from the result has no truth in the simulator. A meal's share is of the
// dates someone was home (not Away), as the meal tags' own denominator is.
func Truth(p sim.Persona, ds []sim.DayTruth) map[string][2]float64 {
	n := float64(len(ds))
	var br, lu, di, home, late, open, long, wcyc, cyc float64
	var wkMin, wdMin, wkDays, wdDays float64
	for _, d := range ds {
		br += b2f(d.Breakfast)
		lu += b2f(d.Lunch)
		di += b2f(d.Dinner)
		home += b2f(!d.Away)
		late += b2f(d.LateNight)
		open += float64(d.FridgeOpenings)
		long += float64(d.FridgeLongOpenings)
		cyc += float64(d.WasherCycles)
		if d.Weekday == time.Saturday || d.Weekday == time.Sunday {
			wcyc += float64(d.WasherCycles)
			wkMin += d.CookingMinutes
			wkDays++
		} else {
			wdMin += d.CookingMinutes
			wdDays++
		}
	}
	last := ds[len(ds)-1]
	wk, wd := safeDiv(wkMin, wkDays), safeDiv(wdMin, wdDays)
	v := func(x, threshold float64) [2]float64 { return [2]float64{b2f(x >= threshold), x} }
	return map[string][2]float64{
		"routine.breakfast_at_home":    v(safeDiv(br, home), 0.5),
		"routine.lunch_at_home":        v(safeDiv(lu, home), 0.5),
		"routine.dinner_at_home":       v(safeDiv(di, home), 0.5),
		"habit.late_night_kitchen":     v(late/n, 0.3),
		"habit.weekend_cook":           v(safeDiv(wk, wk+wd), 0.75),
		"habit.fridge_door_long_open":  v(safeDiv(long, open), 0.10),
		"habit.frequent_fridge":        v(math.Min(1, open/n/50), 0.6),
		"appliance.laundry_weekend":    v(safeDiv(wcyc, cyc), 0.5),
		"lifecycle.fridge_filter_due":  {b2f(last.FilterDue), math.NaN()},
		"food.spoilage_risk":           v(math.Min(1, float64(last.ExpiredItems)/4), 0.5),
		"lifecycle.efficiency_decline": {b2f(p == sim.PersonaWornFridge), math.NaN()},
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Result is the evaluation of a set of households.
type Result struct {
	Outcomes  []Outcome
	Untruthed map[string][]float64 // scores of tags without truth, per tag
	Elapsed   time.Duration
}

// Run replays every household (parallel workers) and compares.
func Run(hs []Household, rules *tagging.RuleSet, parallel int) (*Result, error) {
	start := time.Now()
	res := &Result{Untruthed: map[string][]float64{}}
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan Household)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range jobs {
				out, untr, err := runOne(h, rules)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("%s seed %d: %w", h.Persona, h.Seed, err)
				}
				res.Outcomes = append(res.Outcomes, out...)
				for k, v := range untr {
					res.Untruthed[k] = append(res.Untruthed[k], v)
				}
				mu.Unlock()
			}
		}()
	}
	for _, h := range hs {
		jobs <- h
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, firstErr
}

func runOne(h Household, rules *tagging.RuleSet) ([]Outcome, map[string]float64, error) {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		return nil, nil, err
	}
	hh, err := sim.New(sim.Options{Persona: h.Persona, Seed: h.Seed, Location: loc, Prefix: "h-"})
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "hearth-eval-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	start := hh.Now()
	end := start.AddDate(0, 0, Days)
	var outs []Outcome
	var final []tagging.Tag
	var awayEvals []struct {
		date   string
		active bool
		score  float64
	}
	p, err := replay.Open(dir, replay.Options{Location: loc, Rules: rules, Daily: true,
		Consent: func(string) bool { return true },
		OnEvaluate: func(at time.Time, tags []tagging.Tag) {
			if !at.Before(end) {
				return
			}
			if !at.Before(end.Add(-24 * time.Hour)) {
				final = tags
			}
			for _, t := range tags {
				if t.Name == "presence.away" {
					awayEvals = append(awayEvals, struct {
						date   string
						active bool
						score  float64
					}{at.In(loc).Format(time.DateOnly), t.Active, t.Score})
				}
			}
		}})
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	// Simulate past the last date's late-night window so its truth is final, and one
	// reading into the next date so the pipeline evaluates the last date's end.
	rs := hh.Advance(nil, end.Add(5*time.Hour))
	for _, r := range rs {
		if err := p.Add(r); err != nil {
			return nil, nil, err
		}
	}
	if _, err := p.Finish(); err != nil {
		return nil, nil, err
	}
	truth := hh.Truth()
	if len(truth) < Days {
		return nil, nil, fmt.Errorf("only %d days of truth", len(truth))
	}
	truth = truth[:Days]
	tv := Truth(h.Persona, truth)
	untr := map[string]float64{}
	for _, t := range final {
		if t.Name == "presence.away" {
			continue
		}
		v, ok := tv[t.Name]
		if !ok {
			untr[t.Name] = t.Score
			continue
		}
		outs = append(outs, Outcome{Tag: t.Name, Household: h, Active: t.Active, Truth: v[0] == 1, Score: t.Score, TruthVal: v[1], Evidence: t.Evidence})
	}
	// presence.away at the end of each date: truly away when that date and the one
	// before were away dates (48 h without anyone home).
	away := map[string]bool{}
	for _, d := range truth {
		away[d.Date] = d.Away
	}
	for i, a := range awayEvals {
		if i < 7 {
			continue // the first week: the tag is still learning
		}
		prev, _ := time.ParseInLocation(time.DateOnly, a.date, loc)
		y := prev.AddDate(0, 0, -1).Format(time.DateOnly)
		outs = append(outs, Outcome{Tag: "presence.away", Household: h, Active: a.active,
			Truth: away[a.date] && away[y], Score: a.score, TruthVal: math.NaN()})
	}
	return outs, untr, nil
}

// Print writes the per-tag table: counts, precision and recall of active, and the
// mean absolute error of the score where the truth has a value.
func (r *Result) Print(w io.Writer) {
	type agg struct {
		tp, fp, fn, tn int
		absErr, n      float64
		misses         []string
	}
	by := map[string]*agg{}
	var names []string
	for _, o := range r.Outcomes {
		a := by[o.Tag]
		if a == nil {
			a = &agg{}
			by[o.Tag] = a
			names = append(names, o.Tag)
		}
		switch {
		case o.Active && o.Truth:
			a.tp++
		case o.Active && !o.Truth:
			a.fp++
			a.misses = append(a.misses, fmt.Sprintf("FP %s/%d %.2f vs %.2f", o.Household.Persona, o.Household.Seed, o.Score, o.TruthVal))
		case !o.Active && o.Truth:
			a.fn++
			a.misses = append(a.misses, fmt.Sprintf("FN %s/%d %.2f vs %.2f", o.Household.Persona, o.Household.Seed, o.Score, o.TruthVal))
		default:
			a.tn++
		}
		if !math.IsNaN(o.TruthVal) {
			a.absErr += math.Abs(o.Score - o.TruthVal)
			a.n++
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%-32s %4s %4s %4s %4s %9s %7s %9s\n", "tag", "TP", "FP", "FN", "TN", "precision", "recall", "score MAE")
	for _, name := range names {
		a := by[name]
		mae := "-"
		if a.n > 0 {
			mae = fmt.Sprintf("%.3f", a.absErr/a.n)
		}
		fmt.Fprintf(w, "%-32s %4d %4d %4d %4d %9s %7s %9s\n", name, a.tp, a.fp, a.fn, a.tn,
			pct(a.tp, a.tp+a.fp), pct(a.tp, a.tp+a.fn), mae)
	}
	if os.Getenv("EVAL_VERBOSE") != "" {
		for _, name := range names {
			if m := by[name].misses; len(m) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", name, strings.Join(m, "; "))
			}
		}
	}
	var un []string
	for k := range r.Untruthed {
		un = append(un, k)
	}
	sort.Strings(un)
	if len(un) > 0 {
		fmt.Fprintln(w, "tags without simulator truth (score mean, share active-level):")
		for _, k := range un {
			s := 0.0
			for _, v := range r.Untruthed[k] {
				s += v
			}
			fmt.Fprintf(w, "  %-40s mean score %.3f over %d homes\n", k, s/float64(len(r.Untruthed[k])), len(r.Untruthed[k]))
		}
	}
}

func pct(a, b int) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// Scores gives per-tag mean error and outcomes (for tests).
func (r *Result) ByTag(tag string) []Outcome {
	var out []Outcome
	for _, o := range r.Outcomes {
		if o.Tag == tag {
			out = append(out, o)
		}
	}
	return out
}
