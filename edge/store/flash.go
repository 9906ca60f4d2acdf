package store

import (
	"math"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/edge/store/wal"
)

// The flash budget.
//
// Every group commit costs the hub's flash at least a block of the log, whatever
// it holds: a 512-byte sector where the file system offers direct I/O, else a 4 KB
// page (wal.Options.BlockSize); the database's commits behind the log cost what
// they change. So at household rates — readings arriving alone, at random
// phases — the bytes written per day are set by how many groups the writer makes,
// not by how many readings there are. The writer holds the bytes it projects per
// day within Options.FlashBudget by widening its group-commit window: the longest
// a reading waits for others to share its page. A burst does not wait: a group is
// committed as soon as its readings fill a page (and whatever arrives during that
// commit forms the next group), so a backlog replays at full speed.
//
// The window is chosen from what the store measures: the rate readings arrive at
// (λ, per second), the bytes each group writes to the log (b, at least a block), and
// the bytes per second the database's commits write (d: their recent rate, or the
// readings' rate times what the last large checkpoint wrote per reading, whichever
// is more). A window W makes about
// λ/(1+λW) groups per second (each group takes the reading that opens it and those
// arriving within W), so the log writes λb/(1+λW) bytes a second; the budget B
// (bytes a day), less headroom (flashAim), allows B/(2·86400) − d of them, hence
//
//	W = 1/G − 1/λ,  G = (B/(2·86400) − d) / b   (groups a second the budget allows)
//
// clamped to [0, MaxDelay]. A lone reading now and then gets W = 0 (it is
// committed at once: the budget has room for it); five a second get about 0.3 s at
// 256 MiB a day with sector blocks (groups of a few readings cost a sector or two),
// ten a second the longest window. When even MaxDelay cannot hold the budget, the
// writer uses MaxDelay, and the projection (Flash) shows the budget exceeded.
//
// What is counted is what the store writes (the log's pages and headers, the zero
// fill of new segments, the database's pages: bbolt's allocated pages and meta page
// per commit), not what the file system adds (its journal, on ext4 about a block
// every 5 s that a file changed: mount the data partition with lazytime to spare
// it) nor what the flash's controller does underneath. docs/performance.md compares
// it with the kernel's and the device's counters.

// flashAim is the share of the budget the window is chosen to use. The rest is
// headroom for what the projection cannot see in time: the database's first
// checkpoint after a quiet start (its rate is 0 until then), a backlog replayed after
// days offline, the file system's own writes. It also keeps commits few: each costs
// a write, an fdatasync and a wake-up of every waiting sender (about 0.6 ms of CPU
// in one run on the dev machine), so spending the whole budget on shorter waits would cost
// the hub CPU for acknowledgements nobody is waiting on (bench-flash at 10 readings
// a second: aiming at 90% gave 2.1 readings a commit, p99 0.54 s and 1.10% of a core;
// at half, 12 a commit, p99 1.3 s and 0.84%).
const flashAim = 0.5

// flashHalfLife is how fast the measured rates forget: the projection follows a
// change of load within minutes, and one checkpoint does not swing it.
const flashHalfLife = 2 * time.Minute

// FlashStats is the store's account of what it writes to its disk.
type FlashStats struct {
	// BudgetBytesPerDay is store.flash_budget (0: off).
	BudgetBytesPerDay int64 `json:"budget_bytes_per_day"`
	// WrittenToday is the bytes the store has written since local midnight (the log
	// and the database), WrittenTotal since it opened.
	WrittenToday int64 `json:"written_today_bytes"`
	WrittenTotal int64 `json:"written_total_bytes"`
	// LogBytes and DBBytes split WrittenTotal.
	LogBytes int64 `json:"log_bytes"`
	DBBytes  int64 `json:"db_bytes"`
	// ProjectedPerDay is the recent rate of writing (half-life 2 min), per day.
	ProjectedPerDay int64 `json:"projected_bytes_per_day"`
	// Window is the current group-commit window; MaxWindow its bound (store.max_delay).
	Window    time.Duration `json:"window"`
	MaxWindow time.Duration `json:"max_window"`
	// ReadingsPerSecond is the recent rate of readings to log; BytesPerGroup what a
	// group commit writes to the log, on average.
	ReadingsPerSecond float64 `json:"readings_per_second"`
	BytesPerGroup     float64 `json:"bytes_per_group"`
	// OverBudget: even the longest window cannot hold the budget at this load.
	OverBudget bool `json:"over_budget"`
}

// flash measures the store's writes and chooses the writer's window.
type flash struct {
	mu        sync.Mutex
	budget    int64
	maxWindow time.Duration
	now       func() time.Time

	start      time.Time
	day        time.Time // local midnight of the current day
	today      int64
	logBytes   int64
	dbBytes    int64
	last       time.Time // when the decayed sums were last brought up to date
	perReading float64   // the database's bytes per reading at the last checkpoint of many
	bytesRate  decayed   // all bytes written
	dbRate     decayed   // the database's
	readings   decayed   // readings logged
	groups     decayed   // groups logged
	groupB     decayed   // their bytes
}

// decayed is a sum whose past halves every flashHalfLife, with the time it covers,
// decayed the same way: sum/weight is a recent rate per second.
type decayed struct{ sum, weight float64 }

// flashPrior is the quiet time the rates start from: the first readings after Open
// do not read as a high rate (and a long window) before there is any history.
const flashPrior = 10 * time.Second

func newFlash(budget int64, maxWindow time.Duration, now func() time.Time) *flash {
	t := now()
	f := &flash{budget: budget, maxWindow: maxWindow, now: now, start: t, last: t, day: midnight(t),
		perReading: dbPerReadingPrior}
	for _, d := range []*decayed{&f.bytesRate, &f.dbRate, &f.readings, &f.groups, &f.groupB} {
		d.weight = flashPrior.Seconds()
	}
	return f
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// advance decays the sums to now. f.mu is held.
func (f *flash) advance(now time.Time) {
	if d := midnight(now); !d.Equal(f.day) {
		f.day, f.today = d, 0
	}
	dt := now.Sub(f.last).Seconds()
	if dt <= 0 {
		return
	}
	k := math.Exp2(-dt / flashHalfLife.Seconds())
	// The weight grows by the time elapsed, decayed over it: ∫ 2^(-s/h) ds.
	w := (1 - k) * flashHalfLife.Seconds() / math.Ln2
	for _, d := range []*decayed{&f.bytesRate, &f.dbRate, &f.readings, &f.groups, &f.groupB} {
		d.sum *= k
		d.weight = d.weight*k + w
	}
	f.last = now
}

func (d decayed) rate() float64 {
	if d.weight <= 0 {
		return 0
	}
	return d.sum / d.weight
}

// logged records a group commit of readings that wrote records of recordBytes to
// the log, and other bytes besides (a new segment's header and zero fill: counted,
// but not as the cost of a group, which the window is chosen from).
func (f *flash) logged(readings int, recordBytes, other int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance(f.now())
	bytes := recordBytes + other
	f.today += bytes
	f.logBytes += bytes
	f.bytesRate.sum += float64(bytes)
	f.readings.sum += float64(readings)
	f.groups.sum++
	f.groupB.sum += float64(recordBytes)
}

// other records bytes the log wrote outside any group (a segment made ready at Open).
func (f *flash) other(bytes int64) {
	if bytes <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance(f.now())
	f.today += bytes
	f.logBytes += bytes
	f.bytesRate.sum += float64(bytes)
}

// dbPerReadingPrior is what the database is taken to write per reading before a
// checkpoint has measured it (flash.perReading): an event in the events bucket with
// its key and bbolt's element header, pages packed full, and a share of the
// rollups' records (122 B measured at ten readings a second, docs/performance.md).
const dbPerReadingPrior = 128

// minMeasuredEvents is the fewest events a checkpoint must hold for its bytes per
// event to replace the estimate: a checkpoint of a few events is mostly the rollups'
// records, whatever the rate.
const minMeasuredEvents = 100

// committed records a commit of the database that wrote bytes, holding events
// readings (0 for a commit of other records).
func (f *flash) committed(bytes int64, events int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if events >= minMeasuredEvents {
		f.perReading = float64(bytes) / float64(events)
	}
	f.advance(f.now())
	f.today += bytes
	f.dbBytes += bytes
	f.bytesRate.sum += float64(bytes)
	f.dbRate.sum += float64(bytes)
}

// window is how long the writer may wait, after a reading opens a group, for more
// to share its commit (see the comment at the top of this file).
func (f *flash) window() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, _ := f.windowLocked()
	return w
}

func (f *flash) windowLocked() (time.Duration, bool) {
	if f.budget <= 0 || f.maxWindow <= 0 { // budget off: a fixed window (store.max_delay)
		return f.maxWindow, false
	}
	f.advance(f.now())
	lambda := f.readings.rate()
	if lambda <= 0 {
		return 0, false
	}
	perGroup := max(f.groupB.sum/max(f.groups.sum, 1e-9), wal.MinBlockSize)
	// The database's share: its recent rate, or what the readings now arriving will
	// cost at the next checkpoint, whichever is more (between checkpoints, and before
	// the first, the rate alone reads as 0).
	db := max(f.dbRate.rate(), f.perReading*lambda)
	allow := flashAim*float64(f.budget)/86400 - db
	if allow <= 0 {
		return f.maxWindow, true
	}
	g := allow / perGroup
	w := 1/g - 1/lambda
	if w <= 0 {
		return 0, false
	}
	if d := time.Duration(w * float64(time.Second)); d < f.maxWindow {
		return d, false
	}
	return f.maxWindow, true
}

// interval is the recent time between readings (the inverse of their rate; an hour
// when none came).
func (f *flash) interval() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance(f.now())
	if l := f.readings.rate(); l > 1.0/3600 {
		return time.Duration(float64(time.Second) / l)
	}
	return time.Hour
}

// stats is the account for Flash.
func (f *flash) stats() FlashStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, over := f.windowLocked()
	f.advance(f.now())
	perGroup := 0.0
	if f.groups.sum > 0 {
		perGroup = f.groupB.sum / f.groups.sum
	}
	return FlashStats{BudgetBytesPerDay: f.budget, WrittenToday: f.today, WrittenTotal: f.logBytes + f.dbBytes,
		LogBytes: f.logBytes, DBBytes: f.dbBytes, ProjectedPerDay: int64(f.bytesRate.rate() * 86400),
		Window: w, MaxWindow: f.maxWindow, ReadingsPerSecond: f.readings.rate(), BytesPerGroup: perGroup,
		OverBudget: over && f.budget > 0 && f.bytesRate.rate()*86400 > float64(f.budget)}
}

// Flash is the store's account of its writes to disk and of the flash budget.
func (s *Store) Flash() FlashStats { return s.flash.stats() }
