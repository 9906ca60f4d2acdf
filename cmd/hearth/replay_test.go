package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/dataset"
	"github.com/hearth-iot/hearth/internal/config"
)

// TestReplayKasterenJSON replays the converted Kasteren house A and checks the
// report's shape and its numbers against the raw data.
func TestReplayKasterenJSON(t *testing.T) {
	home, err := dataset.LoadManifest("../../testdata/homes/kasteren-houseA.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home.DataPath); err != nil {
		t.Fatalf("Kasteren house A must be at %s (../shared/data): %v", home.DataPath, err)
	}
	dir := t.TempDir()
	var csv bytes.Buffer
	n, err := dataset.WriteHACSV(home.Convert(), home.Source(), &csv)
	if err != nil {
		t.Fatal(err)
	}
	mappingYAML, err := home.ReplayMapping()
	if err != nil {
		t.Fatal(err)
	}
	// One broken row, one unknown entity, one unavailable state, a DST-gap local time.
	body := csv.String() + "binary_sensor.fridge,on\nsensor.mystery,on,2008-03-01T10:00:00Z\nbinary_sensor.fridge,unavailable,2008-03-01T10:00:01Z\nbinary_sensor.fridge,on,2008-03-30 02:30:00\n"
	in := writeFile(t, dir, "houseA.csv", body)
	mapping := writeFile(t, dir, "houseA.yaml", string(mappingYAML))
	code, out, errs := runCLI(t, "replay", "--config", mapping, "--input", in, "--format", "ha-csv", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// stdout is exactly one report: every field known, nothing after it.
	var rep ReplayReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not one JSON report: %v\n%.300s", err, out)
	}
	if dec.More() {
		t.Fatalf("stdout has more after the report: %.300s", out[dec.InputOffset():])
	}
	if _, err := time.Parse(time.RFC3339, rep.From); err != nil {
		t.Errorf("from %q: %v", rep.From, err)
	}
	if rep.From[:10] != "2008-02-25" || rep.Days < 25 || rep.Days > 30 {
		t.Errorf("from %s to %s, %d days", rep.From, rep.To, rep.Days)
	}
	total := 0
	for _, d := range rep.Devices {
		sum := 0
		for _, h := range d.Hourly {
			sum += h
		}
		if len(d.Hourly) != 24 || sum != d.Activations {
			t.Errorf("device %s: hourly %v sums to %d, activations %d", d.ID, d.Hourly, sum, d.Activations)
		}
		total += d.Activations
	}
	// Every interval of the data is one off→on (the extra "on" rows in the input are
	// rejected, and one "on" in a DST gap is too).
	if total != n/2 {
		t.Errorf("activations %d, want %d intervals", total, n/2)
	}
	for _, k := range []string{"bad_row", "unknown_entity", "unavailable", "dst_gap"} {
		if rep.Input.Problems[k] != 1 {
			t.Errorf("problems[%s] = %d, want 1 (%v)", k, rep.Input.Problems[k], rep.Input.Problems)
		}
	}
	lines := map[string]int{}
	for _, p := range rep.Input.Lines {
		lines[p.Kind] = p.Line
	}
	if lines["bad_row"] != n+2 || lines["dst_gap"] != n+5 {
		t.Errorf("problem lines %v, want bad_row at %d, dst_gap at %d", lines, n+2, n+5)
	}
	found := 0
	for _, tg := range rep.Tags {
		if tg.Name == "routine.breakfast_at_home" || tg.Name == "routine.dinner_at_home" {
			found++
			if tg.Score <= 0 || tg.Score > 1 || tg.Evidence["days"] < 20 {
				t.Errorf("%s: score %v evidence %v", tg.Name, tg.Score, tg.Evidence)
			}
		}
	}
	if found != 2 {
		t.Errorf("meal tags missing from %d tags", len(rep.Tags))
	}
	// Human form.
	code, out, _ = runCLI(t, "replay", "--config", mapping, "--input", in)
	if code != 0 || !strings.Contains(out, "routine.breakfast_at_home") || !strings.Contains(out, "line ") {
		t.Errorf("exit %d, human report:\n%s", code, out)
	}
	// Usage errors.
	if code, _, _ := runCLI(t, "replay", "--input", in); code != 2 {
		t.Errorf("replay without --config: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "replay", "--config", mapping, "--input", in, "--format", "xml"); code != 2 {
		t.Errorf("replay --format xml: exit %d, want 2", code)
	}
}

func TestReplayJSONL(t *testing.T) {
	dir := t.TempDir()
	mapping := writeFile(t, dir, "m.yaml", "timezone: Europe/Amsterdam\nentities:\n  x: {kind: fridge, signal: door}\n")
	var b strings.Builder
	day := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
	for i := range 10 {
		at := day.AddDate(0, 0, i)
		b.WriteString(`{"time":"` + at.Format(time.RFC3339) + `","device":"f","kind":"fridge","signal":"door","value":1}` + "\n")
		b.WriteString(`{"time":"` + at.Add(90*time.Second).Format(time.RFC3339) + `","device":"f","kind":"fridge","signal":"door","value":0}` + "\n")
	}
	b.WriteString("{not json}\n")
	b.WriteString(`{"time":"2026-03-01T00:00:00Z","device":"f","kind":"fridge","signal":"door","value":0}` + "\n") // out of order
	in := writeFile(t, dir, "h.jsonl", b.String())
	code, out, errs := runCLI(t, "replay", "--config", mapping, "--input", in, "--format", "jsonl", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep ReplayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Input.Problems["bad_row"] != 1 || rep.Input.Problems["out_of_order"] != 1 || rep.Input.Readings != 21 {
		t.Errorf("input %+v", rep.Input)
	}
	found := false
	for _, tg := range rep.Tags {
		if tg.Name == "habit.fridge_door_long_open" {
			found = true
			if tg.Evidence["openings"] != 10 || tg.Evidence["long_openings"] != 10 || !tg.Active {
				t.Errorf("long-open tag %+v", tg)
			}
		}
	}
	if !found {
		t.Errorf("habit.fridge_door_long_open missing from the report's %d tags", len(rep.Tags))
	}
}

// TestRulesReloadKeepsOldRules: a bad rules file, seen changed on disk, leaves the rules in use; a
// good one replaces them.
func TestRulesReloadKeepsOldRules(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "tags.yaml", string(configs.Tags))
	rs, digest, err := readRules(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.Tagging.RulesFile = path
	a := &agent{cfg: cfg, log: slog.New(slog.DiscardHandler), eng: tagging.New(st, rs, nil), rulesDigest: digest}
	step := a.rulesStep()
	defer a.stopHUP()
	if err := step(context.Background()); err != nil {
		t.Fatalf("the rules as loaded: %v", err)
	}
	bad := "tags:\n  - name: habit.broken\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: ratio(1,\n    activate: 0.5\n    consent: usage\n"
	writeFile(t, dir, "tags.yaml", bad)
	// The bad file fails the step (shown in the stage's health) and keeps failing it
	// until it is fixed; the rules in use stay.
	for range 2 {
		err := step(context.Background())
		if err == nil || !strings.Contains(err.Error(), "not reloaded") || !strings.Contains(err.Error(), "habit.broken") || !strings.Contains(err.Error(), "tags.yaml:2") {
			t.Fatalf("a bad rules file: %v, want an error naming the rule and its line", err)
		}
		if a.eng.Rules() != rs {
			t.Fatal("a bad rules file replaced the rules")
		}
	}
	one := "tags:\n  - name: habit.only\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: days() / 7\n    activate: 0.5\n    consent: usage\n"
	writeFile(t, dir, "tags.yaml", one)
	if err := step(context.Background()); err != nil {
		t.Fatalf("good rules: %v", err)
	}
	if r := a.eng.Rules(); len(r.Rules) != 1 || r.Rules[0].Name != "habit.only" {
		t.Fatalf("rules after the fix: %+v", r.Rules)
	}
}
