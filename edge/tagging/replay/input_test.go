package replay

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// readAll streams an input and collects its readings.
func readAll(t *testing.T, r io.Reader, format string, m *Mapping, o *StreamOptions) (*Input, []device.Reading, error) {
	t.Helper()
	var out []device.Reading
	in, err := Stream(r, format, m, o, func(r device.Reading) error {
		out = append(out, r)
		return nil
	})
	return in, out, err
}

func mapping(t *testing.T, tz string) *Mapping {
	t.Helper()
	m, err := ParseMapping([]byte("timezone: "+tz+"\nentities:\n  binary_sensor.fridge: {kind: fridge, signal: door}\n  sensor.plug: {kind: kettle, signal: power}\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Hostile or broken rows are counted with their line and skipped; the replay goes on.
func TestHACSVBadRows(t *testing.T) {
	csv := strings.Join([]string{
		`"a"b,c`, // a CSV parse error on the very first record
		"binary_sensor.fridge,on,2024-03-01T07:30:00Z",
		"sensor.plug,NaN,2024-03-01T07:31:00Z",
		"sensor.plug,Inf,2024-03-01T07:32:00Z",
		"sensor.plug,0x1p4,2024-03-01T07:33:00Z",
		"sensor.plug,1e300,2024-03-01T07:34:00Z",
		"binary_sensor.fridge,7,2024-03-01T07:35:00Z",
		"binary_sensor.fridge,off,0001-01-01T00:00:00Z",
		"sensor.plug,1500.5,2024-03-01T07:36:00Z",
	}, "\n") + "\n"
	in, rs, err := readAll(t, strings.NewReader(csv), FormatHACSV, mapping(t, "UTC"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || in.Kept != 2 {
		t.Fatalf("%d readings kept, want 2 (fridge on, plug 1500.5): %+v", len(rs), rs)
	}
	if in.Counts["bad_row"] != 7 {
		t.Errorf("bad rows counted %d, want 7: %v", in.Counts["bad_row"], in.Problems)
	}
}

// A local time in a day a zone skipped is a DST gap, not silently moved.
func TestHACSVSkippedDay(t *testing.T) {
	in, rs, err := readAll(t, strings.NewReader("binary_sensor.fridge,on,2011-12-30 12:00:00\nbinary_sensor.fridge,off,2011-12-31 12:00:00\n"), FormatHACSV, mapping(t, "Pacific/Apia"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Counts["dst_gap"] != 1 || len(rs) != 1 {
		t.Errorf("counts %v, %d readings; want one dst_gap and one reading", in.Counts, len(rs))
	}
}

// One endless line (an unterminated quote) is an error, not all the memory there is.
func TestHACSVEndlessLine(t *testing.T) {
	r := strings.NewReader(`binary_sensor.fridge,"` + strings.Repeat("x", MaxLineBytes+10))
	if _, _, err := readAll(t, r, FormatHACSV, mapping(t, "UTC"), nil); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a line-length error", err)
	}
}

// A long input exported entity by entity (each entity in order, the whole not) is
// sorted in bounded runs spilled to disk and merged, in several passes when there
// are more runs than one merge takes: the readings come out in time order, ties in
// input order, exactly as a sort of the whole would give, and the runs are removed.
func TestStreamSortsInBoundedRuns(t *testing.T) {
	m := mapping(t, "UTC")
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	type row struct {
		ent, state string
		at         time.Time
	}
	var rows []row
	for _, ent := range []string{"binary_sensor.fridge", "sensor.plug"} {
		at := start
		for i := range 600 {
			at = at.Add(time.Duration(rng.IntN(120)) * time.Second) // ties happen
			state := []string{"on", "off"}[i%2]
			if ent == "sensor.plug" {
				state = fmt.Sprint(rng.IntN(2000))
			}
			rows = append(rows, row{ent, state, at})
		}
	}
	var b strings.Builder
	b.WriteString("entity_id,state,last_changed\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%s,%s,%s\n", r.ent, r.state, r.at.Format(time.RFC3339))
	}
	want := slices.Clone(rows)
	slices.SortStableFunc(want, func(a, b row) int { return a.at.Compare(b.at) })
	for _, chunk := range []int{7, 100, 5000} { // 172 runs (3 merge passes), 12 runs, in memory
		dir := t.TempDir()
		in, got, err := readAll(t, strings.NewReader(b.String()), FormatHACSV, m, &StreamOptions{ChunkReadings: chunk, TempDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if in.Kept != len(rows) || len(got) != len(rows) {
			t.Fatalf("chunk %d: %d readings (kept %d), want %d", chunk, len(got), in.Kept, len(rows))
		}
		for i, r := range got {
			w := want[i]
			v := map[string]float64{"on": 1, "off": 0}[w.state]
			if w.ent == "sensor.plug" {
				fmt.Sscan(w.state, &v)
			}
			if !r.DeviceTime.Equal(w.at) || r.Device != m.Entities[w.ent].Device || r.Value != v {
				t.Fatalf("chunk %d: reading %d is %s=%v at %v, want %s=%v at %v", chunk, i, r.Device, r.Value, r.DeviceTime, w.ent, v, w.at)
			}
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("chunk %d: %d run files left behind", chunk, len(left))
		}
	}
}
