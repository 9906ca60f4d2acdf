package summary

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// logTag records a tag (with its consent category) and one change of it, as the
// tagging engine does.
func logTag(t *testing.T, st *store.Store, name, consent string, score float64, active bool, at time.Time) {
	t.Helper()
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.PutTag(&store.Tag{Name: name, Consent: consent, Score: score, Active: active, Status: "ok",
			Evidence: map[string]float64{"days": 9}}); err != nil {
			return err
		}
		_, err := tx.AppendTagChange(&store.TagChange{Tag: name, Score: score, Active: active, Status: "ok", At: at, Reason: "score"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func ofType(t *testing.T, st *store.Store, typ string) []map[string]any {
	var out []map[string]any
	for _, m := range outbox(t, st) {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// A tag change leaves only with the consent of its tag's category: a sensitive tag
// with usage consent alone stays home, and nothing leaves without any consent.
// (Issue 19, item 4: this fails when the consent check on tag changes is disabled.)
func TestTagChangesNeedConsent(t *testing.T) {
	at := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		consent privacy.Consent
		want    []string
	}{
		{"none", privacy.Consent{}, nil},
		{"usage only", privacy.Consent{Usage: true}, nil},
		{"sensitive without tags", privacy.Consent{Sensitive: true}, nil},
		{"tags", privacy.Consent{Tags: true}, []string{"habit.usage_tag"}},
		{"both", privacy.Consent{Tags: true, Sensitive: true}, []string{"habit.usage_tag", "health.sensitive_tag"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := storetest.Open(t, nil)
			logTag(t, st, "habit.usage_tag", privacy.Usage, 0.7, true, at)
			logTag(t, st, "health.sensitive_tag", privacy.Sensitive, 0.9, true, at)
			if _, err := NewBuilder(st, &Options{Consent: c.consent, Now: func() time.Time { return at }}).Step(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ofType(t, st, TypeTag) {
				got = append(got, m["tag"].(string))
			}
			if len(got) != len(c.want) || len(got) > 0 && got[len(got)-1] != c.want[len(c.want)-1] {
				t.Errorf("tags sent with consent %+v: %v, want %v", c.consent, got, c.want)
			}
			for _, p := range ofType(t, st, TypeProfile) {
				for _, name := range p["active_tags"].([]any) {
					if name == "health.sensitive_tag" && !c.consent.Sensitive {
						t.Errorf("the profile carries a sensitive tag without consent: %v", p)
					}
				}
			}
			if c.consent == (privacy.Consent{}) && len(outbox(t, st)) != 0 {
				t.Errorf("without consent: %v", outbox(t, st))
			}
		})
	}
}

// Rescores that move a tag's score less than the step from what was last sent stay
// home; a move of the step, and turning on or off, are sent; the household profile
// follows the set of active tags.
func TestTagScoreStep(t *testing.T) {
	st := storetest.Open(t, nil)
	at := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true, Tags: true}, TagScoreStep: 0.1, RulesVersion: "r1",
		Now: func() time.Time { return at }})
	for i, s := range []struct {
		score  float64
		active bool
	}{{0.30, false}, {0.35, false}, {0.39, false}, {0.41, false}, {0.55, true}, {0.58, true}, {0.40, false}} {
		logTag(t, st, "habit.x", privacy.Usage, s.score, s.active, at.Add(time.Duration(i)*time.Hour))
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
	}
	var got []float64
	for _, m := range ofType(t, st, TypeTag) {
		got = append(got, m["score"].(float64))
		if m["rules_version"] != "r1" {
			t.Errorf("tag change without the rules version: %v", m)
		}
	}
	// 0.30 first; 0.35 and 0.39 within 0.1 of it; 0.41 is 0.11 away; 0.55 turns on;
	// 0.58 within the step; 0.40 turns off.
	if want := []float64{0.30, 0.41, 0.55, 0.40}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("scores sent %v, want %v", got, want)
	}
	profiles := ofType(t, st, TypeProfile)
	if len(profiles) != 2 || len(profiles[0]["active_tags"].([]any)) != 1 || profiles[1]["active_tags"] != nil {
		t.Errorf("profiles %v: want one with habit.x active, then one with none", profiles)
	}
}

// Over the outbox cap, queued score-only changes of a tag fold into its latest one,
// and if that is not enough the builder makes nothing: the days wait in the rollups
// and are summarised, none missing, once there is room.
func TestOutboxCapFoldsThenDefers(t *testing.T) {
	st := storetest.Open(t, nil)
	at := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	now := at
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true, Tags: true}, TagScoreStep: 0.01, MaxPendingBytes: 1500,
		Now: func() time.Time { return now }})
	logTag(t, st, "habit.x", privacy.Usage, 0.7, true, at)
	for i := 1; i <= 6; i++ {
		logTag(t, st, "habit.x", privacy.Usage, 0.7+float64(i)/20, true, at.Add(time.Duration(i)*time.Minute))
	}
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	before := len(ofType(t, st, TypeTag))
	// Days of readings: each Step finds the outbox over the cap and folds.
	var rs []device.Reading
	for d := 0; d < 4; d++ {
		day := at.AddDate(0, 0, d)
		rs = append(rs, device.Reading{Device: "oven", Kind: device.KindOven, Signal: device.SignalActive, Value: 1, Boot: 1, Seq: uint64(d + 1), DeviceTime: day, HubTime: day})
	}
	if err := device.Commit(context.Background(), st, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	now = at.AddDate(0, 0, 5)
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	tags := ofType(t, st, TypeTag)
	if before != 7 || len(tags) >= before || tags[len(tags)-1]["score"] != 1.0 || tags[0]["active"] != true {
		t.Fatalf("tag changes %d before the cap pressed, %d after: %v (want fewer, the first and the latest kept)", before, len(tags), tags)
	}
	// A tighter cap: the queue is over it, so the next days wait in the rollups.
	var more []device.Reading
	for d := 4; d < 7; d++ {
		day := at.AddDate(0, 0, d)
		more = append(more, device.Reading{Device: "oven", Kind: device.KindOven, Signal: device.SignalActive, Value: 1, Boot: 1, Seq: uint64(d + 1), DeviceTime: day, HubTime: day})
	}
	if err := device.Commit(context.Background(), st, more); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	now = at.AddDate(0, 0, 8)
	b2 := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true, Tags: true}, MaxPendingBytes: 100, Now: func() time.Time { return now }})
	daysBefore := len(ofType(t, st, TypeDeviceDay))
	if _, err := b2.Step(); err != nil {
		t.Fatal(err)
	}
	if n := len(ofType(t, st, TypeDeviceDay)); n != daysBefore {
		t.Fatalf("made %d device days over the cap", n-daysBefore)
	}
	// Delivery takes the queue each time; every day comes, none lost.
	daysSeen := map[string]bool{}
	for i := 0; i < 8; i++ {
		for _, m := range takeQueue(t, st) {
			if m.Type == TypeDeviceDay {
				var d DeviceDay
				_ = json.Unmarshal(m.Body, &d)
				daysSeen[d.Date] = true
			}
		}
		if _, err := b2.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if len(daysSeen) != 7 {
		t.Errorf("days summarised in all: %v, want all 7", daysSeen)
	}
}

// takeQueue takes every queued message out, as delivery does, and returns them in
// order (read first, deleted after: never under the cursor).
func takeQueue(t testing.TB, st *store.Store) []store.Message {
	var out []store.Message
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.Queued(0, func(m store.Message) error { out = append(out, m); return nil }); err != nil {
			return err
		}
		for _, m := range out {
			if err := tx.Dequeue(m.Seq); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A device that goes quiet still has its day summarised once the hub's clock is the
// grace past the day's end; a device that keeps talking (a backlog uploaded now) has
// its days closed only by its own clock.
func TestQuietDeviceDayClosesOnHubClock(t *testing.T) {
	st := storetest.Open(t, nil)
	mon := time.Date(2026, 5, 4, 14, 0, 0, 0, time.UTC)
	var now time.Time
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true, Tags: true}, CloseGrace: 2 * time.Hour, Now: func() time.Time { return now }})
	commit := func(dev string, devTime, hubTime time.Time, seq uint64) {
		r := device.Reading{Device: dev, Kind: device.KindOven, Signal: device.SignalActive, Value: 1, Boot: 1, Seq: seq, DeviceTime: devTime, HubTime: hubTime}
		if err := device.Commit(context.Background(), st, []device.Reading{r}); err != nil {
			t.Fatal(err)
		}
		if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
			t.Fatal(err)
		}
	}
	commit("quiet", mon, mon, 1)
	// A backlog: Monday's reading arrives on Tuesday at 04:00 (hub time).
	commit("talker", mon, mon.Add(14*time.Hour), 1)
	days := func() []string {
		var out []string
		for _, m := range ofType(t, st, TypeDeviceDay) {
			out = append(out, m["device"].(string))
		}
		return out
	}
	for _, c := range []struct {
		now  time.Time
		want int
	}{
		{mon.Add(11 * time.Hour), 0}, // Tue 01:00: within the grace
		{mon.Add(13 * time.Hour), 1}, // Tue 03:00: the quiet device's Monday closes
		{mon.Add(15 * time.Hour), 1}, // Tue 05:00: the talker was heard an hour ago
		{mon.Add(17 * time.Hour), 2}, // Tue 07:00: now it too has been quiet for the grace
	} {
		now = c.now
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
		if got := days(); len(got) != c.want {
			t.Errorf("at %s: %d device days, want %d", now.Format(time.RFC3339), len(got), c.want)
		}
	}
	p := privacy.NewPseudonymizer(st.Secret())
	if got := days(); len(got) == 2 && got[0] != p.ID("device", "quiet") {
		t.Errorf("the quiet device's day came second: %v", got)
	}
	// A hub clock before NTP (1970) closes nothing.
	commit("quiet", mon.AddDate(0, 0, 1), mon.AddDate(0, 0, 1), 2)
	now = time.Unix(100, 0)
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	if got := days(); len(got) != 2 {
		t.Errorf("a 1970 hub clock closed a day: %d device days", len(got))
	}
}
