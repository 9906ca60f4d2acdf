package dataset

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Meal names, as the meal tags and the truth use them.
const (
	Breakfast = "breakfast"
	Lunch     = "lunch"
	Dinner    = "dinner"
)

// Event is one state change of one sensor of a recorded home.
type Event struct {
	Time   time.Time
	Entity string  // the sensor's entity id (what a manifest's entities map)
	Value  float64 // 1 on (open, active), 0 off
}

// Day is the labelled truth of one local date.
type Day struct {
	Date     string          // YYYY-MM-DD, local
	Occupied bool            // someone was home for part of the date
	Meals    map[string]bool // meals that started on the date (Breakfast, Lunch, Dinner)
}

// Truth is what a home's labels say, date by date.
type Truth struct {
	Labelled []string // the meals the dataset labels at all, e.g. breakfast and dinner
	Days     []Day    // every date of the labelled period, in order
}

// Source is where a converter reads one home: the manifest's data, resolved.
type Source struct {
	Path     string         // file or directory
	Location *time.Location // the home's time zone
	Start    time.Time      // local midnight of the first date (numbered days)
	Columns  []string       // entity ids of the columns, in order (column formats)
}

// Converter reads one dataset format. Every method reads the data afresh, in place.
type Converter interface {
	// Events calls fn with every state change of every sensor, in time order (ties in
	// a stable order); an error from fn stops it and is returned.
	Events(src Source, fn func(Event) error) error
	// Truth returns the labelled days.
	Truth(src Source) (*Truth, error)
	// Activations counts the off→on changes of one entity by local hour, by its own
	// reading of the raw data (not through Events): the independent count the
	// evaluation checks the agent's rollups against.
	Activations(src Source, entity string) ([24]int, error)
}

// Converters returns the known converters by name (a new map on each call).
func Converters() map[string]Converter {
	return map[string]Converter{"kasteren": Kasteren{}, "aras": ARAS{}}
}

// WriteHACSV writes a home's events as a Home Assistant history export
// (entity_id,state,last_changed; on/off; UTC times with a Z), the input of
// `hearth replay`. It returns the number of rows written.
func WriteHACSV(c Converter, src Source, w io.Writer) (int, error) {
	bw := bufio.NewWriter(w)
	if _, err := fmt.Fprintln(bw, "entity_id,state,last_changed"); err != nil {
		return 0, err
	}
	n := 0
	err := c.Events(src, func(e Event) error {
		state := "off"
		if e.Value != 0 {
			state = "on"
		}
		n++
		_, err := fmt.Fprintf(bw, "%s,%s,%s\n", e.Entity, state, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
		return err
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}
