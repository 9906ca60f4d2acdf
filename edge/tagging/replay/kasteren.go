package replay

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Kasteren house A (van Kasteren et al., UbiComp 2008): 14 reed switches and
// contacts, 28 days, activities labelled by the resident. The data stays in
// ../shared/data (no licence to redistribute); these helpers read it in place.

// kasterenEntities maps the dataset's sensor ids to HA entity ids.
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

// KasterenMapping is the replay mapping of the converted house A.
const KasterenMapping = `# hearth replay mapping for Kasteren house A converted by cmd/kasteren2ha.
timezone: Europe/Amsterdam
entities:
  binary_sensor.microwave:          {device: microwave, kind: microwave, signal: door}
  binary_sensor.fridge:             {device: fridge, kind: fridge, signal: door}
  binary_sensor.freezer:            {device: freezer, kind: freezer, signal: door}
  binary_sensor.dishwasher:         {device: dishwasher, kind: dishwasher, signal: door}
  binary_sensor.cups_cupboard:      {device: cups-cupboard, kind: kitchen_cabinet, signal: door}
  binary_sensor.plates_cupboard:    {device: plates-cupboard, kind: kitchen_cabinet, signal: door}
  binary_sensor.pans_cupboard:      {device: pans-cupboard, kind: kitchen_cabinet, signal: door}
  binary_sensor.groceries_cupboard: {device: groceries-cupboard, kind: kitchen_cabinet, signal: door}
  binary_sensor.washingmachine:     {device: washer, kind: washer, signal: door}
  binary_sensor.frontdoor:          {device: frontdoor, kind: entry_door, signal: door}
  binary_sensor.hall_toilet_door:   {device: toilet-door, kind: sensor, signal: door}
  binary_sensor.hall_bathroom_door: {device: bathroom-door, kind: sensor, signal: door}
  binary_sensor.hall_bedroom_door:  {device: bedroom-door, kind: sensor, signal: door}
  binary_sensor.toilet_flush:       {device: toilet-flush, kind: sensor, signal: active}
`

var kasterenRow = regexp.MustCompile(`^(\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2})\s+(\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2})\s+(\d+)`)

const kasterenTime = "02-Jan-2006 15:04:05"

type kInterval struct {
	start, end time.Time
	id         int
}

func readKasteren(path string) ([]kInterval, error) {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		return nil, err
	}
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
			continue // header and explanation lines
		}
		s, err1 := time.ParseInLocation(kasterenTime, m[1], loc)
		e, err2 := time.ParseInLocation(kasterenTime, m[2], loc)
		id, err3 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s:%d: bad row %q", path, line, sc.Text())
		}
		out = append(out, kInterval{s, e, id})
	}
	return out, sc.Err()
}

// KasterenToHACSV writes the sensor data of the Kasteren home in dir as an HA
// history CSV, in time order, and returns the number of rows written.
func KasterenToHACSV(dir string, w io.Writer) (int, error) {
	ivs, err := readKasteren(filepath.Join(dir, "kasterenSenseData.txt"))
	if err != nil {
		return 0, err
	}
	type row struct {
		t      time.Time
		entity string
		state  string
	}
	var rows []row
	for _, iv := range ivs {
		ent, ok := kasterenEntities[iv.id]
		if !ok {
			ent = fmt.Sprintf("binary_sensor.sensor_%d", iv.id)
		}
		rows = append(rows, row{iv.start, ent, "on"}, row{iv.end, ent, "off"})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "entity_id,state,last_changed")
	for _, r := range rows {
		fmt.Fprintf(bw, "%s,%s,%s\n", r.entity, r.state, r.t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return len(rows), bw.Flush()
}

// KasterenTruth returns, from the activity labels of the home in dir, the dates of
// the labelled period (first to last labelled date, local) and the dates with a
// labelled "prepare Breakfast" (id 13) and "prepare Dinner" (id 15), each attributed
// to the local date it starts on.
func KasterenTruth(dir string) (dates []string, breakfast, dinner map[string]bool, err error) {
	ivs, err := readKasteren(filepath.Join(dir, "kasterenActData.txt"))
	if err != nil {
		return nil, nil, nil, err
	}
	if len(ivs) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no labels", dir)
	}
	breakfast, dinner = map[string]bool{}, map[string]bool{}
	first, last := ivs[0].start, ivs[0].start
	for _, iv := range ivs {
		d := iv.start.Format(time.DateOnly)
		switch iv.id {
		case 13:
			breakfast[d] = true
		case 15:
			dinner[d] = true
		}
		if iv.start.Before(first) {
			first = iv.start
		}
		if iv.start.After(last) {
			last = iv.start
		}
	}
	for d := first; d.Format(time.DateOnly) <= last.Format(time.DateOnly); d = d.AddDate(0, 0, 1) {
		dates = append(dates, d.Format(time.DateOnly))
	}
	return dates, breakfast, dinner, nil
}
