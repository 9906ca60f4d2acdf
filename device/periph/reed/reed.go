// Package reed reads a reed switch or a push button on one GPIO pin: edge detection
// with WaitForEdge, debouncing, and the active level.
//
// # Debounce
//
// A reed contact bounces for a few milliseconds when it closes or opens; a button
// for up to tens. After the first edge, Wait keeps taking edges until none has come
// for the debounce time, then reads the pin's level: the level after the line went
// quiet is the new state. An excursion that ends where it started (a bounce on a
// closed door, a knock) is a glitch, counted and not reported. A line that never
// goes quiet (a long unshielded cable beside a mains lead) is sampled after
// MaxBounces edges and counted as chatter.
//
// # Missed edges
//
// The kernel queues edge events per line and drops them when its queue is full; a
// pin without edge support reports none. Wait therefore also reads the level every
// Recheck without an edge, and a state found changed that way is reported and
// counted as a missed edge.
package reed

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Fault reasons passed to Opts.Count.
const (
	FaultGlitch  = "glitch"      // the line moved and came back within the debounce time
	FaultChatter = "chatter"     // MaxBounces edges without a quiet debounce time
	FaultMissed  = "missed_edge" // the level changed without an edge being seen
)

// Opts configure a Switch. Zero fields take the defaults given.
type Opts struct {
	Pull gpio.Pull // default (PullNoChange) gpio.PullUp; gpio.Float for none
	Edge gpio.Edge // default gpio.BothEdges
	// Debounce is how long the line must stay quiet after an edge (default 50ms).
	Debounce time.Duration
	// ActiveLow: the switch is active (door open, button pressed) when the pin reads
	// low. Otherwise it is active when the pin reads high.
	ActiveLow bool
	// Recheck is how often the level is read when no edge comes (default 1s).
	Recheck time.Duration
	// MaxBounces bounds the edges taken while debouncing (default 64).
	MaxBounces int
	// Count is told each fault (nil: not counted).
	Count func(reason string)
}

// Switch is one contact on one pin.
type Switch struct {
	pin    gpio.PinIn
	o      Opts
	active bool // the state last returned
}

// DefaultOpts are the documented defaults of a Switch: the one place they are
// written (a zero field of Opts takes its value here; internal/config's
// hub_sensors[].gpio defaults are these).
func DefaultOpts() Opts {
	return Opts{Pull: gpio.PullUp, Edge: gpio.BothEdges, Debounce: 50 * time.Millisecond, Recheck: time.Second, MaxBounces: 64}
}

// New configures pin as an input with the pull and edge detection of o and reads
// its state.
func New(pin gpio.PinIn, o *Opts) (*Switch, error) {
	s := &Switch{pin: pin}
	if o != nil {
		s.o = *o
	}
	d := DefaultOpts()
	if s.o.Pull == gpio.PullNoChange {
		s.o.Pull = d.Pull
	}
	if s.o.Edge == gpio.NoEdge {
		s.o.Edge = d.Edge
	}
	if s.o.Debounce <= 0 {
		s.o.Debounce = d.Debounce
	}
	if s.o.Recheck <= 0 {
		s.o.Recheck = d.Recheck
	}
	if s.o.MaxBounces <= 0 {
		s.o.MaxBounces = d.MaxBounces
	}
	if s.o.Count == nil {
		s.o.Count = func(string) {}
	}
	if err := pin.In(s.o.Pull, s.o.Edge); err != nil {
		return nil, fmt.Errorf("reed: %s: input with pull %s, edge %s: %w", pin, s.o.Pull, s.o.Edge, err)
	}
	s.active = s.level()
	return s, nil
}

// Active reports the state as last returned by New or Wait.
func (s *Switch) Active() bool { return s.active }

func (s *Switch) level() bool { return s.pin.Read() == gpio.High != s.o.ActiveLow }

// Wait blocks until the debounced state differs from the one last returned and
// returns the new one. It returns ctx's error when ctx ends; a pending WaitForEdge
// returns by Recheck at the latest (the caller may Halt the pin to end it sooner).
func (s *Switch) Wait(ctx context.Context) (bool, error) {
	for {
		if err := ctx.Err(); err != nil {
			return s.active, err
		}
		if !s.pin.WaitForEdge(s.o.Recheck) {
			if ctx.Err() != nil {
				continue
			}
			if l := s.level(); l != s.active {
				s.o.Count(FaultMissed)
				s.active = l
				return l, nil
			}
			continue
		}
		for n := 1; s.pin.WaitForEdge(s.o.Debounce); n++ {
			if n >= s.o.MaxBounces {
				s.o.Count(FaultChatter)
				break
			}
		}
		if l := s.level(); l != s.active {
			s.active = l
			return l, nil
		}
		s.o.Count(FaultGlitch)
	}
}
