package tagging

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// Meal detection.
//
// The detector works from whatever kitchen appliances a home has and learns each
// household's own meal times; nothing in it names a house. docs/tags.md describes it
// for people; the steps:
//
//  1. Kitchen events: every off→on of a door or active signal of a kitchen appliance
//     (fridge, freezer, microwave, oven, stove, toaster, kettle, dishwasher door,
//     kitchen cabinets), at its local minute (rollup.Day.Starts; the middle of the
//     hour for days rolled up before Starts existed). A device switched on again
//     within Debounce of its previous switch-on is the same use (a door that
//     bounces, a photocell that flickers, a resident going back for the milk).
//     Programme cycles and compressor power are not kitchen events.
//  2. Episodes: a date's events, in time order, split wherever two are more than
//     EpisodeGap apart. Two residents busy in the kitchen together, or one after the
//     other, make one episode: one meal.
//  3. Evidence: an episode's strength adds what each kind of signal says about food
//     being prepared (mealWeights): each fridge or freezer use (at most two), each
//     distinct cupboard, drawer or dishwasher door (at most two: a meal is gathered
//     from several places, a glass from one), a cooking appliance (stove, oven,
//     microwave, kettle, toaster), and the episode lasting MealSpan or more. A lunch
//     or dinner episode is meal-like at MealStrength: the fridge and the cooker; the
//     fridge, a cupboard and some minutes; two cupboards and some minutes; the fridge
//     twice over some minutes. Putting the shopping away, a drink or a glass is not
//     (with the fridge alone the shopping cannot be told from a quick dinner). A
//     breakfast is quick: it needs BreakfastStrength (the fridge and the kettle, or a
//     cupboard). In a home with the fridge alone the evidence a
//     cupboard or cooker would add cannot be seen, and the threshold is lower by it:
//     FridgeOnlyBreakfastStrength (the morning's first fridge use) and
//     FridgeOnlyDinnerStrength (two fridge uses in one episode); lunch keeps
//     MealStrength (two quick afternoon openings are as often a snack). An episode
//     that starts within ArrivalGap after an entry door opened and lasts less than
//     MealSpan is coming home and putting things away: never meal-like.
//  4. The household's meal times: each meal has a broad band in which its centre
//     may lie (mealBands). In meal order, its centre is the middle of the run of
//     minutes (10-minute steps) for which the most dates have a meal-like episode
//     starting within CentreRadius of it, at least MinSeparation after the previous
//     meal's centre, counting only episodes after the one the previous meal claimed
//     on that date (its first meal-like episode within Tolerance of its centre): a
//     late breakfast is not learned as an early lunch. Weekend days get their own
//     centres when at least 3 weekend dates have a meal-like episode near the band
//     and their centre is SplitShift or more from the weekdays'.
//  5. Windows: a meal's window runs from its centre to halfway to the neighbouring
//     meals' centres, and never further than Tolerance from it: one episode is never
//     two meals, and a window is as wide as the household's own timetable allows.
//     The day's first meal has no earlier meal and its last no later one: their
//     outer sides reach at least the band's edge (05:00 for breakfast, 23:00 for
//     dinner), so a 22:15 dinner in a household that mostly eats at 19:00 counts.
//  6. A date had the meal when a meal-like episode starts in its window.
//
// The constants were chosen on the simulator (seeds 1-20) and on one real home, ARAS
// house A; the second round (issue 15: the changes in steps 3-5 named above) was
// chosen after looking at all three development homes. docs/tags.md lists which was
// chosen on what, and the errors measured.
//
// The denominator of a meal's share (MealFinding.Observed) is the dates on which the home
// was occupied and observed: some switch-on of a kitchen appliance, an entry door
// or a motion sensor. A date without any is not a date without breakfast. The data
// clock's own date counts only once its window has passed (or the meal was seen).
//
// Confidence: the sensor set's weight (mealModes: a cooking appliance, only a
// microwave or kettle, cupboards, the fridge alone) times the coverage (observed
// dates over MinConfidentDays, at most 1).
const (
	EpisodeGap                  = 20  // minutes
	Debounce                    = 1   // minutes
	Tolerance                   = 120 // minutes
	CentreRadius                = 60  // minutes
	MinSeparation               = 150 // minutes
	SplitShift                  = 60  // minutes
	MealSpan                    = 10  // minutes
	MealStrength                = 3.0
	BreakfastStrength           = 2.0
	FridgeOnlyBreakfastStrength = 1.0
	FridgeOnlyDinnerStrength    = 2.0
	MinConfidentDays            = 14
	ArrivalGap                  = 5 // minutes
)

// Meal names.
const (
	Breakfast = "breakfast"
	Lunch     = "lunch"
	Dinner    = "dinner"
)

// mealBands are the meals in the order of the day, each with the band [from, to)
// (minutes of the day) in which its centre may lie, and the strength at which an
// episode is meal-like, with the home's sensors and with the fridge alone.
var mealBands = []struct {
	name           string
	from, to       int
	strength       float64
	fridgeStrength float64
}{
	{Breakfast, 5 * 60, 12 * 60, BreakfastStrength, FridgeOnlyBreakfastStrength},
	{Lunch, 11*60 + 30, 16*60 + 30, MealStrength, MealStrength},
	{Dinner, 17 * 60, 23 * 60, MealStrength, FridgeOnlyDinnerStrength},
}

// mealWeights is the strength each kind of evidence adds to an episode.
var mealWeights = struct {
	fridge, fridgeMax, cupboard, cupboardMax, cooking, span float64
}{fridge: 1, fridgeMax: 2, cupboard: 1, cupboardMax: 2, cooking: 1.5, span: 1}

// Sensor modes: what kind of kitchen evidence a home can give, strongest first, with
// the confidence each lends a meal tag.
var mealModes = []struct {
	name   string
	weight float64
}{
	{"cooking", 1.0},   // a stove or an oven
	{"microwave", 0.9}, // a microwave, kettle or toaster, no stove or oven
	{"cupboard", 0.8},  // kitchen cupboards (or a dishwasher door), no cooking appliance
	{"fridge", 0.6},    // the fridge (and freezer) only
}

type evClass uint8

const (
	classFridge evClass = iota
	classCupboard
	classCooking
)

func classOf(k device.Kind) (evClass, bool) {
	switch k {
	case device.KindFridge, device.KindFreezer:
		return classFridge, true
	case device.KindKitchenCabinet, device.KindDishwasher:
		return classCupboard, true
	case device.KindMicrowave, device.KindOven, device.KindStove, device.KindToaster, device.KindKettle:
		return classCooking, true
	}
	return 0, false
}

// kitchenEvent is one (debounced) switch-on.
type kitchenEvent struct {
	minute int
	kind   device.Kind
	dev    string
}

// episode is a burst of kitchen activity on one date.
type episode struct {
	start, end int
	fridge     int
	cooking    int
	kinds      []device.Kind
	cupboards  []string // the distinct cupboard and dishwasher devices used
	arrival    bool     // an entry door opened shortly before it began
}

func (e *episode) strength() float64 {
	w := mealWeights.fridge * math.Min(float64(e.fridge), mealWeights.fridgeMax)
	w += mealWeights.cupboard * math.Min(float64(len(e.cupboards)), mealWeights.cupboardMax)
	if e.cooking > 0 {
		w += mealWeights.cooking
	}
	if e.end-e.start >= MealSpan {
		w += mealWeights.span
	}
	return w
}

// mealLike reports whether an episode is at least as strong as need (a band's
// strength for the home's sensor mode). A short episode just after an entry door
// opened is coming home and putting things away, however strong.
func mealLike(e *episode, need float64) bool {
	if e.arrival && e.end-e.start < MealSpan {
		return false
	}
	return e.strength() >= need
}

// MealReport is what the meal detector found in one window of rollup days.
type MealReport struct {
	Mode       string          // cooking, microwave, cupboard or fridge ("" without kitchen data)
	Kinds      []device.Kind   // the kitchen kinds whose switch-ons it used
	Occupied   map[string]bool // dates occupied and observed
	Meals      map[string]*MealFinding
	confidence float64 // the mode's weight
}

// MealFinding is one meal over the window.
type MealFinding struct {
	Meal string
	// Windows are the learned windows [from, to) in minutes of the day, for weekdays
	// and for weekend days (equal when the household has one timetable); from = to
	// when no meal-like episode was seen in the band.
	Windows [2][2]int
	Dates   map[string]int // date → start minute of the meal's episode
	// Observed: the dates that count in its share (occupied, and past the window).
	Observed int
	// Used counts, per kitchen kind, the dates whose meal episode it took part in.
	Used map[device.Kind]int
	// Confidence of the share, in [0,1].
	Confidence float64
}

// Share is the meal's share of the observed dates.
func (f *MealFinding) Share() float64 {
	if f.Observed == 0 {
		return 0
	}
	return float64(len(f.Dates)) / float64(f.Observed)
}

// DetectMeals runs the meal detector over days (the rollups of a window) as of now,
// in the household's zone loc.
func DetectMeals(days []*store.Day, now time.Time, loc *time.Location) *MealReport {
	if loc == nil {
		loc = time.UTC
	}
	rep := &MealReport{Occupied: map[string]bool{}, Meals: map[string]*MealFinding{}}
	byDate := map[string][]kitchenEvent{}
	weekend := map[string]bool{}
	have := map[device.Kind]bool{}
	doors := map[string][]int{}
	today := now.In(loc).Format(time.DateOnly)
	for _, d := range days {
		if d.Date > today || (d.Signal != device.SignalDoor && d.Signal != device.SignalActive) {
			continue // a later date is not in the window as of now
		}
		weekend[d.Date] = d.Weekday == time.Saturday || d.Weekday == time.Sunday
		if d.TotalActivations(0, 24) == 0 {
			continue
		}
		if d.Kind.Kitchen() || d.Kind == device.KindEntryDoor || d.Kind == device.KindMotion {
			rep.Occupied[d.Date] = true
		}
		if d.Kind == device.KindEntryDoor {
			for _, m := range d.Starts {
				doors[d.Date] = append(doors[d.Date], int(m))
			}
		}
		if _, ok := classOf(d.Kind); !ok {
			continue
		}
		have[d.Kind] = true
		evs := byDate[d.Date]
		if n := d.TotalActivations(0, 24); len(d.Starts) >= n || len(d.Starts) == store.MaxStarts {
			for _, m := range d.Starts {
				evs = append(evs, kitchenEvent{int(m), d.Kind, d.Device})
			}
		} else {
			for h, n := range d.Activations {
				for range n {
					evs = append(evs, kitchenEvent{h*60 + 30, d.Kind, d.Device})
				}
			}
		}
		byDate[d.Date] = evs
	}
	rep.Mode, rep.confidence = sensorMode(have)
	fridgeOnly := rep.Mode == "fridge"
	for k := range have {
		rep.Kinds = append(rep.Kinds, k)
	}
	slices.Sort(rep.Kinds)
	eps := make(map[string][]episode, len(byDate))
	for date, evs := range byDate {
		eps[date] = episodesOf(evs)
		for i := range eps[date] {
			e := &eps[date][i]
			for _, m := range doors[date] {
				if m <= e.start && e.start-m <= ArrivalGap {
					e.arrival = true
				}
			}
		}
	}
	nowMin := now.In(loc).Hour()*60 + now.In(loc).Minute()
	prevCentre := [2]int{-1, -1} // weekday, weekend
	var centres [][2]int
	claimed := map[string]int{} // date → start of the latest episode an earlier meal claimed
	for _, b := range mealBands {
		need := b.strength
		if fridgeOnly {
			need = b.fridgeStrength
		}
		c := learnCentres(eps, weekend, b.from, b.to, need, prevCentre, claimed)
		centres = append(centres, c)
		for t := range 2 {
			if c[t] >= 0 {
				prevCentre[t] = c[t]
			}
		}
		claimEpisodes(eps, weekend, c, need, claimed)
	}
	for i, b := range mealBands {
		need := b.strength
		if fridgeOnly {
			need = b.fridgeStrength
		}
		f := &MealFinding{Meal: b.name, Dates: map[string]int{}, Used: map[device.Kind]int{}}
		for t := range 2 {
			f.Windows[t] = windowOf(centres, i, t)
		}
		for date, es := range eps {
			t := 0
			if weekend[date] {
				t = 1
			}
			win := f.Windows[t]
			for j := range es {
				e := &es[j]
				if e.start >= win[0] && e.start < win[1] && mealLike(e, need) {
					f.Dates[date] = e.start
					for _, k := range e.kinds {
						f.Used[k]++
					}
					break
				}
			}
		}
		for date := range rep.Occupied {
			_, found := f.Dates[date]
			t := 0
			if weekend[date] {
				t = 1
			}
			if date == today && !found && nowMin < f.Windows[t][1] {
				continue // today's window is still open
			}
			f.Observed++
		}
		f.Confidence = rep.confidence * math.Min(1, float64(f.Observed)/MinConfidentDays)
		rep.Meals[b.name] = f
	}
	return rep
}

func sensorMode(have map[device.Kind]bool) (string, float64) {
	i := 3
	switch {
	case have[device.KindStove] || have[device.KindOven]:
		i = 0
	case have[device.KindMicrowave] || have[device.KindKettle] || have[device.KindToaster]:
		i = 1
	case have[device.KindKitchenCabinet] || have[device.KindDishwasher]:
		i = 2
	case have[device.KindFridge] || have[device.KindFreezer]:
		i = 3
	default:
		return "", 0
	}
	return mealModes[i].name, mealModes[i].weight
}

// episodesOf debounces a date's events and splits them into episodes.
func episodesOf(evs []kitchenEvent) []episode {
	slices.SortFunc(evs, func(a, b kitchenEvent) int { return a.minute - b.minute })
	lastOf := map[string]int{}
	var out []episode
	var cur *episode
	last := -1000
	for _, e := range evs {
		if l, ok := lastOf[e.dev]; ok && e.minute-l <= Debounce {
			lastOf[e.dev] = e.minute
			continue
		}
		lastOf[e.dev] = e.minute
		if cur == nil || e.minute-last > EpisodeGap {
			out = append(out, episode{start: e.minute})
			cur = &out[len(out)-1]
		}
		cur.end, last = e.minute, e.minute
		c, _ := classOf(e.kind)
		switch c {
		case classFridge:
			cur.fridge++
		case classCupboard:
			if !slices.Contains(cur.cupboards, e.dev) {
				cur.cupboards = append(cur.cupboards, e.dev)
			}
		case classCooking:
			cur.cooking++
		}
		if !slices.Contains(cur.kinds, e.kind) {
			cur.kinds = append(cur.kinds, e.kind)
		}
	}
	return out
}

// learnCentres finds a meal's centre in [from, to) for weekdays and weekend days
// (index 0, 1; -1 when no meal-like episode starts in the band), each at least
// MinSeparation after prev (the previous meal's centres).
func learnCentres(eps map[string][]episode, weekend map[string]bool, from, to int, need float64, prev [2]int, claimed map[string]int) [2]int {
	var all, we, wd [][]int
	for date, es := range eps {
		var starts []int
		for i := range es {
			if c, ok := claimed[date]; ok && es[i].start <= c {
				continue // an earlier meal's episode, or before it
			}
			if es[i].start >= from-Tolerance && es[i].start < to+Tolerance && mealLike(&es[i], need) {
				starts = append(starts, es[i].start)
			}
		}
		if len(starts) == 0 {
			continue
		}
		all = append(all, starts)
		if weekend[date] {
			we = append(we, starts)
		} else {
			wd = append(wd, starts)
		}
	}
	p := max(prev[0], prev[1])
	if prev[0] >= 0 && prev[1] >= 0 {
		p = min(prev[0], prev[1])
	}
	b := bestCentre(all, from, to, p)
	if len(we) >= 3 {
		c := [2]int{bestCentre(wd, from, to, prev[0]), bestCentre(we, from, to, prev[1])}
		if c[0] >= 0 && c[1] >= 0 && max(c[0]-c[1], c[1]-c[0]) >= SplitShift {
			return c
		}
	}
	return [2]int{b, b}
}

// bestCentre is the minute in [from, to), at least MinSeparation after prev (when
// prev >= 0), near which (within CentreRadius) the most dates have a meal-like
// episode: the middle of the first run of such minutes (a household whose meals
// wander over an hour is centred on that hour's middle, not its start); -1 when none
// has.
func bestCentre(dates [][]int, from, to, prev int) int {
	if prev >= 0 {
		from = max(from, prev+MinSeparation)
	}
	near := func(c int) int {
		n := 0
		for _, starts := range dates {
			for _, s := range starts {
				if s >= c-CentreRadius && s <= c+CentreRadius {
					n++
					break
				}
			}
		}
		return n
	}
	best, bestN := -1, 0
	for c := from; c < to; c += 10 {
		if n := near(c); n > bestN {
			best, bestN = c, n
		}
	}
	if best >= 0 {
		end := best
		for c := best + 10; c < to && near(c) == bestN; c += 10 {
			end = c
		}
		best += (end - best) / 20 * 10
	}
	return best
}

// claimEpisodes records, for each date, the start of the first meal-like episode
// within Tolerance of the meal's centre (c, by day type): the meal's own episode. A
// later meal's centre is learned only from episodes after it, so a late breakfast is
// not taken for an early lunch.
func claimEpisodes(eps map[string][]episode, weekend map[string]bool, c [2]int, need float64, claimed map[string]int) {
	for date, es := range eps {
		t := 0
		if weekend[date] {
			t = 1
		}
		if c[t] < 0 {
			continue
		}
		for i := range es {
			e := &es[i]
			if e.start >= c[t]-Tolerance && e.start <= c[t]+Tolerance && mealLike(e, need) {
				if p, ok := claimed[date]; !ok || e.start > p {
					claimed[date] = e.start
				}
				break
			}
		}
	}
}

// windowOf is meal i's window for day type t: from its centre to halfway to the
// neighbouring meals' centres, at most Tolerance either side.
func windowOf(centres [][2]int, i, t int) [2]int {
	c := centres[i][t]
	if c < 0 {
		return [2]int{0, 0}
	}
	lo, hi := c-Tolerance, c+Tolerance+1
	for j := i - 1; j >= 0; j-- {
		if p := centres[j][t]; p >= 0 {
			lo = max(lo, (p+c+1)/2)
			break
		}
	}
	for j := i + 1; j < len(centres); j++ {
		if n := centres[j][t]; n >= 0 {
			hi = min(hi, (c+n+1)/2)
			break
		}
	}
	if i == 0 {
		lo = min(lo, mealBands[0].from)
	}
	if i == len(centres)-1 {
		hi = max(hi, mealBands[i].to)
	}
	return [2]int{max(lo, 0), min(hi, 24*60)}
}

// mealReport returns the window's meal report (computed once per window).
func (w *window) mealReport() *MealReport {
	if w.meals == nil {
		w.meals = DetectMeals(w.days, w.now, w.loc)
	}
	return w.meals
}

func (w *window) meal(name string) (*MealFinding, error) {
	f, ok := w.mealReport().Meals[name]
	if ok && !slices.Contains(w.mealsUsed, name) {
		w.mealsUsed = append(w.mealsUsed, name)
	}
	if !ok {
		var have []string
		for _, b := range mealBands {
			have = append(have, b.name)
		}
		return nil, fmt.Errorf("unknown meal %q (have %v)", name, have)
	}
	return f, nil
}

// mealEvidence names the signals a meal's score used: "used.<kind>" = the dates
// whose meal episode it took part in, and "mode.<mode>" = 1.
func (w *window) mealEvidence(name string) map[string]float64 {
	f, err := w.meal(name)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for k, n := range f.Used {
		out["used."+string(k)] = float64(n)
	}
	if m := w.mealReport().Mode; m != "" {
		out["mode."+m] = 1
	}
	return out
}
