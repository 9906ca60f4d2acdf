package dataset

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Kasteren reads a van Kasteren (UbiComp 2008) home: a directory with
// kasterenSenseData.txt and kasterenActData.txt, times local in Source.Location.
type Kasteren struct{}

// kasterenEntities names the dataset's sensor ids (its README's sensor list) as HA
// entity ids; an id not listed becomes binary_sensor.sensor_<id>.
var kasterenEntities = map[int]string{
	1:  "binary_sensor.microwave",
	5:  "binary_sensor.hall_toilet_door",
	6:  "binary_sensor.hall_bathroom_door",
	7:  "binary_sensor.cups_cupboard",
	8:  "binary_sensor.fridge",
	9:  "binary_sensor.plates_cupboard",
	12: "binary_sensor.frontdoor",
	13: "binary_sensor.dishwasher",
	14: "binary_sensor.toilet_flush",
	17: "binary_sensor.freezer",
	18: "binary_sensor.pans_cupboard",
	20: "binary_sensor.washingmachine",
	23: "binary_sensor.groceries_cupboard",
	24: "binary_sensor.hall_bedroom_door",
}

func kasterenEntity(id int) string {
	if e, ok := kasterenEntities[id]; ok {
		return e
	}
	return fmt.Sprintf("binary_sensor.sensor_%d", id)
}

// Kasteren activity ids.
const (
	kasterenLeave     = 1
	kasterenBreakfast = 13
	kasterenDinner    = 15
)

var kasterenRow = regexp.MustCompile(`^(\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2})\s+(\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2})\s+(\d+)`)

const kasterenTime = "02-Jan-2006 15:04:05"

type kInterval struct {
	start, end time.Time
	id         int
}

// readKasteren reads the interval rows of one file; header and explanation lines
// are skipped, a row that looks like data but does not parse is an error.
func readKasteren(path string, loc *time.Location) ([]kInterval, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []kInterval
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		m := kasterenRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		s, err1 := time.ParseInLocation(kasterenTime, m[1], loc)
		e, err2 := time.ParseInLocation(kasterenTime, m[2], loc)
		id, err3 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s:%d: bad row %q", path, line, sc.Text())
		}
		out = append(out, kInterval{s, e, id})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	return out, nil
}

func (Kasteren) sensors(src Source) ([]kInterval, error) {
	return readKasteren(filepath.Join(src.Path, "kasterenSenseData.txt"), src.Location)
}

// Events turns each interval into an "on" at its start and an "off" at its end.
func (k Kasteren) Events(src Source, fn func(Event) error) error {
	ivs, err := k.sensors(src)
	if err != nil {
		return err
	}
	evs := make([]Event, 0, 2*len(ivs))
	for _, iv := range ivs {
		ent := kasterenEntity(iv.id)
		evs = append(evs, Event{iv.start, ent, 1}, Event{iv.end, ent, 0})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	for _, e := range evs {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Truth: the labelled period runs from the first to the last date on which a label
// starts; a date wholly inside a "leave house" interval is not occupied; breakfast
// (prepare Breakfast) and dinner (prepare Dinner) count on the date they start.
func (Kasteren) Truth(src Source) (*Truth, error) {
	path := filepath.Join(src.Path, "kasterenActData.txt")
	ivs, err := readKasteren(path, src.Location)
	if err != nil {
		return nil, err
	}
	if len(ivs) == 0 {
		return nil, fmt.Errorf("%s: no labels", path)
	}
	meals := map[string]map[string]bool{}
	first, last := ivs[0].start, ivs[0].start
	for _, iv := range ivs {
		d := iv.start.Format(time.DateOnly)
		switch iv.id {
		case kasterenBreakfast:
			mark(meals, d, Breakfast)
		case kasterenDinner:
			mark(meals, d, Dinner)
		}
		if iv.start.Before(first) {
			first = iv.start
		}
		if iv.start.After(last) {
			last = iv.start
		}
	}
	tr := &Truth{Labelled: []string{Breakfast, Dinner}}
	y, m, dd := first.Date()
	for day := time.Date(y, m, dd, 0, 0, 0, 0, src.Location); !day.After(last); day = day.AddDate(0, 0, 1) {
		next := day.AddDate(0, 0, 1)
		away := false
		for _, iv := range ivs {
			if iv.id == kasterenLeave && !iv.start.After(day) && !iv.end.Before(next) {
				away = true
			}
		}
		date := day.Format(time.DateOnly)
		tr.Days = append(tr.Days, Day{Date: date, Occupied: !away, Meals: orEmpty(meals[date])})
	}
	return tr, nil
}

// Activations counts the sensor's rows by the local hour they start.
func (k Kasteren) Activations(src Source, entity string) ([24]int, error) {
	var out [24]int
	ivs, err := k.sensors(src)
	if err != nil {
		return out, err
	}
	for _, iv := range ivs {
		if kasterenEntity(iv.id) == entity {
			out[iv.start.Hour()]++
		}
	}
	return out, nil
}

func mark(m map[string]map[string]bool, date, meal string) {
	if m[date] == nil {
		m[date] = map[string]bool{}
	}
	m[date][meal] = true
}

func orEmpty(m map[string]bool) map[string]bool {
	if m == nil {
		return map[string]bool{}
	}
	return m
}
