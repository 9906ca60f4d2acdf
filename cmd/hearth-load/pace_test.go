package main

import (
	"slices"
	"testing"
	"time"
)

// The household load of bench-flash: 30 devices, a reading every 3 s each.
var household = pacing{rate: 0.3333, jitter: 0.2, seed: 1}

func TestScheduleUnpacedIsNil(t *testing.T) {
	if s := (pacing{jitter: 0.2, seed: 1}).schedule(0, 10); s != nil {
		t.Fatalf("unpaced load has a schedule: %v", s)
	}
}

// Each publisher starts within its first period, and each gap between two sends is one
// period moved by at most twice the jitter.
func TestSchedulePhaseAndJitter(t *testing.T) {
	period := time.Duration(float64(time.Second) / household.rate)
	slack := time.Duration(household.jitter * float64(period))
	for pub := range 30 {
		s := household.schedule(pub, 40)
		if len(s) != 40 {
			t.Fatalf("publisher %d: %d sends, want 40", pub, len(s))
		}
		if s[0] < 0 || s[0] >= period+slack {
			t.Errorf("publisher %d: first send at %s, want within [0, %s)", pub, s[0], period+slack)
		}
		for i := 1; i < len(s); i++ {
			if gap := s[i] - s[i-1]; gap < period-2*slack-time.Microsecond || gap > period+2*slack+time.Microsecond {
				t.Errorf("publisher %d: gap %d→%d is %s, want %s ± %s", pub, i-1, i, gap, period, 2*slack)
			}
		}
	}
}

// Phases are spread over the period, not all at the same instant (the old -rate sent
// every publisher's message i at start + i/rate).
func TestSchedulePhasesSpread(t *testing.T) {
	period := time.Duration(float64(time.Second) / household.rate)
	var firsts []time.Duration
	for pub := range 30 {
		firsts = append(firsts, household.schedule(pub, 1)[0])
	}
	slices.Sort(firsts)
	if spread := firsts[len(firsts)-1] - firsts[0]; spread < period/2 {
		t.Fatalf("30 publishers' first sends span %s of a %s period: phases not spread (%v)", spread, period, firsts)
	}
	if distinct := len(slices.Compact(firsts)); distinct != 30 {
		t.Fatalf("%d distinct first sends of 30", distinct)
	}
}

// Even a jitter as wide as the period never sends a publisher's messages out of order.
func TestScheduleNeverOutOfOrder(t *testing.T) {
	wide := pacing{rate: 10, jitter: 1, seed: 7}
	for pub := range 50 {
		s := wide.schedule(pub, 200)
		if !slices.IsSorted(s) {
			t.Fatalf("publisher %d: sends out of order: %v", pub, s)
		}
		if s[0] < 0 {
			t.Fatalf("publisher %d: first send before the start: %s", pub, s[0])
		}
	}
}

func TestScheduleReproducible(t *testing.T) {
	a, b := household.schedule(3, 40), household.schedule(3, 40)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	other := household
	other.seed = 2
	if slices.Equal(a, other.schedule(3, 40)) {
		t.Fatal("seeds 1 and 2 gave the same schedule")
	}
	if slices.Equal(a, household.schedule(4, 40)) {
		t.Fatal("publishers 3 and 4 have the same schedule")
	}
}
