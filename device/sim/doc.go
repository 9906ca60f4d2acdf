// Package sim simulates households: appliances that emit device.Reading values the
// way real fridges, washers and ovens would, driven by a persona's habits, with the
// ground truth of what the household did each day.
//
// It feeds the demo (one simulated week per real minute), the end-to-end test and the
// evaluation of tagging precision and recall over many simulated households. The
// definitions under "Ground truth" are the reference for that evaluation.
//
//	h, err := sim.New(sim.Options{Persona: sim.PersonaFamily, Seed: 7, Prefix: "home7-"})
//	rs := h.Advance(nil, h.Now().Add(7*24*time.Hour)) // a week of readings
//	days := h.Truth()                                 // what really happened
//
// # Determinism
//
// A Household is a pure function of its Options: the same Options give the same
// readings and truth, and any sequence of Advance calls reaching the same time gives
// exactly the readings of one call. Randomness comes from math/rand/v2's PCG, seeded
// per household (Seed and Persona) and reseeded per local day, so there is no global
// state. Changing Kinds changes the draws, so other appliances' readings change too.
// A Household is not safe for concurrent use; simulate many homes with one Household
// each.
//
// Start is truncated to local midnight (in Location) of its date. DeviceTime has
// millisecond precision and is in Location; HubTime is zero. Every reading of a
// household carries the same Boot (derived from Seed, never zero) and Seq counts
// 1, 2, 3... per device in emission order. Readings come in time order; readings at
// the same millisecond keep the order in which they happened (door=1 before the
// inventory readings of the session, cycle=1 before the cycle's first power reading).
//
// Internally each local day D is generated as a unit covering [04:00 on D, 04:00 on
// D+1) (the first unit covers [Start, 04:00)): the household's activity planned for D
// (including that night's late snacks), then the cold appliances' compressor and
// temperature readings of the window.
//
// # Appliances and readings
//
// One appliance per kind, with id Prefix+kind ("home1-fridge"). Supported kinds:
// fridge, freezer, washer, oven, stove, microwave, kettle, toaster, dishwasher,
// kitchen_cabinet. No two uses of one appliance overlap: a use planned while the
// appliance is busy waits for it (2 s after a door closes, 5 s for active appliances,
// 1 minute for cycles).
//
//   - fridge: door sessions (door=1 at open, door=0 at close): ordinary ones lognormal
//     around 14 s (mostly 5-40 s, never above 58 s), 2.5% long ones of 61-150 s,
//     putting shopping away 35-100 s, discarding old food 20-60 s, and for door_ajar
//     22% left open 90-480 s. Temperature (°C, 0.1 resolution) every 15 minutes from
//     Start: the setpoint (3.5-4.5 °C) ±0.6 °C along the compressor cycle, plus
//     0.012 °C per second the door was open, decaying with a 20-minute time constant
//     (capped at +8 °C). Power (W) at every compressor switch: 85-115 W ±4% on,
//     1.5-2.5 W off, plus one reading at Start; the duty cycle is 30-42% with cycles
//     of 35-45 minutes, an on phase is lengthened by twice the door-open time of the
//     previous 30 minutes, and an off compressor starts 30 s after a door session over
//     45 s closes. Water (L, 0.15-0.9 per event, a few events a day at home). Filter (1,
//     Label "water") when the household changes the water filter: it was last changed
//     0-240 days before Start and is changed 150-240 days after the last change (0-60
//     days after Start when that is already past), never while away. Inventory
//     (+1 stocked, -1 taken or discarded, inside a door session; Label a category
//     from dairy, fresh_produce, meat, fish, drinks, ready_meals, condiments, bakery;
//     Aux the best-before as days since 1970-01-01, a category-specific 1-365 days
//     after the shopping day). Items are stocked on shopping days and on the start
//     date, taken at meals and snacks (mostly the oldest of a category), and items 2+
//     days past best-before are discarded on some days only, so some stay past
//     their best-before.
//   - freezer: door sessions, temperature (setpoint -19..-17 °C) and compressor
//     power like the fridge; no water, filter or inventory.
//   - washer, dishwasher: cycle=1 (Label the programme) at start, a power reading
//     every minute of the cycle (washer: filling 10-35 W, heating 1900-2150 W, washing
//     150-500 W, final spin 300-600 W; dishwasher: heating, pumping 60-150 W, a hot
//     rinse, drying 5-20 W), then at the finish power 0.5 W (standby) and cycle=0
//     with the same Label and Aux = the cycle's energy in Wh (the integral of its
//     power readings, rounded). Washer programmes: cotton40, cotton60, eco, quick30,
//     synthetics40, wool30 (30-155 minutes); dishwasher: eco50, auto55, quick45,
//     intensive65 (45-175 minutes), run after dinner.
//   - oven, stove, microwave, kettle, toaster: active=1 and power (W) at the start of
//     a use, power 0 and active=0 at its end. Oven 2000-3000 W, 30-70 minutes (big
//     cooking 90-180); stove 1200-2000 W, 15-40 minutes at dinner (big cooking 30-60,
//     brunch 10-25); microwave 700-1200 W, 1-8 minutes; kettle 1800-2200 W, 2-4
//     minutes; toaster 800-950 W, 2-4 minutes.
//   - kitchen_cabinet: active=1/active=0 around an opening of 3-20 s.
//
// Breakfast uses the fridge and the kettle, toaster or microwave when present;
// lunch the fridge and the microwave; dinner the fridge, the oven, stove or
// microwave, sometimes the freezer, and the cabinet, then the fridge again for
// leftovers; a snack one or two fridge sessions and sometimes the kettle, microwave,
// cabinet or freezer.
//
// Typical volume (28 simulated days, readings per device per day): default couple
// fridge ~200, washer ~40, small appliances under 10; family fridge ~250, washer
// ~100, dishwasher ~120; freezer ~170.
//
// # Personas
//
// Each household varies its persona: meal times shift by up to ±20 minutes (±10 for
// the early riser), meal times jitter day to day as Normal(0, sigma) clipped at
// ±2.5 sigma with sigma 20-40 minutes (20-25 for the early riser), chances move by
// up to ±0.05 and the washer rate by ±20%. Weekend means Saturday and Sunday.
//
//   - default: a couple who both work. Weekdays: breakfast (chance 0.8) around 07:00,
//     dinner (0.85) around 19:15, snacks 06:30-08:00 and 18:00-21:50. Weekends:
//     breakfast (0.85) around 09:00, lunch (0.6) around 12:45, dinner (0.8) around
//     19:30. Late-night snacks on 6% of nights. About 3 washer cycles a week, half
//     on weekends. Shopping on Wednesday and Saturday. Appliances: fridge, washer,
//     oven, microwave, kettle.
//   - early_riser: breakfast (0.9) around 06:10 on weekdays and 06:35 on weekends,
//     so nearly always within 05:30-07:00; dinner around 18:00; almost never in the
//     kitchen after 22:00 (1% of nights). Appliances: fridge, washer, oven, kettle,
//     toaster.
//   - night_owl: late breakfast or brunch (0.7-0.75) around 10:45 (weekends 11:30),
//     no lunch, dinner around 21:00, and kitchen activity on 85% of nights: 2-6 snacks
//     between 22:00 and 03:00, often with the microwave or kettle. Appliances as
//     default.
//   - weekend_cook: weekdays breakfast 0.4 and dinner only 0.25, mostly a microwaved
//     ready meal; weekends brunch (0.9, often on the stove), and a big dinner (0.95):
//     6-12 fridge sessions, the oven for 90-180 minutes and the stove for 30-60.
//     Shops Friday evening and Saturday. Appliances: fridge, washer, oven, stove,
//     microwave.
//   - family: four people. Breakfast (about 0.95) around 06:50 (weekends 08:30),
//     weekend lunch, dinner (about 0.9-0.95) around 18:30; twice the fridge sessions per meal and 8-20
//     snacks a day (about 30 fridge openings a day); about 8 washer cycles a week, 40%
//     on weekends; the dishwasher after most dinners; shopping Tuesday, Thursday and
//     Saturday. Appliances: fridge, washer, oven, stove, microwave, toaster,
//     dishwasher.
//   - away: default habits, but away for AwayDays (7) consecutive dates starting 3-10
//     days after the start date: on those dates only the fridge's and freezer's
//     compressor power and temperature readings occur. On the evening before, nothing
//     is planned to reach past 23:15; on the day back nothing happens before the
//     return (12:00-18:00), after which the household shops.
//   - door_ajar: default habits, but 22% of ordinary fridge door sessions last
//     90-480 s.
//   - worn_fridge: default habits, but the fridge's duty cycle grows by 3-4
//     percentage points and its on-watts by 1.5% per week since Start, so its
//     energy per day rises week after week (about +40% after four weeks), and its
//     temperature drifts up by 0.05 °C per week.
//
// # Ground truth
//
// Truth returns one DayTruth per local date (in Location) from the start date on,
// for each date whose readings have all been emitted: once Now() has reached 04:00
// of the next date and passed the end of every door session, use and cycle that
// started on the date. A reported day never changes later. The definitions, all in
// local time:
//
//   - Activation: a reading with Value 1 and Signal door or active, of an appliance
//     whose Kind.Kitchen() is true (so fridge and freezer doors, oven, stove,
//     microwave, kettle, toaster, kitchen_cabinet; not washer or dishwasher cycles).
//     KitchenActivations counts those on the date.
//   - LateNight of date D: at least one activation at local clock time in
//     [22:00, 24:00) on D or [00:00, 04:00) on D+1; LateNightActivations counts them.
//   - Door session: door=1 to the next door=0 of the same device. FridgeOpenings
//     counts fridge sessions that start on the date (wherever they end);
//     FridgeOpenSeconds sums their durations; FridgeLongOpenings counts those
//     strictly longer than LongOpening (60 s). FreezerOpenings likewise.
//   - Uses and cycles (active=1 to active=0, cycle=1 to cycle=0) count on the date
//     they start: OvenUses, StoveUses, MicrowaveUses, KettleUses, ToasterUses,
//     CabinetOpenings, WasherCycles, DishwasherCycles. CookingMinutes sums the
//     durations of those oven and stove uses; WasherEnergyWh sums the Aux of those
//     washer cycles' cycle=0 readings.
//   - WaterLitres and WaterEvents: the fridge's water readings on the date.
//   - FilterChanged: a filter reading on the date. FilterAgeDays: whole dates since
//     the last change at the end of the date (0 on a change day; known before
//     Start too). FilterDue: FilterAgeDays >= FilterLifeDays (180).
//   - ItemsStocked and ItemsTaken: inventory readings (+1, -1) on the date.
//     InventoryItems: the multiset of (Label, Aux) of every +1 reading minus every
//     -1 reading since Start, at the end of the date (every -1 matches an item
//     stocked earlier). ExpiredItems: those of them whose Aux (best-before day) is
//     before the date's own day number (days since 1970-01-01).
//   - FridgeEnergyWh: the integral over [00:00 of the date, 00:00 of the next) of the
//     fridge's power readings as a step function (each value holds until the next
//     power reading; the first is at Start). FridgeCompressorOnSeconds: the time in
//     that span when the step function is at least CompressorOnWatts (20 W).
//   - Away: PersonaAway's away dates (see above): no activation, water, inventory,
//     filter or cycle reading, and no meal.
//   - Breakfast, Lunch, Dinner: the household prepared that meal at home on the date,
//     per its persona's habits (planned meals dropped by the away rules do not
//     count). BreakfastAt, LunchAt, DinnerAt: the start of the meal's first
//     activation (an activation reading's exact DeviceTime), or the planned time
//     when the household has none of the appliances the meal used; zero without the
//     meal. Meals are not derivable from readings alone: snacks also open the fridge,
//     and a meal can be as little as one fridge session.
//
// Counts equal what a consumer computes from the readings exactly; sums of floats
// (seconds, litres, Wh) equal up to rounding in the last bits.
package sim
