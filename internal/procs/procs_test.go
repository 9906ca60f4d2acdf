package procs

import (
	"slices"
	"testing"
	"time"
)

// rig is a Governor on a hand-driven GOMAXPROCS of four CPUs, fed commits on a
// hand-driven clock.
type rig struct {
	t    *testing.T
	g    *Governor
	sets []int // every GOMAXPROCS(n) with n > 0
	now  time.Time
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	cur := 4
	r.g = newGovernor(DefaultOptions(), func(n int) int {
		prev := cur
		if n > 0 {
			cur = n
			r.sets = append(r.sets, n)
		}
		return prev
	})
	if r.g == nil {
		t.Fatal("no governor on four CPUs with the default options")
	}
	return r
}

// commits feeds count groups of n readings, every gap.
func (r *rig) commits(count, n int, gap time.Duration) {
	for range count {
		r.now = r.now.Add(gap)
		r.g.Observe(r.now, n)
	}
}

func (r *rig) want(why string, procs int, sets ...int) {
	r.t.Helper()
	if got := r.g.Procs(); got != procs {
		r.t.Fatalf("%s: %d procs, want %d", why, got, procs)
	}
	if !slices.Equal(r.sets, sets) {
		r.t.Fatalf("%s: GOMAXPROCS set to %v, want %v", why, r.sets, sets)
	}
}

func TestHouseholdRatesRunOnOneProc(t *testing.T) {
	r := newRig(t)
	r.want("at start", 1, 1)
	r.commits(600, 10, time.Second) // ten readings a second, for ten minutes
	r.want("at a household's rate", 1, 1)
	// A group of 200 at once (devices reconnecting) after a second is 200 a second: no burst.
	r.commits(1, 200, time.Second)
	r.want("a reconnect", 1, 1)
}

func TestABurstTakesEveryProcAndTheQuietGivesThemBack(t *testing.T) {
	r := newRig(t)
	r.commits(10, 10, time.Second)
	// A burst: groups of 65 readings every millisecond (65,000 a second).
	r.commits(9, 65, time.Millisecond)
	r.want("under minWindow into the burst", 1, 1)
	r.commits(2, 65, time.Millisecond)
	r.want("minWindow into the burst", 4, 1, 4)
	r.commits(1000, 65, time.Millisecond)
	r.want("through the burst", 4, 1, 4)
	// Between a quarter of BurstRate and BurstRate (500 a second): kept.
	r.commits(30, 50, 100*time.Millisecond)
	r.want("at half the burst rate", 4, 1, 4)
	// Back at a household's rate: one P once it has been low for Hold.
	r.commits(9, 10, time.Second)
	r.want("low for 9s", 4, 1, 4)
	r.commits(1, 10, time.Second)
	r.want("low for Hold", 1, 1, 4, 1)
	// A burst after a quiet spell with no commits at all.
	r.commits(1, 1, time.Hour)
	r.commits(20, 65, time.Millisecond)
	r.want("a second burst", 4, 1, 4, 1, 4)
	// Silence, then one reading: the whole silence counts as low.
	r.commits(1, 1, time.Minute)
	r.want("one reading after a silent minute", 1, 1, 4, 1, 4, 1)
	r.g.Close()
	r.want("closed", 4, 1, 4, 1, 4, 1, 4)
}

func TestNothingToGovern(t *testing.T) {
	set := func(cpus int) func(int) int {
		return func(n int) int {
			if n > 0 {
				t.Errorf("GOMAXPROCS set to %d", n)
			}
			return cpus
		}
	}
	if g := newGovernor(Options{BurstRate: 0, Hold: time.Second}, set(4)); g != nil {
		t.Error("a governor with BurstRate 0")
	}
	if g := newGovernor(DefaultOptions(), set(1)); g != nil {
		t.Error("a governor on one CPU")
	}
	t.Setenv("GOMAXPROCS", "2")
	if g := New(DefaultOptions()); g != nil {
		t.Error("a governor with GOMAXPROCS set in the environment")
	}
	var g *Governor
	g.Observe(time.Now(), 1000)
	g.Close()
	if g.Procs() != 0 {
		t.Error("a nil governor has procs")
	}
}
