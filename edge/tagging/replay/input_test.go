package replay

import (
	"strings"
	"testing"
)

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
	in, err := ReadHACSV(strings.NewReader(csv), mapping(t, "UTC"))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Readings) != 2 {
		t.Fatalf("%d readings kept, want 2 (fridge on, plug 1500.5): %+v", len(in.Readings), in.Readings)
	}
	if in.Counts["bad_row"] != 7 {
		t.Errorf("bad rows counted %d, want 7: %v", in.Counts["bad_row"], in.Problems)
	}
}

// A local time in a day a zone skipped is a DST gap, not silently moved.
func TestHACSVSkippedDay(t *testing.T) {
	in, err := ReadHACSV(strings.NewReader("binary_sensor.fridge,on,2011-12-30 12:00:00\nbinary_sensor.fridge,off,2011-12-31 12:00:00\n"), mapping(t, "Pacific/Apia"))
	if err != nil {
		t.Fatal(err)
	}
	if in.Counts["dst_gap"] != 1 || len(in.Readings) != 1 {
		t.Errorf("counts %v, %d readings; want one dst_gap and one reading", in.Counts, len(in.Readings))
	}
}

// One endless line (an unterminated quote) is an error, not all the memory there is.
func TestHACSVEndlessLine(t *testing.T) {
	r := strings.NewReader(`binary_sensor.fridge,"` + strings.Repeat("x", MaxLineBytes+10))
	if _, err := ReadHACSV(r, mapping(t, "UTC")); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a line-length error", err)
	}
}
