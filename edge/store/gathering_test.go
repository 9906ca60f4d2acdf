package store

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A group whose readings stop coming closes after stallGap times the time between
// them, not at the window's end: a sender that waits for its acknowledgements gets
// them (the window would have cut its throughput to what it keeps in flight).
func TestGatheringClosesWhenReadingsStop(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	const window = 1400 * time.Millisecond
	g := newGathering(t0, 1, window, time.Second) // the long-run rate: one a second
	if got := g.closeAt().Sub(t0); got != window {
		t.Fatalf("a lone reading at one a second closes after %s, want the window %s", got, window)
	}
	// A broker sends its 20 in-flight messages within 2 ms, then waits (its stream
	// has run at a thousand a second).
	g = newGathering(t0, 1, window, time.Millisecond)
	for i := 1; i < 20; i++ {
		g.arrived(t0.Add(time.Duration(i)*100*time.Microsecond), 1)
	}
	if got := g.closeAt().Sub(t0); got > 10*time.Millisecond {
		t.Errorf("20 readings in 1.9 ms, then none: the group closes %s after it opened, want within 10 ms", got)
	}
	// Pacing (negative interval) holds its deadline.
	p := newGathering(t0, 1, 5*time.Millisecond, -1)
	p.arrived(t0, 1)
	if got := p.closeAt().Sub(t0); got != 5*time.Millisecond {
		t.Errorf("a paced group closes after %s, want its 5ms", got)
	}
}

// At household rates — readings at random phases, ten a second — the window holds:
// almost no group closes early, so the budget's arithmetic (flash.go) stands.
func TestGatheringHoldsTheWindowAtHouseholdRates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const (
		lambda = 10.0 // readings a second
		window = 1400 * time.Millisecond
		groups = 2000
	)
	next := func() time.Duration { return time.Duration(rng.ExpFloat64() / lambda * float64(time.Second)) }
	now, early := time.Unix(1e9, 0), 0
	var c cycle // as the writer does: the recent rate from the last group
	for range groups {
		g := newGathering(now, 1, window, c.interval(now, time.Duration(float64(time.Second)/lambda)))
		c = c.next(now, 1)
		for {
			at := now.Add(next())
			if !at.Before(g.closeAt()) {
				if g.closeAt().Before(g.deadline) {
					early++
				}
				now = at
				break
			}
			now = at
			g.arrived(now, 1)
			c.n++
		}
	}
	if early > groups/50 {
		t.Errorf("%d of %d groups closed before the window at ten readings a second; want at most 2%%", early, groups)
	}
	t.Logf("%d of %d groups closed early", early, groups)
}
