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

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hearth-iot/hearth/device"
)

// SchemaVersion is the layout version this code writes (FORMAT.md).
const SchemaVersion = 3

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
)

// Options tune a Store. The zero value of each field means its documented default.
type Options struct {
	// MaxBatch is the most readings committed in one transaction (default 2000).
	MaxBatch int
	// MaxDelay is how long the writer waits for more readings before committing a
	// batch smaller than MaxBatch (default 0: commit as soon as the previous commit is
	// done; readings that arrive during an fsync form the next batch).
	// The wait ends early, once no reading has arrived for MaxDelay/8: a burst is
	// gathered into one commit, and a lone reading waits only that gap.
	MaxDelay time.Duration
	// CommitPace: while commits are small (fewer than paceBelow readings), the writer
	// starts one at most this often and gathers what arrives in between (default 0:
	// no pacing).
	CommitPace time.Duration
	// QueueLen bounds the readings waiting for the writer; Submit blocks beyond it
	// (default 20000).
	QueueLen int
	// QuotaBytes bounds the database: raw readings are evicted oldest first to stay
	// under it, and refused when that is not enough (default 64 MiB; minimum 1 MiB).
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
	// Now is the wall clock (default time.Now).
	Now func() time.Time
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
}

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
	if v.Now == nil {
		v.Now = time.Now
	}
	return v
}

// Store is hearth's durable state: the event log and everything derived from it.
// It is safe for concurrent use. Readings are written by one writer goroutine that
// group-commits what callers Submit; everything else goes through View and Update.
type Store struct {
	// dbMu is held shared by every View, Update and read, and exclusively by
	// compaction while it swaps db for the compacted file (compact.go).
	dbMu      sync.RWMutex
	db        *bolt.DB
	path      string
	compactCh chan compactReq
	ckptCh    chan chan error // checkpoint requests to the writer (checkpointNow)

	opts Options
	log  *slog.Logger
	m    *metrics

	installID   string
	secret      []byte
	corruptions uint64 // meta "corruptions" as loaded at Open
	started     time.Time

	queue   chan *request
	pending atomic.Int64 // readings queued, not yet committed
	stop    chan struct{}
	done    chan struct{}

	mu      sync.RWMutex // guards closed and failed
	closeMu sync.RWMutex // held shared by Submit from its check to its enqueue; guards closing
	closing bool
	closed  bool
	failed  error // set once when intake stops
	lastSeq atomic.Uint64
	devMu   sync.Mutex
	devices map[string]*DeviceInfo     // the devices, as of the last commit (the bucket: as of the last checkpoint)
	wm      map[bootKey]*watermark     // dedupe state (dedupe.go), as of the last commit
	bootsOf map[string]map[uint64]bool // the boots in wm of each device (writer only)
	commitN uint64                     // commits so far, for pruning old boots

	// Checkpoints (writer only; see checkpointEvery): what changed in devices and wm
	// since the buckets were last written, and boots pruned since then.
	dirtyDev       map[string]bool
	dirtyWM        map[bootKey]bool
	prunedWM       map[bootKey]bool
	lastCheckpoint time.Time

	compactWanted bool // the last commit hit the file's size limit (writer only)

	Recovered string // path the corrupt file was moved to at Open, or ""

	keepMu     sync.Mutex     // serialises writes of the keep file (keep.go)
	metaDamage string         // a damaged meta page Open did without (fileCheck.otherMeta), or ""
	salvage    *SalvageReport // what was salvaged when Recovered is set
}

type request struct {
	rs   []device.Reading
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
	if err := s.syncKeep(); err != nil {
		s.log.Warn("the keep file (credentials and identity, kept beside the database) could not be written", "err", err)
	}
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
	s = &Store{db: db, path: path, compactCh: make(chan compactReq), ckptCh: make(chan chan error), opts: opts, log: opts.Logger.With("component", "store"),
		queue: make(chan *request, 1024), stop: make(chan struct{}), done: make(chan struct{}),
		devices: map[string]*DeviceInfo{}, wm: map[bootKey]*watermark{}, bootsOf: map[string]map[uint64]bool{},
		dirtyDev: map[string]bool{}, dirtyWM: map[bootKey]bool{}, prunedWM: map[bootKey]bool{}, metaDamage: fc.otherMeta}
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
			if err := (&Tx{tx: tx}).Audit("meta_page_damaged", map[string]any{"damage": s.metaDamage, "txid": tx.ID() - 1,
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
		n, err := s.replayDerived(tx) // the events after the last checkpoint (checkpoint.go)
		if n > 0 {
			s.opts.Logger.Info("replayed the events after the last checkpoint into device and dedupe records",
				"component", "store", "events", n)
		}
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

// Pending is the number of readings submitted but not yet committed.
func (s *Store) Pending() int64 { return s.pending.Load() }

// Failed returns the write failure that stopped intake, or nil.
func (s *Store) Failed() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.failed
}

// Submit implements device.Sink: rs are committed by the writer in the next group
// commit, and done is called once they are durable or refused. Submit blocks while
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
	s.queue <- &request{rs: rs, done: done} // the writer runs until Close, which waits for this lock
	s.closeMu.RUnlock()
}

// writer is the single goroutine that commits readings.
func (s *Store) writer() {
	defer close(s.done)
	var batch []*request
	buf := make([]byte, 0, 256)
	deadline, gap := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	deadline.Stop()
	gap.Stop()
	// idle fires checkpointEvery after the last commit: records left dirty by it are
	// written then, so an idle store has nothing to replay. (Retention deletes only
	// events a checkpoint covers: Expire asks for one first, on ckptCh.)
	idle := time.NewTimer(checkpointEvery)
	defer idle.Stop()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	var lastStart time.Time // when the last commit began (CommitPace)
	for {
		batch = batch[:0]
		var first *request
		select {
		case <-idle.C:
			if s.Failed() == nil {
				if err := s.checkpoint(); err != nil {
					s.log.Warn("checkpoint failed; the next start replays the log", "err", err)
				}
			}
			continue
		case req := <-s.compactCh:
			freed, err := s.compact("requested")
			req.done <- compactResult{freed, err}
			continue
		case done := <-s.ckptCh:
			if failed := s.Failed(); failed != nil {
				done <- fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
			} else {
				done <- s.checkpoint()
			}
			continue
		case first = <-s.queue:
		case <-s.stop:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.commit(batch, &buf)
			}
			return
		}
		batch = append(batch, first)
		n := len(first.rs)
		if s.opts.MaxDelay > 0 {
			deadline.Reset(s.opts.MaxDelay)
		}
	fill:
		for n < s.opts.MaxBatch {
			select {
			case r := <-s.queue:
				batch = append(batch, r)
				n += len(r.rs)
				continue
			default:
			}
			if s.opts.MaxDelay <= 0 {
				break
			}
			// Linger: wait for the next request while they keep coming, at most
			// MaxDelay/8 after the last one and never past MaxDelay after the first.
			// Each commit costs two fsyncs whatever its size (about 60 µs of CPU each
			// on the dev machine): fewer, larger commits cost less CPU per reading,
			// and the window of unacknowledged publishes bounds the throughput.
			gap.Reset(s.opts.MaxDelay / 8)
			select {
			case r := <-s.queue:
				batch = append(batch, r)
				n += len(r.rs)
			case <-gap.C:
				break fill
			case <-deadline.C:
				break fill
			}
		}
		deadline.Stop()
		gap.Stop()
		// Pace: while commits are small, start one at most every CommitPace, and
		// gather what arrives meanwhile. Commits cost the same whatever their size
		// (two fsyncs, the pages up to the root): a writer that commits as soon as
		// the last one ended makes more of them the faster the disk is, and each is
		// CPU and flash wear. A lone reading after a quiet spell is not held up; a
		// burst (batches of paceBelow readings or more) is never paced.
		if wait := s.opts.CommitPace - time.Since(lastStart); n < paceBelow && wait > 0 {
			pace.Reset(wait)
		gather:
			for n < s.opts.MaxBatch {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
					n += len(r.rs)
				case <-pace.C:
					break gather
				case <-s.stop: // Close: commit what is here; the loop then drains the rest
					break gather
				}
			}
			pace.Stop()
		}
		lastStart = time.Now()
		s.commit(batch, &buf)
		idle.Reset(checkpointEvery)
		if s.compactWanted || s.compactDue() {
			s.compactWanted = false
			if _, err := s.compact("quota"); err != nil {
				s.log.Warn("compaction failed", "err", err)
			}
		}
	}
}

// paceBelow: commits of this many readings or more are never paced (CommitPace): a
// burst keeps its throughput.
const paceBelow = 16

// commit writes one group of requests in one transaction and tells each caller.
func (s *Store) commit(batch []*request, buf *[]byte) {
	n := 0
	for _, r := range batch {
		n += len(r.rs)
	}
	defer s.pending.Add(-int64(n))
	s.mu.RLock()
	failed := s.failed
	s.mu.RUnlock()
	if failed != nil {
		err := fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
		s.m.refused.WithLabelValues("intake_stopped").Add(float64(n))
		for _, r := range batch {
			r.done(err)
		}
		return
	}
	start := time.Now()
	*buf = (*buf)[:0]
	// Only this goroutine changes s.devices and s.wm, so it reads them without a
	// lock; devMu guards them only while it publishes the changes below. (Holding
	// devMu across the transaction would deadlock with a reader of Devices() inside
	// another Update.)
	var (
		seq        = s.lastSeq.Load()
		dups       int
		wmChange   = map[bootKey]*watermark{}
		devNew     = map[string]*DeviceInfo{}
		prunedKeys []bootKey
		evicted    int
		// checkpointed: this commit also wrote the devices and dedupe records (every
		// checkpointEvery, and whenever it evicted events, which replay could not find).
		checkpointed bool
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if evicted, err = s.makeRoom(tx, n); err != nil {
			return err
		}
		ev := tx.Bucket(bucketEvents)
		ev.FillPercent = 1.0 // append-only keys: pack pages full
		for _, req := range batch {
			for i := range req.rs {
				r := &req.rs[i]
				if r.Seq != 0 {
					bk := bootKey{r.Device, r.Boot}
					w, ok := wmChange[bk]
					if !ok {
						if old, ok := s.wm[bk]; ok {
							w = old.clone()
						} else {
							w = &watermark{}
						}
						w.used = s.commitN + 1
						wmChange[bk] = w
					}
					if w.seen(r.Seq) {
						dups++
						s.deviceInfo(devNew, r).Dups++
						continue
					}
					w.add(r.Seq)
				}
				seq++
				// bbolt keeps key and value slices until the commit: encode into an
				// arena that only grows during this transaction, never overwritten.
				start := len(*buf)
				*buf = appendReading(*buf, r)
				*buf = binary.BigEndian.AppendUint64(*buf, seq)
				val, key := (*buf)[start:len(*buf)-8:len(*buf)-8], (*buf)[len(*buf)-8:]
				if err := ev.Put(key, val); err != nil {
					return err
				}
				d := s.deviceInfo(devNew, r)
				if d.FirstSeen.IsZero() {
					d.FirstSeen = r.HubTime
				}
				d.LastSeen = r.HubTime
				d.Readings++
				if r.Seq != 0 {
					d.Boot, d.Seq = r.Boot, r.Seq
				}
			}
		}
		// Boots pruned here are forgotten at once; their records go at the checkpoint.
		pruned, err := s.pruneBoots(recordDeletes{}, wmChange)
		if err != nil {
			return err
		}
		prunedKeys = pruned
		checkpointed = evicted > 0 || s.opts.Now().Sub(s.lastCheckpoint) >= checkpointEvery
		if checkpointed {
			return s.writeCheckpoint(tx, seq, wmChange, devNew, prunedKeys)
		}
		return nil
	})
	if err == nil {
		s.devMu.Lock()
		s.lastSeq.Store(seq)
		s.commitN++
		for bk, w := range wmChange {
			s.wm[bk] = w
			s.indexBoot(bk)
			s.dirtyWM[bk] = true
			delete(s.prunedWM, bk)
		}
		for _, bk := range prunedKeys {
			delete(s.wm, bk)
			delete(s.bootsOf[bk.dev], bk.boot)
			delete(s.dirtyWM, bk)
			s.prunedWM[bk] = true
		}
		for id, d := range devNew {
			s.devices[id] = d
			s.dirtyDev[id] = true
		}
		if checkpointed {
			clear(s.dirtyWM)
			clear(s.dirtyDev)
			clear(s.prunedWM)
			s.lastCheckpoint = s.opts.Now()
		}
		s.devMu.Unlock()
	}
	s.m.commitSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		if evicted > 0 {
			s.m.evicted.WithLabelValues("quota").Add(float64(evicted))
			s.log.Info("quota: evicted oldest raw readings", "evicted", evicted, "quota_bytes", s.opts.QuotaBytes)
		}
		s.m.commits.Inc()
		s.m.committed.Add(float64(n - dups))
		s.m.duplicates.Add(float64(dups))
		s.m.batchSize.Observe(float64(n))
	case errors.Is(err, ErrQuota) || errors.Is(err, berrors.ErrMaxSizeReached):
		// The file is at its quota even after eviction (or fragmented up to it):
		// refuse, and compact before the next commit.
		s.compactWanted = true
		err = fmt.Errorf("store: %d readings: %w (%d bytes)", n, ErrQuota, s.opts.QuotaBytes)
		s.m.refused.WithLabelValues("quota").Add(float64(n))
		s.log.Warn("disk quota full: refusing readings", "readings", n, "quota_bytes", s.opts.QuotaBytes)
	default:
		s.m.refused.WithLabelValues("write_error").Add(float64(n))
		s.stopIntake(err)
		s.log.Error("write failed: intake stopped", "err", err, "readings", n)
		err = fmt.Errorf("store: %w: %v", ErrIntakeStopped, err)
	}
	for _, r := range batch {
		r.done(err)
	}
}

// deviceInfo returns the copy of r's device record that this commit updates.
func (s *Store) deviceInfo(devNew map[string]*DeviceInfo, r *device.Reading) *DeviceInfo {
	if d, ok := devNew[r.Device]; ok {
		return d
	}
	d := &DeviceInfo{ID: r.Device, Kind: r.Kind}
	if old, ok := s.devices[r.Device]; ok {
		*d = *old
	}
	d.Kind = r.Kind
	devNew[r.Device] = d
	return d
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
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := s.db.View(func(tx *bolt.Tx) error {
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

// Close stops the writer after committing what was submitted, and closes the file.
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
	<-s.done
	if s.Failed() == nil {
		// The records changed since the last checkpoint: the next Open then replays
		// nothing. (If this fails, that Open replays the events: nothing is lost.)
		if err := s.checkpoint(); err != nil {
			s.log.Warn("checkpoint at close failed; the next start replays the log", "err", err)
		}
	}
	s.m.unregister()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	return s.db.Close()
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
