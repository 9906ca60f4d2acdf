package tagging_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

func rule(name, score, window string) string {
	return "tags:\n" +
		"  - name: habit.good\n    description: ok\n    kinds: [fridge]\n    window: 7d\n    score: days() / 7\n    activate: 0.5\n    consent: usage\n" +
		"  - name: " + name + "\n    description: under test\n    kinds: [fridge]\n    window: " + window + "\n    score: " + score + "\n    activate: 0.5\n    consent: usage\n"
}

// Every bad rule is rejected at load with the file, the rule's line and its name.
func TestBadRulesRejectedWithNameAndLine(t *testing.T) {
	for _, c := range []struct{ what, score, window, want string }{
		{"syntax error", `ratio(1,`, "7d", "score:"},
		{"unknown function", `nonesuch("fridge")`, "7d", "nonesuch"},
		{"type error", `sessions(1, "door")`, "7d", "score:"},
		{"string result", `'"high"'`, "7d", "score:"},
		{"window longer than retention", `days() / 7`, "400d", "longer than the rollup retention"},
		{"bad window", `days() / 7`, "soon", "soon"},
	} {
		_, err := tagging.ParseRules([]byte(rule("habit.bad", c.score, c.window)), "t.yaml")
		if err == nil {
			t.Errorf("%s: accepted", c.what)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, "t.yaml:9") {
			t.Errorf("%s: error %q does not name line 9 and %q", c.what, msg, c.want)
		}
		if c.window != "soon" && !strings.Contains(msg, `"habit.bad"`) {
			t.Errorf("%s: error %q does not name the rule", c.what, msg)
		}
		if strings.Contains(msg, "habit.good") {
			t.Errorf("%s: the good rule is blamed: %q", c.what, msg)
		}
	}
}

// The shipped rules load and hold the whole standard set.
func TestStandardSet(t *testing.T) {
	rs, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]*tagging.Rule{}
	for _, r := range rs.Rules {
		have[r.Name] = r
	}
	for _, n := range []string{"routine.breakfast_at_home", "routine.lunch_at_home", "routine.dinner_at_home", "habit.late_night_kitchen",
		"habit.weekend_cook", "habit.fridge_door_long_open", "habit.frequent_fridge", "appliance.laundry_weekend",
		"lifecycle.fridge_filter_due", "energy.peak_hour_use", "food.spoilage_risk", "food.category_preference.dairy",
		"food.category_preference.fresh_produce", "food.category_preference.meat", "food.category_preference.drinks",
		"lifecycle.efficiency_decline", "presence.away"} {
		if have[n] == nil {
			t.Errorf("standard tag %s missing", n)
		}
	}
	if r := have["presence.away"]; r == nil || r.Consent != tagging.ConsentSensitive {
		t.Errorf("presence.away must be consent sensitive")
	}
	docs, err := os.ReadFile("../../docs/tags.md")
	if err != nil {
		t.Fatal(err)
	}
	for n := range have {
		if !strings.Contains(string(docs), "`"+n+"`") && !strings.HasPrefix(n, "food.category_preference.") {
			t.Errorf("docs/tags.md does not define %s", n)
		}
	}
}

// A division by zero at run time marks that tag stale with the error; the other tags
// are evaluated as usual.
func TestRuntimeErrorMarksOnlyThatTagStale(t *testing.T) {
	src := "tags:\n" +
		"  - name: habit.good\n    description: ok\n    kinds: [fridge]\n    window: 7d\n    score: ratio(sessions(\"fridge\", \"door\"), 10)\n    activate: 0.5\n    consent: usage\n" +
		"  - name: habit.div\n    description: divides by zero\n    kinds: [fridge]\n    window: 7d\n    score: 1 / (days() - days())\n    activate: 0.5\n    consent: usage\n" +
		"  - name: presence.secret\n    description: sensitive\n    kinds: [fridge]\n    window: 7d\n    score: 1\n    activate: 0.5\n    consent: sensitive\n"
	rs, err := tagging.ParseRules([]byte(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := replay.Open(t.TempDir(), replay.Options{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range 12 {
		for _, v := range []float64{1, 0} {
			if err := p.Add(device.Reading{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: v, DeviceTime: at}); err != nil {
				t.Fatal(err)
			}
			at = at.Add(time.Duration(5+i) * time.Minute)
		}
	}
	tags, err := p.Finish()
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]tagging.Tag{}
	for _, tg := range tags {
		by[tg.Name] = tg
	}
	if g := by["habit.good"]; g.Status != tagging.StatusLearning && g.Status != tagging.StatusOK || g.Score != 1 {
		t.Errorf("habit.good: %+v", g)
	}
	if d := by["habit.div"]; d.Status != tagging.StatusStale || !strings.Contains(d.Error, "division by zero") {
		t.Errorf("habit.div: status %q error %q", d.Status, d.Error)
	}
	if _, ok := by["presence.secret"]; ok {
		t.Errorf("a sensitive tag was computed without consent")
	}
}

// Meal detection on simulated personas with different meal times (seeds the rules
// were not tuned on): the breakfast and dinner scores stay within 0.15 of the
// simulator's truth for each.
func TestMealsAcrossPersonas(t *testing.T) {
	rs, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, per := range []sim.Persona{sim.PersonaDefault, sim.PersonaEarlyRiser, sim.PersonaNightOwl, sim.PersonaFamily} {
		hh, err := sim.New(sim.Options{Persona: per, Seed: 4242})
		if err != nil {
			t.Fatal(err)
		}
		p, err := replay.Open(t.TempDir(), replay.Options{Rules: rs})
		if err != nil {
			t.Fatal(err)
		}
		end := hh.Now().AddDate(0, 0, 28)
		for _, r := range hh.Advance(nil, end) {
			if err := p.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		tags, err := p.Finish()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		hh.Advance(nil, end.Add(5*time.Hour))
		truth := hh.Truth()[:28]
		var br, di float64
		for _, d := range truth {
			if d.Breakfast {
				br++
			}
			if d.Dinner {
				di++
			}
		}
		by := map[string]tagging.Tag{}
		for _, tg := range tags {
			by[tg.Name] = tg
		}
		for name, want := range map[string]float64{"routine.breakfast_at_home": br / 28, "routine.dinner_at_home": di / 28} {
			tg, ok := by[name]
			if !ok {
				t.Errorf("%s: %s missing from the tags", per, name)
				continue
			}
			if tg.Score-want > 0.15 || want-tg.Score > 0.15 {
				t.Errorf("%s: %s score %.2f, truth %.2f (evidence %v)", per, tg.Name, tg.Score, want, tg.Evidence)
			}
		}
	}
}

// Every tag carries a confidence beside its score: by default the share of the
// window's dates with data from the rule's kinds; a rule's own confidence
// expression otherwise. Below min_confidence a tag is scored but not activated
// (status uncertain); a bad confidence expression or min_confidence is refused at
// load with the rule's line.
func TestConfidence(t *testing.T) {
	src := "tags:\n" +
		"  - name: habit.plain\n    description: default confidence\n    kinds: [fridge]\n    window: 20d\n    score: 1\n    activate: 0.5\n    consent: usage\n" +
		"  - name: habit.sure\n    description: own confidence\n    kinds: [fridge]\n    window: 20d\n    score: 1\n    confidence: clamp(days() / 8)\n    min_confidence: 0.5\n    activate: 0.5\n    consent: usage\n" +
		"  - name: habit.unsure\n    description: own confidence, too low\n    kinds: [fridge]\n    window: 20d\n    score: 1\n    confidence: clamp(days() / 40)\n    min_confidence: 0.5\n    activate: 0.5\n    consent: usage\n"
	rs, err := tagging.ParseRules([]byte(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := replay.Open(t.TempDir(), replay.Options{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for range 10 { // 10 dates with a fridge opening
		for _, v := range []float64{1, 0} {
			if err := p.Add(device.Reading{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: v, DeviceTime: at}); err != nil {
				t.Fatal(err)
			}
			at = at.Add(time.Minute)
		}
		at = at.Add(24 * time.Hour)
	}
	tags, err := p.Finish()
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]tagging.Tag{}
	for _, tg := range tags {
		by[tg.Name] = tg
	}
	if c := by["habit.plain"]; c.Confidence != 0.5 || !c.Active || c.Status != tagging.StatusOK {
		t.Errorf("habit.plain: confidence %v (want 10 of 20 dates = 0.5), active %v, status %s", c.Confidence, c.Active, c.Status)
	}
	if c := by["habit.sure"]; c.Confidence != 1 || !c.Active {
		t.Errorf("habit.sure: confidence %v (want clamp(10/8) = 1), active %v", c.Confidence, c.Active)
	}
	if c := by["habit.unsure"]; c.Confidence != 0.25 || c.Active || c.Status != tagging.StatusUncertain || c.Score != 1 {
		t.Errorf("habit.unsure: confidence %v, active %v, status %s, score %v: want 0.25, inactive, uncertain, scored 1", c.Confidence, c.Active, c.Status, c.Score)
	}
	for _, c := range []struct{ extra, want string }{
		{"    confidence: nonesuch()\n", "confidence:"},
		{"    min_confidence: 1.5\n", "min_confidence: 1.5 must be in [0,1]"},
	} {
		bad := "tags:\n  - name: habit.bad\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: 1\n" + c.extra + "    activate: 0.5\n    consent: usage\n"
		if _, err := tagging.ParseRules([]byte(bad), "t.yaml"); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.yaml:2") {
			t.Errorf("%q: err %v, want %q at t.yaml:2", c.extra, err, c.want)
		}
	}
}

// A rule that names its signals has no data — not a confident 0 — in a home whose
// devices of its kinds never sent any of them; once one arrives it is scored.
func TestNoDataWithoutTheRulesSignals(t *testing.T) {
	src := "tags:\n" +
		"  - name: food.any_stock\n    description: x\n    kinds: [fridge]\n    signals: [inventory]\n    window: 20d\n    score: 0\n    activate: 0.5\n    consent: usage\n" +
		"  - name: habit.opened\n    description: x\n    kinds: [fridge]\n    signals: [door]\n    window: 20d\n    score: 1\n    activate: 0.5\n    consent: usage\n"
	rs, err := tagging.ParseRules([]byte(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(inventory bool) map[string]tagging.Tag {
		p, err := replay.Open(t.TempDir(), replay.Options{Rules: rs})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		for range 5 {
			rs := []device.Reading{{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, DeviceTime: at},
				{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 0, DeviceTime: at.Add(time.Minute)}}
			if inventory {
				rs = append(rs, device.Reading{Device: "f", Kind: device.KindFridge, Signal: device.SignalInventory, Value: 1, Label: "dairy", DeviceTime: at.Add(2 * time.Minute)})
			}
			for _, r := range rs {
				if err := p.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			at = at.Add(24 * time.Hour)
		}
		tags, err := p.Finish()
		if err != nil {
			t.Fatal(err)
		}
		by := map[string]tagging.Tag{}
		for _, tg := range tags {
			by[tg.Name] = tg
		}
		return by
	}
	by := run(false)
	if s := by["food.any_stock"]; s.Status != tagging.StatusNoData || s.Active || s.Score != 0 {
		t.Errorf("without inventory readings: %+v, want no_data", s)
	}
	if o := by["habit.opened"]; o.Status != tagging.StatusOK || !o.Active {
		t.Errorf("a rule whose signal is there: %+v, want ok and active", o)
	}
	if s := run(true)["food.any_stock"]; s.Status != tagging.StatusOK {
		t.Errorf("with inventory readings: status %s, want ok", s.Status)
	}
	bad := "tags:\n  - name: habit.bad\n    description: x\n    kinds: [fridge]\n    signals: [smell]\n    window: 7d\n    score: 1\n    activate: 0.5\n    consent: usage\n"
	if _, err := tagging.ParseRules([]byte(bad), "t.yaml"); err == nil || !strings.Contains(err.Error(), `unknown signal "smell"`) {
		t.Errorf("an unknown signal: %v", err)
	}
}
