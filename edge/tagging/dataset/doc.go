// Package dataset reads public recordings of real homes in place and turns them into
// what hearth sees and what the evaluation compares with: the state changes of every
// sensor, in time order, and the labelled truth of each day (which meals the
// residents prepared or had at home, and whether anyone was home at all).
//
// The recordings stay where they are (../shared/data): none of them has a licence to
// redistribute, so only these converters and a small manifest per home are kept in
// the repository (testdata/homes/*.yaml).
//
// # Converters
//
//   - kasteren: van Kasteren et al. (UbiComp 2008) house A. kasterenSenseData.txt
//     holds one row per interval during which a reed switch fired (start, end, sensor
//     id): an "on" at its start and an "off" at its end. Activity labels come from
//     kasterenActData.txt (13 prepare Breakfast, 15 prepare Dinner, 1 leave house).
//   - aras: ARAS houses A and B (Alemdar et al., PervasiveHealth 2013), one
//     DAY_n.csv a day in a tar.gz: one line per second, 20 sensor states (0/1), then
//     each resident's activity id. A change of state between two seconds is an event
//     (the state before the first second is taken as off); the numbered days get
//     consecutive dates from the manifest's start date; meals come from either
//     resident's labels (3/4 breakfast, 5/6 lunch, 7/8 dinner).
//
// # Truth
//
// A date has a meal when a labelled meal starts on it (a resident's label turns into
// one of the meal's ids). A date is occupied when some resident was home for part of
// it: not wholly inside a "leave house" interval (Kasteren), some second labelled
// other than "going out" (ARAS). The meal shares the evaluation compares with are
// shares of occupied dates, as the tags' own denominator is (docs/tags.md).
//
// # Manifests
//
// A manifest names the data (relative to the manifest's own directory), its
// converter, its time zone, the first date of numbered days, and the entity → device,
// kind and signal mapping in the form `hearth replay` reads (docs/replay.md). A home
// added later needs a manifest, not code, as long as its format has a converter.
package dataset
