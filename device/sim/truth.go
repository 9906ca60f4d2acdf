package sim

import "time"

// DayTruth is the ground truth of one local day (in the household's Location). The
// package documentation defines each field precisely; every count is what a consumer
// of the emitted readings computes, and the rest (meals, Away, FilterAgeDays) is what
// the simulated household actually did.
type DayTruth struct {
	Date    string // YYYY-MM-DD, local
	Weekday time.Weekday
	Away    bool // nobody home all day: no activation, no water, no inventory, no cycle

	// A meal was prepared at home that day, per the persona's habits. The *At time
	// is the start of the meal's first appliance activation (the planned time when
	// the household has none of the appliances the meal used); zero without a meal.
	Breakfast, Lunch, Dinner       bool
	BreakfastAt, LunchAt, DinnerAt time.Time

	// LateNightActivations counts kitchen activations (door=1 or active=1 readings of
	// a kind for which device.Kind.Kitchen is true) at local clock time in
	// [22:00, 24:00) on this date or [00:00, 04:00) on the next date.
	LateNight            bool // LateNightActivations > 0
	LateNightActivations int

	KitchenActivations int // kitchen activations (as above) at any time of this date

	// Door sessions (door=1 to the next door=0 of the same device) that start on
	// this date, wherever they end.
	FridgeOpenings     int
	FridgeOpenSeconds  float64 // sum of their durations
	FridgeLongOpenings int     // of those, sessions strictly longer than LongOpening
	FreezerOpenings    int

	// Uses (active=1 to the next active=0) and cycles (cycle=1 to the next cycle=0)
	// that start on this date.
	OvenUses, StoveUses, MicrowaveUses, KettleUses, ToasterUses, CabinetOpenings int
	CookingMinutes                                                               float64 // summed duration of those oven and stove uses
	WasherCycles, DishwasherCycles                                               int
	WasherEnergyWh                                                               int64 // sum of the Aux of those washer cycles' cycle=0 readings

	WaterLitres float64 // sum of fridge water readings of this date
	WaterEvents int

	FilterChanged bool // a filter=1 reading on this date
	FilterAgeDays int  // days since the filter was last changed, at the end of the date (0 on a change day)
	FilterDue     bool // FilterAgeDays >= FilterLifeDays

	// Fridge inventory readings of this date, and the fridge's content at the end of
	// the date: the multiset of (Label, Aux) stocked (+1) minus taken (-1) since
	// Start. ExpiredItems counts items whose best-before day (Aux) is before this
	// date's day number.
	ItemsStocked, ItemsTaken     int
	InventoryItems, ExpiredItems int

	// The fridge power readings as a step function (each value holds until the next
	// power reading), over [00:00 of this date, 00:00 of the next).
	FridgeEnergyWh            float64 // its integral
	FridgeCompressorOnSeconds float64 // time it is at least CompressorOnWatts
}
