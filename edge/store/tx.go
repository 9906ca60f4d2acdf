package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Bucket names a bucket that derived stages own. The event log, dedupe watermarks,
// devices and meta belong to the store itself and are not reachable through Tx.
type Bucket string

// Buckets open to the stages downstream of the log (FORMAT.md says who owns each).
const (
	Rollups     Bucket = "rollups"     // edge/rollup records
	State       Bucket = "state"       // consumers' resumable state (open sessions, detectors)
	Tags        Bucket = "tags"        // edge/tagging tag states
	TagLog      Bucket = "taglog"      // edge/tagging tag changes, consumed by sync
	Outbox      Bucket = "outbox"      // sync/outbox batches awaiting delivery
	Audit       Bucket = "audit"       // audit trail: corruptions, erasures, consent changes
	Credentials Bucket = "credentials" // edge/broker device credentials (hashes only)
)

// Tx is a transaction over the store's derived buckets and consumer cursors.
// It is valid only inside the View or Update call that made it.
//
// Since the write-ahead log (checkpoint.go), Update writes into the store's batch,
// a bbolt write transaction committed every checkpoint interval; View reads it. A
// Tx records what its Update changed, so that an Update whose fn fails leaves the
// batch as it found it, and copies every key and value it puts (bbolt keeps them
// until the batch commits, long after fn returned). Every write of a Tx — and of
// any typed record view built on it — goes through rawPut, rawDel and rawNextSeq.
type Tx struct {
	tx *bolt.Tx
	// writable: made by Update. undo is what to restore if its fn fails.
	writable bool
	undo     []undoEntry
	wrote    int64 // bytes put (an estimate of what the batch will write)
	// durable: fn wrote a bucket whose records must not wait for the next
	// checkpoint (bucketDefs: durable); Update commits the batch before it returns.
	durable bool
	// credsChanged: fn wrote Credentials; the keep file (keep.go) is rewritten
	// once the batch is committed.
	credsChanged bool
	// quarantined: the buckets of the records Quarantine moved out, counted once the
	// transaction is committed.
	quarantined []Bucket
}

// undoEntry restores one record (old == nil: it did not exist) or a bucket's
// sequence.
type undoEntry struct {
	bucket []byte
	key    []byte
	old    []byte
	seq    uint64
	isSeq  bool
}

// ErrReadOnly: a View tried to write.
var ErrReadOnly = errors.New("store: write in a read-only transaction (View)")

// View runs fn in a read-only transaction that sees everything acknowledged and
// updated before the call, committed or still in the batch.
func (s *Store) View(fn func(*Tx) error) error {
	s.waitApplied(s.lastSeq.Load())
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.btx != nil {
		return fn(&Tx{tx: s.btx})
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in the store's batch (checkpoint.go): what it writes is seen by
// every later View and Update at once, and committed to the database with the
// next checkpoint — or before Update returns when fn wrote a bucket whose records
// must not wait (credentials, the outbox, audit). When fn returns an error,
// nothing it wrote stays. A crash before the checkpoint loses what it wrote with
// the rest of the batch, and the stages derive it again from the log's events and
// their cursors, committed (or lost) with what they derived.
//
// After a write failure Update refuses with ErrIntakeStopped: a failed fsync may have
// left the page cache and the file disagreeing, so nothing more is written until a
// restart re-reads the file.
func (s *Store) Update(fn func(*Tx) error) error { return s.update(fn, false) }

// Erase is Update for an erasure (Tx.EraseDevice, Tx.EraseHousehold): it commits
// the batch first, under the same lock, so that fn runs on an empty batch. A
// durable Update is committed by undoing fn, committing the batch as it stood
// before fn, and writing fn's records again; an erasure's undo puts back every
// record it deleted, so with other writes pending that first commit would rewrite
// nearly every page of the file — past the quota on a store over half full, which
// stops intake with the erasure lost.
func (s *Store) Erase(fn func(*Tx) error) error { return s.update(fn, true) }

func (s *Store) update(fn func(*Tx) error, commitFirst bool) error {
	if failed := s.Failed(); failed != nil {
		return fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
	}
	s.waitApplied(s.lastSeq.Load())
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if failed := s.Failed(); failed != nil {
		return fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
	}
	if commitFirst {
		if err := s.commitLocked("erase"); err != nil {
			return err
		}
	}
	tx, err := s.batch()
	if err != nil {
		return err
	}
	t := &Tx{tx: tx, writable: true, undo: []undoEntry{}}
	if err := fn(t); err != nil {
		if rerr := t.rollback(); rerr != nil {
			// The batch cannot be put back as it was: nothing more is written.
			s.stopIntake(fmt.Errorf("store: undo a failed update: %w", rerr))
		}
		return err
	}
	if len(t.undo) == 0 {
		return nil
	}
	// Room for what fn wrote (checkpoint.go, Room): else ErrQuota, and nothing fn
	// wrote stays.
	need := updateNeed(t.wrote, len(t.undo))
	if err := s.evict(tx, need); err != nil && !errors.Is(err, ErrQuota) {
		if rerr := t.rollback(); rerr != nil {
			s.stopIntake(fmt.Errorf("store: undo an update: %w", rerr))
		}
		return err
	}
	s.measureRoom()
	// (A durable Update is committed alone, and its commit says whether it fits.)
	if !t.durable && need > s.roomBytes.Load()-s.inflight.Load() {
		if rerr := t.rollback(); rerr != nil {
			s.stopIntake(fmt.Errorf("store: undo an update: %w", rerr))
		}
		return fmt.Errorf("store: %w (%d bytes)", ErrQuota, s.opts.QuotaBytes)
	}
	wasDirty := s.bDirty
	s.markDirty()
	s.bBytes += need
	s.bPut += t.wrote // the room counts the pages an Update may copy; the batch's size, what it put
	s.measureRoom()
	if !t.durable { // a durable Update's credentials: after the batch's own commit (commitDurable)
		s.credsChanged = s.credsChanged || t.credsChanged
	}
	if s.m != nil {
		for _, b := range t.quarantined {
			s.m.quarantined.WithLabelValues(string(b)).Inc()
		}
	}
	select { // the applier arms the checkpoint timer
	case s.updated <- struct{}{}:
	default:
	}
	if t.durable {
		return s.commitDurable(t, wasDirty)
	}
	return nil
}

// commitDurable commits an Update that must not wait for the checkpoint: the batch
// as it stood before fn, then fn's writes alone, so that a commit refused by the
// quota (bbolt's MaxSize) loses only them (ErrQuota) and not the batch. s.bmu is
// held.
func (s *Store) commitDurable(t *Tx, wasDirty bool) error {
	redo := t.redo()
	if err := t.rollback(); err != nil {
		s.stopIntake(fmt.Errorf("store: undo an update: %w", err))
		return err
	}
	s.bDirty = wasDirty
	if !wasDirty && len(s.ckWM) == 0 && len(s.ckDev) == 0 {
		// Nothing but fn's writes, undone: begin afresh rather than commit the
		// pages they touched.
		_ = s.btx.Rollback()
		s.btx = nil
	} else if err := s.commitLocked("durable"); err != nil {
		return err
	}
	tx, err := s.batch()
	if err != nil {
		return err
	}
	for _, r := range redo {
		if err := r.restore(tx); err != nil {
			_ = tx.Rollback()
			s.btx = nil
			return fmt.Errorf("store: redo an update: %w", err)
		}
	}
	s.markDirty()
	// Only now: the commit of the batch before fn (above) rewrote the keep file
	// without fn's credentials and cleared credsChanged; this commit holds them.
	s.credsChanged = s.credsChanged || t.credsChanged
	s.quotaOnly = true
	defer func() { s.quotaOnly = false }()
	return s.commitLocked("durable")
}

// redo returns what fn left in every record and sequence it changed, in the shape
// of undo entries (old: the new value), to write again after a rollback.
func (t *Tx) redo() []undoEntry {
	out := make([]undoEntry, 0, len(t.undo))
	for _, u := range t.undo {
		b := t.tx.Bucket(u.bucket)
		if u.isSeq {
			out = append(out, undoEntry{bucket: u.bucket, seq: b.Sequence(), isSeq: true})
			continue
		}
		v := b.Get(u.key)
		if v != nil {
			v = bytes.Clone(v)
		}
		out = append(out, undoEntry{bucket: u.bucket, key: u.key, old: v})
	}
	return out
}

// rollback restores what fn changed, newest first.
func (t *Tx) rollback() error {
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i].restore(t.tx); err != nil {
			return err
		}
	}
	t.undo = nil
	return nil
}

// restore writes u in tx: the record's value (deleted when old is nil) or the
// bucket's sequence.
func (u undoEntry) restore(tx *bolt.Tx) error {
	b := tx.Bucket(u.bucket)
	switch {
	case u.isSeq:
		return b.SetSequence(u.seq)
	case u.old == nil:
		return b.Delete(u.key)
	default:
		return b.Put(u.key, u.old)
	}
}

// rawPut sets key to val in bucket b, keeping what it replaces for rollback. It copies
// key and val: the batch holds on to them until it commits.
func (t *Tx) rawPut(b string, key, val []byte) error {
	if !t.writable {
		return ErrReadOnly
	}
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return fmt.Errorf("store: no bucket %s", b)
	}
	t.note(b, bk, key)
	t.wrote += int64(len(key) + len(val) + leafOverhead)
	return bk.Put(bytes.Clone(key), bytes.Clone(val))
}

// rawDel removes key from bucket b, keeping it for rollback.
func (t *Tx) rawDel(b string, key []byte) error {
	if !t.writable {
		return ErrReadOnly
	}
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return fmt.Errorf("store: no bucket %s", b)
	}
	if bk.Get(key) == nil {
		return nil
	}
	t.note(b, bk, key)
	return bk.Delete(key)
}

// note records, before a write to key of bucket b, what to restore.
func (t *Tx) note(b string, bk *bolt.Bucket, key []byte) {
	old := bk.Get(key)
	if old != nil {
		old = bytes.Clone(old)
	}
	t.undo = append(t.undo, undoEntry{bucket: []byte(b), key: bytes.Clone(key), old: old})
	if d, ok := bucketDefOf(b); ok && d.durable {
		t.durable = true
	}
	t.credsChanged = t.credsChanged || b == string(Credentials)
}

// rawNextSeq returns the next sequence of bucket b, keeping the old one for rollback.
func (t *Tx) rawNextSeq(b string) (uint64, error) {
	if !t.writable {
		return 0, ErrReadOnly
	}
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return 0, fmt.Errorf("store: no bucket %s", b)
	}
	t.undo = append(t.undo, undoEntry{bucket: []byte(b), seq: bk.Sequence(), isSeq: true})
	return bk.NextSequence()
}

func (t *Tx) bucket(b Bucket) *bolt.Bucket {
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		panic("store: unknown bucket " + string(b)) // a programming error: Bucket constants only
	}
	return bk
}

// Cursor returns the sequence up to which consumer name has processed the log.
// (0 for a consumer that has none: Open refused any that failed its check.)
func (t *Tx) Cursor(name string) uint64 {
	seq, _ := parseCursor([]byte(name), t.tx.Bucket(bucketCursors).Get([]byte(name)))
	return seq
}

// SetCursor records that consumer name has processed the log up to seq.
func (t *Tx) SetCursor(name string, seq uint64) error {
	if name == "" {
		return errors.New("store: a cursor needs a name")
	}
	return t.rawPut(string(bucketCursors), []byte(name), cursorValue(name, seq))
}

// Cursors returns every consumer's cursor.
func (t *Tx) Cursors() map[string]uint64 {
	out := map[string]uint64{}
	_ = t.tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
		if seq, err := parseCursor(k, v); err == nil {
			out[string(k)] = seq
		}
		return nil
	})
	return out
}

// get returns the raw value of key in b, or nil (the store's own code and tests; the
// stages use the typed views).
func (t *Tx) get(b Bucket, key []byte) []byte { return t.bucket(b).Get(key) }

// forEach calls fn for every raw record of b whose key starts with prefix, in key
// order, until fn returns an error.
func (t *Tx) forEach(b Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := t.bucket(b).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// count returns the number of keys in b. (It walks them: bbolt's own count reads
// the committed pages, not the batch.)
func (t *Tx) count(b Bucket) int {
	n := 0
	c := t.bucket(b).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// Audit appends an entry to the audit trail.
func (t *Tx) Audit(event string, detail any) error {
	seq, err := t.rawNextSeq(string(Audit))
	if err != nil {
		return err
	}
	v, err := json.Marshal(struct {
		Event  string `json:"event"`
		Detail any    `json:"detail,omitempty"`
	}{event, detail})
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", event, err)
	}
	return t.put(Audit, u64key(seq), v)
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func sortDevices(ds []DeviceInfo) { sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID }) }

// migrate brings an older layout up to SchemaVersion, in the same transaction that opens it.
func migrate(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	cur := uint64(0)
	if len(v) == 8 {
		cur = binary.BigEndian.Uint64(v)
	}
	if cur > SchemaVersion {
		return schemaTooNew(cur)
	}
	if cur == SchemaVersion {
		return nil
	}
	// Schema 0 (no schema key) lacked the taglog and credentials buckets, which the
	// caller has just created; its other buckets and keys are those of schema 1.
	// Each later migration goes here as one step, cur → cur+1, in this transaction.
	if cur < 2 {
		// Schema 2 writes the devices and dedupe records at checkpoints (checkpoint.go);
		// up to schema 1 they were written at every commit, so they cover the whole log.
		last := uint64(0)
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
		if err := meta.Put(keyDerivedSeq, u64key(last)); err != nil {
			return err
		}
	}
	if cur < 3 {
		// Schema 3 seals dedupe and cursor records with a CRC (seal.go).
		if err := rewrite(tx.Bucket(bucketDedupe), func(k, v []byte) ([]byte, error) {
			w, err := decodeWatermarkV2(v)
			if err != nil {
				return nil, corruptErr{fmt.Errorf("store: dedupe record %q: %w", k, err)}
			}
			return w.encode(k), nil
		}); err != nil {
			return err
		}
		if err := rewrite(tx.Bucket(bucketCursors), func(k, v []byte) ([]byte, error) {
			if len(v) != 8 || len(k) == 0 {
				return nil, corruptErr{fmt.Errorf("store: cursor %q of %d bytes", k, len(v))}
			}
			return cursorValue(string(k), binary.BigEndian.Uint64(v)), nil
		}); err != nil {
			return err
		}
	}
	// Schema 4 (the write-ahead log, checkpoint.go) changes no record: it is a new
	// version so that an older hearth, which would not read the log beside the file,
	// refuses it (ErrSchemaTooNew) instead of losing the readings the log holds.
	if err := writeTx(tx).Audit("schema_migrated", map[string]uint64{"from": cur, "to": SchemaVersion}); err != nil {
		return err
	}
	return meta.Put(keySchema, u64key(SchemaVersion))
}

// rewrite replaces every value of b by what fn makes of it.
func rewrite(b *bolt.Bucket, fn func(k, v []byte) ([]byte, error)) error {
	var kvs [][2][]byte
	if err := b.ForEach(func(k, v []byte) error {
		nv, err := fn(k, v)
		kvs = append(kvs, [2][]byte{bytes.Clone(k), nv})
		return err
	}); err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := b.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// ErrStopRange, returned by the callback of a typed scan (Tx.Queued, …), ends it early
// without an error.
var ErrStopRange = errors.New("stop range")

// writeTx is a writable Tx over tx for the store's own writes (Open, migration,
// salvage): nothing to undo, tx is committed or rolled back whole.
func writeTx(tx *bolt.Tx) *Tx { return &Tx{tx: tx, writable: true} }
