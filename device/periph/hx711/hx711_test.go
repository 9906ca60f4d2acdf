package hx711

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hearth-iot/hearth/device/periph/periphtest"
)

// newFake returns a driver on a fake HX711, both on one fake clock that moves only
// when the driver sleeps (waiting for DOUT) or the chip is "descheduled".
func newFake(t *testing.T, chip *periphtest.HX711) (*Dev, map[string]int) {
	t.Helper()
	fc := clockwork.NewFakeClock()
	chip.Now, chip.Advance = fc.Now, fc.Advance
	clk, data := chip.Pins()
	faults := map[string]int{}
	d, err := New(clk, data, &Opts{Now: fc.Now, Sleep: fc.Advance, Count: func(r string) { faults[r]++ }})
	if err != nil {
		t.Fatal(err)
	}
	return d, faults
}

// 24-bit two's complement across the range, MSB first.
func TestReadRaw(t *testing.T) {
	want := []int32{0, 1, -1, 8388606, -8388607, 0x123456, -0x123456, 427311}
	d, _ := newFake(t, &periphtest.HX711{Samples: want})
	for i, w := range want {
		got, err := d.ReadRaw(context.Background())
		if err != nil || got != w {
			t.Fatalf("read %d: %d, %v; want %d", i, got, err, w)
		}
	}
}

// The driver is descheduled for 200µs with the clock high, in the middle of a word:
// the chip powers down and the rest of the word is ones. The read is detected,
// counted and retried, and the measurement is the median of intact words only.
func TestCorruptedReadRetried(t *testing.T) {
	samples := []int32{100000, 100010, 99990, 100005}
	chip := &periphtest.HX711{Samples: samples, PauseAt: []int{10}, Pause: 200 * time.Microsecond}
	d, faults := newFake(t, chip)
	res, err := d.Measure(context.Background(), 3, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retries != 1 || faults[FaultSlowClock] != 1 {
		t.Errorf("retries %d, slow_clock %d; want 1, 1", res.Retries, faults[FaultSlowClock])
	}
	del := chip.Delivered()
	if len(del) != 4 || !del[0].Corrupt || del[1].Corrupt {
		t.Fatalf("delivered %+v: want the first word corrupt, three intact", del)
	}
	// Intact: 100010, 99990, 100005 → median 100005.
	if res.Raw != 100005 || res.Kept != 3 {
		t.Errorf("measurement %+v, want raw 100005 from 3 samples", res)
	}
}

// The same pause read by a driver that does not look at the clock gives a wrong
// value, and nothing else says so: the corruption is real, and only timing shows it.
func TestCorruptionIsSilentWithoutTiming(t *testing.T) {
	fc := clockwork.NewFakeClock()
	chip := &periphtest.HX711{Samples: []int32{100000}, PauseAt: []int{10}, Pause: 200 * time.Microsecond,
		Now: fc.Now, Advance: fc.Advance}
	clk, data := chip.Pins()
	d, err := New(clk, data, &Opts{Now: fc.Now, Sleep: fc.Advance, ClockHighLimit: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	v, err := d.ReadRaw(context.Background())
	if err != nil || v == 100000 {
		t.Fatalf("blind read of a corrupted word: %d, %v; want a wrong value and no error", v, err)
	}
}

func TestOutliersAndUnstable(t *testing.T) {
	d, faults := newFake(t, &periphtest.HX711{Samples: []int32{1000, 1002, 999, 50000, 1001}})
	res, err := d.Measure(context.Background(), 5, 100, 0)
	if err != nil || res.Dropped != 1 || res.Kept != 4 || res.Raw != 1000 || faults[FaultOutlier] != 1 {
		t.Errorf("one spike among five: %+v, %v, faults %v; want it dropped, median 1000", res, err, faults)
	}
	d, _ = newFake(t, &periphtest.HX711{Samples: []int32{1000, 9000, 20000, 35000, 52000}})
	if _, err := d.Measure(context.Background(), 5, 100, 0); !errors.Is(err, ErrUnstable) {
		t.Errorf("five scattered samples: %v, want ErrUnstable", err)
	}
}

// Bad wiring: no chip (DOUT high for ever) times out; DOUT shorted low is never
// released and gives up after the retries; a saturated input is discarded.
func TestBadHardware(t *testing.T) {
	d, _ := newFake(t, &periphtest.HX711{Disconnected: true})
	if _, err := d.Measure(context.Background(), 3, 0, 3); !errors.Is(err, ErrTimeout) {
		t.Errorf("disconnected: %v, want ErrTimeout", err)
	}
	d, faults := newFake(t, &periphtest.HX711{StuckLow: true})
	if _, err := d.Measure(context.Background(), 3, 0, 3); !errors.Is(err, ErrUnstable) || faults[FaultNotReleased] != 4 {
		t.Errorf("DOUT stuck low: %v, faults %v; want ErrUnstable after 4 not_released", err, faults)
	}
	d, faults = newFake(t, &periphtest.HX711{Samples: []int32{0x7FFFFF, 5, 6, 7}})
	res, err := d.Measure(context.Background(), 3, 0, 3)
	if err != nil || res.Raw != 6 || faults[FaultSaturated] != 1 {
		t.Errorf("one saturated word: %+v, %v, faults %v", res, err, faults)
	}
}

func TestGain(t *testing.T) {
	clk, data := (&periphtest.HX711{}).Pins()
	if _, err := New(clk, data, &Opts{Gain: 100}); err == nil {
		t.Error("gain 100 accepted")
	}
}

// After a reset the chip converts at gain 128 whatever was asked: for gain 64 the
// first word is read (selecting the gain) and dropped.
func TestResetDropsWordAtPowerOnGain(t *testing.T) {
	fc := clockwork.NewFakeClock()
	chip := &periphtest.HX711{Samples: []int32{111, 222, 333}, Now: fc.Now, Advance: fc.Advance}
	clk, data := chip.Pins()
	d, err := New(clk, data, &Opts{Gain: 64, Now: fc.Now, Sleep: fc.Advance})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.ReadRaw(context.Background()); v != 222 || err != nil {
		t.Errorf("first read at gain 64: %d, %v; want 222 (111 was converted at gain 128)", v, err)
	}
	if v, _ := d.ReadRaw(context.Background()); v != 333 {
		t.Errorf("second read: %d, want 333", v)
	}
}
