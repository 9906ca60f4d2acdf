package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/internal/supervise"
)

// The release-pages stage releases the store's mapped pages at its first step and
// then only once the shared resident set has grown by releaseGrowth from where the
// last release left it (or from the lowest it fell to since); when the size is
// unknown it releases at every step, as it always did.
func TestPageReleaserOnlyOnGrowth(t *testing.T) {
	releases := 0
	rss := int64(10 << 20)
	known := true
	r := &pageReleaser{release: func() error { releases++; rss -= 512 << 10; return nil },
		shared: func() (int64, bool) { return rss, known }}
	step := func(want int, why string) {
		t.Helper()
		if err := r.step(context.Background()); err != nil {
			t.Fatal(err)
		}
		if releases != want {
			t.Fatalf("%s: %d releases, want %d", why, releases, want)
		}
	}
	step(1, "the first step")
	step(1, "no growth")
	rss += releaseGrowth - 1
	step(1, "growth short of releaseGrowth")
	rss++
	step(2, "growth of releaseGrowth")
	rss -= 4 << 20 // reclaimed by the kernel
	step(2, "a fall")
	rss += releaseGrowth
	step(3, "growth of releaseGrowth from the lowest since")
	known = false
	step(4, "size unknown")
	step(5, "size unknown, again")
}

// The stage looks in the wake-up that touched the store, never on a timer of its own
// while touches come at least releaseGap apart; a touch sooner is looked at on the
// first touch releaseGap after the last look, or after releaseLate when none comes.
func TestPageReleaserLooksWhenTouched(t *testing.T) {
	touched := make(chan struct{}) // unbuffered: a send returns once the stage has it
	var clock atomic.Int64         // the hand-driven time, in ms
	clocked := make(chan struct{}, 100)
	afters := make(chan chan time.Time, 10)
	looked := make(chan struct{}, 10)
	r := &pageReleaser{release: func() error { looked <- struct{}{}; return nil }, shared: func() (int64, bool) { return 0, false },
		now: func() time.Time { clocked <- struct{}{}; return time.UnixMilli(clock.Load()) },
		after: func(d time.Duration) <-chan time.Time {
			if d != releaseLate {
				t.Errorf("waits %s, want %s", d, releaseLate)
			}
			c := make(chan time.Time, 1)
			afters <- c
			return c
		}}
	ctx, cancel := context.WithCancel(context.Background())
	g := supervise.New(ctx, "test", nil)
	g.Go("release-pages", func(ctx context.Context, rep *supervise.Reporter) error { return r.run(ctx, touched, rep) })
	defer g.Stop()
	defer cancel()
	drain := func() {
		for len(clocked) > 0 {
			<-clocked
		}
	}
	touch := func(ms int64) { clock.Store(ms); touched <- struct{}{} }
	look := func(why string) {
		t.Helper()
		<-looked
		drain() // every clock reading of this touch came before the look
		if len(afters) != 0 {
			t.Fatalf("%s: looked, and waited on a timer too", why)
		}
	}
	notYet := func(why string) {
		t.Helper()
		<-clocked // the stage read the clock for this touch ...
		if len(looked) != 0 {
			t.Fatalf("%s: looked %d times, want none", why, len(looked))
		}
	}

	// Touches releaseGap apart or more: each is looked at at once, and no timer waits.
	for i, ms := range []int64{1000, 1250, 2000, 9000} {
		touch(ms)
		look(fmt.Sprintf("touch %d at %d ms", i, ms))
	}
	// A touch 100 ms after the last look waits, on a timer of releaseLate ...
	touch(9100)
	late := <-afters
	notYet("a touch 100 ms after the last look")
	drain()
	// ... a touch 200 ms after it still waits, and no second timer is made ...
	touch(9200)
	notYet("a touch 200 ms after the last look")
	// ... and the first touch releaseGap after the last look is looked at: the timer is
	// not waited out.
	touch(9250)
	look("the first touch releaseGap after the last look")

	// With no touch after it, a touch sooner than releaseGap is looked at when the
	// timer ends.
	touch(9300)
	late = <-afters
	notYet("a touch 50 ms after the last look")
	late <- time.Now()
	look("the timer of releaseLate after an early touch")
	if len(afters) != 0 || len(looked) != 0 {
		t.Fatalf("%d more timers and %d more looks than expected", len(afters), len(looked))
	}
}
