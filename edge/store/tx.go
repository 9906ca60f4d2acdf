package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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
type Tx struct {
	tx *bolt.Tx
	// credsChanged: Put or Delete touched Credentials; Update then rewrites the
	// keep file (keep.go) once the transaction is committed.
	credsChanged bool
	// quarantined: the buckets of the records Quarantine moved out, counted once the
	// transaction is committed.
	quarantined []Bucket
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction, committed (with fsync) when fn returns
// nil. A failure to write or sync stops intake, as a failed commit of readings does.
//
// After a write failure Update refuses with ErrIntakeStopped: a failed fsync may have
// left the page cache and the file disagreeing, so nothing more is written until a
// restart re-reads the file.
func (s *Store) Update(fn func(*Tx) error) error {
	s.mu.RLock()
	failed := s.failed
	s.mu.RUnlock()
	if failed != nil {
		return fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
	}
	var fnErr error
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	t := &Tx{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t.tx = tx
		fnErr = fn(t)
		return fnErr
	})
	if err == nil && s.m != nil {
		for _, b := range t.quarantined {
			s.m.quarantined.WithLabelValues(string(b)).Inc()
		}
	}
	if err == nil && t.credsChanged {
		if kerr := s.syncKeep(); kerr != nil {
			s.log.Warn("credentials committed, but their copy in the keep file was not written", "err", kerr)
		}
	}
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		// The file is at its quota: refused, not a write failure. The writer
		// evicts raw readings (and compacts) on its next commit.
		return fmt.Errorf("store: %w (%d bytes): %v", ErrQuota, s.opts.QuotaBytes, err)
	}
	if err != nil && fnErr == nil && !errors.Is(err, bolt.ErrDatabaseNotOpen) && s.stopIntake(err) {
		s.log.Error("write failed: intake stopped", "err", err)
	}
	return err
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
	return t.tx.Bucket(bucketCursors).Put([]byte(name), cursorValue(name, seq))
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

// count returns the number of keys in b.
func (t *Tx) count(b Bucket) int { return t.bucket(b).Stats().KeyN }

// Audit appends an entry to the audit trail.
func (t *Tx) Audit(event string, detail any) error {
	seq, err := t.bucket(Audit).NextSequence()
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
	if err := (&Tx{tx: tx}).Audit("schema_migrated", map[string]uint64{"from": cur, "to": SchemaVersion}); err != nil {
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
