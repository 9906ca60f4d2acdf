package main

import (
	"context"
	"testing"
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
