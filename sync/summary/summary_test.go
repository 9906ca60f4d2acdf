package summary

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// lastHeard is a hub clock that reads the hub time of the newest reading stored: a
// hub whose devices are all talking, so that only the devices' own clocks close days.
func lastHeard(st *store.Store) func() time.Time {
	return func() time.Time {
		var last time.Time
		for _, d := range st.Devices() {
			if d.LastSeen.After(last) {
				last = d.LastSeen
			}
		}
		return last
	}
}

func outbox(t *testing.T, st *store.Store) []map[string]any {
	t.Helper()
	var out []map[string]any
	_ = st.View(func(tx *store.Tx) error {
		return tx.Queued(0, func(q store.Message) error {
			var m map[string]any
			if err := json.Unmarshal(q.Body, &m); err != nil {
				t.Fatal(err)
			}
			if m["type"] != q.Type || m["id"] != q.ID {
				t.Errorf("queued message %s/%s carries %v/%v", q.Type, q.ID, m["type"], m["id"])
			}
			out = append(out, m)
			return nil
		})
	})
	return out
}

// Without consent, a real device's days stay home; a simulated device's are written.
// With consent, both leave, under pseudonyms, each day exactly once.
func TestConsentAndPseudonyms(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	var rs []device.Reading
	for i, dev := range []string{"kitchen-fridge", privacy.SimPrefix + "fridge"} {
		for d := 0; d < 3; d++ { // three days: two closed, the third open
			at := day.AddDate(0, 0, d).Add(8 * time.Hour)
			rs = append(rs,
				device.Reading{Device: dev, Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, Boot: 1, Seq: uint64(d*2 + 1), DeviceTime: at, HubTime: at},
				device.Reading{Device: dev, Kind: device.KindFridge, Signal: device.SignalDoor, Value: 0, Boot: 1, Seq: uint64(d*2 + 2), DeviceTime: at.Add(time.Duration(30+i) * time.Second), HubTime: at})
		}
	}
	if err := device.Commit(context.Background(), st, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	isSim := func(id string) bool { return id == privacy.SimPrefix+"fridge" }
	b := NewBuilder(st, &Options{Consent: privacy.Consent{}, Simulated: isSim, Now: lastHeard(st)})
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	msgs := outbox(t, st)
	if len(msgs) != 2 {
		t.Fatalf("without consent: %d messages, want the simulated device's 2 closed days: %v", len(msgs), msgs)
	}
	simPseudo := privacy.NewPseudonymizer(st.Secret()).ID("device", privacy.SimPrefix+"fridge")
	for _, m := range msgs {
		if m["device"] != simPseudo || m["type"] != "device_day" {
			t.Errorf("unexpected message %v", m)
		}
	}
	// Consent given later: the real device's closed days are not sent retroactively
	// (the cursor has passed them)… but its next closed day is.
	b2 := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true}, Simulated: isSim, Now: lastHeard(st)})
	at := day.AddDate(0, 0, 3).Add(8 * time.Hour)
	if err := device.Commit(context.Background(), st, []device.Reading{
		{Device: "kitchen-fridge", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, Boot: 1, Seq: 7, DeviceTime: at, HubTime: at},
		{Device: "kitchen-fridge", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 0, Boot: 1, Seq: 8, DeviceTime: at.Add(10 * time.Second), HubTime: at},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Step(); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Step(); err != nil { // a second step adds nothing
		t.Fatal(err)
	}
	msgs = outbox(t, st)
	realPseudo := privacy.NewPseudonymizer(st.Secret()).ID("device", "kitchen-fridge")
	var realDays []string
	for _, m := range msgs {
		raw, _ := json.Marshal(m)
		if strings.Contains(string(raw), "kitchen-fridge") {
			t.Fatalf("local id left the home: %s", raw)
		}
		if m["device"] == realPseudo {
			realDays = append(realDays, m["date"].(string))
			door := m["signals"].(map[string]any)["door"].(map[string]any)
			if door["sessions"].(float64) != 1 {
				t.Errorf("real device day %v: door %v", m["date"], door)
			}
		}
	}
	if len(realDays) != 1 || realDays[0] != "2026-05-06" {
		t.Errorf("real device days sent: %v, want [2026-05-06]", realDays)
	}
	// The simulated fridge reported nothing after day 3, so on its own clock day 3 is
	// still open — but it has been quiet for a day by the hub's clock (the real
	// fridge's reading of day 4), so the hub's clock closes it.
	per := map[any][]any{}
	for _, m := range msgs {
		if m["type"] == "device_day" {
			per[m["device"]] = append(per[m["device"]], m["date"])
		}
	}
	if got := fmt.Sprint(per[simPseudo]); got != "[2026-05-04 2026-05-05 2026-05-06]" {
		t.Errorf("simulated fridge's days: %s, want 2026-05-04..06", got)
	}
}

// A device that first reports after another device's days were summarised still gets
// its own earlier days summarised (the scan starts at the oldest cursor, or at the
// beginning for a device with none).
func TestLateDeviceDaysAreSummarised(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	commitDays := func(dev string, n int) {
		var rs []device.Reading
		for d := 0; d < n; d++ {
			at := day.AddDate(0, 0, d).Add(9 * time.Hour)
			rs = append(rs, device.Reading{Device: dev, Kind: device.KindOven, Signal: device.SignalActive, Value: 1, Boot: 1, Seq: uint64(d + 1), DeviceTime: at, HubTime: at})
		}
		if err := device.Commit(context.Background(), st, rs); err != nil {
			t.Fatal(err)
		}
		if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
			t.Fatal(err)
		}
	}
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true}, Now: lastHeard(st)})
	commitDays("oven-z", 4) // days 1-3 close
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	commitDays("oven-a", 3) // days 1-2 close (sorts first: it has no cursor yet)
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	per := map[any]int{}
	for _, m := range outbox(t, st) {
		per[m["device"]]++
	}
	p := privacy.NewPseudonymizer(st.Secret())
	// oven-a's third day closes too: by the hub's clock (oven-z's last reading, a day
	// later) oven-a has been quiet for longer than the grace.
	if per[p.ID("device", "oven-z")] != 3 || per[p.ID("device", "oven-a")] != 3 {
		t.Errorf("days summarised per device: z=%d a=%d, want 3 and 3", per[p.ID("device", "oven-z")], per[p.ID("device", "oven-a")])
	}
}

// Whether a device is simulated is the agent's word, not the look of its id: a real
// device named like a simulated one gets no consent bypass; and a hub with no device
// is not "all simulated".
func TestNoConsentBypass(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := NewBuilder(st, &Options{Consent: privacy.Consent{}}) // no simulated devices, no consent
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	if n := len(outbox(t, st)); n != 0 {
		t.Fatalf("an empty hub without consent sent %d messages", n)
	}
	day := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	var rs []device.Reading
	for d := 0; d < 3; d++ {
		at := day.AddDate(0, 0, d)
		rs = append(rs, device.Reading{Device: privacy.SimPrefix + "imposter", Kind: device.KindFridge, Signal: device.SignalDoor,
			Value: 1, Boot: 1, Seq: uint64(d + 1), DeviceTime: at, HubTime: at})
	}
	if err := device.Commit(context.Background(), st, rs); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Step(); err != nil {
		t.Fatal(err)
	}
	if msgs := outbox(t, st); len(msgs) != 0 {
		t.Fatalf("a real device named %q left without consent: %v", privacy.SimPrefix+"imposter", msgs)
	}
}

// ovenStepper returns a function that commits one oven reading at a time, catches
// the rollups up and runs b's Step.
func ovenStepper(t *testing.T, st *store.Store, b *Builder) func(at time.Time, v float64) {
	seq := uint64(0)
	return func(at time.Time, v float64) {
		t.Helper()
		seq++
		r := device.Reading{Device: "oven", Kind: device.KindOven, Signal: device.SignalActive, Value: v, Boot: 1, Seq: seq, DeviceTime: at, HubTime: at}
		if err := device.Commit(context.Background(), st, []device.Reading{r}); err != nil {
			t.Fatal(err)
		}
		if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
	}
}

// graceRig is a store and a Builder with a 2-hour close grace, an oven that reported
// at 20:00 on day and at 01:00 the next day (within the grace), and the stepper
// that commits its readings and runs a pass. The store closes with the test.
func graceRig(t *testing.T) (*store.Store, *Builder, func(time.Time, float64), time.Time) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true}, CloseGrace: 2 * time.Hour, Now: lastHeard(st)})
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	commit := ovenStepper(t, st, b)
	commit(day.Add(20*time.Hour), 1)
	commit(day.Add(25*time.Hour), 0) // 01:00 the next day: within the grace
	return st, b, commit, day
}

// deviceDays is the device_day summaries in st's outbox, in order.
func deviceDays(t *testing.T, st *store.Store) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range outbox(t, st) {
		if m["type"] == "device_day" {
			out = append(out, m)
		}
	}
	return out
}

// A day closes only once the device's clock is the grace past its end: a reading for
// it that arrives a little late is in its summary.
func TestDayCloseGrace(t *testing.T) {
	st, _, commit, day := graceRig(t)
	if n := len(deviceDays(t, st)); n != 0 {
		t.Fatalf("the day was summarised %d time(s) inside the grace", n)
	}
	commit(day.Add(23*time.Hour), 1) // late, for the first day
	commit(day.Add(27*time.Hour), 0) // 03:00: past the grace
	msgs := deviceDays(t, st)
	if len(msgs) != 1 || msgs[0]["date"] != "2026-05-04" {
		t.Fatalf("outbox: %v", msgs)
	}
	act := msgs[0]["signals"].(map[string]any)["active"].(map[string]any)
	if act["n"] != 2.0 {
		t.Errorf("the first day's summary has %v readings of active, want 2 (the late one included)", act["n"])
	}
}

// A tag change carries the tag's confidence upstream beside its score.
func TestTagChangeCarriesConfidence(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	if err := device.Commit(context.Background(), st, []device.Reading{
		{Device: "kitchen-fridge", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, Boot: 1, Seq: 1, DeviceTime: at, HubTime: at},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	rs, err := tagging.ParseRules([]byte("tags:\n  - name: habit.x\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: 0.8\n    confidence: 0.375\n    activate: 0.5\n    consent: usage\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tagging.New(st, rs, nil).Evaluate(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true, Tags: true}}).Step(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range outbox(t, st) {
		if m["type"] == "tag" {
			found = true
			if m["tag"] != "habit.x" || m["score"] != 0.8 || m["confidence"] != 0.375 {
				t.Errorf("tag change %v: want habit.x, score 0.8, confidence 0.375", m)
			}
		}
	}
	if !found {
		t.Error("no tag change in the outbox")
	}
}

// A hub closes its days its own offset later than the grace (sync.day_close_spread),
// fixed by its household pseudonym: a day is not summarised until the device's clock
// is the grace plus the offset past its end, and a fleet's offsets are spread evenly
// over the spread, not all at one minute of the night.
func TestDayCloseSpread(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const grace, spread = 2 * time.Hour, 4 * time.Hour
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true}, CloseGrace: grace, CloseSpread: spread, Now: lastHeard(st)})
	off := b.CloseOffset()
	if off < 0 || off >= spread {
		t.Fatalf("offset %s outside [0, %s)", off, spread)
	}
	if again := NewBuilder(st, &Options{CloseGrace: grace, CloseSpread: spread}).CloseOffset(); again != off {
		t.Fatalf("the offset changed between two builders of one hub: %s, then %s", off, again)
	}
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	step := ovenStepper(t, st, b)
	commit := func(at time.Time) int {
		step(at, 1)
		return len(deviceDays(t, st))
	}
	commit(day.Add(20 * time.Hour))
	if n := commit(day.Add(24*time.Hour + grace + off - time.Minute)); n != 0 {
		t.Fatalf("the day was summarised a minute before the grace plus the hub's offset (%s)", off)
	}
	if n := commit(day.Add(24*time.Hour + grace + off + time.Minute)); n != 1 {
		t.Fatalf("%d summaries a minute after the grace plus the hub's offset (%s), want 1", n, off)
	}
	// A fleet of 1,000 hubs: each quarter-hour of the 4h holds about 1000/16.
	var per [16]int
	for i := range 1000 {
		o := closeOffset(fmt.Sprintf("household-%d", i), spread)
		per[int(o*16/spread)]++
	}
	t.Logf("day closes per quarter-hour of %s over 1,000 hubs: %v", spread, per)
	for i, n := range per {
		if n < 35 || n > 95 {
			t.Errorf("quarter-hour %d of the spread holds %d of 1000 hubs' day close (%v)", i, n, per)
		}
	}
}

// A pass reads the days up to the newest one a device's clock has closed, not the
// open ones after it: decoding every device's open days each pass was most of its
// work (15 days a second at 30 devices and a pass every 2s).
func TestOpenDaysAreNotRead(t *testing.T) {
	st, b, commit, day := graceRig(t)
	b.daysRead = 0
	commit(day.Add(25*time.Hour+30*time.Minute), 1) // 01:30: the grace is not over yet
	if b.daysRead != 0 {
		t.Fatalf("a pass with no day closed read %d days", b.daysRead)
	}
	commit(day.Add(27*time.Hour), 0) // 03:00: past the grace
	if b.daysRead != 1 {
		t.Fatalf("the pass that closed one day read %d days, want that one (not the open one)", b.daysRead)
	}
	var dates []any
	for _, m := range deviceDays(t, st) {
		dates = append(dates, m["date"])
	}
	if len(dates) != 1 || dates[0] != "2026-05-04" {
		t.Fatalf("device days in the outbox: %v, want 2026-05-04", dates)
	}
}
