package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hearth-iot/hearth/device"
)

// commitInterleaved stores n readings of each device, interleaved (a1 b1 c1 a2 ...),
// with value i for the i-th reading of a device.
func commitInterleaved(t testing.TB, s *Store, n int, devs ...string) {
	t.Helper()
	var rs []device.Reading
	for i := 1; i <= n; i++ {
		for _, d := range devs {
			rs = append(rs, device.Reading{Device: d, Kind: device.KindFridge, Signal: device.SignalTemperature, Value: float64(i), Unit: "°C"})
			if len(rs) == 1000 {
				if err := device.Commit(context.Background(), s, rs); err != nil {
					t.Fatal(err)
				}
				rs = rs[:0]
			}
		}
	}
	if len(rs) > 0 {
		if err := device.Commit(context.Background(), s, rs); err != nil {
			t.Fatal(err)
		}
	}
}

// latest collects up to n readings of dev, newest first.
func latest(t *testing.T, s *Store, dev string, n, maxScan int) (vals []float64, examined int, complete bool) {
	t.Helper()
	examined, complete, err := s.Latest(dev, maxScan, func(_ uint64, r *device.Reading) bool {
		if dev != "" && r.Device != dev {
			t.Fatalf("reading of %q passed for %q", r.Device, dev)
		}
		vals = append(vals, r.Value)
		return len(vals) < n
	})
	if err != nil {
		t.Fatal(err)
	}
	return vals, examined, complete
}

func TestLatest(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	if vals, examined, complete := latest(t, s, "a", 5, 0); vals != nil || examined != 0 || !complete {
		t.Errorf("empty store: %v, %d examined, complete %v", vals, examined, complete)
	}
	commitInterleaved(t, s, 100, "a", "b", "c")

	// The newest five of a, newest first: five of every three events examined.
	vals, examined, complete := latest(t, s, "a", 5, 0)
	if !slices.Equal(vals, []float64{100, 99, 98, 97, 96}) || complete {
		t.Errorf("a: %v (complete %v), want 100..96 newest first, not complete", vals, complete)
	}
	if examined != 15 { // c100 b100 a100 ... c96 b96 a96: a96 is the 15th event from the end
		t.Errorf("a: %d events examined, want 15", examined)
	}
	// Every reading of c: back to the oldest event.
	vals, examined, complete = latest(t, s, "c", 1000, 0)
	if len(vals) != 100 || vals[0] != 100 || vals[99] != 1 || !complete || examined != 300 {
		t.Errorf("c: %d values %v..., %d examined, complete %v; want 100 values, 300 examined, complete", len(vals), vals[:min(3, len(vals))], examined, complete)
	}
	// A device that is not there: the whole log, nothing.
	if vals, examined, complete := latest(t, s, "zz", 5, 0); vals != nil || examined != 300 || !complete {
		t.Errorf("unknown device: %v, %d examined, complete %v", vals, examined, complete)
	}
	// The bound: at most maxScan events, and the answer says it is not complete.
	vals, examined, complete = latest(t, s, "a", 50, 30)
	if len(vals) != 10 || examined != 30 || complete {
		t.Errorf("bounded: %d values, %d examined, complete %v; want 10, 30, false", len(vals), examined, complete)
	}
	// Every device.
	vals, _, _ = latest(t, s, "", 4, 0)
	if !slices.Equal(vals, []float64{100, 100, 100, 99}) {
		t.Errorf("every device: %v", vals)
	}
	// A device id that is a prefix of another is not confused with it.
	commitInterleaved(t, s, 3, "ab")
	if vals, _, _ := latest(t, s, "a", 1, 0); !slices.Equal(vals, []float64{100}) {
		t.Errorf("a after ab's readings: %v, want [100]", vals)
	}
}

// BenchmarkLatest measures the walk for a quiet device among busy ones: the cost per
// event examined is what a bound on Latest buys.
func BenchmarkLatest(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "hearth.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const events = 100000
	commitInterleaved(b, s, events/4, "busy-1", "busy-2", "busy-3", "busy-4")
	if err := device.Commit(context.Background(), s, []device.Reading{{Device: "quiet", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1}}); err != nil {
		b.Fatal(err)
	}
	commitInterleaved(b, s, events/4, "busy-1", "busy-2", "busy-3", "busy-4")
	b.ResetTimer()
	var examined int
	for b.Loop() {
		n, _, err := s.Latest("quiet", 0, func(uint64, *device.Reading) bool { return false })
		if err != nil || n != events+1 {
			b.Fatal(fmt.Sprint(n, err))
		}
		examined += n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(examined), "ns/event")
}
