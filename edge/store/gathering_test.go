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

// The window follows what a group costs: groups of a sector or two (the log's
// direct I/O) leave the budget room for more, shorter groups; groups of a page need
// a window near its bound. The window uses flashAim of the budget, never all of it.
func TestFlashWindowFollowsGroupCost(t *testing.T) {
	const budget = 1 << 30 // large enough that no window below reaches its bound
	window := func(groupBytes int64, dbPerSecond float64) time.Duration {
		now := time.Unix(1e9, 0)
		f := newFlash(budget, 1400*time.Millisecond, func() time.Time { return now })
		for range 1200 { // 20 minutes of ten readings a second, a group a second
			now = now.Add(time.Second)
			f.logged(10, groupBytes, 0)
			f.committed(int64(dbPerSecond), 0)
		}
		return f.window()
	}
	// By the arithmetic of flash.go: G = (0.9·B/86400 − d)/b groups a second allowed,
	// W = 1/G − 1/λ.
	want := func(b, d float64) time.Duration {
		d = max(d, dbPerReadingPrior*10) // no checkpoint measured: the prior per reading
		g := (flashAim*budget/86400 - d) / b
		return time.Duration((1/g - 0.1) * float64(time.Second))
	}
	near := func(got, want time.Duration) bool {
		return got > want-20*time.Millisecond && got < want+20*time.Millisecond
	}
	sector, page := window(1024, 0), window(4096, 0)
	if !near(sector, want(1024, 0)) || !near(page, want(4096, 0)) {
		t.Errorf("windows %s (groups of 1 KB) and %s (4 KB), want about %s and %s", sector, page, want(1024, 0), want(4096, 0))
	}
	if sector >= page/3 {
		t.Errorf("groups of 1 KB get a window of %s, groups of 4 KB %s: a quarter of the cost should allow about a quarter of the wait", sector, page)
	}
	// The database's checkpoints take their share of the budget first.
	if withDB := window(1024, 3000); !near(withDB, want(1024, 3000)) || withDB <= sector {
		t.Errorf("with the database writing 3000 B/s the window is %s, want about %s (longer than %s)", withDB, want(1024, 3000), sector)
	}
}

// Before the first checkpoint the database's rate reads as 0; the window counts what
// the readings arriving will cost it (dbPerReadingPrior, then what the last large
// checkpoint wrote per reading), so ten readings a second do not spend the budget on
// the log before the database's share shows.
func TestFlashWindowCountsTheNextCheckpoint(t *testing.T) {
	now := time.Unix(1e9, 0)
	const maxWindow = 1400 * time.Millisecond
	f := newFlash(256<<20, maxWindow, func() time.Time { return now })
	for range 120 { // two minutes of ten readings a second, groups of 1 KB, no checkpoint
		now = now.Add(time.Second)
		f.logged(10, 1024, 0)
	}
	if w := f.window(); w != maxWindow {
		t.Errorf("before any checkpoint, ten readings a second get a window of %s, want the longest (%s): the database's share of the budget is not counted", w, maxWindow)
	}
	// A checkpoint of 3,000 readings that wrote 20 B each: the readings cost the
	// database less than the prior said, and the log may have more of the budget.
	f.committed(60_000, 3000)
	for range 120 {
		now = now.Add(time.Second)
		f.logged(10, 1024, 0)
	}
	if w := f.window(); w <= 0 || w >= maxWindow {
		t.Errorf("after a checkpoint of 20 B a reading the window is %s, want one shorter than the longest (%s)", w, maxWindow)
	}
}
