package store

import "time"

// DefaultOptions are the documented defaults of a store: the one place they are
// written (internal/config's store.* defaults are these). A zero field of Options
// passed to Open takes its value here, except where zero is a setting of its own:
// FlashBudget 0 (off), MaxDelay 0 (commit as soon as the previous commit is done, or
// the budget's 1.4 s) and CommitPace 0 (no pacing) — DefaultOptions holds the flash
// budget of 256 MiB a day and paces small commits at 5 ms with it off, as the agent runs.
func DefaultOptions() Options {
	return Options{MaxBatch: 2000, QueueLen: 20000, QuotaBytes: 64 << 20, MaxAge: 30 * 24 * time.Hour,
		CommitPace: 5 * time.Millisecond, LockTimeout: time.Second, FlashBudget: DefaultFlashBudget}
}
