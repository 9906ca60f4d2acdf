package sim

import "math/rand/v2"

// Food categories of inventory readings (their Label).
const (
	catDairy = iota
	catProduce
	catMeat
	catFish
	catDrinks
	catReady
	catCondiments
	catBakery
	numCats
)

var catNames = [numCats]string{"dairy", "fresh_produce", "meat", "fish", "drinks", "ready_meals", "condiments", "bakery"}

// shelfLife is the best-before of a stocked item, in days after the shopping day.
var shelfLife = [numCats][2]int{
	catDairy:      {7, 21},
	catProduce:    {4, 12},
	catMeat:       {2, 6},
	catFish:       {1, 3},
	catDrinks:     {30, 180},
	catReady:      {3, 8},
	catCondiments: {60, 365},
	catBakery:     {2, 6},
}

// takeWeight is how readily an item of a category is taken, per item in stock.
var takeWeight = [numCats]float64{1, 1, 1.5, 1.5, 0.7, 1.2, 0.1, 1.2}

// Category masks of what a meal takes.
const (
	maskBreakfast uint8 = 1<<catDairy | 1<<catBakery | 1<<catProduce | 1<<catDrinks
	maskMeal      uint8 = 1<<catMeat | 1<<catFish | 1<<catProduce | 1<<catReady | 1<<catCondiments | 1<<catDairy
	maskQuick     uint8 = 1<<catReady | 1<<catProduce
	maskSnack     uint8 = 1<<catDrinks | 1<<catDairy | 1<<catProduce | 1<<catBakery
)

type item struct {
	cat uint8
	bb  int64 // best-before, days since 1970-01-01
}

// inventory is the fridge's content as stocked and taken since Start.
type inventory struct{ items []item }

// countBefore counts items whose best-before day is before day.
func (v *inventory) countBefore(day int64) int {
	n := 0
	for _, it := range v.items {
		if it.bb < day {
			n++
		}
	}
	return n
}

// removeBefore removes and returns the first item whose best-before is before day;
// the caller knows there is one.
func (v *inventory) removeBefore(day int64) item {
	for i, it := range v.items {
		if it.bb < day {
			v.items = append(v.items[:i], v.items[i+1:]...)
			return it
		}
	}
	panic("sim: no expired item")
}

// take removes an item of a category in mask: the category is drawn by stock times
// takeWeight, the item is the one with the earliest best-before with chance 3/4,
// else any of the category.
func (v *inventory) take(r *rand.Rand, mask uint8) (item, bool) {
	var w [numCats]float64
	var total float64
	for _, it := range v.items {
		if mask&(1<<it.cat) != 0 {
			w[it.cat] += takeWeight[it.cat]
			total += takeWeight[it.cat]
		}
	}
	if total == 0 {
		return item{}, false
	}
	x := r.Float64() * total
	c := uint8(numCats - 1)
	for i := range w {
		if w[i] == 0 {
			continue
		}
		c = uint8(i)
		if x < w[i] {
			break
		}
		x -= w[i]
	}
	oldest := r.Float64() < 0.75
	pick, seen := -1, 0
	for i, it := range v.items {
		if it.cat != c {
			continue
		}
		seen++
		switch {
		case pick < 0:
			pick = i
		case oldest && it.bb < v.items[pick].bb:
			pick = i
		case !oldest && r.IntN(seen) == 0: // reservoir sampling
			pick = i
		}
	}
	it := v.items[pick]
	v.items = append(v.items[:pick], v.items[pick+1:]...)
	return it, true
}
