package main

import (
	"context"
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

// The stage looks only after the store was touched since its last look: each touch
// is one wait of releaseTick and one look; with no touch it does not wake.
func TestPageReleaserSleepsUntilTouched(t *testing.T) {
	touched := make(chan struct{}, 1)
	waits := make(chan chan time.Time, 10)
	looked := make(chan struct{}, 10)
	r := &pageReleaser{release: func() error { looked <- struct{}{}; return nil }, shared: func() (int64, bool) { return 0, false },
		after: func(d time.Duration) <-chan time.Time {
			if d != releaseTick {
				t.Errorf("waits %s, want %s", d, releaseTick)
			}
			c := make(chan time.Time, 1)
			waits <- c
			return c
		}}
	ctx, cancel := context.WithCancel(context.Background())
	g := supervise.New(ctx, "test", nil)
	g.Go("release-pages", func(ctx context.Context, rep *supervise.Reporter) error { return r.run(ctx, touched, rep) })
	defer g.Stop()
	defer cancel()
	for i := range 3 {
		touched <- struct{}{}
		w := <-waits // it waits releaseTick after the touch ...
		if len(looked) != 0 {
			t.Fatalf("touch %d: looked before the wait was over", i)
		}
		w <- time.Now()
		<-looked // ... then looks
	}
	// Every wait came from a touch: three touches, three waits, three looks.
	if len(waits) != 0 || len(looked) != 0 {
		t.Fatalf("%d more waits and %d more looks than touches", len(waits), len(looked))
	}
}
