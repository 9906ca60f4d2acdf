package tagging_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/pipeline"
	"github.com/hearth-iot/hearth/edge/tagging"
)

// Refresh evaluates only when something an evaluation reads has changed — the
// store's records, the rules, consent — and the tags it leaves are those an
// evaluation would have left: a second evaluation with the same inputs writes
// nothing, so an idle store stays unchanged and the tag stage stops running.
func TestRefreshOnlyWhenSomethingChanged(t *testing.T) {
	src := rule("habit.busy", "ratio(sessions(\"fridge\", \"door\"), 10)", "7d") +
		"  - name: presence.secret\n    description: sensitive\n    kinds: [fridge]\n    window: 7d\n    score: 1\n    activate: 0.5\n    consent: sensitive\n"
	rs, err := tagging.ParseRules([]byte(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sensitive := false
	clock := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	p, err := pipeline.Open(filepath.Join(t.TempDir(), "hearth.db"), pipeline.Options{Rules: rs,
		Now:     func() time.Time { return clock },
		Tagging: tagging.Options{Consent: func(c string) bool { return c == tagging.ConsentUsage || c == tagging.ConsentSensitive && sensitive }}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	seq := uint64(0)
	add := func(n int) {
		t.Helper()
		var batch []device.Reading
		for range n {
			seq++
			clock = clock.Add(7 * time.Minute)
			batch = append(batch, device.Reading{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: float64(seq % 2),
				Boot: 1, Seq: seq, DeviceTime: clock})
		}
		if err := device.Commit(context.Background(), p.Ingest, batch); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Rollup.CatchUp(); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func(want bool, why string) {
		t.Helper()
		ran, err := p.Tags.Refresh()
		if err != nil {
			t.Fatal(err)
		}
		if ran != want {
			t.Fatalf("%s: Refresh evaluated: %v, want %v", why, ran, want)
		}
	}
	tagsJSON := func() string {
		b, err := json.Marshal(p.Tags.Tags())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	add(12)
	refresh(true, "the first Refresh")
	first := tagsJSON()
	if len(p.Tags.Tags()) != 2 {
		t.Fatalf("tags after the first Refresh: %s", first)
	}
	refresh(true, "after its own writes") // the tags it wrote changed the store
	c := p.Store.Changes()
	refresh(false, "with nothing changed")
	refresh(false, "with nothing changed, again")
	if got := p.Store.Changes(); got != c {
		t.Fatalf("the store changed (%d → %d) with nothing to evaluate", c, got)
	}
	// The skipped evaluations would have left the same tags: evaluate for real.
	if _, err := p.Tags.Evaluate(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := tagsJSON(); got != first {
		t.Fatalf("an evaluation with nothing changed gives\n%s\nafter Refresh left\n%s", got, first)
	}
	if got := p.Store.Changes(); got != c {
		t.Fatalf("an evaluation with nothing changed wrote to the store (%d → %d)", c, got)
	}

	add(2)
	refresh(true, "after new readings were rolled up")
	if got := tagsJSON(); got == first {
		t.Fatalf("the tags did not move with two more readings: %s", got)
	}
	refresh(true, "after its own writes")
	refresh(false, "with nothing changed")

	sensitive = true
	refresh(true, "after consent to sensitive tags")
	found := false
	for _, tg := range p.Tags.Tags() {
		found = found || tg.Name == "presence.secret"
	}
	if !found {
		t.Fatalf("no sensitive tag after consent: %s", tagsJSON())
	}
	refresh(true, "after its own writes")
	refresh(false, "with nothing changed")

	rs2, err := tagging.ParseRules([]byte(src), "t.yaml") // a reload: the same text, a new rule set
	if err != nil {
		t.Fatal(err)
	}
	p.Tags.SetRules(rs2)
	refresh(true, "after the rules were reloaded")
}
