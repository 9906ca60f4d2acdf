package tagging

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/rollup"
)

// dayBuilder collects kitchen switch-ons into rollup days, as the rollup consumer
// would (Starts and Activations per date, device and signal).
type dayBuilder map[string]*rollup.Day

func (b dayBuilder) on(t time.Time, k device.Kind, s device.Signal) { b.onDev(t, string(k), k, s) }

func (b dayBuilder) onDev(t time.Time, dev string, k device.Kind, s device.Signal) {
	date := t.Format(time.DateOnly)
	key := date + "/" + dev + "/" + string(s)
	d := b[key]
	if d == nil {
		d = &rollup.Day{Date: date, Device: dev, Kind: k, Signal: s, Weekday: t.Weekday()}
		b[key] = d
	}
	d.Activations[t.Hour()]++
	d.Starts = append(d.Starts, uint16(t.Hour()*60+t.Minute()))
}

func (b dayBuilder) window() *window {
	w := &window{}
	for _, d := range b {
		w.days = append(w.days, d)
	}
	return w
}

// days of a window, for DetectMeals.
func (b dayBuilder) days() []*rollup.Day { return b.window().days }

var monday = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// at is minute m of hour h of the i-th day from monday.
func at(i, h, m int) time.Time {
	return monday.AddDate(0, 0, i).Add(time.Duration(h*60+m) * time.Minute)
}

func date(i int) string { return monday.AddDate(0, 0, i).Format(time.DateOnly) }

// A dinner is food being prepared: the fridge and the oven, the fridge again some
// minutes later, or the fridge and a cupboard over a quarter of an hour. Putting the
// shopping away (three fridge openings in five minutes), a drink (one opening) or a
// glass (the fridge and a cupboard in a minute) is not, however many doors it opens.
func TestDinnerIsNotASnackOrDrink(t *testing.T) {
	b := dayBuilder{}
	want := map[string]bool{}
	fridge := func(tm time.Time) { b.on(tm, device.KindFridge, device.SignalDoor) }
	for i := range 28 {
		switch i % 4 {
		case 0, 1: // dinner: fridge, oven, fridge again 25 minutes in
			fridge(at(i, 19, 0))
			b.on(at(i, 19, 8), device.KindOven, device.SignalActive)
			fridge(at(i, 19, 25))
			want[date(i)] = true
		case 2: // shopping put away: three fridge openings in five minutes
			fridge(at(i, 19, 0))
			fridge(at(i, 19, 2))
			fridge(at(i, 19, 5))
		case 3: // a drink, then a glass
			fridge(at(i, 19, 10))
			fridge(at(i, 20, 10))
			b.on(at(i, 20, 11), device.KindKitchenCabinet, device.SignalDoor)
		}
		if i%7 == 3 { // a cold dinner: the fridge, a cupboard, the fridge 15 minutes on
			fridge(at(i, 20, 40))
			b.on(at(i, 20, 42), device.KindKitchenCabinet, device.SignalDoor)
			fridge(at(i, 20, 55))
			want[date(i)] = true
		}
	}
	rep := DetectMeals(b.days(), at(28, 0, 0), time.UTC)
	checkDates(t, rep.Meals[Dinner].Dates, want, "dinner not found", "the burst was counted as dinner")
	if rep.Mode != "cooking" {
		t.Errorf("mode %q, want cooking (an oven)", rep.Mode)
	}
	if _, err := (&window{days: b.days(), loc: time.UTC, now: at(28, 0, 0)}).meal("supper"); err == nil {
		t.Error("an unknown meal was accepted")
	}
}

// Breakfast stays quick: a kettle and the fridge within three minutes are one.
func TestQuickBreakfastCounts(t *testing.T) {
	b := dayBuilder{}
	for i := range 14 {
		b.on(at(i, 7, 0), device.KindFridge, device.SignalDoor)
		b.on(at(i, 7, 3), device.KindKettle, device.SignalActive)
	}
	if got := DetectMeals(b.days(), at(14, 0, 0), time.UTC).Meals[Breakfast]; len(got.Dates) != 14 || got.Share() != 1 {
		t.Errorf("breakfast on %d of 14 dates (share %.2f)", len(got.Dates), got.Share())
	}
}

// The windows are the household's own: a brunch at 10:30 to 11:10, a lunch at 15:30
// and a dinner at 21:30 to 22:10 are all found, and the windows sit around them.
// Two residents each busy in the kitchen at a meal make one meal, not two.
func TestHouseholdsOwnMealTimes(t *testing.T) {
	b := dayBuilder{}
	for i := range 28 {
		j := i % 5 * 10                                      // the meal times wander by up to 40 minutes
		for _, dev := range []string{"fridge", "fridge-2"} { // two residents, two fridges' worth of openings
			b.onDev(at(i, 10, 30+j), dev, device.KindFridge, device.SignalDoor)
			b.onDev(at(i, 10, 36+j), dev, device.KindFridge, device.SignalDoor)
		}
		b.on(at(i, 10, 33+j), device.KindKitchenCabinet, device.SignalDoor)
		if i%2 == 0 {
			b.on(at(i, 15, 30), device.KindFridge, device.SignalDoor)
			b.on(at(i, 15, 35), device.KindStove, device.SignalActive)
			b.on(at(i, 15, 50), device.KindFridge, device.SignalDoor)
		}
		b.on(at(i, 21, 30+j), device.KindFridge, device.SignalDoor)
		b.on(at(i, 21, 35+j), device.KindStove, device.SignalActive)
		b.on(at(i, 21, 45+j), device.KindKitchenCabinet, device.SignalDoor)
		b.on(at(i, 21, 55+j), device.KindFridge, device.SignalDoor)
	}
	rep := DetectMeals(b.days(), at(28, 0, 0), time.UTC)
	for meal, want := range map[string]int{Breakfast: 28, Lunch: 14, Dinner: 28} {
		f := rep.Meals[meal]
		if len(f.Dates) != want || f.Observed != 28 {
			t.Errorf("%s on %d dates of %d observed, want %d of 28 (windows %v)", meal, len(f.Dates), f.Observed, want, f.Windows)
		}
	}
	inWin := func(meal string, m int) bool {
		w := rep.Meals[meal].Windows[0]
		return m >= w[0] && m < w[1]
	}
	if !inWin(Breakfast, 10*60+30) || !inWin(Breakfast, 11*60+10) || !inWin(Lunch, 15*60+30) || !inWin(Dinner, 22*60+10) || inWin(Breakfast, 15*60+30) {
		t.Errorf("windows: breakfast %v, lunch %v, dinner %v", rep.Meals[Breakfast].Windows, rep.Meals[Lunch].Windows, rep.Meals[Dinner].Windows)
	}
}

// The share's denominator is the dates the home was occupied and observed: a date
// without any reading, or with only a bathroom door, is not a date without
// breakfast; a date with only the front door is (someone was home). The data
// clock's own date counts once its window has passed.
func TestMealDenominator(t *testing.T) {
	b := dayBuilder{}
	for i := range 20 {
		switch {
		case i < 10: // breakfast at home
			b.on(at(i, 7, 0), device.KindFridge, device.SignalDoor)
			b.on(at(i, 7, 2), device.KindKitchenCabinet, device.SignalDoor)
		case i < 14: // away: nothing at all
		case i < 16: // a bathroom door only (kind sensor): not observed
			b.on(at(i, 9, 0), device.KindSensor, device.SignalDoor)
		default: // home, the front door only: no breakfast
			b.on(at(i, 9, 0), device.KindEntryDoor, device.SignalDoor)
		}
	}
	f := DetectMeals(b.days(), at(19, 23, 0), time.UTC).Meals[Breakfast]
	if len(f.Dates) != 10 || f.Observed != 14 {
		t.Fatalf("breakfast on %d of %d observed dates, want 10 of 14 (10 + 4 with the front door)", len(f.Dates), f.Observed)
	}
	// Evaluated at 06:00 on day 10, before its breakfast window has passed: day 10
	// (with a reading at 05:30) does not count yet.
	b.on(at(10, 5, 30), device.KindEntryDoor, device.SignalDoor)
	if f := DetectMeals(b.days(), at(10, 6, 0), time.UTC).Meals[Breakfast]; f.Observed != 10 {
		t.Errorf("at 06:00 of day 10: %d observed dates, want 10 (day 10's window is open)", f.Observed)
	}
}

// The sensor set sets the mode, the confidence and what counts: with the fridge
// alone the first fridge use of the morning is breakfast, with a lower confidence;
// the confidence grows with observed dates up to 14.
func TestSensorModes(t *testing.T) {
	cases := []struct {
		kinds []device.Kind
		mode  string
		conf  float64
	}{
		{[]device.Kind{device.KindFridge, device.KindStove}, "cooking", 1},
		{[]device.Kind{device.KindFridge, device.KindMicrowave}, "microwave", 0.9},
		{[]device.Kind{device.KindFridge, device.KindKitchenCabinet}, "cupboard", 0.8},
		{[]device.Kind{device.KindFridge}, "fridge", 0.6},
	}
	for _, c := range cases {
		b := dayBuilder{}
		for i := range 21 {
			b.on(at(i, 8, 0), device.KindFridge, device.SignalDoor)
			for _, k := range c.kinds[1:] {
				b.on(at(i, 8, 3), k, device.SignalDoor)
			}
		}
		rep := DetectMeals(b.days(), at(21, 0, 0), time.UTC)
		f := rep.Meals[Breakfast]
		if rep.Mode != c.mode || f.Confidence != c.conf || len(f.Dates) != 21 {
			t.Errorf("%v: mode %q confidence %.2f, breakfast on %d dates; want %q %.2f on 21", c.kinds, rep.Mode, f.Confidence, len(f.Dates), c.mode, c.conf)
		}
		if f.Used[device.KindFridge] != 21 {
			t.Errorf("%v: used %v, want the fridge on all 21 dates", c.kinds, f.Used)
		}
		if f7 := DetectMeals(b.days(), at(6, 23, 0), time.UTC).Meals[Breakfast]; math.Abs(f7.Confidence-c.conf*7/14) > 1e-9 {
			t.Errorf("%v after 7 dates: confidence %.3f, want %.3f", c.kinds, f7.Confidence, c.conf*7/14)
		}
	}
	// With other sensors, a single fridge opening in the morning is a drink.
	b := dayBuilder{}
	for i := range 14 {
		b.on(at(i, 8, 0), device.KindFridge, device.SignalDoor)
		b.on(at(i, 19, 0), device.KindStove, device.SignalActive)
	}
	if f := DetectMeals(b.days(), at(14, 0, 0), time.UTC).Meals[Breakfast]; len(f.Dates) != 0 {
		t.Errorf("a home with a stove: a lone fridge opening was breakfast on %d dates", len(f.Dates))
	}
}

// On simulated homes of every persona (seeds 1-20, the ones the detector was chosen
// on), with each persona's appliances and with the fridge alone, the dates found to
// have each meal match the simulator's truth: date-level precision and recall.
// Measured when chosen (20 seeds): appliances: breakfast P 0.941 R 0.961, lunch P
// 0.508 R 0.593, dinner P 0.943 R 0.947; fridge only: breakfast P 0.876 R 0.992,
// lunch P 0.460 R 0.420, dinner P 0.952 R 0.886. After the changes of issue 15's
// second round (plateau centres, claimed episodes, open outer windows, distinct
// cupboards, arrivals, fridge-only dinner at 2): appliances: breakfast P 0.939 R
// 0.964, lunch P 0.498 R 0.599, dinner P 0.940 R 0.950; fridge only: breakfast P
// 0.874 R 1.000, lunch P 0.439 R 0.426, dinner P 0.896 R 0.977. The fridge-only
// dinner trades precision for recall (FP 153 → 391, FN 394 → 79): its share moved
// from 7 % under the truth to 9 % over it here, and from 0.24-0.31 under it to within
// 0.15 in the real homes.
func TestMealDatesOnSimulatedHomes(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	seeds := int64(20)
	if testing.Short() {
		seeds = 5
	}
	type pr struct{ p, r float64 }
	want := map[string]map[string]pr{
		"appliances": {Breakfast: {0.92, 0.94}, Lunch: {0.45, 0.52}, Dinner: {0.92, 0.92}},
		"fridge":     {Breakfast: {0.85, 0.97}, Lunch: {0.40, 0.36}, Dinner: {0.88, 0.95}},
	}
	for set, kinds := range map[string][]device.Kind{"appliances": nil, "fridge": {device.KindFridge}} {
		counts := map[string]*[3]int{}
		for _, p := range sim.Personas() {
			for seed := int64(1); seed <= seeds; seed++ {
				hh, err := sim.New(sim.Options{Persona: p, Seed: seed, Location: loc, Prefix: "h-", Kinds: kinds})
				if err != nil {
					t.Fatal(err)
				}
				end := hh.Now().AddDate(0, 0, 28)
				b := dayBuilder{}
				for _, r := range hh.Advance(nil, end.Add(5*time.Hour)) {
					lt := r.DeviceTime.In(loc)
					if r.Value == 1 && (r.Signal == device.SignalDoor || r.Signal == device.SignalActive) && lt.Before(end) {
						b.onDev(lt, r.Device, r.Kind, r.Signal)
					}
				}
				rep := DetectMeals(b.days(), end.Add(-time.Second), loc)
				for _, d := range hh.Truth()[:28] {
					for meal, had := range map[string]bool{Breakfast: d.Breakfast, Lunch: d.Lunch, Dinner: d.Dinner} {
						c := counts[meal]
						if c == nil {
							c = &[3]int{}
							counts[meal] = c
						}
						_, det := rep.Meals[meal].Dates[d.Date]
						switch {
						case det && had:
							c[0]++
						case det:
							c[1]++
						case had:
							c[2]++
						}
					}
				}
			}
		}
		for meal, c := range counts {
			p, r := float64(c[0])/float64(c[0]+c[1]), float64(c[0])/float64(c[0]+c[2])
			msg := fmt.Sprintf("%s, %s dates: TP %d FP %d FN %d, precision %.3f recall %.3f", set, meal, c[0], c[1], c[2], p, r)
			t.Log(msg)
			if w := want[set][meal]; p < w.p || r < w.r {
				t.Errorf("%s: want precision >= %.2f and recall >= %.2f", msg, w.p, w.r)
			}
		}
	}
}

// A meal's centre is the middle of the run of minutes that the most dates' meals are
// near, not its earliest minute: dinners at 19:00 and 20:00 on alternate dates are
// near every minute from 19:00 to 20:00, and centred at 19:30, between them (issue
// 15: ARAS house B's dinner centre fell at the early end of such a run).
func TestMealCentreIsTheMiddleOfItsPlateau(t *testing.T) {
	var dates [][]int
	for i := range 10 {
		dates = append(dates, []int{19*60 + i%2*60})
	}
	if c := bestCentre(dates, 17*60, 23*60, -1); c != 19*60+30 {
		t.Errorf("centre %02d:%02d, want 19:30", c/60, c%60)
	}
	// A single best minute stays where it is.
	if c := bestCentre([][]int{{18*60 + 30}, {18*60 + 30}, {21 * 60}}, 17*60, 23*60, -1); c < 17*60+30 || c > 19*60+30 {
		t.Errorf("centre %02d:%02d, want within an hour of 18:30", c/60, c%60)
	}
}

// The day's last meal has no later meal to share its window with: a 22:15 dinner in
// a household that mostly eats at 19:00 is dinner (its window runs to the band's end,
// 23:00), and so is a 05:30 breakfast in one that mostly eats at 08:30.
func TestLateDinnerAndEarlyBreakfastCount(t *testing.T) {
	b := dayBuilder{}
	for i := range 28 {
		bh, bm, dh, dm := 8, 30, 19, 0
		if i%4 == 3 {
			bh, bm, dh, dm = 5, 30, 22, 15
		}
		b.on(at(i, bh, bm), device.KindFridge, device.SignalDoor)
		b.on(at(i, bh, bm+2), device.KindKettle, device.SignalActive)
		b.on(at(i, dh, dm), device.KindFridge, device.SignalDoor)
		b.on(at(i, dh, dm+5), device.KindStove, device.SignalActive)
		b.on(at(i, dh, dm+20), device.KindFridge, device.SignalDoor)
	}
	rep := DetectMeals(b.days(), at(28, 0, 0), time.UTC)
	for _, meal := range []string{Breakfast, Dinner} {
		if f := rep.Meals[meal]; len(f.Dates) != 28 {
			t.Errorf("%s on %d of 28 dates (windows %v)", meal, len(f.Dates), f.Windows)
		}
	}
}

// A meal is gathered from several places: a drawer and a cupboard opened over a
// quarter of an hour, without the fridge, is a dinner in a home whose kitchen
// sensors are cupboards; one cupboard opened again and again is not (a glass of
// water, the biscuits).
func TestDinnerFromSeveralCupboards(t *testing.T) {
	b := dayBuilder{}
	want := map[string]bool{}
	for i := range 28 {
		b.on(at(i, 8, 0), device.KindFridge, device.SignalDoor)
		b.onDev(at(i, 8, 2), "cupboard", device.KindKitchenCabinet, device.SignalDoor)
		if i%2 == 0 { // dinner: the drawer, the cupboard, the drawer again
			b.onDev(at(i, 19, 50), "drawer", device.KindKitchenCabinet, device.SignalDoor)
			b.onDev(at(i, 20, 0), "cupboard", device.KindKitchenCabinet, device.SignalDoor)
			b.onDev(at(i, 20, 10), "drawer", device.KindKitchenCabinet, device.SignalDoor)
			want[date(i)] = true
		} else { // the same cupboard four times over a quarter of an hour
			for m := 0; m <= 15; m += 5 {
				b.onDev(at(i, 20, m), "cupboard", device.KindKitchenCabinet, device.SignalDoor)
			}
		}
	}
	checkDates(t, DetectMeals(b.days(), at(28, 0, 0), time.UTC).Meals[Dinner].Dates, want,
		"the cupboards-only dinner was not found", "one cupboard opened again and again was counted as dinner")
}

// Coming home and putting things away (the front door, then the fridge, a cupboard
// and the microwave within three minutes) is not a meal; cooking for a quarter of an
// hour straight after coming in is.
func TestComingHomeIsNotAMeal(t *testing.T) {
	b := dayBuilder{}
	want := map[string]bool{}
	for i := range 28 {
		b.on(at(i, 8, 0), device.KindFridge, device.SignalDoor)
		b.on(at(i, 8, 2), device.KindMicrowave, device.SignalActive)
		switch i % 3 {
		case 0: // dinner, the front door long before
			b.on(at(i, 17, 0), device.KindEntryDoor, device.SignalDoor)
			b.on(at(i, 19, 0), device.KindFridge, device.SignalDoor)
			b.on(at(i, 19, 1), device.KindKitchenCabinet, device.SignalDoor)
			b.on(at(i, 19, 3), device.KindMicrowave, device.SignalActive)
			want[date(i)] = true
		case 1: // home at 19:00, the shopping away by 19:03
			b.on(at(i, 19, 0), device.KindEntryDoor, device.SignalDoor)
			b.on(at(i, 19, 1), device.KindFridge, device.SignalDoor)
			b.on(at(i, 19, 2), device.KindKitchenCabinet, device.SignalDoor)
			b.on(at(i, 19, 3), device.KindMicrowave, device.SignalActive)
		case 2: // home at 19:00 and cooking until 19:20
			b.on(at(i, 19, 0), device.KindEntryDoor, device.SignalDoor)
			b.on(at(i, 19, 2), device.KindFridge, device.SignalDoor)
			b.on(at(i, 19, 4), device.KindMicrowave, device.SignalActive)
			b.on(at(i, 19, 20), device.KindKitchenCabinet, device.SignalDoor)
			want[date(i)] = true
		}
	}
	checkDates(t, DetectMeals(b.days(), at(28, 0, 0), time.UTC).Meals[Dinner].Dates, want,
		"dinner not found", "coming home at 19:00 was counted as dinner")
}

// checkDates compares the dates a meal was found on (got: date → the minute its
// episode started) with the dates wanted: a wanted date not found is reported with
// missed, a date found but not wanted with extra and its episode's time.
func checkDates(t *testing.T, got map[string]int, want map[string]bool, missed, extra string) {
	t.Helper()
	for d := range want {
		if _, ok := got[d]; !ok {
			t.Errorf("%s: %s", d, missed)
		}
	}
	for d, s := range got {
		if !want[d] {
			t.Errorf("%s: %s (episode at %02d:%02d)", d, extra, s/60, s%60)
		}
	}
}

// With the fridge alone, the cupboard or cooker a dinner would add cannot be seen:
// two fridge uses in one episode are a dinner (as one morning use is a breakfast);
// one use is not, and lunch keeps its threshold (two uses in the afternoon are as
// often a snack: the simulator's fridge-only lunch precision fell with it).
func TestFridgeOnlyDinner(t *testing.T) {
	b := dayBuilder{}
	fridge := func(tm time.Time) { b.on(tm, device.KindFridge, device.SignalDoor) }
	for i := range 28 {
		fridge(at(i, 8, 0))
		fridge(at(i, 13, 0))
		fridge(at(i, 13, 4))
		if i%2 == 0 {
			fridge(at(i, 19, 0))
			fridge(at(i, 19, 4))
		} else {
			fridge(at(i, 19, 30))
		}
	}
	rep := DetectMeals(b.days(), at(28, 0, 0), time.UTC)
	if rep.Mode != "fridge" {
		t.Fatalf("mode %q, want fridge", rep.Mode)
	}
	if n := len(rep.Meals[Dinner].Dates); n != 14 {
		t.Errorf("fridge-only dinner on %d dates, want the 14 with two openings", n)
	}
	if n := len(rep.Meals[Lunch].Dates); n != 0 {
		t.Errorf("fridge-only lunch on %d dates, want 0 (two quick openings are not lunch)", n)
	}
}

// One episode is one meal, and a later meal's times are learned from what follows
// the earlier meal: a household whose breakfasts wander from 08:00 to 11:00 and who
// lunch at 14:30 on a few dates has its lunch centred near 14:30, and none of its
// breakfasts is taken for lunch (without the claim, the four 11:00 breakfasts made a
// lunch centre at 12:00: ARAS house B's late breakfasts were its lunches).
func TestLateBreakfastIsNotLunch(t *testing.T) {
	b := dayBuilder{}
	lunches := 0
	for i := range 28 {
		m := 8*60 + i%7*30 // 08:00 … 11:00
		b.on(at(i, 0, m), device.KindFridge, device.SignalDoor)
		b.on(at(i, 0, m+2), device.KindKitchenCabinet, device.SignalDoor)
		b.on(at(i, 0, m+12), device.KindFridge, device.SignalDoor)
		if i%10 == 0 { // lunch on 3 dates: fewer than the 11:00 breakfasts
			b.on(at(i, 14, 30), device.KindFridge, device.SignalDoor)
			b.on(at(i, 14, 32), device.KindKitchenCabinet, device.SignalDoor)
			b.on(at(i, 14, 45), device.KindFridge, device.SignalDoor)
			lunches++
		}
	}
	rep := DetectMeals(b.days(), at(28, 0, 0), time.UTC)
	if f := rep.Meals[Breakfast]; len(f.Dates) != 28 {
		t.Errorf("breakfast on %d of 28 dates (windows: breakfast %v, lunch %v)", len(f.Dates), f.Windows, rep.Meals[Lunch].Windows)
	}
	if f := rep.Meals[Lunch]; len(f.Dates) != lunches {
		t.Errorf("lunch on %d dates, want %d (windows: breakfast %v, lunch %v)", len(f.Dates), lunches, rep.Meals[Breakfast].Windows, f.Windows)
	}
}
