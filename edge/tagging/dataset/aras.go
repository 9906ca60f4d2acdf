package dataset

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// ARAS reads an ARAS home (Alemdar et al., PervasiveHealth 2013): a tar.gz of
// DAY_1.csv … DAY_n.csv (also .txt), each 86,400 lines of one second each: the
// states of the sensors (0/1, as many as Source.Columns names) and then the activity
// id of each of the two residents. Day n is the local date Start + n-1.
type ARAS struct{}

// ARAS activity ids.
const arasGoingOut = 2

var arasMeals = map[int]string{3: Breakfast, 4: Breakfast, 5: Lunch, 6: Lunch, 7: Dinner, 8: Dinner}

var arasDayName = regexp.MustCompile(`^DAY_(\d+)\.(csv|txt)$`)

const arasSeconds = 86400

// arasChange is one change between two seconds of a day: of sensor col, or (col =
// 255 - resident) of a resident's label.
type arasChange struct {
	sec int32
	col uint8
	val uint8
}

// arasDay is one day file, reduced to its first line and its changes.
type arasDay struct {
	n       int
	first   []uint8 // sensor states then the residents' labels at 00:00:00
	last    []uint8 // at 23:59:59
	changes []arasChange
}

const arasResidents = 2

// read parses the archive into its days, in day order. keep says which columns'
// changes to keep (every one when nil); labels are always kept.
func (ARAS) read(src Source, keep func(col int) bool) ([]*arasDay, error) {
	ncol := len(src.Columns)
	if ncol == 0 || ncol > 250 {
		return nil, fmt.Errorf("aras: %s: the manifest must name the sensor columns (1..250), got %d", src.Path, ncol)
	}
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("aras: %s: %w", src.Path, err)
	}
	tr := tar.NewReader(zr)
	var days []*arasDay
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("aras: %s: %w", src.Path, err)
		}
		m := arasDayName.FindStringSubmatch(path.Base(h.Name))
		if m == nil || h.Typeflag != tar.TypeReg {
			continue // README, SOURCE, directories
		}
		n, _ := strconv.Atoi(m[1])
		d, err := readARASDay(tr, ncol, keep)
		if err != nil {
			return nil, fmt.Errorf("aras: %s: %s: %w", src.Path, h.Name, err)
		}
		d.n = n
		days = append(days, d)
	}
	slices.SortFunc(days, func(a, b *arasDay) int { return a.n - b.n })
	for i, d := range days {
		if d.n != i+1 {
			return nil, fmt.Errorf("aras: %s: day %d is missing (days must be numbered 1..n)", src.Path, i+1)
		}
	}
	if len(days) == 0 {
		return nil, fmt.Errorf("aras: %s: no DAY_n.csv files", src.Path)
	}
	return days, nil
}

func readARASDay(r io.Reader, ncol int, keep func(int) bool) (*arasDay, error) {
	width := ncol + arasResidents
	d := &arasDay{}
	cur := make([]uint8, width)
	next := make([]uint8, width)
	sc := bufio.NewScanner(r)
	sec := 0
	var prevLine []byte
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if sec >= arasSeconds {
			return nil, fmt.Errorf("line %d: more than %d lines", sec+1, arasSeconds)
		}
		if sec > 0 && bytes.Equal(line, prevLine) {
			sec++ // nothing changed (most seconds): cur stays
			continue
		}
		prevLine = append(prevLine[:0], line...)
		i, err := parseARASLine(line, next, ncol)
		if err != nil {
			return nil, fmt.Errorf("line %d, %w", sec+1, err)
		}
		if i != width {
			return nil, fmt.Errorf("line %d: want %d columns (%d sensors and %d residents' activities), got %d", sec+1, width, ncol, arasResidents, i)
		}
		if sec == 0 {
			d.first = slices.Clone(next)
		} else {
			for c := range width {
				if next[c] == cur[c] {
					continue
				}
				if c >= ncol {
					d.changes = append(d.changes, arasChange{int32(sec), uint8(255 - (c - ncol)), next[c]})
				} else if keep == nil || keep(c) {
					d.changes = append(d.changes, arasChange{int32(sec), uint8(c), next[c]})
				}
			}
		}
		cur, next = next, cur
		sec++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", sec+1, err)
	}
	if sec != arasSeconds {
		return nil, fmt.Errorf("%d lines, want one per second (%d)", sec, arasSeconds)
	}
	d.last = slices.Clone(cur)
	return d, nil
}

// parseARASLine reads the space-separated integers of one line into out (at most
// len(out); it returns how many the line has): sensor states (the first ncol) must
// be 0 or 1, activity ids 0..255. Written out by hand: a day is 86,400 lines.
func parseARASLine(line []byte, out []uint8, ncol int) (int, error) {
	n := 0
	for i := 0; i < len(line); {
		c := line[i]
		if c == ' ' || c == '\t' || c == '\r' {
			i++
			continue
		}
		j, v := i, 0
		for ; j < len(line) && line[j] >= '0' && line[j] <= '9'; j++ {
			v = v*10 + int(line[j]-'0')
			if v > 255 {
				break
			}
		}
		if j == i || (j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') || v > 255 || (n < ncol && v > 1) {
			end := i
			for end < len(line) && line[end] != ' ' && line[end] != '\t' {
				end++
			}
			return n, fmt.Errorf("column %d: %q is not a sensor state 0/1 or an activity id", n+1, line[i:end])
		}
		if n < len(out) {
			out[n] = uint8(v)
		}
		n++
		i = j
	}
	return n, nil
}

// midnight returns the local midnight of day n (1-based), checking that the date is
// 24 hours long: the files have one line per second whatever the zone's clock did.
func (src Source) midnight(n int) (time.Time, error) {
	y, m, d := src.Start.Date()
	t := time.Date(y, m, d+n-1, 0, 0, 0, 0, src.Location)
	if next := time.Date(y, m, d+n, 0, 0, 0, 0, src.Location); next.Sub(t) != 24*time.Hour {
		return t, fmt.Errorf("day %d (%s) is %v long in %s, but the data has 86,400 seconds a day: choose a start date without a clock change in the period",
			n, t.Format(time.DateOnly), next.Sub(t), src.Location)
	}
	return t, nil
}

// Events emits each sensor's state at the first second of day 1 (the state before
// is taken as off, so only sensors that are on emit), then every change, in time
// order; a change across midnight is an event at the next day's 00:00:00.
func (a ARAS) Events(src Source, fn func(Event) error) error {
	days, err := a.read(src, nil)
	if err != nil {
		return err
	}
	ncol := len(src.Columns)
	prev := make([]uint8, ncol) // all off before day 1
	for _, d := range days {
		mid, err := src.midnight(d.n)
		if err != nil {
			return err
		}
		for c := range ncol {
			if d.first[c] != prev[c] {
				if err := fn(Event{mid, src.Columns[c], float64(d.first[c])}); err != nil {
					return err
				}
			}
		}
		for _, ch := range d.changes {
			if int(ch.col) >= ncol {
				continue // a label
			}
			if err := fn(Event{mid.Add(time.Duration(ch.sec) * time.Second), src.Columns[ch.col], float64(ch.val)}); err != nil {
				return err
			}
		}
		copy(prev, d.last[:ncol])
	}
	return nil
}

// Truth: every day of the archive is labelled, with breakfast, lunch and dinner. A
// meal counts on the date one of its ids starts for either resident (the label of
// the second before, across midnight, is another meal's or none); a date is
// occupied when some second of it has a resident labelled other than going out.
func (a ARAS) Truth(src Source) (*Truth, error) {
	days, err := a.read(src, func(int) bool { return false })
	if err != nil {
		return nil, err
	}
	ncol := len(src.Columns)
	tr := &Truth{Labelled: []string{Breakfast, Lunch, Dinner}}
	prev := [arasResidents]int{-1, -1}
	for _, d := range days {
		mid, err := src.midnight(d.n)
		if err != nil {
			return nil, err
		}
		day := Day{Date: mid.Format(time.DateOnly), Meals: map[string]bool{}}
		see := func(r, v int) {
			if m, ok := arasMeals[v]; ok && (prev[r] < 0 || arasMeals[prev[r]] != m) {
				day.Meals[m] = true
			}
			if v != arasGoingOut {
				day.Occupied = true
			}
			prev[r] = v
		}
		for r := range arasResidents {
			see(r, int(d.first[ncol+r]))
		}
		for _, ch := range d.changes {
			if int(ch.col) >= ncol {
				see(255-int(ch.col), int(ch.val))
			}
		}
		tr.Days = append(tr.Days, day)
	}
	return tr, nil
}

// Activations counts the column's 0→1 changes by local hour, straight from the
// per-second states (the state before day 1 is off).
func (a ARAS) Activations(src Source, entity string) ([24]int, error) {
	var out [24]int
	col := slices.Index(src.Columns, entity)
	if col < 0 {
		return out, fmt.Errorf("aras: %s is not one of the manifest's columns", entity)
	}
	days, err := a.read(src, func(c int) bool { return c == col })
	if err != nil {
		return out, err
	}
	prev := uint8(0)
	for _, d := range days {
		if _, err := src.midnight(d.n); err != nil {
			return out, err
		}
		cur := d.first[col]
		if cur == 1 && prev == 0 {
			out[0]++
		}
		for _, ch := range d.changes {
			if int(ch.col) == col {
				if ch.val == 1 && cur == 0 {
					out[ch.sec/3600]++
				}
				cur = ch.val
			}
		}
		prev = d.last[col]
	}
	return out, nil
}
