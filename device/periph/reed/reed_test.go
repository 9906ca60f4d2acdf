package reed

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// rig runs a Switch on a gpiotest.Pin whose WaitForEdge times out on a fake clock,
// and steps through the driver's waits one at a time: each WaitForEdge is announced
// on calls before it starts, and next waits until its timer is registered, so the
// test advances time only while the driver is waiting.
type rig struct {
	t       *testing.T
	ctx     context.Context
	fc      *clockwork.FakeClock
	pin     *gpiotest.Pin
	calls   chan time.Duration
	pending []time.Time // expirations of the fake timers not yet fired
	sw      *Switch
	results chan bool

	mu     sync.Mutex
	faults map[string]int
}

type stepPin struct {
	*gpiotest.Pin
	calls chan time.Duration
}

func (p *stepPin) WaitForEdge(d time.Duration) bool {
	p.calls <- d
	return p.Pin.WaitForEdge(d)
}

func newRig(t *testing.T, initial gpio.Level, o Opts) *rig {
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, ctx: ctx, fc: clockwork.NewFakeClock(), calls: make(chan time.Duration, 1), results: make(chan bool, 8),
		faults: map[string]int{}}
	r.pin = &gpiotest.Pin{N: "GPIO17", Clock: r.fc, L: initial, EdgesChan: make(chan gpio.Level, 32)}
	o.Count = func(reason string) { r.mu.Lock(); r.faults[reason]++; r.mu.Unlock() }
	var err error
	if r.sw, err = New(&stepPin{Pin: r.pin, calls: r.calls}, &o); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			a, err := r.sw.Wait(ctx)
			if err != nil {
				return
			}
			r.results <- a
		}
	}()
	t.Cleanup(func() {
		cancel()
		for { // let the pending wait time out
			select {
			case <-done:
				return
			case <-r.calls:
			case <-time.After(time.Millisecond):
				r.fc.Advance(time.Hour)
			}
		}
	})
	return r
}

// next waits for the driver's next WaitForEdge and its timer, and returns its timeout.
func (r *rig) next() time.Duration {
	r.t.Helper()
	var d time.Duration
	select {
	case d = <-r.calls:
	case <-time.After(time.Minute):
		r.t.Fatal("the driver never waited for an edge")
	}
	r.pending = append(r.pending, r.fc.Now().Add(d))
	if err := r.fc.BlockUntilContext(r.ctx, len(r.pending)); err != nil {
		r.t.Fatal(err)
	}
	return d
}

func (r *rig) advance(d time.Duration) {
	r.fc.Advance(d)
	now := r.fc.Now()
	keep := r.pending[:0]
	for _, e := range r.pending {
		if e.After(now) {
			keep = append(keep, e)
		}
	}
	r.pending = keep
}

func (r *rig) edge(l gpio.Level) { r.pin.EdgesChan <- l }

func (r *rig) expect(d time.Duration, what string) {
	r.t.Helper()
	if got := r.next(); got != d {
		r.t.Fatalf("%s: driver waits %s, want %s", what, got, d)
	}
}

func (r *rig) result() bool {
	r.t.Helper()
	select {
	case a := <-r.results:
		return a
	case <-time.After(time.Minute):
		r.t.Fatal("Wait never returned")
	}
	return false
}

func (r *rig) noResult() {
	r.t.Helper()
	select {
	case a := <-r.results:
		r.t.Fatalf("Wait returned %v, want nothing", a)
	default:
	}
}

func (r *rig) fault(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults[reason]
}

const (
	debounce = 20 * time.Millisecond
	recheck  = time.Second
)

// A door opens with contact bounce (edges 5ms and 3ms apart), stays open through a
// knock that moves the contact for 2ms, and closes: two reports, one glitch.
func TestBounceAndGlitch(t *testing.T) {
	// Reed switch to ground with the pin pulled up: closed reads low, open high.
	r := newRig(t, gpio.Low, Opts{Pull: gpio.Float, Debounce: debounce, Recheck: recheck})
	if r.sw.Active() {
		t.Fatal("a closed door (pin low) reads as open")
	}
	r.expect(recheck, "idle")
	r.edge(gpio.High)
	r.expect(debounce, "after the first edge")
	r.advance(5 * time.Millisecond)
	r.edge(gpio.Low) // bounce
	r.expect(debounce, "bounce 1")
	r.advance(3 * time.Millisecond)
	r.edge(gpio.High)
	r.expect(debounce, "bounce 2")
	r.noResult()
	r.advance(debounce)
	if !r.result() {
		t.Fatal("the door settled open and Wait said closed")
	}
	if r.fault(FaultGlitch) != 0 {
		t.Errorf("glitches = %d after a clean opening", r.fault(FaultGlitch))
	}

	r.expect(recheck, "open, idle")
	r.edge(gpio.Low) // a knock: the contact moves and comes back within the debounce time
	r.expect(debounce, "knock")
	r.advance(2 * time.Millisecond)
	r.edge(gpio.High)
	r.expect(debounce, "knock back")
	r.advance(debounce)
	r.expect(recheck, "after the knock") // back to waiting, nothing reported
	r.noResult()
	if r.fault(FaultGlitch) != 1 {
		t.Errorf("glitches = %d, want 1 (the knock)", r.fault(FaultGlitch))
	}

	r.edge(gpio.Low)
	r.expect(debounce, "closing")
	r.advance(debounce)
	if r.result() {
		t.Fatal("the door closed and Wait said open")
	}
}

// A level that changed without an edge (a dropped kernel event) is found at the
// next recheck and counted; a line that never goes quiet is sampled after
// MaxBounces edges and counted as chatter.
func TestMissedEdgeAndChatter(t *testing.T) {
	r := newRig(t, gpio.Low, Opts{Pull: gpio.Float, Debounce: debounce, Recheck: recheck, MaxBounces: 4})
	r.expect(recheck, "idle")
	r.pin.Out(gpio.High) // no edge
	r.advance(recheck)
	if !r.result() || r.fault(FaultMissed) != 1 {
		t.Fatalf("missed edge: faults %v", r.faults)
	}
	r.expect(recheck, "idle")
	for _, l := range []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High, gpio.Low} {
		r.edge(l)
	}
	r.expect(debounce, "chatter 1")
	r.expect(debounce, "chatter 2")
	r.expect(debounce, "chatter 3")
	r.expect(debounce, "chatter 4")
	// The edge that started it and MaxBounces more were taken, the last one low:
	// the line is sampled without waiting for quiet.
	if r.result() || r.fault(FaultChatter) != 1 {
		t.Fatalf("after MaxBounces edges: want a report of the sampled level (closed) and one chatter, faults %v", r.faults)
	}
}

// Active low: a button to ground with a pull-up is active (pressed) when low.
func TestActiveLow(t *testing.T) {
	r := newRig(t, gpio.Low, Opts{Pull: gpio.PullUp, ActiveLow: true, Debounce: debounce, Recheck: recheck})
	if r.pin.P != gpio.PullUp {
		t.Errorf("pull = %s, want PullUp", r.pin.P)
	}
	if r.sw.Active() {
		t.Fatal("pulled up and active low: reads active at rest")
	}
	r.expect(recheck, "idle")
	r.edge(gpio.Low)
	r.expect(debounce, "press")
	r.advance(debounce)
	if !r.result() {
		t.Fatal("pressed (low) but not active")
	}
}

// A pin that cannot do edge detection fails New with an error naming it.
func TestNoEdgeSupport(t *testing.T) {
	p := &gpiotest.Pin{N: "GPIO4"} // gpiotest refuses edges without EdgesChan
	if _, err := New(p, nil); err == nil {
		t.Fatal("New on a pin without edge support succeeded")
	}
}
