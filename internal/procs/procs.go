// Package procs chooses how many threads run Go code at once (GOMAXPROCS) from the
// rate of readings the store commits: one while readings come at a household's rates,
// every CPU the runtime would give the process during a burst.
//
// At ten readings a second each reading wakes the process on its own. With a second
// P idle, every goroutine made ready in that wake-up (the store's writer, an ack
// writer) starts a second thread that spins looking for work, finds none and sleeps
// again: context switches that cost more than the work on a virtualised or small
// CPU. On one P the same work ran with a fifth fewer context switches and a fifth
// less CPU (docs/performance.md). A burst — a backlog replayed, a hundred thousand
// readings a second — needs every CPU: on one P it ran at 0.78× the throughput.
//
// The Governor sees each commit (Observe), keeps the rate over windows of at least
// minWindow, and sets GOMAXPROCS to the maximum as soon as a window reaches
// BurstRate, back to one once the rate has stayed below a quarter of it for Hold.
// It needs no timer or goroutine of its own: a process that stays quiet keeps what
// it has until the next commit.
package procs

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// Options tune the Governor.
type Options struct {
	// BurstRate is the rate of readings (a second) from which the process runs on
	// every CPU; below a quarter of it for Hold, on one. 0 or negative: off, the
	// runtime's default throughout.
	BurstRate int
	// Hold is how long the rate stays low before the process goes back to one CPU.
	Hold time.Duration
}

// DefaultOptions are the agent's: 1,000 readings a second (a hundred times a
// household's rate, a hundredth of a burst's), held for 10 s.
func DefaultOptions() Options { return Options{BurstRate: 1000, Hold: 10 * time.Second} }

// minWindow is the shortest window a rate is taken over: a burst is seen within
// about this long (at a burst's rate, a few groups of the store's writer).
const minWindow = 10 * time.Millisecond

// Governor sets GOMAXPROCS from the rate of committed readings. Its methods are safe
// for concurrent use; a nil Governor does nothing.
type Governor struct {
	o   Options
	max int
	set func(int) int // runtime.GOMAXPROCS

	mu    sync.Mutex
	cur   int
	since time.Time // the start of the current window
	n     int       // readings in it
	quiet time.Time // since when the rate has been below BurstRate/4; zero: it is not
}

// New returns a Governor that has set the process to one P, or nil when there is
// nothing to govern: BurstRate off, a single CPU, or GOMAXPROCS set in the
// environment (the operator's choice, kept). The maximum is the runtime's default
// at this call; the runtime no longer follows a change of CPU limit after it.
func New(o Options) *Governor {
	if os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	return newGovernor(o, runtime.GOMAXPROCS)
}

func newGovernor(o Options, set func(int) int) *Governor {
	max := set(0)
	if o.BurstRate <= 0 || max <= 1 {
		return nil
	}
	set(1)
	return &Governor{o: o, max: max, set: set, cur: 1}
}

// Observe records n readings committed at now.
func (g *Governor) Observe(now time.Time, n int) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since.IsZero() {
		g.since, g.n = now, n
		return
	}
	g.n += n
	el := now.Sub(g.since)
	if el < minWindow {
		return
	}
	rate := float64(g.n) / el.Seconds()
	start := g.since
	g.since, g.n = now, 0
	burst := float64(g.o.BurstRate)
	switch {
	case rate >= burst:
		g.quiet = time.Time{}
		g.to(g.max)
	case rate < burst/4:
		if g.quiet.IsZero() {
			g.quiet = start
		}
		if now.Sub(g.quiet) >= g.o.Hold {
			g.to(1)
		}
	default:
		g.quiet = time.Time{}
	}
}

func (g *Governor) to(n int) {
	if g.cur != n {
		g.cur = n
		g.set(n)
	}
}

// Close gives the process back every CPU (the maximum), as before New: an agent
// built again in the same process (an erasure's restart) starts from the default.
func (g *Governor) Close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.to(g.max)
}

// Procs is the GOMAXPROCS the Governor set last (0 for a nil Governor: it sets none).
func (g *Governor) Procs() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}
