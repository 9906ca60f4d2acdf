package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

// bytesPerReading is a conservative estimate of the disk one event takes, used to
// decide how much to evict ahead of a commit.
const bytesPerReading = 96

// maxEvictPerCommit bounds the raw readings one commit evicts while the file is not
// yet close to its quota.
const maxEvictPerCommit = 10000

// used returns the bytes of the file in use: its size less its free pages.
func (s *Store) used(tx *bolt.Tx) int64 {
	st := s.db.Stats()
	return tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(s.db.Info().PageSize)
}

// makeRoom evicts the oldest raw readings when need more bytes (what the batch will
// write, about) could take the file near its quota. The file is bounded three ways: bbolt's MaxSize (the quota:
// a commit that would grow the file past it fails, and its readings are refused);
// growth in steps of allocSize; and this eviction, which starts when the pages in
// use reach 80% of the quota less one growth step and deletes down to 65%, so the
// pages it frees serve the next commits (pages freed by a transaction are reusable
// only after it). It returns ErrQuota when evicting every raw reading would not make
// room: what is left is rollups, tags and the outbox, which are never evicted.
func (s *Store) makeRoom(tx *bolt.Tx, need int64) (int, error) {
	quota := s.opts.QuotaBytes
	slack := int64(allocSize(s.opts))
	// The batch's own pages are allocated only at its commit: count what it holds.
	need += s.bBytes
	used := s.used(tx)
	if used+need <= quota*80/100-slack {
		return 0, nil
	}
	ev := tx.Bucket(bucketEvents)
	target := used + need - (quota*65/100 - slack)
	evict := int(target/bytesPerReading) + 1
	// Spread a large eviction over several commits (each deletes at least four times
	// what it adds), so that no commit stalls ingest for long; the 15% between the
	// start and the target of eviction is the room this takes.
	if limit := max(int(4*need/bytesPerReading), maxEvictPerCommit); evict > limit && used+need <= quota-slack-quota/20 {
		evict = limit
	}
	// Never an event the last commit has not covered (derived_seq), nor one a
	// protected consumer has not processed.
	floor := min(s.protectedFloor(tx), s.derived)
	c := ev.Cursor()
	deleted := 0
	var last uint64
	for k, _ := c.First(); k != nil && deleted < evict && binary.BigEndian.Uint64(k) <= floor; k, _ = c.First() {
		last = binary.BigEndian.Uint64(k)
		if err := c.Delete(); err != nil {
			return 0, err
		}
		deleted++
	}
	if deleted > 0 {
		s.markDirty()
		if err := noteEvicted(tx, last); err != nil {
			return deleted, err
		}
	}
	if deleted < evict && used+need-int64(deleted)*bytesPerReading > quota-slack {
		return deleted, ErrQuota // what it evicted is gone all the same: it was evictable
	}
	return deleted, nil
}

// Expire deletes raw readings whose hub time is older than MaxAge, oldest first, in
// steps of at most 10,000 deletions. It returns how many it deleted.
//
// It deletes them in the batch (checkpoint.go), and only events the last commit
// covers (up to derived_seq) that no protected consumer still needs: a deletion is
// committed with the cursors and records that allow it, or lost with them.
func (s *Store) Expire(now time.Time) (int, error) {
	cutoff := now.Add(-s.opts.MaxAge).UnixNano()
	s.waitApplied(s.lastSeq.Load()) // what was acknowledged before the call is in the batch
	total := 0
	for {
		deleted, more, err := s.expireStep(cutoff)
		total += deleted
		s.m.evicted.WithLabelValues("age").Add(float64(deleted))
		if err != nil || !more {
			return total, err
		}
	}
}

// expireStep deletes up to 10,000 expired events in the batch.
func (s *Store) expireStep(cutoff int64) (deleted int, more bool, err error) {
	if failed := s.Failed(); failed != nil {
		return 0, false, fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	tx, err := s.batch()
	if err != nil {
		return 0, false, err
	}
	defer func() {
		if deleted > 0 {
			s.markDirty()
			s.eventCount -= deleted
			select { // the applier arms the checkpoint timer
			case s.updated <- struct{}{}:
			default:
			}
		}
	}()
	protected := s.protectedFloor(tx)
	if s.derived < protected && s.expiredAfter(tx, s.derived, cutoff) {
		// An expired event the consumers are done with, after the last commit:
		// commit first (a checkpoint only when retention has work beyond it).
		if err := s.commitLocked("retention"); err != nil {
			return 0, false, err
		}
		if tx, err = s.batch(); err != nil {
			return 0, false, err
		}
	}
	floor := min(protected, s.derived)
	c := tx.Bucket(bucketEvents).Cursor()
	var r device.Reading
	var last uint64
	defer func() {
		if deleted > 0 && err == nil {
			err = noteEvicted(tx, last)
		}
	}()
	for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= floor; k, v = c.First() {
		if deleted >= 10000 {
			return deleted, true, nil
		}
		if err := decodeReading(v, &r, nil); err == nil && r.HubTime.UnixNano() >= cutoff {
			return deleted, false, nil
		}
		last = binary.BigEndian.Uint64(k)
		if err := c.Delete(); err != nil {
			return deleted, false, err
		}
		deleted++
	}
	return deleted, false, nil
}

// expiredAfter reports whether the first event after seq is older than cutoff.
func (s *Store) expiredAfter(tx *bolt.Tx, seq uint64, cutoff int64) bool {
	k, v := tx.Bucket(bucketEvents).Cursor().Seek(u64key(seq + 1))
	if k == nil {
		return false
	}
	var r device.Reading
	return decodeReading(v, &r, nil) == nil && r.HubTime.UnixNano() < cutoff
}

// noteEvicted records in meta evicted_seq that retention deleted every event up to
// seq (retention deletes the oldest first).
func noteEvicted(tx *bolt.Tx, seq uint64) error {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyEvictedSeq); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
		return nil
	}
	return meta.Put(keyEvictedSeq, u64key(seq))
}

// releaseInterval is how often Maintain releases the store's mapped pages: at most
// what the writer and readers touch in that time (under a MB in a burst) is resident
// between releases; a release is one madvise over the mapping.
// Maintain is one pass of retention (the agent runs it every minute): it expires raw
// readings by age, then compacts the file when at least half of it (and at least 1/8
// of the quota) is free pages, so what retention freed goes back to the disk. Between
// passes the agent drops the file's mapped pages from the resident set every 250ms
// (ReleaseMapped).
func (s *Store) Maintain(now time.Time) error {
	n, err := s.Expire(now)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	if n > 0 {
		s.log.Info("retention: expired raw readings", "expired", n, "max_age", s.opts.MaxAge)
	}
	if s.mostlyFree() {
		if _, err := s.Compact(); err != nil {
			return fmt.Errorf("compaction: %w", err)
		}
	}
	return nil
}

// Stats is a snapshot of the store's size and counts.
type Stats struct {
	FileBytes  int64             `json:"file_bytes"`
	UsedBytes  int64             `json:"used_bytes"`
	QuotaBytes int64             `json:"quota_bytes"`
	Events     int               `json:"events"`
	FirstSeq   uint64            `json:"first_seq"`
	LastSeq    uint64            `json:"last_seq"`
	Cursors    map[string]uint64 `json:"cursors"`
}

// Stats returns a snapshot of the store's size and counts.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.read(func(tx *bolt.Tx) error {
		st.FileBytes = tx.Size()
		st.UsedBytes = s.used(tx)
		st.QuotaBytes = s.opts.QuotaBytes
		ev := tx.Bucket(bucketEvents)
		st.Events = s.eventCount
		if k, _ := ev.Cursor().First(); k != nil {
			st.FirstSeq = binary.BigEndian.Uint64(k)
		}
		st.LastSeq = s.lastSeq.Load()
		st.Cursors = (&Tx{tx: tx}).Cursors()
		return nil
	})
	return st, err
}

// mostlyFree reports whether compaction would give back at least half the file and
// at least an eighth of the quota.
func (s *Store) mostlyFree() bool {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	size := fileSize(s.path)
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	return free >= size/2 && free >= s.opts.QuotaBytes/8
}

// protectedFloor is the highest sequence retention may delete: the lowest cursor of
// the protected consumers (Options.Protect), or every sequence when none is set.
func (s *Store) protectedFloor(tx *bolt.Tx) uint64 {
	floor := ^uint64(0)
	for _, name := range s.opts.Protect {
		if cur := (&Tx{tx: tx}).Cursor(name); cur < floor {
			floor = cur
		}
	}
	return floor
}
