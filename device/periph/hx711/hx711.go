// Package hx711 reads an Avia HX711 24-bit load-cell ADC bit-banged on two GPIO
// pins: PD_SCK (clock, an output) and DOUT (data, an input).
//
// # Protocol (datasheet AVIA HX711, "Serial Interface")
//
// DOUT goes low when a conversion is ready. Each PD_SCK pulse then shifts one bit
// out, MSB first, valid from 0.1 µs after the rising edge until the next rising
// edge; 24 pulses give a two's-complement value (0x800000..0x7FFFFF, saturating at
// either end), and 1, 2 or 3 more select the input and gain of the next conversion
// (25: channel A ×128, 26: channel B ×32, 27: channel A ×64). After them DOUT is
// high until the next conversion is ready (10 or 80 a second, by the RATE pin).
//
// # The clock-high limit
//
// PD_SCK high for more than 60 µs powers the chip down (the datasheet's T3 allows
// 50 µs at most). A bit-banging process can be descheduled between raising and
// lowering the clock — preemption, an interrupt, a page fault — and the chip then
// resets in the middle of the word: the bits after the pause are not the
// conversion's, and nothing in the word says so. ReadRaw therefore times every
// high phase with the monotonic clock and discards a read in which one lasted
// longer than ClockHighLimit (ErrSlowClock); it also requires DOUT high after the
// last pulse (ErrNotReleased: a stuck or shorted data line). The bit is read after
// the falling edge, so only the two clock writes sit inside the high phase. Measure
// retries such reads and takes the median of the good ones.
package hx711

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Fault reasons passed to Opts.Count.
const (
	FaultSlowClock   = "slow_clock"   // a clock-high phase over the limit: read discarded, retried
	FaultNotReleased = "not_released" // DOUT low after the last pulse: read discarded, retried
	FaultSaturated   = "saturated"    // 0x7FFFFF or 0x800000: input out of range, discarded
	FaultOutlier     = "outlier"      // a sample too far from the median, dropped
)

// Errors.
var (
	// ErrTimeout: DOUT did not go low within ReadyTimeout (chip unpowered, data line
	// broken: a pulled-up DOUT reads high forever).
	ErrTimeout = errors.New("hx711: no conversion ready")
	// ErrSlowClock: a clock-high phase lasted longer than ClockHighLimit; the chip may
	// have powered down mid-word.
	ErrSlowClock = errors.New("hx711: clock held high too long")
	// ErrNotReleased: DOUT stayed low after the last pulse.
	ErrNotReleased = errors.New("hx711: DOUT not released after the last pulse")
	// ErrSaturated: the value is at the end of the range.
	ErrSaturated = errors.New("hx711: saturated")
	// ErrUnstable: too few good samples for a measurement (too many retries or
	// outliers).
	ErrUnstable = errors.New("hx711: measurement unstable")
)

// Opts configure a Dev. Zero fields take the defaults given.
type Opts struct {
	// Gain selects input and gain: 128 (channel A, default), 64 (channel A), 32
	// (channel B).
	Gain int
	// ClockHighLimit is the longest a clock-high phase may last (default 50µs, the
	// datasheet's T3 maximum; the chip powers down past 60µs).
	ClockHighLimit time.Duration
	// ReadyTimeout bounds the wait for DOUT low (default 1s: a conversion comes every
	// 100ms at 10 Hz, the first after a power-down within 400ms).
	ReadyTimeout time.Duration
	// Poll is how often DOUT is read while waiting (default 1ms).
	Poll time.Duration
	// Now is the monotonic clock (default time.Now).
	Now func() time.Time
	// Sleep waits between polls (default time.Sleep).
	Sleep func(time.Duration)
	// Count is told each fault (nil: not counted).
	Count func(reason string)
}

// Dev is one HX711.
type Dev struct {
	clk   gpio.PinOut
	dout  gpio.PinIn
	o     Opts
	extra int // pulses after the 24 data bits
	buf   []int32
	// skip: the next word is at the power-on gain (128), not ours: read and drop it.
	skip bool
}

// DefaultOpts are the documented defaults of a Dev: the one place they are written
// (a zero field of Opts takes its value here; internal/config's
// hub_sensors[].hx711 defaults are these).
func DefaultOpts() Opts {
	return Opts{Gain: 128, ClockHighLimit: 50 * time.Microsecond, ReadyTimeout: time.Second, Poll: time.Millisecond}
}

// New sets the clock low (waking the chip if it was powered down) and the data pin
// as an input with a pull-up, so that a broken data line reads "not ready" instead
// of random bits.
func New(clk gpio.PinOut, dout gpio.PinIn, o *Opts) (*Dev, error) {
	d := &Dev{clk: clk, dout: dout}
	if o != nil {
		d.o = *o
	}
	def := DefaultOpts()
	if d.o.Gain == 0 {
		d.o.Gain = def.Gain
	}
	switch d.o.Gain {
	case 128:
		d.extra = 1
	case 32:
		d.extra = 2
	case 64:
		d.extra = 3
	default:
		return nil, fmt.Errorf("hx711: gain %d is not 128, 64 or 32", d.o.Gain)
	}
	if d.o.ClockHighLimit <= 0 {
		d.o.ClockHighLimit = def.ClockHighLimit
	}
	if d.o.ReadyTimeout <= 0 {
		d.o.ReadyTimeout = def.ReadyTimeout
	}
	if d.o.Poll <= 0 {
		d.o.Poll = def.Poll
	}
	if d.o.Now == nil {
		d.o.Now = time.Now
	}
	if d.o.Sleep == nil {
		d.o.Sleep = time.Sleep
	}
	if d.o.Count == nil {
		d.o.Count = func(string) {}
	}
	if err := dout.In(gpio.PullUp, gpio.NoEdge); err != nil {
		return nil, fmt.Errorf("hx711: data pin %s: %w", dout, err)
	}
	if err := d.Reset(); err != nil {
		return nil, err
	}
	return d, nil
}

// PowerDown is how long Reset holds the clock high: the chip powers down after 60µs.
const PowerDown = 100 * time.Microsecond

// Reset powers the chip down and up again by holding the clock high past 60µs. It
// ends a word left half read (after a discarded read, a timeout) in a known state:
// the next conversion comes after the settling time, at gain 128 — for another gain
// the first word after a reset is read and dropped.
func (d *Dev) Reset() error {
	if err := d.clk.Out(gpio.High); err != nil {
		return fmt.Errorf("hx711: clock pin %s: %w", d.clk, err)
	}
	d.o.Sleep(PowerDown)
	if err := d.clk.Out(gpio.Low); err != nil {
		return fmt.Errorf("hx711: clock pin %s: %w", d.clk, err)
	}
	d.skip = d.o.Gain != 128
	return nil
}

// ReadRaw waits for a conversion and shifts it out. A read whose clock was held high
// too long, or after which DOUT stayed low, is discarded with ErrSlowClock or
// ErrNotReleased, and the chip is reset; the caller may simply read again.
func (d *Dev) ReadRaw(ctx context.Context) (int32, error) {
	v, err := d.readWord(ctx)
	if err == nil && d.skip {
		d.skip = false
		v, err = d.readWord(ctx)
	}
	switch {
	case errors.Is(err, ErrSlowClock), errors.Is(err, ErrNotReleased), errors.Is(err, ErrTimeout):
		if rerr := d.Reset(); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
	}
	return v, err
}

func (d *Dev) readWord(ctx context.Context) (int32, error) {
	deadline := d.o.Now().Add(d.o.ReadyTimeout)
	for d.dout.Read() == gpio.High {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if d.o.Now().After(deadline) {
			return 0, fmt.Errorf("%w within %s (DOUT %s stays high)", ErrTimeout, d.o.ReadyTimeout, d.dout)
		}
		d.o.Sleep(d.o.Poll)
	}
	var v uint32
	var slowest time.Duration
	for i := range 24 + d.extra {
		t0 := d.o.Now()
		if err := d.clk.Out(gpio.High); err != nil {
			return 0, fmt.Errorf("hx711: clock pin %s: %w", d.clk, err)
		}
		if err := d.clk.Out(gpio.Low); err != nil {
			return 0, fmt.Errorf("hx711: clock pin %s: %w", d.clk, err)
		}
		if dt := d.o.Now().Sub(t0); dt > slowest {
			slowest = dt
		}
		if i < 24 {
			v <<= 1
			if d.dout.Read() == gpio.High {
				v |= 1
			}
		}
	}
	if slowest > d.o.ClockHighLimit {
		return 0, fmt.Errorf("%w: %s > %s", ErrSlowClock, slowest, d.o.ClockHighLimit)
	}
	if d.dout.Read() == gpio.Low {
		return 0, ErrNotReleased
	}
	raw := int32(v<<8) >> 8
	if raw == 0x7FFFFF || raw == -0x800000 {
		return raw, fmt.Errorf("%w: %#06x", ErrSaturated, v)
	}
	return raw, nil
}

// Result is one measurement.
type Result struct {
	Raw     int32 // median of the samples kept
	Kept    int   // samples kept
	Dropped int   // samples dropped as outliers
	Retries int   // reads discarded (slow clock, DOUT not released, saturated) and read again
}

// Measure reads n samples — retrying each discarded read, at most retries times in
// all — drops those further than maxDev counts from their median, and returns the
// median of the rest. It fails with ErrUnstable when more than retries reads were
// discarded or fewer than a majority of n samples are kept, and with ErrTimeout when
// no conversion comes.
func (d *Dev) Measure(ctx context.Context, n int, maxDev int32, retries int) (Result, error) {
	n = max(n, 1)
	var res Result
	d.buf = d.buf[:0]
	for len(d.buf) < n {
		v, err := d.ReadRaw(ctx)
		if err == nil {
			d.buf = append(d.buf, v)
			continue
		}
		switch {
		case errors.Is(err, ErrSlowClock):
			d.o.Count(FaultSlowClock)
		case errors.Is(err, ErrNotReleased):
			d.o.Count(FaultNotReleased)
		case errors.Is(err, ErrSaturated):
			d.o.Count(FaultSaturated)
		default:
			return res, err
		}
		res.Retries++
		if res.Retries > retries {
			return res, fmt.Errorf("%w: %d reads discarded (last: %w)", ErrUnstable, res.Retries, err)
		}
	}
	m := median(d.buf)
	kept := d.buf[:0]
	for _, v := range d.buf {
		if diff := int64(v) - int64(m); maxDev > 0 && (diff > int64(maxDev) || -diff > int64(maxDev)) {
			res.Dropped++
			d.o.Count(FaultOutlier)
			continue
		}
		kept = append(kept, v)
	}
	res.Kept = len(kept)
	if res.Kept < n/2+1 {
		return res, fmt.Errorf("%w: %d of %d samples further than %d counts from the median", ErrUnstable, res.Dropped, n, maxDev)
	}
	res.Raw = median(kept)
	return res, nil
}

// median sorts v and returns its middle element (the lower one of an even count).
func median(v []int32) int32 {
	slices.Sort(v)
	return v[(len(v)-1)/2]
}
