package sim

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Persona names a household's habits. See the package documentation for what each
// persona does.
type Persona string

// The personas.
const (
	PersonaDefault     Persona = "default"      // couple, both work, breakfast most weekdays, dinner most days
	PersonaEarlyRiser  Persona = "early_riser"  // breakfast 05:30-07:00
	PersonaNightOwl    Persona = "night_owl"    // late breakfast/brunch, frequent kitchen activity 22:00-03:00
	PersonaWeekendCook Persona = "weekend_cook" // rarely cooks weekdays, cooks big on Sat/Sun
	PersonaFamily      Persona = "family"       // family of four: many fridge openings, many washer cycles
	PersonaAway        Persona = "away"         // normal, but away for 7 consecutive days (no activity at all except fridge compressor/temperature)
	PersonaDoorAjar    Persona = "door_ajar"    // often leaves the fridge door open for minutes
	PersonaWornFridge  Persona = "worn_fridge"  // fridge compressor duty cycle/energy per day rising over weeks
)

// Personas returns every persona, in a stable order.
func Personas() []Persona {
	return []Persona{PersonaDefault, PersonaEarlyRiser, PersonaNightOwl, PersonaWeekendCook,
		PersonaFamily, PersonaAway, PersonaDoorAjar, PersonaWornFridge}
}

// Errors returned by New, wrapped with the offending value.
var (
	ErrUnknownPersona  = errors.New("sim: unknown persona")
	ErrUnsupportedKind = errors.New("sim: unsupported appliance kind")
	ErrInvalidOptions  = errors.New("sim: invalid options")
)

// Reference constants of the ground truth (see the package documentation).
const (
	// LongOpening: a door session strictly longer than this is a long opening.
	LongOpening = 60 * time.Second
	// FilterLifeDays: a water filter this many days old or older is due.
	FilterLifeDays = 180
	// AwayDays is how many consecutive days PersonaAway is away.
	AwayDays = 7
	// CompressorOnWatts: a cold appliance whose last power reading is at least this
	// many watts has its compressor running.
	CompressorOnWatts = 20.0
)

// Appliance is one simulated appliance of a household.
type Appliance struct {
	ID   string // Options.Prefix + the kind, e.g. "home1-fridge"
	Kind device.Kind
}

// Options configures a simulated household. The zero value is a default-persona
// household with seed 0 starting on 2026-01-05 in UTC.
type Options struct {
	Persona Persona // "" means PersonaDefault
	Seed    int64
	// Start is truncated to the local midnight (in Location) of its date: Now() of a
	// new Household is that midnight. Zero means 2026-01-05 (a Monday). Its year
	// must be within 1971..2200.
	Start    time.Time
	Location *time.Location // household local time zone; nil means UTC
	// Kinds lists the appliances present, one per kind. Empty means the persona's
	// default (always fridge, washer and oven). Supported: fridge, freezer, washer,
	// oven, stove, microwave, kettle, toaster, dishwasher, kitchen_cabinet.
	Kinds  []device.Kind
	Prefix string // device id prefix, e.g. "home1-"
	// Boot, when not zero, is the boot id the readings carry instead of one derived
	// from Seed: a household started again (a new run of the agent) is a reboot of
	// its appliances, whose sequence numbers restart at 1 under a new boot id.
	Boot uint64
}

// Household is one simulated home. It is not safe for concurrent use.
type Household struct {
	persona Persona
	seed1   uint64
	loc     *time.Location
	boot    uint64
	apps    []Appliance
	devOf   map[device.Kind]int
	fridge  int // device index of the fridge, -1 when absent
	hab     habits

	startDay int64 // civil day number of the start date
	startMs  int64

	nextDay                int64 // civil day of the next unit to generate
	nextMs                 int64 // its window start
	now                    time.Time
	nowCeil                int64 // Now() rounded up to a millisecond
	pending                []event
	head                   int
	spare                  []event
	seqs                   []uint64
	busy                   []int64
	cold                   []*coldState // per device, nil when not a cold appliance
	truth                  []*dayAcc    // by day index; pointers stay valid as it grows
	discard                dayAcc
	inv                    inventory
	invDay                 int64 // first civil day whose inventory snapshot is not yet taken
	filterLast, filterNext int64

	pcg rand.PCG
	rng *rand.Rand
	g   unit // scratch of the unit being generated
}

type event struct {
	t     int64 // unix milliseconds
	dev   int
	sig   device.Signal
	val   float64
	label string
	aux   int64
}

var supported = []device.Kind{device.KindFridge, device.KindFreezer, device.KindWasher, device.KindOven,
	device.KindStove, device.KindMicrowave, device.KindKettle, device.KindToaster, device.KindDishwasher,
	device.KindKitchenCabinet}

// New builds a household. It returns an error wrapping ErrUnknownPersona,
// ErrUnsupportedKind or ErrInvalidOptions.
func New(opts Options) (*Household, error) {
	p := opts.Persona
	if p == "" {
		p = PersonaDefault
	}
	if !slices.Contains(Personas(), p) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPersona, p)
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	var y int
	var m time.Month
	var d int
	if opts.Start.IsZero() {
		y, m, d = 2026, time.January, 5 // a Monday
	} else {
		y, m, d = opts.Start.In(loc).Date()
	}
	if y < 1971 || y > 2200 {
		return nil, fmt.Errorf("%w: start year %d outside 1971..2200", ErrInvalidOptions, y)
	}
	kinds := opts.Kinds
	if len(kinds) == 0 {
		kinds = defaultKinds(p)
	}
	h := &Household{
		persona: p,
		loc:     loc,
		devOf:   make(map[device.Kind]int),
		fridge:  -1,
	}
	for _, k := range kinds {
		if !slices.Contains(supported, k) {
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedKind, k)
		}
		if _, dup := h.devOf[k]; dup {
			return nil, fmt.Errorf("%w: kind %q listed twice", ErrInvalidOptions, k)
		}
		id := opts.Prefix + string(k)
		if err := device.ValidID(id); err != nil {
			return nil, fmt.Errorf("%w: prefix %q: %v", ErrInvalidOptions, opts.Prefix, err)
		}
		h.devOf[k] = len(h.apps)
		h.apps = append(h.apps, Appliance{ID: id, Kind: k})
	}
	if i, ok := h.devOf[device.KindFridge]; ok {
		h.fridge = i
	}

	fh := fnv.New64a()
	fh.Write([]byte(p))
	h.seed1 = uint64(opts.Seed) ^ fh.Sum64()
	h.boot = splitmix(uint64(opts.Seed) + 0x68656172746862) // "hearthb"
	if opts.Boot != 0 {
		h.boot = opts.Boot
	}
	if h.boot == 0 {
		h.boot = 1
	}
	h.rng = rand.New(&h.pcg)

	h.startDay = civil(y, m, d)
	h.startMs = h.localMs(h.startDay, 0)
	h.now = time.UnixMilli(h.startMs).In(loc)
	h.nowCeil = h.startMs
	h.nextDay = h.startDay - 1 // the unit of the day before covers [Start, 04:00)
	h.nextMs = h.startMs
	h.invDay = h.startDay

	// Household-level draws: habits, appliance parameters, filter schedule.
	h.pcg.Seed(h.seed1, 0x686f757365686f6c) // "househol"
	r := h.rng
	h.hab = personalize(p, r)
	n := len(h.apps)
	h.seqs = make([]uint64, n)
	h.busy = make([]int64, n)
	h.cold = make([]*coldState, n)
	for i, a := range h.apps {
		h.busy[i] = h.startMs - 60_000
		if a.Kind == device.KindFridge || a.Kind == device.KindFreezer {
			h.cold[i] = newCold(i, a.Kind, r, h.hab.worn && a.Kind == device.KindFridge)
		}
	}
	// The filter was last changed 0-240 days before the start; the household changes
	// it 150-240 days after the last change, or, when that is already past at the
	// start, 0-60 days after the start.
	h.filterLast = h.startDay - int64(r.IntN(241))
	h.filterNext = h.filterLast + 150 + int64(r.IntN(91))
	if h.filterNext < h.startDay {
		h.filterNext = h.startDay + int64(r.IntN(61))
	}
	return h, nil
}

// Appliances returns the household's appliances in a stable order (Options.Kinds
// order, or the persona's default order).
func (h *Household) Appliances() []Appliance { return slices.Clone(h.apps) }

// Persona returns the household's persona.
func (h *Household) Persona() Persona { return h.persona }

// Boot returns the boot id every reading of the household carries.
func (h *Household) Boot() uint64 { return h.boot }

// Now returns the sim time generated up to (exclusive).
func (h *Household) Now() time.Time { return h.now }

// Advance appends every reading whose DeviceTime is in [Now(), until) in time order
// (ties in a stable order) and moves Now to until. It does nothing when until is not
// after Now. Any sequence of Advance calls reaching the same until yields the same
// readings. DeviceTime is in the household's Location with millisecond precision.
func (h *Household) Advance(dst []device.Reading, until time.Time) []device.Reading {
	if !until.After(h.now) {
		return dst
	}
	lim := ceilMs(until)
	for {
		// Pending events before the next unit's window start are final: every
		// later unit's events are at or after its window start.
		bound := min(lim, h.nextMs)
		for h.head < len(h.pending) && h.pending[h.head].t < bound {
			e := &h.pending[h.head]
			a := &h.apps[e.dev]
			h.seqs[e.dev]++
			dst = append(dst, device.Reading{
				Device:     a.ID,
				Kind:       a.Kind,
				Signal:     e.sig,
				Value:      e.val,
				Unit:       unitOf(e.sig),
				Label:      e.label,
				Aux:        e.aux,
				Boot:       h.boot,
				Seq:        h.seqs[e.dev],
				DeviceTime: time.UnixMilli(e.t).In(h.loc),
			})
			h.head++
		}
		if h.nextMs >= lim {
			break
		}
		h.genUnit()
	}
	h.now = until
	h.nowCeil = lim
	return dst
}

func unitOf(s device.Signal) string {
	switch s {
	case device.SignalPower:
		return "W"
	case device.SignalTemperature:
		return "°C"
	case device.SignalWater:
		return "L"
	}
	return ""
}

// Truth returns the ground truth of every local day, from the start date on, whose
// readings have all been emitted: day D is listed once Now() has passed 04:00 on D+1
// (the end of D's late-night window) and the end of every door session, appliance
// use and cycle that started on D. Days are in date order, without gaps.
func (h *Household) Truth() []DayTruth {
	var out []DayTruth
	for _, a := range h.truth {
		if !a.final || a.doneAt > h.nowCeil {
			break
		}
		out = append(out, a.DayTruth)
	}
	return out
}

// genUnit generates the next unit: the user activity planned for civil day
// h.nextDay, within the window [04:00 on that day, 04:00 the day after) (the first
// unit starts at Start), plus the cold appliances' compressor and temperature
// readings of the window. Events of a unit never precede its window start; door
// sessions and cycles may end after its end.
func (h *Household) genUnit() {
	day := h.nextDay
	g := &h.g
	g.reset(h, day)
	h.pcg.Seed(h.seed1, splitmix(uint64(day)))
	for i := range g.mid {
		g.mid[i] = h.localMs(day+int64(i), 0)
	}
	g.ws = max(h.localMs(day, 4*hourMs), h.startMs)
	g.we = h.localMs(day+1, 4*hourMs)
	// Make room for every day the unit can touch.
	h.acc(day + 2)

	h.plan(g)
	h.placeAll(g)
	for _, c := range h.cold {
		if c != nil {
			h.coldUnit(g, c)
		}
	}
	h.finalizeInventory(day)
	if a := h.acc(day); a != &h.discard {
		a.FilterAgeDays = int(day - h.filterLast)
		a.FilterDue = a.FilterAgeDays >= FilterLifeDays
		a.Away = h.away(day - h.startDay)
		a.doneAt = max(a.doneAt, g.we)
		a.final = true
	}

	// Stable: events at one millisecond keep the order they were generated in.
	slices.SortStableFunc(g.events, func(a, b event) int { return cmp.Compare(a.t, b.t) })
	h.merge(g.events)
	h.nextDay = day + 1
	h.nextMs = g.we
}

// merge merges the sorted events es into the pending queue.
func (h *Household) merge(es []event) {
	old := h.pending[h.head:]
	out := h.spare[:0]
	i, j := 0, 0
	for i < len(old) && j < len(es) {
		if es[j].t < old[i].t { // equal times: the older unit first
			out = append(out, es[j])
			j++
		} else {
			out = append(out, old[i])
			i++
		}
	}
	out = append(out, old[i:]...)
	out = append(out, es[j:]...)
	h.spare = h.pending[:0]
	h.pending = out
	h.head = 0
}

// dayAcc accumulates the truth of one day.
type dayAcc struct {
	DayTruth
	doneAt int64 // every reading the day's truth counts is before this (unix ms)
	final  bool  // the day's own unit has been generated
}

func (a *dayAcc) done(t int64) {
	if t+1 > a.doneAt {
		a.doneAt = t + 1
	}
}

// acc returns the accumulator of civil day day, or a discarded one before the start.
func (h *Household) acc(day int64) *dayAcc {
	i := day - h.startDay
	if i < 0 {
		h.discard = dayAcc{}
		return &h.discard
	}
	for int64(len(h.truth)) <= i {
		d := h.startDay + int64(len(h.truth))
		y, m, dd := civilDate(d)
		h.truth = append(h.truth, &dayAcc{DayTruth: DayTruth{
			Date:    fmt.Sprintf("%04d-%02d-%02d", y, int(m), dd),
			Weekday: time.Date(y, m, dd, 12, 0, 0, 0, time.UTC).Weekday(),
		}})
	}
	return h.truth[i]
}

// away reports whether the day with index i (0 = start date) is an away day.
func (h *Household) away(i int64) bool {
	return h.hab.awayFrom >= 0 && i >= h.hab.awayFrom && i < h.hab.awayFrom+AwayDays
}

const (
	minuteMs = 60_000
	hourMs   = 60 * minuteMs
)

// civil returns the number of days from 1970-01-01 to the given date.
func civil(y int, m time.Month, d int) int64 {
	return floorDiv(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix(), 86400)
}

func civilDate(day int64) (int, time.Month, int) {
	return time.Unix(day*86400, 0).UTC().Date()
}

// localMs returns the unix milliseconds of local clock time ms after midnight of the
// civil day (normalised by time.Date, so 25:00 is 01:00 the next day).
func (h *Household) localMs(day int64, ms int64) int64 {
	y, m, d := civilDate(day)
	return time.Date(y, m, d, 0, 0, int(ms/1000), int(ms%1000)*1e6, h.loc).UnixMilli()
}

func (h *Household) dayOfMs(t int64) int64 {
	y, m, d := time.UnixMilli(t).In(h.loc).Date()
	return civil(y, m, d)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
