package store

import "time"

// DefaultOptions are the documented defaults of a store: the one place they are
// written (internal/config's store.* defaults are these). A zero field of Options
// passed to Open takes its value here, except where zero is a setting of its own:
// MaxDelay 0 (commit as soon as the previous commit is done) and CommitPace 0 (no
// pacing) — DefaultOptions paces small commits at 5 ms, as the agent runs.
func DefaultOptions() Options {
	return Options{MaxBatch: 2000, QueueLen: 20000, QuotaBytes: 64 << 20, MaxAge: 30 * 24 * time.Hour,
		CommitPace: 5 * time.Millisecond, LockTimeout: time.Second}
}
