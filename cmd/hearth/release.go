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
// looks at the process's file-backed resident set (/proc/self/statm, one read) and
// releases only once it has grown by releaseGrowth since the last release: RSS stays
// within that of where a release leaves it.
//
// It looks only after the store was touched (store.Touched: a transaction, the
// applier, a commit), and then at once, in the wake-up that touched the store: at
// a household's load a wake-up of its own costs more than the look (the Go runtime's
// scheduler and sysmon wake with it; two of them after each commit were a fifth of
// the process's context switches). Looks are at least releaseGap apart: a touch
// sooner is looked at on the first touch releaseGap after the last look, or after
// releaseLate if none comes — so an idle hub is never woken, a busy one only by the
// store, and the last touch before a quiet spell is looked at within releaseLate.

// releaseGrowth is the growth of the shared resident set that triggers a release.
const releaseGrowth = 1 << 20

// releaseGap is the least time between two looks.
const releaseGap = 250 * time.Millisecond

// releaseLate is the longest a touch waits to be looked at when no other touch
// follows it: long enough that at a household's load the next commit (every second
// or so) comes first.
const releaseLate = 5 * time.Second

// pageReleaser is the release-pages stage.
type pageReleaser struct {
	now     func() time.Time                     // time.Now (tests: a hand-driven clock)
	after   func(time.Duration) <-chan time.Time // time.After (tests: a hand-driven clock)
	release func() error                         // store.ReleaseMapped
	shared  func() (int64, bool)                 // shared resident bytes of the process; false: unknown (release every step)
	base    int64                                // shared resident bytes after the last release (the lowest since)
	done    bool                                 // a release has been made
	looked  time.Time                            // the last look
}

func newPageReleaser(release func() error) *pageReleaser {
	return &pageReleaser{release: release, shared: statmShared(), now: time.Now, after: time.After}
}

// run is the release-pages stage: it looks (step) on a touch at least releaseGap
// after its last look; a touch sooner is looked at on the first touch after that,
// or releaseLate after it came. While nothing touches the store, it sleeps.
func (r *pageReleaser) run(ctx context.Context, touched <-chan struct{}, rep *supervise.Reporter) error {
	rep.OK()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-touched:
		}
		if due := r.looked.Add(releaseGap); r.now().Before(due) {
			late := r.after(releaseLate)
		wait:
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-late:
					break wait
				case <-touched:
					if !r.now().Before(due) {
						break wait
					}
				}
			}
		}
		r.looked = r.now()
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
