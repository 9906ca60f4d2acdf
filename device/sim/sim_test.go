package sim_test

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without zoneinfo

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

const day = 24 * time.Hour

var allKinds = []device.Kind{device.KindFridge, device.KindFreezer, device.KindWasher, device.KindOven,
	device.KindStove, device.KindMicrowave, device.KindKettle, device.KindToaster, device.KindDishwasher,
	device.KindKitchenCabinet}

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func newHousehold(t testing.TB, opts sim.Options) *sim.Household {
	t.Helper()
	h, err := sim.New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return h
}

// run builds a household and advances it by d in one step.
func run(t testing.TB, opts sim.Options, d time.Duration) (*sim.Household, []device.Reading) {
	t.Helper()
	h := newHousehold(t, opts)
	return h, h.Advance(nil, h.Now().Add(d))
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		name string
		opts sim.Options
		want error
	}{
		{"unknown persona", sim.Options{Persona: "hermit"}, sim.ErrUnknownPersona},
		{"unsupported kind", sim.Options{Kinds: []device.Kind{device.KindFridge, device.KindDryer}}, sim.ErrUnsupportedKind},
		{"unknown kind", sim.Options{Kinds: []device.Kind{"toilet"}}, sim.ErrUnsupportedKind},
		{"duplicate kind", sim.Options{Kinds: []device.Kind{device.KindFridge, device.KindFridge}}, sim.ErrInvalidOptions},
		{"bad prefix", sim.Options{Prefix: "home 1/"}, sim.ErrInvalidOptions},
		{"long prefix", sim.Options{Prefix: strings.Repeat("x", 60)}, sim.ErrInvalidOptions},
		{"start too early", sim.Options{Start: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}, sim.ErrInvalidOptions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := sim.New(c.opts)
			if !errors.Is(err, c.want) || h != nil {
				t.Fatalf("New = %v, %v; want error %v", h, err, c.want)
			}
		})
	}
}

func TestAppliances(t *testing.T) {
	for _, p := range sim.Personas() {
		h := newHousehold(t, sim.Options{Persona: p, Prefix: "home1-"})
		apps := h.Appliances()
		for _, k := range []device.Kind{device.KindFridge, device.KindWasher, device.KindOven} {
			if !slices.Contains(apps, sim.Appliance{ID: "home1-" + string(k), Kind: k}) {
				t.Errorf("%s: appliances %v lack %s", p, apps, k)
			}
		}
	}
	h := newHousehold(t, sim.Options{Kinds: []device.Kind{device.KindKettle, device.KindFridge}})
	want := []sim.Appliance{{"kettle", device.KindKettle}, {"fridge", device.KindFridge}}
	if got := h.Appliances(); !reflect.DeepEqual(got, want) {
		t.Errorf("Appliances = %v, want %v", got, want)
	}
	if got := len(sim.Personas()); got != 8 {
		t.Errorf("%d personas, want 8", got)
	}
}

func TestStartTruncatedToLocalMidnight(t *testing.T) {
	loc := berlin(t)
	h := newHousehold(t, sim.Options{Location: loc, Start: time.Date(2026, 5, 4, 23, 30, 0, 0, time.UTC)})
	// 23:30 UTC is 01:30 on 5 May in Berlin.
	if want := time.Date(2026, 5, 5, 0, 0, 0, 0, loc); !h.Now().Equal(want) {
		t.Errorf("Now = %v, want %v", h.Now(), want)
	}
	h = newHousehold(t, sim.Options{})
	if want := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC); !h.Now().Equal(want) {
		t.Errorf("zero Start: Now = %v, want %v", h.Now(), want)
	}
}

// TestReadingsWellFormed checks every reading of every persona: Validate, ids,
// kinds, boot, seq, time order, units and the documented meaning of values.
func TestReadingsWellFormed(t *testing.T) {
	loc := berlin(t)
	for _, p := range sim.Personas() {
		t.Run(string(p), func(t *testing.T) {
			h := newHousehold(t, sim.Options{Persona: p, Seed: 7, Prefix: "h7.", Location: loc, Kinds: allKinds})
			start := h.Now()
			var rs []device.Reading
			// Two steps, to check each reading lands in its own step's range.
			mid := start.Add(9*day + 7*time.Hour + 123*time.Millisecond)
			rs = h.Advance(rs, mid)
			n1 := len(rs)
			end := start.Add(21 * day)
			rs = h.Advance(rs, end)
			if len(rs) == 0 {
				t.Fatal("no readings")
			}
			kindOf := map[string]device.Kind{}
			for _, a := range h.Appliances() {
				kindOf[a.ID] = a.Kind
			}
			seq := map[string]uint64{}
			var prev time.Time
			boot := rs[0].Boot
			for i, r := range rs {
				if err := r.Validate(); err != nil {
					t.Fatalf("reading %d: %v", i, err)
				}
				if kindOf[r.Device] != r.Kind {
					t.Fatalf("reading %d: device %q kind %q, appliances %v", i, r.Device, r.Kind, h.Appliances())
				}
				if r.Boot == 0 || r.Boot != boot || r.Boot != h.Boot() {
					t.Fatalf("reading %d: boot %d, first %d", i, r.Boot, boot)
				}
				seq[r.Device]++
				if r.Seq != seq[r.Device] {
					t.Fatalf("reading %d: %s seq %d, want %d", i, r.Device, r.Seq, seq[r.Device])
				}
				if !r.HubTime.IsZero() {
					t.Fatalf("reading %d: HubTime set", i)
				}
				lo, hi := start, mid
				if i >= n1 {
					lo, hi = mid, end
				}
				if r.DeviceTime.Before(lo) || !r.DeviceTime.Before(hi) {
					t.Fatalf("reading %d at %v outside [%v, %v)", i, r.DeviceTime, lo, hi)
				}
				if r.DeviceTime.Before(prev) {
					t.Fatalf("reading %d at %v before previous %v", i, r.DeviceTime, prev)
				}
				prev = r.DeviceTime
				if r.DeviceTime.Location() != loc {
					t.Fatalf("reading %d: location %v", i, r.DeviceTime.Location())
				}
				checkMeaning(t, i, r)
			}
		})
	}
}

var categories = []string{"dairy", "fresh_produce", "meat", "fish", "drinks", "ready_meals", "condiments", "bakery"}

func checkMeaning(t *testing.T, i int, r device.Reading) {
	t.Helper()
	bad := func(why string) { t.Fatalf("reading %d %+v: %s", i, r, why) }
	switch r.Signal {
	case device.SignalDoor, device.SignalActive, device.SignalFilter:
		if r.Value != 0 && r.Value != 1 || r.Signal == device.SignalFilter && r.Value != 1 {
			bad("binary value")
		}
	case device.SignalCycle:
		if r.Value != 0 && r.Value != 1 || r.Label == "" {
			bad("cycle needs 0/1 and a programme")
		}
		if r.Value == 0 && r.Aux <= 0 {
			bad("finished cycle without energy")
		}
	case device.SignalPower:
		if r.Unit != "W" || r.Value < 0 || r.Value > 3500 {
			bad("power")
		}
	case device.SignalTemperature:
		if r.Unit != "°C" || r.Value < -30 || r.Value > 20 {
			bad("temperature")
		}
		if r.Kind == device.KindFridge && (r.Value < 1 || r.Value > 15) {
			bad("fridge temperature")
		}
	case device.SignalWater:
		if r.Unit != "L" || r.Value <= 0 || r.Value > 2 || r.Kind != device.KindFridge {
			bad("water")
		}
	case device.SignalInventory:
		if r.Value != 1 && r.Value != -1 || !slices.Contains(categories, r.Label) || r.Kind != device.KindFridge {
			bad("inventory")
		}
		today := r.DeviceTime.Unix() / 86400
		if r.Aux < today-400 || r.Aux > today+400 {
			bad("best-before")
		}
	default:
		bad("unexpected signal")
	}
}

// TestSessions checks that door sessions, active uses and cycles alternate 1/0 per
// device (so never overlap), have realistic lengths, and that appliance power is only
// reported around uses.
func TestSessions(t *testing.T) {
	for _, p := range []sim.Persona{sim.PersonaFamily, sim.PersonaNightOwl, sim.PersonaDoorAjar} {
		_, rs := run(t, sim.Options{Persona: p, Seed: 3, Kinds: allKinds}, 21*day)
		on := map[string]time.Time{}
		var durs []time.Duration
		for _, r := range rs {
			switch r.Signal {
			case device.SignalDoor, device.SignalActive, device.SignalCycle:
				s, open := on[r.Device]
				if (r.Value == 1) == open {
					t.Fatalf("%s: %s=%v at %v, open=%v", p, r.Signal, r.Value, r.DeviceTime, open)
				}
				if r.Value == 1 {
					on[r.Device] = r.DeviceTime
					continue
				}
				delete(on, r.Device)
				d := r.DeviceTime.Sub(s)
				if d <= 0 {
					t.Fatalf("%s: empty session of %s at %v", p, r.Device, s)
				}
				switch r.Kind {
				case device.KindFridge:
					durs = append(durs, d)
				case device.KindWasher, device.KindDishwasher:
					if d < 25*time.Minute || d > 4*time.Hour {
						t.Fatalf("%s: %s cycle of %v", p, r.Kind, d)
					}
				case device.KindOven:
					if d < 20*time.Minute || d > 4*time.Hour {
						t.Fatalf("%s: oven use of %v", p, d)
					}
				}
			case device.SignalPower:
				_, open := on[r.Device]
				switch r.Kind {
				case device.KindWasher, device.KindDishwasher, device.KindOven, device.KindStove:
					if r.Value > 5 && !open {
						t.Fatalf("%s: %s draws %v W outside a use at %v", p, r.Kind, r.Value, r.DeviceTime)
					}
				}
			}
		}
		slices.Sort(durs)
		median, p95 := durs[len(durs)/2], durs[len(durs)*95/100]
		t.Logf("%s: %d fridge sessions, median %v, p95 %v, max %v", p, len(durs), median, p95, durs[len(durs)-1])
		if median < 5*time.Second || median > 40*time.Second {
			t.Errorf("%s: median fridge session %v, want 5-40 s", p, median)
		}
		if p == sim.PersonaDoorAjar && p95 < 2*time.Minute {
			t.Errorf("door_ajar: p95 session %v, want minutes", p95)
		}
		if p != sim.PersonaDoorAjar && p95 > 2*time.Minute {
			t.Errorf("%s: p95 session %v", p, p95)
		}
	}
}

func TestDeterministic(t *testing.T) {
	loc := berlin(t)
	opts := sim.Options{Persona: sim.PersonaFamily, Seed: 11, Location: loc, Kinds: allKinds, Prefix: "a-"}
	h1, a := run(t, opts, 10*day)
	h2, b := run(t, opts, 10*day)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same options, different readings")
	}
	if !reflect.DeepEqual(h1.Truth(), h2.Truth()) {
		t.Fatal("same options, different truth")
	}
	opts.Seed = 12
	h3, c := run(t, opts, 10*day)
	if reflect.DeepEqual(a, c) || reflect.DeepEqual(h1.Truth(), h3.Truth()) {
		t.Fatal("different seeds, same output")
	}
	if h1.Boot() == h3.Boot() {
		t.Error("different seeds, same boot id")
	}
	opts.Seed = 11
	opts.Persona = sim.PersonaDefault
	_, d := run(t, opts, 10*day)
	if reflect.DeepEqual(a, d) {
		t.Fatal("different personas, same readings")
	}
}

// TestAdvanceSteps checks that any sequence of steps yields exactly what one step
// does, including steps of a nanosecond, steps ending mid-millisecond, empty and
// backward steps, and steps across DST changes.
func TestAdvanceSteps(t *testing.T) {
	loc := berlin(t)
	for _, p := range []sim.Persona{sim.PersonaFamily, sim.PersonaAway, sim.PersonaNightOwl} {
		t.Run(string(p), func(t *testing.T) {
			opts := sim.Options{Persona: p, Seed: 5, Location: loc, Kinds: allKinds,
				Start: time.Date(2026, 3, 24, 15, 0, 0, 0, loc)}
			const span = 16 * day // over 2026-03-29, a 23-hour day
			big, want := run(t, opts, span)
			h := newHousehold(t, opts)
			end := h.Now().Add(span)
			steps := rand.New(rand.NewPCG(1, 2))
			var got []device.Reading
			sizes := []time.Duration{time.Nanosecond, time.Millisecond, 999 * time.Microsecond,
				time.Second, 17 * time.Minute, 3 * time.Hour, 26 * time.Hour}
			for h.Now().Before(end) {
				d := sizes[steps.IntN(len(sizes))]
				until := h.Now().Add(d)
				if until.After(end) {
					until = end
				}
				switch steps.IntN(20) {
				case 0:
					got = h.Advance(got, h.Now()) // empty step
				case 1:
					got = h.Advance(got, h.Now().Add(-time.Hour)) // backward: nothing
				}
				n := len(got)
				got = h.Advance(got, until)
				if !h.Now().Equal(until) {
					t.Fatalf("Now = %v after Advance(%v)", h.Now(), until)
				}
				for _, r := range got[n:] {
					if r.DeviceTime.After(until) || r.DeviceTime.Equal(until) {
						t.Fatalf("reading at %v from Advance to %v", r.DeviceTime, until)
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("steps gave %d readings, one step %d (or different ones)", len(got), len(want))
			}
			if !reflect.DeepEqual(h.Truth(), big.Truth()) {
				t.Fatal("steps gave a different truth")
			}
		})
	}
}

// TestTruthMatchesReadings recomputes the truth of every day from the readings
// emitted when the day is first reported, with a naive consumer sharing no code
// with the generator.
func TestTruthMatchesReadings(t *testing.T) {
	loc := berlin(t)
	for _, p := range sim.Personas() {
		t.Run(string(p), func(t *testing.T) {
			for _, kinds := range [][]device.Kind{nil, allKinds} {
				h := newHousehold(t, sim.Options{Persona: p, Seed: 21, Location: loc, Kinds: kinds,
					Start: time.Date(2026, 3, 9, 0, 0, 0, 0, loc)})
				var rs []device.Reading
				var checked []sim.DayTruth
				end := h.Now().Add(35 * day)
				for h.Now().Before(end) {
					rs = h.Advance(rs, h.Now().Add(61*time.Hour+13*time.Minute))
					days := h.Truth()
					if !slices.Equal(days[:len(checked)], checked) {
						t.Fatal("truth of a reported day changed later")
					}
					rf := reference(rs, loc, h.Now())
					for _, d := range days[len(checked):] {
						for _, diff := range rf.compareDay(d) {
							t.Error(diff)
						}
					}
					for _, pr := range rf.problems {
						t.Error(pr)
					}
					if t.Failed() {
						t.FailNow()
					}
					checked = days
				}
				if len(checked) < 33 {
					t.Fatalf("%d days reported after 35", len(checked))
				}
				checkDayFacts(t, h, checked, rs, loc)
			}
		})
	}
}

// checkDayFacts checks the parts of the truth that are not counts: dates, meals,
// away days and the filter.
func checkDayFacts(t *testing.T, h *sim.Household, days []sim.DayTruth, rs []device.Reading, loc *time.Location) {
	t.Helper()
	acts := activationsAt(rs)
	hasKitchen := false
	for _, a := range h.Appliances() {
		hasKitchen = hasKitchen || a.Kind.Kitchen()
	}
	byDate := map[string][]device.Reading{}
	for _, r := range rs {
		d := dateOf(r.DeviceTime, loc)
		byDate[d] = append(byDate[d], r)
	}
	first := h.Now().Add(-400 * day) // before anything
	for i, d := range days {
		date, err := time.ParseInLocation(time.DateOnly, d.Date, loc)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && date.Format(time.DateOnly) != first.AddDate(0, 0, i).Format(time.DateOnly) {
			t.Fatalf("day %d is %s, want consecutive dates from %s", i, d.Date, days[0].Date)
		}
		if i == 0 {
			first = date
		}
		if date.Weekday() != d.Weekday {
			t.Errorf("%s: weekday %v", d.Date, d.Weekday)
		}
		meals := []struct {
			name string
			had  bool
			at   time.Time
		}{{"breakfast", d.Breakfast, d.BreakfastAt}, {"lunch", d.Lunch, d.LunchAt}, {"dinner", d.Dinner, d.DinnerAt}}
		for _, m := range meals {
			if !m.had {
				if !m.at.IsZero() {
					t.Errorf("%s: no %s but time %v", d.Date, m.name, m.at)
				}
				continue
			}
			if dateOf(m.at, loc) != d.Date {
				t.Errorf("%s: %s at %v", d.Date, m.name, m.at)
			}
			if _, found := slices.BinarySearchFunc(acts, m.at, func(a, b time.Time) int { return a.Compare(b) }); hasKitchen && !found {
				t.Errorf("%s: %s at %v is no kitchen activation", d.Date, m.name, m.at)
			}
		}
		if d.LateNight != (d.LateNightActivations > 0) {
			t.Errorf("%s: LateNight %v with %d activations", d.Date, d.LateNight, d.LateNightActivations)
		}
		if d.Away {
			if d.Breakfast || d.Lunch || d.Dinner || d.KitchenActivations > 0 || d.WasherCycles > 0 || d.WaterEvents > 0 {
				t.Errorf("%s: away but active: %+v", d.Date, d)
			}
			for _, r := range byDate[d.Date] {
				if r.Signal != device.SignalPower && r.Signal != device.SignalTemperature ||
					r.Kind != device.KindFridge && r.Kind != device.KindFreezer {
					t.Errorf("%s: away but %s %s %v at %v", d.Date, r.Device, r.Signal, r.Value, r.DeviceTime)
					break
				}
			}
		}
		switch {
		case d.FilterChanged && d.FilterAgeDays != 0:
			t.Errorf("%s: filter changed, age %d", d.Date, d.FilterAgeDays)
		case !d.FilterChanged && i > 0 && d.FilterAgeDays != days[i-1].FilterAgeDays+1:
			t.Errorf("%s: filter age %d after %d", d.Date, d.FilterAgeDays, days[i-1].FilterAgeDays)
		}
		if d.FilterDue != (d.FilterAgeDays >= sim.FilterLifeDays) {
			t.Errorf("%s: filter age %d, due %v", d.Date, d.FilterAgeDays, d.FilterDue)
		}
	}
}

// TestTruthWaitsForReadings checks when days are reported: not before 04:00 of the
// next date, and only once their sessions and cycles have ended.
func TestTruthWaitsForReadings(t *testing.T) {
	h := newHousehold(t, sim.Options{Persona: sim.PersonaFamily, Seed: 2, Kinds: allKinds})
	start := h.Now()
	h.Advance(nil, start.Add(day+4*time.Hour-time.Millisecond))
	if n := len(h.Truth()); n != 0 {
		t.Fatalf("%d days before 04:00 of the second date", n)
	}
	h.Advance(nil, start.Add(8*day+12*time.Hour))
	days := h.Truth()
	if len(days) != 8 {
		t.Fatalf("%d days reported at noon of the ninth date, want 8", len(days))
	}
	if days[0].Date != start.Format(time.DateOnly) {
		t.Errorf("first day %s, want %s", days[0].Date, start.Format(time.DateOnly))
	}

	// Step by 20 minutes: when a day is first reported, nothing that started on it
	// is still open.
	for _, p := range []sim.Persona{sim.PersonaFamily, sim.PersonaNightOwl, sim.PersonaDoorAjar} {
		h := newHousehold(t, sim.Options{Persona: p, Seed: 9, Kinds: allKinds})
		open := map[string]time.Time{}
		reported := 0
		var rs []device.Reading
		for end := h.Now().Add(21 * day); h.Now().Before(end); {
			rs = h.Advance(rs[:0], h.Now().Add(20*time.Minute))
			for _, r := range rs {
				switch r.Signal {
				case device.SignalDoor, device.SignalActive, device.SignalCycle:
					if r.Value == 1 {
						open[r.Device] = r.DeviceTime
					} else {
						delete(open, r.Device)
					}
				}
			}
			days := h.Truth()
			for _, d := range days[reported:] {
				for dev, s := range open {
					if s.Format(time.DateOnly) <= d.Date {
						t.Errorf("%s: %s reported at %v while %s is open since %v", p, d.Date, h.Now(), dev, s)
					}
				}
				date, _ := time.Parse(time.DateOnly, d.Date)
				if lim := date.AddDate(0, 0, 1).Add(4 * time.Hour); h.Now().Before(lim) {
					t.Errorf("%s: %s reported at %v", p, d.Date, h.Now())
				}
			}
			reported = len(days)
		}
		if reported < 19 {
			t.Errorf("%s: %d days reported after 21", p, reported)
		}
	}
}

// TestDST checks a 23-hour and a 25-hour local day: temperature every 15 minutes
// gives 92 and 100 readings, and the truth covers both dates.
func TestDST(t *testing.T) {
	loc := berlin(t)
	for _, c := range []struct {
		date  time.Time
		ticks int
	}{
		{time.Date(2026, 3, 29, 0, 0, 0, 0, loc), 92},
		{time.Date(2026, 10, 25, 0, 0, 0, 0, loc), 100},
	} {
		h := newHousehold(t, sim.Options{Seed: 4, Location: loc, Kinds: []device.Kind{device.KindFridge},
			Start: c.date.AddDate(0, 0, -2)})
		rs := h.Advance(nil, c.date.AddDate(0, 0, 3))
		date := c.date.Format(time.DateOnly)
		n := 0
		for _, r := range rs {
			if r.Signal == device.SignalTemperature && dateOf(r.DeviceTime, loc) == date {
				n++
			}
		}
		if n != c.ticks {
			t.Errorf("%s: %d temperature readings, want %d", date, n, c.ticks)
		}
		var dates []string
		for _, d := range h.Truth() {
			dates = append(dates, d.Date)
		}
		if !slices.Contains(dates, date) || len(dates) != 4 {
			t.Errorf("truth dates %v, want 4 including %s", dates, date)
		}
		rf := reference(rs, loc, h.Now())
		for _, d := range h.Truth() {
			for _, diff := range rf.compareDay(d) {
				t.Error(diff)
			}
		}
	}
}
