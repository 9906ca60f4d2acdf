// Package periphtest holds fakes for tests of device/periph and its drivers, in the
// manner of periph's own gpiotest and i2ctest: an HX711 on a clock/data pin pair, an
// I²C bus that fails like a real one, and a Host that hands out fakes by name.
package periphtest

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"
)

// PowerDownAfter is how long PD_SCK may stay high before the HX711 powers down.
const PowerDownAfter = 60 * time.Microsecond

// HX711 simulates the chip behind two pins. It plays Samples in order, one per
// conversion, and holds the last when they run out. It times each clock-high phase
// with Now: one longer than PowerDownAfter powers it down — the rest of the word
// reads as ones, the sample is lost, and the next conversion is ready Settle after
// the clock goes low again — as the real chip does. Its fields are set before use;
// afterwards only through its methods.
type HX711 struct {
	// Samples are the conversions, 24-bit two's complement in an int32.
	Samples []int32
	// Now is the clock the chip times with (default time.Now); Advance, when set,
	// moves it forward (a fake clock's Advance).
	Now     func() time.Time
	Advance func(time.Duration)
	// PauseAt lists rising clock edges (counted from 1 over the chip's life) during
	// which the driver is "descheduled": Advance(Pause) is called before the edge's
	// Out(High) returns.
	PauseAt []int
	Pause   time.Duration
	// Conversion is the time from a read's end to the next conversion being ready
	// (default 12.5ms, 80 a second); Settle the same after a power-down (default
	// 50ms). The fake models gain 128 (25 pulses a word); pulses after the 25th fall
	// on a chip with nothing ready and are ignored.
	Conversion, Settle time.Duration
	// Disconnected: DOUT reads high for ever (no chip, broken data wire).
	Disconnected bool
	// StuckLow: DOUT reads low for ever (data wire shorted to ground).
	StuckLow bool
	// OpCost is spent busy-waiting in every pin operation, to model the cost of a
	// GPIO ioctl on a real board (0: none).
	OpCost time.Duration

	mu        sync.Mutex
	started   bool
	next      int       // index of the conversion being (or next to be) shifted out
	pulse     int       // pulses in the current word
	edges     int       // rising edges over the chip's life
	high      bool      // PD_SCK level
	rose      time.Time // when PD_SCK went high
	readyAt   time.Time
	bit       bool // DOUT while shifting
	delivered []Delivered
	pending   *int32 // a Load during a word: applied when the word ends
}

// Delivered records one word the chip shifted out.
type Delivered struct {
	Sample  int32 // the conversion being shifted
	Corrupt bool  // the chip powered down during it: what the driver read is not Sample
}

func (h *HX711) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *HX711) spend() {
	if h.OpCost <= 0 {
		return
	}
	for t := time.Now(); time.Since(t) < h.OpCost; {
	}
}

func (h *HX711) init() {
	if !h.started {
		h.started = true
		h.readyAt = h.now().Add(h.settle()) // powering up: the first conversion settles
	}
}

// Load makes every later conversion return v (weight put on or taken off the cell).
// A word being shifted out is a conversion already made: it keeps its value, and v
// starts with the next one.
func (h *HX711) Load(v int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pulse > 0 {
		h.pending = &v
		return
	}
	h.load(v)
}

func (h *HX711) load(v int32) {
	h.Samples = append(h.Samples[:min(h.next, len(h.Samples))], v)
}

// wordEnded moves to the next conversion, applying a Load made during the word.
func (h *HX711) wordEnded() {
	h.next++
	h.pulse = 0
	if h.pending != nil {
		h.load(*h.pending)
		h.pending = nil
	}
}

// Last returns the last word shifted out and how many there were.
func (h *HX711) Last() (Delivered, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.delivered) == 0 {
		return Delivered{}, 0
	}
	return h.delivered[len(h.delivered)-1], len(h.delivered)
}

// Delivered returns every word shifted out so far.
func (h *HX711) Delivered() []Delivered {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Delivered(nil), h.delivered...)
}

func (h *HX711) sample() int32 {
	if len(h.Samples) == 0 {
		return 0
	}
	return h.Samples[min(h.next, len(h.Samples)-1)]
}

// clock is PD_SCK's Out.
func (h *HX711) clock(l gpio.Level) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.spend()
	h.init()
	switch {
	case l == gpio.High && !h.high:
		h.high, h.rose = true, h.now()
		h.edges++
		for _, e := range h.PauseAt {
			if e == h.edges && h.Advance != nil {
				h.Advance(h.Pause)
			}
		}
		if h.pulse == 0 && !h.ready() {
			return // a pulse while no conversion is ready: ignored
		}
		if h.pulse < 24 {
			h.bit = h.sample()>>(23-h.pulse)&1 == 1
		}
		h.pulse++
	case l == gpio.Low && h.high:
		h.high = false
		now := h.now()
		if now.Sub(h.rose) > PowerDownAfter {
			// Powered down; it wakes as the clock goes low and starts over. A word in
			// progress is lost: the driver's remaining pulses fall on a chip that
			// has nothing ready (DOUT high), so the rest of its word reads as ones.
			if h.pulse > 0 {
				h.delivered = append(h.delivered, Delivered{Sample: h.sample(), Corrupt: true})
				h.wordEnded()
			}
			h.readyAt = now.Add(h.settle())
			return
		}
		if h.pulse >= 25 {
			h.delivered = append(h.delivered, Delivered{Sample: h.sample()})
			h.wordEnded()
			h.readyAt = now.Add(h.conversion())
		}
	}
}

func (h *HX711) conversion() time.Duration {
	if h.Conversion > 0 {
		return h.Conversion
	}
	return 12500 * time.Microsecond // 80 conversions a second
}

func (h *HX711) settle() time.Duration {
	if h.Settle > 0 {
		return h.Settle
	}
	return 50 * time.Millisecond // the datasheet's settling time at 80 a second
}

func (h *HX711) ready() bool { return !h.now().Before(h.readyAt) }

// data is DOUT's Read.
func (h *HX711) data() gpio.Level {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.spend()
	h.init()
	switch {
	case h.StuckLow:
		return gpio.Low
	case h.Disconnected:
		return gpio.High
	case h.pulse == 0:
		return gpio.Level(!h.ready())
	case h.pulse <= 24:
		return gpio.Level(h.bit)
	}
	return gpio.High
}

// Pins returns the clock (PD_SCK) and data (DOUT) pins.
func (h *HX711) Pins() (clock, data gpio.PinIO) {
	return &hxPin{Pin: gpiotest.Pin{N: "PD_SCK"}, h: h, clock: true}, &hxPin{Pin: gpiotest.Pin{N: "DOUT"}, h: h}
}

// hxPin is one of the chip's pins; gpiotest.Pin supplies the rest of gpio.PinIO.
type hxPin struct {
	gpiotest.Pin
	h     *HX711
	clock bool
}

func (p *hxPin) Out(l gpio.Level) error {
	if !p.clock {
		return fmt.Errorf("periphtest: %s is the HX711's output", p.N)
	}
	p.h.clock(l)
	return nil
}

func (p *hxPin) In(pull gpio.Pull, edge gpio.Edge) error {
	if p.clock {
		return fmt.Errorf("periphtest: %s is the HX711's input", p.N)
	}
	if edge != gpio.NoEdge {
		return fmt.Errorf("periphtest: %s: no edge detection", p.N)
	}
	return nil
}

func (p *hxPin) Read() gpio.Level {
	if p.clock {
		p.h.mu.Lock()
		defer p.h.mu.Unlock()
		return gpio.Level(p.h.high)
	}
	return p.h.data()
}

func (p *hxPin) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("periphtest: %s: no PWM", p.N)
}
