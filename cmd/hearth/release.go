package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"time"

	"github.com/hearth-iot/hearth/internal/supervise"
)

// The release-pages stage. The store's mapped pages are dropped from the resident
// set (store.ReleaseMapped) so that pages its readers touched do not stay in RSS
// for the life of the process. Each release is a madvise over the whole mapping —
// a TLB shoot-down on every CPU running the process — and the pages in use are
// faulted in again right after: at a household's ten readings a second, releasing
// every 250 ms was a sixth of the agent's CPU (a 80 s profile of bench-flash's
// load: 80 of 460 ms) for pages that were back within milliseconds. So the stage
// looks every 250 ms at the process's file-backed resident set (/proc/self/statm,
// one read) and releases only once it has grown by
// releaseGrowth since the last release: RSS stays within that of where a release
// leaves it, as before within what 250 ms of reading touched. And it looks only
// after the store was touched (store.Touched: a transaction, the applier, a
// commit) since its last look: an idle hub is not woken four times a second.

// releaseGrowth is the growth of the shared resident set that triggers a release.
const releaseGrowth = 1 << 20

// releaseTick is the time from the store being touched to the next look.
const releaseTick = 250 * time.Millisecond

// pageReleaser is the release-pages stage.
type pageReleaser struct {
	after   func(time.Duration) <-chan time.Time // time.After (tests: a hand-driven clock)
	release func() error                         // store.ReleaseMapped
	shared  func() (int64, bool)                 // shared resident bytes of the process; false: unknown (release every step)
	base    int64                                // shared resident bytes after the last release (the lowest since)
	done    bool                                 // a release has been made
}

func newPageReleaser(release func() error) *pageReleaser {
	return &pageReleaser{release: release, shared: statmShared(), after: time.After}
}

// run is the release-pages stage: once touched says the store was used since the
// last look, it waits releaseTick and looks (step); while nothing touches the store,
// it sleeps.
func (r *pageReleaser) run(ctx context.Context, touched <-chan struct{}, rep *supervise.Reporter) error {
	rep.OK()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-touched:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.after(releaseTick):
		}
		if err := r.step(ctx); err != nil {
			rep.Fail(err)
		} else {
			rep.OK()
		}
	}
}

func (r *pageReleaser) step(context.Context) error {
	n, ok := r.shared()
	if ok && r.done {
		if n < r.base {
			r.base = n // the kernel reclaimed pages: measure growth from here
		}
		if n-r.base < releaseGrowth {
			return nil
		}
	}
	if err := r.release(); err != nil {
		return err
	}
	r.done = true
	if n, ok := r.shared(); ok {
		r.base = n
	}
	return nil
}

// statmShared returns a reader of the process's shared (file-backed and shmem)
// resident bytes from /proc/self/statm (its third field, in pages); where there is
// no such file it always says unknown.
func statmShared() func() (int64, bool) {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return func() (int64, bool) { return 0, false }
	}
	page := int64(os.Getpagesize())
	buf := make([]byte, 128)
	return func() (int64, bool) {
		n, err := f.ReadAt(buf, 0)
		if n == 0 && err != nil {
			return 0, false
		}
		fields := bytes.Fields(buf[:n])
		if len(fields) < 3 {
			return 0, false
		}
		pages, err := strconv.ParseInt(string(fields[2]), 10, 64)
		if err != nil {
			return 0, false
		}
		return pages * page, true
	}
}
