package eval

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/dataset"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// MealTags names the tag of each meal.
var MealTags = map[string]string{
	dataset.Breakfast: "routine.breakfast_at_home",
	dataset.Lunch:     "routine.lunch_at_home",
	dataset.Dinner:    "routine.dinner_at_home",
}

// Meals in the order the tables list them.
var Meals = []string{dataset.Breakfast, dataset.Lunch, dataset.Dinner}

// Variants of a home's sensors the evaluation replays.
const (
	AllSensors = "all"
	FridgeOnly = "fridge"
)

// MealResult is one meal tag of one home against the labels.
type MealResult struct {
	Meal       string
	Tag        string
	Score      float64
	Confidence float64
	Active     bool
	Truth      float64 // share of the occupied labelled dates of the tag's window with the meal
	Evidence   map[string]float64
	Found      bool // the tag was evaluated
}

// Error is the score's error against the truth.
func (m MealResult) Error() float64 { return m.Score - m.Truth }

// HomeResult is one recorded home replayed through the agent's path, its meal tags
// against its labels, and its fridge's activations against an independent count.
type HomeResult struct {
	Home         *dataset.Manifest
	Variant      string
	From, To     string // the tags' window, clipped to the labelled period
	Dates        int    // labelled dates in it
	Occupied     int    // of those, dates someone was home
	Meals        []MealResult
	Readings     int
	Fridge       string  // the fridge's device id ("" when the mapping has none)
	FridgeHourly [24]int // its off→on changes by local hour, from the agent's rollups
	FridgeCount  [24]int // the same counted by the converter from the raw data
}

var errStop = errors.New("stop")

// Home replays one home (with every mapped sensor, or only its fridge) and compares
// its meal tags with the labels, as of the end of the last labelled date.
func Home(m *dataset.Manifest, rules *tagging.RuleSet, variant string) (*HomeResult, error) {
	conv, src := m.Convert(), m.Source()
	truth, err := conv.Truth(src)
	if err != nil {
		return nil, fmt.Errorf("%s: truth: %w", m.Name, err)
	}
	if len(truth.Days) == 0 {
		return nil, fmt.Errorf("%s: no labelled dates", m.Name)
	}
	home := m
	if variant == FridgeOnly {
		home = m.Only(device.KindFridge)
	}
	res := &HomeResult{Home: m, Variant: variant}
	var fridgeEntity string
	for id, e := range home.Entities {
		if e.Kind == device.KindFridge && e.Signal == device.SignalDoor {
			fridgeEntity, res.Fridge = id, e.Device
		}
	}
	lastDate := truth.Days[len(truth.Days)-1].Date
	tmp, err := os.MkdirTemp("", "hearth-eval-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var tags []tagging.Tag
	p, err := replay.Open(tmp, replay.Options{Location: m.Location, Rules: rules, Daily: true,
		PeakHours: [2]int{m.PeakHours[0], m.PeakHours[1]},
		OnEvaluate: func(at time.Time, ts []tagging.Tag) {
			if at.In(m.Location).Format(time.DateOnly) == lastDate {
				tags = ts
			}
		}})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	err = conv.Events(src, func(e dataset.Event) error {
		r, ok := home.Reading(e.Entity, e.Value, e.Time)
		if !ok {
			return nil
		}
		res.Readings++
		return p.Add(r)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	final, err := p.Finish()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	if _, last, _ := p.Span(); last.In(m.Location).Format(time.DateOnly) == lastDate {
		tags = final
	}
	if tags == nil {
		return nil, fmt.Errorf("%s: no evaluation at the end of %s, the last labelled date", m.Name, lastDate)
	}
	for _, meal := range truth.Labelled {
		mr := MealResult{Meal: meal, Tag: MealTags[meal]}
		for _, t := range tags {
			if t.Name != mr.Tag {
				continue
			}
			mr.Found, mr.Score, mr.Confidence, mr.Active, mr.Evidence = true, t.Score, t.Confidence, t.Active, t.Evidence
			res.From, res.To = t.From, t.To
		}
		res.Meals = append(res.Meals, mr)
	}
	// The truth over the same dates as the tags' window.
	var with = map[string]int{}
	for _, d := range truth.Days {
		if res.From != "" && (d.Date < res.From || d.Date > res.To) {
			continue
		}
		res.Dates++
		if !d.Occupied {
			continue
		}
		res.Occupied++
		for meal, ok := range d.Meals {
			if ok {
				with[meal]++
			}
		}
	}
	for i := range res.Meals {
		if res.Occupied > 0 {
			res.Meals[i].Truth = float64(with[res.Meals[i].Meal]) / float64(res.Occupied)
		}
	}
	if fridgeEntity != "" {
		devs, err := p.Devices()
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			if d.ID == res.Fridge {
				res.FridgeHourly = d.Hourly
			}
		}
		if res.FridgeCount, err = conv.Activations(src, fridgeEntity); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return res, nil
}

// Homes evaluates every home, with all its sensors and with its fridge only.
func Homes(ms []*dataset.Manifest, rules *tagging.RuleSet) ([]*HomeResult, error) {
	var out []*HomeResult
	for _, variant := range []string{AllSensors, FridgeOnly} {
		for _, m := range ms {
			r, err := Home(m, rules, variant)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Summary is the mean absolute error of the meal scores over homes.
type Summary struct {
	MAE   map[string]float64 // per meal, over the homes that label it
	N     map[string]int
	All   float64 // over every (home, meal)
	Worst float64 // the largest absolute error
}

// Summarise computes the MAE of one variant's results.
func Summarise(rs []*HomeResult, variant string) Summary {
	s := Summary{MAE: map[string]float64{}, N: map[string]int{}}
	var sum float64
	var n int
	for _, r := range rs {
		if r.Variant != variant {
			continue
		}
		for _, m := range r.Meals {
			if !m.Found {
				continue // listed as not evaluated; no score to compare
			}
			e := math.Abs(m.Error())
			s.MAE[m.Meal] += e
			s.N[m.Meal]++
			sum += e
			n++
			s.Worst = math.Max(s.Worst, e)
		}
	}
	for k := range s.MAE {
		s.MAE[k] /= float64(s.N[k])
	}
	if n > 0 {
		s.All = sum / float64(n)
	}
	return s
}

// PrintHomes writes the per-home table, the fridge's hourly activations against the
// independent count, and the MAE across homes, for each variant.
func PrintHomes(w io.Writer, rs []*HomeResult) {
	for _, variant := range []string{AllSensors, FridgeOnly} {
		title := "every mapped sensor"
		if variant == FridgeOnly {
			title = "the fridge only (every other sensor removed from the mapping)"
		}
		fmt.Fprintf(w, "real homes, %s: meal tags at the end of the labelled period against the labels\n", title)
		fmt.Fprintf(w, "  (truth: share of the occupied labelled dates in the tag's window with the meal)\n")
		fmt.Fprintf(w, "%-17s %-10s %7s %7s %7s %5s  %-8s %s\n", "home", "meal", "score", "truth", "error", "conf", "dates", "evidence")
		for _, r := range rs {
			if r.Variant != variant {
				continue
			}
			for _, m := range r.Meals {
				if !m.Found {
					fmt.Fprintf(w, "%-17s %-10s %7s %7.3f %7s %5s  %d/%-6d tag %s not evaluated\n", r.Home.Name, m.Meal, "-", m.Truth, "-", "-", r.Occupied, r.Dates, m.Tag)
					continue
				}
				fmt.Fprintf(w, "%-17s %-10s %7.3f %7.3f %+7.3f %5.2f  %d/%-6d %s\n", r.Home.Name, m.Meal, m.Score, m.Truth, m.Error(), m.Confidence,
					r.Occupied, r.Dates, evidenceString(m.Evidence))
			}
		}
		s := Summarise(rs, variant)
		var parts []string
		for _, meal := range Meals {
			if s.N[meal] > 0 {
				parts = append(parts, fmt.Sprintf("%s %.3f (%d homes)", meal, s.MAE[meal], s.N[meal]))
			}
		}
		fmt.Fprintf(w, "MAE across homes: %s; all meals %.3f; largest error %.3f\n", strings.Join(parts, ", "), s.All, s.Worst)
		if variant == AllSensors {
			fmt.Fprintln(w, "  goal: MAE <= 0.07 per meal, no home's error above 0.15")
			fmt.Fprintln(w, "fridge door: off->on changes by local hour, agent's rollups vs counted from the raw data")
			for _, r := range rs {
				if r.Variant != variant || r.Fridge == "" {
					continue
				}
				a, b := sum24(r.FridgeHourly), sum24(r.FridgeCount)
				verdict := "equal in every hour"
				if r.FridgeHourly != r.FridgeCount {
					var diff []string
					for h := range 24 {
						if r.FridgeHourly[h] != r.FridgeCount[h] {
							diff = append(diff, fmt.Sprintf("%02dh %d vs %d", h, r.FridgeHourly[h], r.FridgeCount[h]))
						}
					}
					verdict = "DIFFER: " + strings.Join(diff, ", ")
				}
				fmt.Fprintf(w, "%-17s %-10s %5d vs %5d  %s\n", r.Home.Name, r.Fridge, a, b, verdict)
			}
		} else {
			fmt.Fprintln(w, "  goal: MAE <= 0.15")
		}
		fmt.Fprintln(w)
	}
}

func sum24(h [24]int) int {
	n := 0
	for _, v := range h {
		n += v
	}
	return n
}

func evidenceString(ev map[string]float64) string {
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := fmt.Sprintf("%.2f", ev[k])
		v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}
