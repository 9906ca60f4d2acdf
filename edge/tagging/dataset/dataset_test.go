package dataset

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

const homesDir = "../../../testdata/homes"

func manifest(t *testing.T, name string) *Manifest {
	t.Helper()
	m, err := LoadManifest(filepath.Join(homesDir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.DataPath); err != nil {
		t.Fatalf("%s: the data must be at %s (../shared/data): %v", name, m.DataPath, err)
	}
	return m
}

// arasByAwk extracts an ARAS archive with the system's tar and reads it with awk:
// per day, the meals whose label starts that day for either resident, whether some
// second has a resident not going out, and the 0→1 changes of one sensor column by
// hour. A different reader, parser and language from the converter's.
func arasByAwk(t *testing.T, archive string, col int) (days []string, fridge [24]int) {
	t.Helper()
	for _, tool := range []string{"tar", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the converter independently: %v", tool, err)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	var files []string
	for n := 1; ; n++ {
		p := filepath.Join(dir, fmt.Sprintf("DAY_%d.csv", n))
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	prog := `
function meal(a) { if (a == 3 || a == 4) return "B"; if (a == 5 || a == 6) return "L"; if (a == 7 || a == 8) return "D"; return "" }
FNR == 1 { day++; occ[day] = 0 }
{
	sub(/\r$/, "")   # house A's files end their lines with CR LF
	for (r = 21; r <= 22; r++) {
		m = meal($r)
		if (m != "" && m != prev[r]) got[day, m] = 1
		prev[r] = m
		if ($r != 2) occ[day] = 1
	}
	s = $` + strconv.Itoa(col) + `
	if (s == 1 && last != 1) on[int((FNR - 1) / 3600)]++
	last = s
}
END {
	for (d = 1; d <= day; d++) print "day", d, occ[d], ((d, "B") in got), ((d, "L") in got), ((d, "D") in got)
	for (h = 0; h < 24; h++) print "hour", h, on[h] + 0
}`
	cmd := exec.Command("awk", append([]string{prog}, files...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("awk: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch f[0] {
		case "day":
			days = append(days, strings.Join(f[2:], " "))
		case "hour":
			h, _ := strconv.Atoi(f[1])
			fridge[h], _ = strconv.Atoi(f[2])
		}
	}
	return days, fridge
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// The ARAS converter's truth, fridge count and events agree with tar + awk.
func TestARASAgainstAwk(t *testing.T) {
	for _, name := range []string{"aras-houseA", "aras-houseB"} {
		t.Run(name, func(t *testing.T) {
			m := manifest(t, name)
			src := m.Source()
			var fridge string
			col := 0
			for i, c := range m.Columns {
				if e, ok := m.Entities[c]; ok && e.Kind == device.KindFridge {
					fridge, col = c, i+1
				}
			}
			wantDays, wantFridge := arasByAwk(t, m.DataPath, col)
			tr, err := ARAS{}.Truth(src)
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Days) != len(wantDays) || len(tr.Days) != 30 {
				t.Fatalf("%d days, awk %d", len(tr.Days), len(wantDays))
			}
			meals := map[string]int{}
			for i, d := range tr.Days {
				got := strings.Join([]string{b01(d.Occupied), b01(d.Meals[Breakfast]), b01(d.Meals[Lunch]), b01(d.Meals[Dinner])}, " ")
				if got != wantDays[i] {
					t.Errorf("day %d (%s): occupied, breakfast, lunch, dinner = %s, awk %s", i+1, d.Date, got, wantDays[i])
				}
				for k, v := range d.Meals {
					if v {
						meals[k]++
					}
				}
				if want := src.Start.AddDate(0, 0, i).Format(time.DateOnly); d.Date != want {
					t.Errorf("day %d is %s, want %s", i+1, d.Date, want)
				}
			}
			if meals[Breakfast] == 0 || meals[Dinner] == 0 {
				t.Errorf("meals %v: the labels were not read", meals)
			}
			got, err := ARAS{}.Activations(src, fridge)
			if err != nil {
				t.Fatal(err)
			}
			if got != wantFridge {
				t.Errorf("fridge activations by hour %v, awk %v", got, wantFridge)
			}
			// The events say the same: each "on" of the fridge at its local hour.
			var fromEvents [24]int
			last := time.Time{}
			err = ARAS{}.Events(src, func(e Event) error {
				if e.Time.Before(last) {
					return fmt.Errorf("event at %v after one at %v", e.Time, last)
				}
				last = e.Time
				if e.Entity == fridge && e.Value == 1 {
					fromEvents[e.Time.In(m.Location).Hour()]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fromEvents != wantFridge {
				t.Errorf("fridge events by hour %v, awk %v", fromEvents, wantFridge)
			}
		})
	}
}

// Kasteren's truth against a second reading of the label file (split on tabs, each
// leave-house interval walked date by date): 26 labelled dates, of which 1 and 9
// March 2008 were spent wholly away.
func TestKasterenTruth(t *testing.T) {
	m := manifest(t, "kasteren-houseA")
	src := m.Source()
	tr, err := Kasteren{}.Truth(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(m.DataPath, "kasterenActData.txt"))
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]map[string]bool{}
	away := map[string]bool{}
	var first, last string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), "\t")
		if len(f) < 3 {
			continue
		}
		s, err1 := time.ParseInLocation("02-Jan-2006 15:04:05", strings.TrimSpace(f[0]), src.Location)
		e, err2 := time.ParseInLocation("02-Jan-2006 15:04:05", strings.TrimSpace(f[1]), src.Location)
		id, err3 := strconv.Atoi(strings.TrimSpace(f[2]))
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		d := s.Format(time.DateOnly)
		if first == "" || d < first {
			first = d
		}
		if d > last {
			last = d
		}
		if starts[d] == nil {
			starts[d] = map[string]bool{}
		}
		starts[d][strconv.Itoa(id)] = true
		if id == 1 { // leave house: the dates strictly between its start and end dates
			for day := time.Date(s.Year(), s.Month(), s.Day()+1, 0, 0, 0, 0, src.Location); !day.AddDate(0, 0, 1).After(e); day = day.AddDate(0, 0, 1) {
				away[day.Format(time.DateOnly)] = true
			}
		}
	}
	if tr.Days[0].Date != first || tr.Days[len(tr.Days)-1].Date != last || len(tr.Days) != 26 {
		t.Fatalf("labelled period %s..%s (%d dates), want %s..%s", tr.Days[0].Date, tr.Days[len(tr.Days)-1].Date, len(tr.Days), first, last)
	}
	occupied := 0
	for _, d := range tr.Days {
		if d.Occupied == away[d.Date] {
			t.Errorf("%s: occupied %v, away by the second reading %v", d.Date, d.Occupied, away[d.Date])
		}
		if d.Occupied {
			occupied++
		}
		if d.Meals[Breakfast] != starts[d.Date]["13"] || d.Meals[Dinner] != starts[d.Date]["15"] {
			t.Errorf("%s: meals %v, labels starting %v", d.Date, d.Meals, starts[d.Date])
		}
	}
	if occupied != 24 || !away["2008-03-01"] || !away["2008-03-09"] {
		t.Errorf("%d occupied dates, away %v: want 24, with 1 and 9 March away", occupied, away)
	}
	// Each interval of the fridge (id 8) is one activation at its start hour.
	got, err := Kasteren{}.Activations(src, "binary_sensor.fridge")
	if err != nil {
		t.Fatal(err)
	}
	var want [24]int
	sense, err := os.ReadFile(filepath.Join(m.DataPath, "kasterenSenseData.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(sense), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), "\t")
		if len(f) >= 3 && strings.TrimSpace(f[2]) == "8" {
			s, err := time.Parse("02-Jan-2006 15:04:05", strings.TrimSpace(f[0]))
			if err == nil {
				want[s.Hour()]++
			}
		}
	}
	if got != want || sum(want) < 100 {
		t.Errorf("fridge activations %v, counted %v", got, want)
	}
}

func sum(h [24]int) int {
	n := 0
	for _, v := range h {
		n += v
	}
	return n
}

// Bad manifests are refused with the file, the line and what is wrong.
func TestManifestErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"name: x\ndata: d\nconverter: csv\nentities:\n  a: {kind: fridge, signal: door}\n", `m.yaml:3: converter: "csv" is not one of [aras kasteren]`},
		{"name: x\ndata: d\nconverter: aras\nstart: 2012-13-01\nentities:\n  a: {kind: fridge, signal: door}\n", `m.yaml:4: start: "2012-13-01" is not a date`},
		{"name: x\ndata: d\nconverter: aras\nentities:\n  a: {kind: fridge, signal: door}\ncolour: red\n", "field colour not found"},
		{"name: x\ndata: d\nconverter: aras\nentities:\n  a: {kind: fryer, signal: door}\n", `m.yaml:5: entities.a.kind: unknown kind "fryer"`},
		{"data: d\nconverter: aras\nentities:\n  a: {kind: fridge, signal: door}\n", "name: required"},
	} {
		_, err := ParseManifest([]byte(c.src), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.src, err, c.want)
		}
	}
}

// A start date whose period crosses a clock change is refused (the files have
// 86,400 seconds a day), naming the day.
func TestARASClockChange(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Istanbul")
	if err != nil {
		t.Fatal(err)
	}
	src := Source{Location: loc, Start: time.Date(2012, 3, 20, 0, 0, 0, 0, loc)}
	if _, err := src.midnight(1); err != nil {
		t.Fatal(err)
	}
	if _, err := src.midnight(6); err == nil || !strings.Contains(err.Error(), "day 6 (2012-03-25)") {
		t.Errorf("err = %v, want day 6 (2012-03-25) refused", err)
	}
}
