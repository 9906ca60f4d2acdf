package store

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
)

// bytesPerReading is a conservative estimate of the disk one event takes, used to
// decide how much to evict ahead of a commit.
const bytesPerReading = 96

// used returns the bytes of the file in use: its size less its free pages.
func (s *Store) used(tx *bolt.Tx) int64 {
	st := s.db.Stats()
	return tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(s.db.Info().PageSize)
}

// makeRoom evicts the oldest raw readings when the commit of n readings would take the
// store over its quota: down to 85% of the quota, so eviction happens in bulk. It
// returns ErrQuota when evicting every raw reading would not make room.
func (s *Store) makeRoom(tx *bolt.Tx, n int) error {
	quota := s.opts.QuotaBytes
	need := int64(n) * bytesPerReading
	used := s.used(tx)
	if used+need <= quota*95/100 {
		return nil
	}
	ev := tx.Bucket(bucketEvents)
	target := used + need - quota*85/100
	evict := int(target/bytesPerReading) + 1
	c := ev.Cursor()
	deleted := 0
	for k, _ := c.First(); k != nil && deleted < evict; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
		deleted++
	}
	s.m.evicted.WithLabelValues("quota").Add(float64(deleted))
	if deleted > 0 {
		s.log.Info("quota: evicted oldest raw readings", "evicted", deleted, "quota_bytes", quota)
	}
	if deleted < evict && used+need-int64(deleted)*bytesPerReading > quota {
		return ErrQuota
	}
	return nil
}

// Expire deletes raw readings whose hub time is older than MaxAge, oldest first, in
// transactions of at most 10,000 deletions. It returns how many it deleted.
func (s *Store) Expire(now time.Time) (int, error) {
	cutoff := now.Add(-s.opts.MaxAge).UnixNano()
	total := 0
	for {
		deleted := 0
		more := false
		err := s.Update(func(t *Tx) error {
			c := t.tx.Bucket(bucketEvents).Cursor()
			var r device.Reading
			for k, v := c.First(); k != nil; k, v = c.First() {
				if deleted >= 10000 {
					more = true
					return nil
				}
				if err := decodeReading(v, &r, nil); err == nil && r.HubTime.UnixNano() >= cutoff {
					return nil
				}
				if err := c.Delete(); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += deleted
		s.m.evicted.WithLabelValues("age").Add(float64(deleted))
		if !more {
			return total, nil
		}
	}
}

// Maintain runs retention every interval until ctx is cancelled.
func (s *Store) Maintain(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Expire(s.opts.Now()); err != nil {
				s.log.Error("retention failed", "err", err)
			} else if n > 0 {
				s.log.Info("retention: expired raw readings", "expired", n, "max_age", s.opts.MaxAge)
			}
		}
	}
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
	err := s.db.View(func(tx *bolt.Tx) error {
		st.FileBytes = tx.Size()
		st.UsedBytes = s.used(tx)
		st.QuotaBytes = s.opts.QuotaBytes
		ev := tx.Bucket(bucketEvents)
		st.Events = ev.Stats().KeyN
		if k, _ := ev.Cursor().First(); k != nil {
			st.FirstSeq = binary.BigEndian.Uint64(k)
		}
		st.LastSeq = s.lastSeq.Load()
		st.Cursors = (&Tx{tx}).Cursors()
		return nil
	})
	return st, err
}
