package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/wal"
)

// SchemaVersion is the layout version this code writes (FORMAT.md).
const SchemaVersion = 4

// magic marks a bbolt file as a hearth store.
const magic = "hearth-store"

// Bucket names (FORMAT.md documents each).
var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketDedupe   = []byte("dedupe")
	bucketDevices  = []byte("devices")
	bucketCursors  = []byte("cursors")
	keyMagic       = []byte("magic")
	keySchema      = []byte("schema")
	keyInstallID   = []byte("install_id")
	keySecret      = []byte("secret")
	keyCreated     = []byte("created")
	keyCorruptions = []byte("corruptions")
	// keyDerivedSeq: the devices and dedupe buckets hold the effect of every event up
	// to this sequence; Open replays the events after it. Written at creation (0) and
	// by the migration to schema 2 (the last event: schema ≤ 1 wrote the buckets at
	// every commit), so a file without it predates schema 2. Retention deletes no
	// event after it, so it is also the floor of the next sequence once every event
	// is deleted.
	keyDerivedSeq = []byte("derived_seq")
	// keyEvictedSeq (schema 4): retention has deleted every event at or below this
	// sequence. Written with its deletions, in the same commit; salvage never takes
	// back an event at or below it from a stale page.
	keyEvictedSeq = []byte("evicted_seq")
)

// Options tune a Store. The zero value of each field means its documented default.
type Options struct {
	// MaxBatch is the most readings in one group commit (default 2000).
	MaxBatch int
	// OnCommit, if set, is called by the writer after each group commit with the
	// time and the readings the group held (the agent's procs.Governor follows the
	// rate with it). It must return quickly: the next group waits for it.
	OnCommit func(now time.Time, readings int)
	// FlashBudget is the bytes a day the store may write to its disk (0, the
	// default, or negative: off). The writer holds to it by widening its
	// group-commit window, up to MaxDelay (flash.go). DefaultOptions holds
	// DefaultFlashBudget, as the agent runs.
	FlashBudget int64
	// MaxDelay is the longest a reading waits for others to share its group commit
	// (default 1.4s with a budget; with the budget off, 0: commit as soon as the previous commit
	// is done, readings that arrive during an fsync forming the next group). A group
	// whose readings fill a page of the log is committed at once, whatever the window.
	MaxDelay time.Duration
	// CommitPace: with the budget off, while groups are small (fewer than paceBelow
	// readings), the writer starts one at most this often and gathers what arrives
	// in between (default 0: no pacing).
	CommitPace time.Duration
	// CheckpointEvery is how often the database behind the log is committed
	// (default 5 minutes; sooner when the batch grows big, checkpoint.go). A crash
	// replays at most this much of the log.
	CheckpointEvery time.Duration
	// QueueLen bounds the readings waiting for the writer; Submit blocks beyond it
	// (default 20000).
	QueueLen int
	// QuotaBytes bounds the database: raw readings are evicted oldest first to stay
	// under it, and refused when that is not enough (default 64 MiB; minimum 1 MiB).
	// The write-ahead log beside it takes at most wal.Options.MaxSegments+Spares
	// segments (6 MiB with the defaults).
	QuotaBytes int64
	// MaxAge evicts raw readings older than this by hub time (default 30 days).
	MaxAge time.Duration
	// Protect names consumers (cursors) whose unprocessed readings retention must not
	// delete: eviction and expiry stop at the lowest of their cursors, and when that
	// is not enough new readings are refused (ErrQuota) rather than a stage losing
	// input. The agent protects the rollup consumer, so rollups are always whole.
	Protect []string
	// LockTimeout is how long Open waits for the file lock (default 1s).
	LockTimeout time.Duration
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the store's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the wall clock (default: Clock's Now).
	Now func() time.Time
	// Clock runs the writer's windows and the checkpoint interval (default the real
	// clock; tests pass a clockwork.FakeClock).
	Clock clockwork.Clock
	// FreeSpace returns the bytes available on the filesystem of dir (default:
	// statfs). Space compares it with what the next commits may need.
	FreeSpace func(dir string) (int64, error)
	// SkipCheck skips the check of every record at Open (bucketDefs: each key and
	// value the shape its bucket's owner writes). The page structure is checked
	// whatever it says: bbolt's Open and reads depend on it. The record check
	// costs about as much again (BenchmarkOpenCheck); skipped, a damaged record
	// surfaces later, at read time, as an error.
	SkipCheck bool

	// scratch: the file is salvage's new store, synced once when complete
	// (salvage.go); never the store in use, whose every commit is synced.
	scratch bool
	// logFS is the file system under the write-ahead log (default the operating
	// system's; the power-cut tests pass a waltest.PowerFS). logSegment is its
	// segment size (default wal's).
	logFS      wal.FS
	logSegment int64
	// afterCommit, when set, runs after each commit of the database, before the
	// log's segments it covers are released (the power-cut tests copy the file).
	afterCommit func()
}

// DefaultFlashBudget, 256 MiB a day, is store.flash_budget's default: a cheap 32 GB
// SD card rated for a few thousand writes of its cells lasts decades at it.
const DefaultFlashBudget = 256 << 20

// DefaultMaxDelay is store.max_delay's default with the flash budget on.
const DefaultMaxDelay = 1400 * time.Millisecond

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	d := DefaultOptions()
	if v.MaxBatch <= 0 {
		v.MaxBatch = d.MaxBatch
	}
	if v.QueueLen <= 0 {
		v.QueueLen = d.QueueLen
	}
	if v.QuotaBytes <= 0 {
		v.QuotaBytes = d.QuotaBytes
	}
	if v.QuotaBytes < 1<<20 {
		v.QuotaBytes = 1 << 20
	}
	if v.MaxAge <= 0 {
		v.MaxAge = d.MaxAge
	}
	if v.LockTimeout <= 0 {
		v.LockTimeout = d.LockTimeout
	}
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	if v.Clock == nil {
		v.Clock = clockwork.NewRealClock()
	}
	if v.Now == nil {
		v.Now = v.Clock.Now
	}
	if v.FlashBudget < 0 {
		v.FlashBudget = 0
	} else if v.FlashBudget > 0 && v.MaxDelay == 0 {
		v.MaxDelay = DefaultMaxDelay
	}
	if v.CheckpointEvery <= 0 {
		v.CheckpointEvery = defaultCheckpointEvery
	}
	return v
}

// Store is hearth's durable state: the event log and everything derived from it.
// It is safe for concurrent use. Readings are written by one writer goroutine that
// group-commits what callers Submit to the write-ahead log (writer.go); the
// database behind it is written in batches by the applier (checkpoint.go), and
// everything else goes through View and Update, which run in that batch.
type Store struct {
	db        *bolt.DB // guarded by bmu
	path      string
	wal       *wal.Log
	compactCh chan compactReq
	ckptCh    chan ckptReq  // commit requests to the applier (checkpointNow)
	updated   chan struct{} // an Update wrote the batch (the applier arms its timer)

	opts  Options
	log   *slog.Logger
	m     *metrics
	clock clockwork.Clock
	flash *flash

	installID   string
	secret      []byte
	corruptions uint64 // meta "corruptions" as loaded at Open
	started     time.Time

	queue       chan *request
	pending     atomic.Int64 // readings queued, not yet logged
	stop        chan struct{}
	done        chan struct{} // the writer has stopped
	applyCh     chan *group   // logged groups, to the applier
	applierDone chan struct{}

	mu      sync.RWMutex // guards closed and failed
	closeMu sync.RWMutex // held shared by Submit from its check to its enqueue; guards closing
	closing bool
	closed  bool
	failed  error // set once when intake stops
	// Room in the database (checkpoint.go, room): what is left under the quota once
	// the batch is committed, as the applier last measured it, and what the writer
	// has logged since that the applier has not applied yet.
	roomBytes atomic.Int64
	inflight  atomic.Int64
	lastSeq   atomic.Uint64
	devMu     sync.Mutex
	devices   map[string]*DeviceInfo     // the devices, as of the last logged group (writer)
	wm        map[bootKey]*watermark     // dedupe state (dedupe.go), as of the last logged group
	bootsOf   map[string]map[uint64]bool // the boots in wm of each device (writer only)
	commitN   uint64                     // groups so far, for pruning old boots

	// changes counts the writes to the batch (markDirty, Changes).
	changes atomic.Uint64

	// The batch (checkpoint.go), guarded by bmu, which every transaction holds.
	bmu           countedMutex
	releasedAt    uint64   // bmu.n when ReleaseMapped last released the mapping
	released      bool     // it has
	releases      int      // madvise calls of ReleaseMapped (tests)
	btx           *bolt.Tx // the pending write transaction, or nil
	bDirty        bool     // btx holds writes
	bSince        time.Time
	bBytes        int64                  // what btx may write at most (room: pages copied to the root per Update)
	bPut          int64                  // the bytes put into btx (its size: when a checkpoint is due)
	bEvents       int                    // events in btx
	ckWM          map[bootKey]*watermark // dedupe records to write at the next commit (nil: delete)
	ckDev         map[string]*DeviceInfo // device records to write at the next commit
	derived       uint64                 // meta derived_seq as of the last commit
	eventCount    int                    // events in the database, the batch included
	credsChanged  bool                   // the batch changed credentials: rewrite the keep file after its commit
	compactWanted bool                   // a commit hit the file's size limit (applier)
	quotaOnly     bool                   // the batch being committed holds only a durable Update's writes (commitDurable)

	appliedMu    sync.Mutex
	appliedCond  *sync.Cond
	applied      uint64 // the last event in the batch (or committed)
	applyStopped bool   // the applier has stopped: nobody waits for it

	Recovered string // path the corrupt file was moved to at Open, or ""

	keepMu     sync.Mutex     // serialises writes of the keep file (keep.go)
	metaDamage string         // a damaged meta page Open did without (fileCheck.otherMeta), or ""
	salvage    *SalvageReport // what was salvaged when Recovered is set
	logDamage  *LogDamage     // what the log's recovery found wrong at Open, or nil
}

type request struct {
	rs   []device.Reading
	size int // their size in the log, about (encodedSize)
	done func(error)
}

// DeviceInfo is what the store knows of a device.
type DeviceInfo struct {
	ID        string      `json:"id"`
	Kind      device.Kind `json:"kind"`
	FirstSeen time.Time   `json:"first_seen"`
	LastSeen  time.Time   `json:"last_seen"`
	Readings  uint64      `json:"readings"`
	Dups      uint64      `json:"duplicates"`
	Boot      uint64      `json:"boot,omitempty"`
	Seq       uint64      `json:"seq,omitempty"`
}

// Open opens (or creates) the store at path. A damaged file (one that fails the
// check bbolt's reads depend on, or the check of its records: checkFile) is moved
// aside to path.corrupt-<UTC time>, and a new store takes its place with what could
// be salvaged from it (salvage.go); Recovered says where the file went, Salvage what
// came through. A valid bbolt file that is not a hearth store is left untouched and
// ErrNotHearth returned.
func Open(path string, o *Options) (*Store, error) {
	opts := o.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	removeStaleCompaction(path)
	if err := finishSalvage(path, opts.Logger); err != nil {
		return nil, err
	}
	s, err := openStore(path, opts, nil)
	if err != nil && isCorrupt(err) {
		s, err = quarantineAndSalvage(path, opts, err)
	}
	if err != nil {
		return nil, err
	}
	s.m = newMetrics(opts.Registerer, s)
	s.started = opts.Now()
	if s.Recovered != "" {
		s.m.corruptions.Inc()
		s.m.countSalvage(s.salvage)
	}
	if s.metaDamage != "" {
		s.m.metaDamage.Inc()
	}
	s.flash = newFlash(opts.FlashBudget, opts.MaxDelay, opts.Now)
	// The log: what was acknowledged and not yet in the database goes in now, in
	// one commit that may take the file past its quota (an acknowledged reading is
	// never dropped to make room; eviction and compaction bring the file back).
	s.db.MaxSize = 0
	err = s.openLog()
	s.db.MaxSize = boltOptionsFor(opts).MaxSize
	if err != nil {
		s.m.unregister()
		_ = s.db.Close()
		return nil, err
	}
	// A segment of zeros ready now: the first reading's acknowledgement does not wait
	// for it (on a full disk the first Append tries again and refuses with the error).
	wrote, err := s.wal.Prepare()
	s.flash.other(wrote)
	if err != nil {
		s.log.Warn("the write-ahead log could not make its first segment ready", "err", err)
	}
	if err := s.syncKeepLocked(); err != nil {
		s.log.Warn("the keep file (credentials and identity, kept beside the database) could not be written", "err", err)
	}
	go s.applier()
	go s.writer()
	return s, nil
}

// quarantineAndSalvage handles a damaged file at path (damage says how): it salvages
// what it can into a new store beside it, moves the file aside, and opens the new
// store in its place. When nothing can be written (a full disk) the file is moved
// aside all the same and a fresh store started: never a boot loop.
func quarantineAndSalvage(path string, opts Options, damage error) (*Store, error) {
	at := opts.Now().UTC()
	moved := fmt.Sprintf("%s.corrupt-%s", path, at.Format("20060102T150405Z"))
	for i := 2; ; i++ { // never overwrite an earlier one of the same second
		if _, serr := os.Lstat(moved); errors.Is(serr, fs.ErrNotExist) {
			break
		}
		moved = fmt.Sprintf("%s.corrupt-%s-%d", path, at.Format("20060102T150405Z"), i)
	}
	// The damaged file stays locked until it is moved aside: a second hearth started
	// meanwhile waits, then finds the new store (and bbolt's lock on it).
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: %s is damaged (%v) and cannot be read: %w", path, damage, err)
	}
	defer f.Close()
	if err := lockFile(f, opts.LockTimeout); err != nil {
		return nil, fmt.Errorf("store: %s: %w (is hearth already running?)", path, ErrLocked)
	}
	if _, err := checkFile(f, !opts.SkipCheck); err == nil { // another process put a sound one in its place
		_ = f.Close()
		return openStore(path, opts, nil)
	}
	rec := &recovery{movedTo: moved, damage: damage.Error(), at: at}
	opts.Logger.Error("database is damaged: salvaging what is readable, then moving it aside", "component", "store",
		"path", path, "moved_to", moved, "err", damage)
	partial := path + salvagePartialSuffix
	rep, err := salvageFile(f, path, partial, opts, rec)
	rec.report = rep
	salvaged := ""
	if err == nil {
		salvaged = path + salvageSuffix
		if err = os.Rename(partial, salvaged); err == nil {
			rec.recorded = true // salvageFile wrote the audit record and the count
		}
	}
	if err != nil {
		rep.Error = err.Error()
		salvaged = ""
		_ = os.Remove(partial)
		opts.Logger.Error("salvage failed: starting an empty store", "component", "store", "err", err)
	}
	if rerr := quarantine(path, moved, salvaged); rerr != nil {
		return nil, fmt.Errorf("store: %s is damaged (%v) and could not be moved aside: %w", path, damage, rerr)
	}
	_ = f.Close() // releases the lock on the damaged file, now at moved
	if salvaged != "" {
		opts.Logger.Error("database was damaged: moved aside; salvaged what was readable into a new store", "component", "store",
			"path", path, "moved_to", moved, "salvage", rep.summary())
	}
	return openStore(path, opts, rec)
}

// openStore opens the file and loads it. Before bbolt reads a byte of it, the file
// is checked as bbolt will read it (checkFile, under bbolt's lock): bbolt reads a
// damaged page by panicking, at Open on a goroutine of its own, or faulting, and
// either must not become a boot loop. A panic inside bbolt all the same (this
// goroutine only) is reported as corruption. rec, when not nil, says how a damaged
// predecessor was moved aside and what was salvaged from it.
func openStore(path string, opts Options, rec *recovery) (s *Store, err error) {
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			s, err = nil, corruptErr{fmt.Errorf("store: %s: unreadable page: %v", path, r)}
		}
	}()
	// A damaged page bbolt reads through its mmap can fault: make that a panic
	// (recovered above as corruption) rather than a crash, on this goroutine.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var fc fileCheck
	db, err = openBolt(path, opts, func(f *os.File) error {
		var err error
		fc, err = checkFile(f, !opts.SkipCheck)
		return err
	})
	if err != nil {
		return nil, err
	}
	s = &Store{db: db, path: path, compactCh: make(chan compactReq), ckptCh: make(chan ckptReq), updated: make(chan struct{}, 1),
		opts: opts, log: opts.Logger.With("component", "store"), clock: opts.Clock,
		queue: make(chan *request, 1024), stop: make(chan struct{}), done: make(chan struct{}),
		applyCh: make(chan *group, 256), applierDone: make(chan struct{}),
		devices: map[string]*DeviceInfo{}, wm: map[bootKey]*watermark{}, bootsOf: map[string]map[uint64]bool{},
		ckWM: map[bootKey]*watermark{}, ckDev: map[string]*DeviceInfo{}, metaDamage: fc.otherMeta,
		bmu: countedMutex{touched: make(chan struct{}, 1)}}
	s.appliedCond = sync.NewCond(&s.appliedMu)
	if rec != nil {
		s.Recovered, s.salvage = rec.movedTo, rec.report
	}
	if fc.otherMeta != "" {
		s.log.Error("a meta page of the database is damaged: opened the transaction of the other one (if the damaged page held the newer transaction, its commit is lost)",
			"path", path, "damage", fc.otherMeta, "txid", fc.txid)
	}
	if err := s.init(rec); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// boltOptions: the quota is also bbolt's MaxSize, so the file cannot grow past it
// whatever the estimates of makeRoom; it grows in steps of 1/32 of the quota (at most
// bbolt's default 16 MiB), so the last step never overshoots by much. The free-page
// list is not written at each commit (NoFreelistSync, as etcd runs bbolt): Open
// rebuilds it by walking the file, and every commit writes a page less (about 8% of
// the bytes a small commit writes, BenchmarkCommitDiskBytes).
//
// Salvage's scratch file has no MaxSize: what it copies may take more pages than
// the damaged file did (buckets other than the log are filled to bbolt's 50%), and
// the store evicts and compacts down to the quota once it runs.
func boltOptionsFor(opts Options) *bolt.Options {
	maxSize := int(min(opts.QuotaBytes, int64(^uint(0)>>1)))
	if opts.scratch {
		maxSize = 0
	}
	return &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
		MaxSize: maxSize, NoSync: opts.scratch}
}

func allocSize(opts Options) int { return int(min(max(opts.QuotaBytes/32, 64<<10), 16<<20)) }

func (s *Store) boltOptions() *bolt.Options { return boltOptionsFor(s.opts) }

// openBolt opens the file with bbolt. check, when not nil, is run on the file under
// bbolt's lock before bbolt reads it; its error is returned as it is.
func openBolt(path string, opts Options, check func(*os.File) error) (*bolt.DB, error) {
	bo := boltOptionsFor(opts)
	if check != nil {
		bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			err = lockFile(f, opts.LockTimeout)
			if err == nil {
				err = check(f)
			}
			if err != nil {
				_ = f.Close()
				return nil, err
			}
			return f, nil
		}
	}
	db, err := bolt.Open(path, 0o600, bo)
	if err == nil {
		db.AllocSize = allocSize(opts)
	}
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store: %s: %w (is hearth already running?)", path, ErrLocked)
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("store: %s: %w", path, err)
		}
		if errors.Is(err, ErrNotHearth) || errors.Is(err, ErrSchemaTooNew) || isCorrupt(err) {
			return nil, err // checkFile's, naming the file
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// corruptErr marks an open error as file corruption.
type corruptErr struct{ err error }

func (e corruptErr) Error() string { return e.err.Error() }
func (e corruptErr) Unwrap() error { return e.err }

func isCorrupt(err error) bool {
	var ce corruptErr
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.As(err, &ce) ||
		errors.Is(err, berrors.ErrInvalidMapping)
}

// init creates the buckets of a new store, or checks and loads an existing one.
func (s *Store) init(rec *recovery) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		names := 0
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error { names++; return nil })
		meta := tx.Bucket(bucketMeta)
		if names > 0 && (meta == nil || !bytes.Equal(meta.Get(keyMagic), []byte(magic))) {
			return fmt.Errorf("store: %s: %w (file left untouched)", s.db.Path(), ErrNotHearth)
		}
		for _, d := range bucketDefs {
			if _, err := tx.CreateBucketIfNotExists([]byte(d.name)); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", d.name, err)
			}
		}
		meta = tx.Bucket(bucketMeta)
		if meta.Get(keyMagic) == nil {
			secret := make([]byte, 32)
			id := make([]byte, 16)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			if _, err := rand.Read(id); err != nil {
				return err
			}
			for k, v := range map[string][]byte{
				string(keyMagic): []byte(magic), string(keySchema): u64key(SchemaVersion),
				string(keyInstallID): []byte(hex.EncodeToString(id)), string(keySecret): secret,
				string(keyCreated):    []byte(s.opts.Now().UTC().Format(time.RFC3339)),
				string(keyDerivedSeq): u64key(0),
			} {
				if err := meta.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		if err := migrate(tx); err != nil {
			return err
		}
		if rec != nil && !rec.recorded {
			if err := rec.record(tx); err != nil {
				return err
			}
		}
		if s.metaDamage != "" {
			if err := writeTx(tx).Audit("meta_page_damaged", map[string]any{"damage": s.metaDamage, "txid": tx.ID() - 1,
				"at": s.opts.Now().UTC().Format(time.RFC3339)}); err != nil {
				return err
			}
		}
		if v := meta.Get(keyCorruptions); len(v) == 8 {
			s.corruptions = binary.BigEndian.Uint64(v)
		}
		s.installID = string(meta.Get(keyInstallID))
		s.secret = append([]byte(nil), meta.Get(keySecret)...)
		// The next sequence follows the last event, or derived_seq when retention has
		// deleted every event (it deletes none after derived_seq): never reused, so
		// no consumer's cursor is ever ahead of a new event.
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			s.lastSeq.Store(binary.BigEndian.Uint64(k))
		}
		if v := meta.Get(keyDerivedSeq); len(v) == 8 {
			s.lastSeq.Store(max(s.lastSeq.Load(), binary.BigEndian.Uint64(v)))
		}
		if err := tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			var d DeviceInfo
			if err := jsonUnmarshal(v, &d); err != nil {
				return fmt.Errorf("store: device %q: %w", k, err)
			}
			s.devices[d.ID] = &d
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDedupe).ForEach(func(k, v []byte) error {
			bk, ok := parseDedupeKey(k)
			w, err := decodeWatermark(k, v)
			if !ok || err != nil {
				return corruptErr{fmt.Errorf("store: dedupe record %q: %v", k, err)}
			}
			s.wm[bk] = w
			s.indexBoot(bk)
			s.commitN = max(s.commitN, w.used)
			return nil
		}); err != nil {
			return err
		}
		n, err := s.replayDerived(tx) // events after derived_seq: only in a file older than schema 4 (checkpoint.go)
		if n > 0 {
			s.opts.Logger.Info("replayed the events after the last checkpoint into device and dedupe records",
				"component", "store", "events", n)
		}
		s.derived = derivedSeq(tx)
		s.applied = s.lastSeq.Load() // every event in the file is in the database
		s.eventCount = tx.Bucket(bucketEvents).Stats().KeyN
		return err
	})
}

// Corruptions is how many times a corrupt file was moved aside at the path of this
// store, since the store was created (persisted in meta; the fresh store starts at 1).
func (s *Store) Corruptions() uint64 { return s.corruptions }

// InstallID is the random id of this installation, made when the store was created.
func (s *Store) InstallID() string { return s.installID }

// Secret is the per-install key used to pseudonymise identifiers. Never leaves the hub.
func (s *Store) Secret() []byte { return append([]byte(nil), s.secret...) }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// LastSeq is the sequence of the newest committed event (0 when the log is empty).
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// Changes is a count that grows whenever what the store holds may have changed: each
// write to the batch (markDirty) — a group of events applied or replayed, an Update
// that wrote a record, a deletion by retention or eviction, an audit record. A stage whose result is a function of the store's records
// (tag evaluation) need not run again while Changes stays the same; the count says
// nothing about what changed.
func (s *Store) Changes() uint64 { return s.changes.Load() }

// markDirty notes a write to the batch: it must be committed (bDirty), and what the
// store holds may have changed (Changes). s.bmu is held (or the store is not running
// yet).
func (s *Store) markDirty() {
	s.bDirty = true
	s.changes.Add(1)
}

// Pending is the number of readings submitted but not yet committed.
func (s *Store) Pending() int64 { return s.pending.Load() }

// Failed returns the write failure that stopped intake, or nil.
func (s *Store) Failed() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.failed
}

// Submit implements device.Sink: rs are committed by the writer in the next group
// commit, and done is called once they are durable (in the write-ahead log) or
// refused. Submit blocks while
// more than QueueLen readings wait.
func (s *Store) Submit(rs []device.Reading, done func(error)) {
	if len(rs) > s.opts.MaxBatch {
		s.m.refused.WithLabelValues("too_large").Add(float64(len(rs)))
		done(fmt.Errorf("store: %d readings: %w (max %d)", len(rs), ErrTooLarge, s.opts.MaxBatch))
		return
	}
	s.mu.RLock()
	closed, failed := s.closed, s.failed
	s.mu.RUnlock()
	switch {
	case closed:
		done(ErrClosed)
		return
	case failed != nil:
		s.m.refused.WithLabelValues("intake_stopped").Add(float64(len(rs)))
		done(fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed))
		return
	}
	// Back-pressure: wait while the queue holds more than QueueLen readings.
	for s.pending.Load()+int64(len(rs)) > int64(s.opts.QueueLen) && s.pending.Load() > 0 {
		select {
		case <-s.stop:
			done(ErrClosed)
			return
		case <-time.After(time.Millisecond):
		}
	}
	// Enqueue under the read lock: Close sets closed under the write lock before it
	// stops the writer, so every request enqueued here is drained and answered by the
	// writer, and none can slip in after its last drain (and never be answered).
	s.closeMu.RLock()
	if s.closing {
		s.closeMu.RUnlock()
		done(ErrClosed)
		return
	}
	s.pending.Add(int64(len(rs)))
	size := 0
	for i := range rs {
		size += encodedSize(&rs[i])
	}
	s.queue <- &request{rs: rs, size: size, done: done} // the writer runs until Close, which waits for this lock
	s.closeMu.RUnlock()
}

// Committed returns the highest sequence n of the device's boot such that the store
// holds (or has given up waiting for) every reading 1..n: the low dedupe watermark. It
// is 0 for a boot the store does not know. A serial source answers a Hello with it.
func (s *Store) Committed(device string, boot uint64) uint64 {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	if w, ok := s.wm[bootKey{dev: device, boot: boot}]; ok {
		return w.low
	}
	return 0
}

// Devices returns what the store knows of each device, by id.
func (s *Store) Devices() []DeviceInfo {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	out := make([]DeviceInfo, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, *d)
	}
	sortDevices(out)
	return out
}

// ReadEvents calls fn for each event after sequence `after`, in order, at most max
// events (max <= 0: all). It returns the sequence of the last event passed to fn.
// The reading passed to fn is valid only during the call.
func (s *Store) ReadEvents(after uint64, max int, fn func(seq uint64, r *device.Reading) error) (uint64, error) {
	last := after
	intern := map[string]string{}
	err := s.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		var r device.Reading
		n := 0
		for k, v := c.Seek(u64key(after + 1)); k != nil; k, v = c.Next() {
			if max > 0 && n >= max {
				break
			}
			seq := binary.BigEndian.Uint64(k)
			if err := decodeReading(v, &r, intern); err != nil {
				return fmt.Errorf("store: event %d: %w", seq, err)
			}
			if err := fn(seq, &r); err != nil {
				return err
			}
			last = seq
			n++
		}
		if n >= releaseAfterEvents {
			// A long read (the rollup catching up after a burst) made its pages
			// resident: give them back now rather than at the next Maintain tick.
			if err := s.releaseIn(tx); err != nil {
				s.log.Warn("releasing mapped pages failed", "err", err)
			}
		}
		return nil
	})
	return last, err
}

// releaseAfterEvents: a ReadEvents call that read at least this many events releases
// the file's mapped pages before it returns (see ReleaseMapped).
const releaseAfterEvents = 1000

// Close stops the writer after logging what was submitted, commits the batch, and
// closes the log and the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	// No Submit is between its check and its enqueue once closing is set (closeMu is
	// its own lock: the writer never takes it, so a Submit blocked on a full queue
	// cannot deadlock with a writer that needs mu).
	s.closeMu.Lock()
	s.closing = true
	s.closeMu.Unlock()
	close(s.stop)
	<-s.done        // the writer has logged and answered everything, and closed applyCh
	<-s.applierDone // the applier has applied it and made its last commit
	s.appliedMu.Lock()
	s.applyStopped = true
	s.appliedMu.Unlock()
	s.appliedCond.Broadcast()
	s.m.unregister()
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.btx != nil { // the last commit failed (intake stopped): the log keeps the events
		_ = s.btx.Rollback()
		s.btx = nil
	}
	werr := s.wal.Close()
	if err := s.db.Close(); err != nil {
		return err
	}
	return werr
}

// read runs fn in the batch when one is pending, else in a read transaction, once
// every event acknowledged before the call is in the batch.
func (s *Store) read(fn func(*bolt.Tx) error) error {
	s.waitApplied(s.lastSeq.Load())
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.btx != nil {
		return fn(s.btx)
	}
	return s.db.View(fn)
}

// indexBoot records that wm holds bk (writer goroutine and init only).
func (s *Store) indexBoot(bk bootKey) {
	b := s.bootsOf[bk.dev]
	if b == nil {
		b = map[uint64]bool{}
		s.bootsOf[bk.dev] = b
	}
	b[bk.boot] = true
}
