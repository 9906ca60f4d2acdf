package eval

import (
	"math"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/dataset"
)

// One household per persona on unseen seeds: the evaluation runs end to end and the
// tags whose truth the simulator counts exactly (washer cycles, fridge openings)
// score exactly that truth.
func TestEvalSimulated(t *testing.T) {
	rules, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(Households(3001, 1), rules, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"appliance.laundry_weekend", "habit.frequent_fridge", "habit.fridge_door_long_open"} {
		os := res.ByTag(tag)
		if len(os) == 0 {
			t.Errorf("%s: not evaluated", tag)
		}
		for _, o := range os {
			if math.Abs(o.Score-o.TruthVal) > 0.02 {
				t.Errorf("%s %s/%d: score %.3f, truth %.3f", tag, o.Household.Persona, o.Household.Seed, o.Score, o.TruthVal)
			}
		}
	}
	away := 0
	for _, o := range res.ByTag("presence.away") {
		if o.Truth {
			away++
		}
		if o.Truth != o.Active {
			t.Errorf("presence.away %s/%d: active %v, truth %v (score %.2f)", o.Household.Persona, o.Household.Seed, o.Active, o.Truth, o.Score)
		}
	}
	if away == 0 {
		t.Error("no away evaluation had truth: the away persona was not measured")
	}
	var b strings.Builder
	res.Print(&b)
	if !strings.Contains(b.String(), "routine.breakfast_at_home") {
		t.Errorf("table:\n%s", b.String())
	}
}

// Every real home with a manifest is replayed through the agent's path: the
// fridge's off→on changes by hour in the rollups equal the converter's own count from
// the raw data, the truth covers the tags' window, and every labelled meal's tag is
// the rules define is scored, with a confidence.
func TestRealHomes(t *testing.T) {
	ms, err := dataset.Manifests("../../../testdata/homes")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 3 {
		t.Fatalf("%d home manifests, want at least Kasteren house A and ARAS houses A and B", len(ms))
	}
	rules, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, r := range rules.Rules {
		defined[r.Name] = true
	}
	rs, err := Homes(ms, rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2*len(ms) {
		t.Fatalf("%d results for %d homes", len(rs), len(ms))
	}
	for _, r := range rs {
		name := r.Home.Name + "/" + r.Variant
		if r.Fridge == "" || r.FridgeHourly != r.FridgeCount || sum24(r.FridgeCount) < 100 {
			t.Errorf("%s: fridge %q activations by hour %v, counted from the raw data %v", name, r.Fridge, r.FridgeHourly, r.FridgeCount)
		}
		if r.Dates < 20 || r.Dates > 28 || r.Occupied == 0 || r.Occupied > r.Dates {
			t.Errorf("%s: %d labelled dates in the window (%s..%s), %d occupied", name, r.Dates, r.From, r.To, r.Occupied)
		}
		for _, m := range r.Meals {
			if !m.Found {
				if defined[m.Tag] {
					t.Errorf("%s: %s not evaluated", name, m.Tag)
				}
				continue
			}
			if m.Truth <= 0 || m.Truth > 1 || m.Confidence <= 0 {
				t.Errorf("%s: %s truth %.3f, confidence %.2f", name, m.Meal, m.Truth, m.Confidence)
			}
			// The evidence names the sensor mode and the signals used.
			if fridgeOnly := r.Variant == FridgeOnly; (m.Evidence["mode.fridge"] == 1) != fridgeOnly || m.Evidence["used.fridge"] == 0 {
				t.Errorf("%s: %s evidence %v: want mode.fridge only with the fridge alone, and used.fridge", name, m.Meal, m.Evidence)
			}
			if r.Variant == FridgeOnly && m.Confidence > 0.6 {
				t.Errorf("%s: %s confidence %.2f with the fridge alone, want at most 0.6", name, m.Meal, m.Confidence)
			}
			// The scores stay as close to the labels as they were measured (issue 15,
			// second round: with every sensor within 0.10, the worst 0.083; with the
			// fridge alone within the goal's 0.15, the worst 0.144).
			limit := 0.15
			if r.Variant == AllSensors {
				limit = 0.10
			}
			if e := m.Error(); e > limit || -e > limit {
				t.Errorf("%s: %s score %.3f against the labels' %.3f: error %+.3f, more than %.2f", name, m.Meal, m.Score, m.Truth, e, limit)
			}
		}
	}
	var b strings.Builder
	PrintHomes(&b, rs)
	t.Log("\n" + b.String())
}

// The simulator's precision and recall per tag, over the households make eval
// measures (8 personas x 7, seeds 1001-1007), do not fall below what they were
// before the meal detector of issue 15 (or 0.95, where they were higher): the
// floors are those measured then.
func TestSimulatedPrecisionRecallDoNotRegress(t *testing.T) {
	if testing.Short() {
		t.Skip("56 simulated households: not in -short")
	}
	rules, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(Households(1001, 7), rules, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Before (make eval at 0fefd75): precision, recall; -1 where there were no
	// positives to measure.
	before := map[string][2]float64{
		"appliance.laundry_weekend":    {27.0 / 30, 1},
		"habit.frequent_fridge":        {1, 1},
		"habit.fridge_door_long_open":  {1, 7.0 / 9},
		"habit.late_night_kitchen":     {1, 1},
		"habit.weekend_cook":           {1, 9.0 / 10},
		"lifecycle.efficiency_decline": {1, 1},
		"presence.away":                {1, 1},
		"routine.breakfast_at_home":    {1, 51.0 / 53},
		"routine.dinner_at_home":       {50.0 / 54, 1},
	}
	for tag, b := range before {
		var tp, fp, fn int
		for _, o := range res.ByTag(tag) {
			switch {
			case o.Active && o.Truth:
				tp++
			case o.Active:
				fp++
			case o.Truth:
				fn++
			}
		}
		p, r := float64(tp)/float64(tp+fp), float64(tp)/float64(tp+fn)
		if tp == 0 || p < min(0.95, b[0])-1e-9 || r < min(0.95, b[1])-1e-9 {
			t.Errorf("%s: precision %.3f recall %.3f (TP %d FP %d FN %d); before: %.3f, %.3f", tag, p, r, tp, fp, fn, b[0], b[1])
		}
	}
}
