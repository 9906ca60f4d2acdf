package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the file and the store's invariants: the page structure (what
// `bbolt check` runs: no page freed twice, none unreachable, every key in order),
// every event key a strictly increasing 8-byte sequence, every dedupe record
// readable. (Consumer cursors are the consumers' to check: Tx.Cursor against LastSeq.) It reads the whole file:
// cheap on a hub's store (≈60 ms per 64 MiB here), so tests and `hearth status
// --check` run it, while Open does not (see FORMAT.md, "Corruption").
func (s *Store) Check() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drain it all: Check's goroutine holds the tx
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("store: %s: page check: %w", s.db.Path(), errors.Join(errs...))
		}
		ev, dd := tx.Bucket(bucketEvents), tx.Bucket(bucketDedupe)
		if ev == nil || dd == nil {
			return nil // a new file, before its buckets are made
		}
		var prev uint64
		if err := ev.ForEach(func(k, _ []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("store: events: key of %d bytes", len(k))
			}
			seq := binary.BigEndian.Uint64(k)
			if seq <= prev {
				return fmt.Errorf("store: events: sequence %d after %d", seq, prev)
			}
			prev = seq
			return nil
		}); err != nil {
			return err
		}
		return dd.ForEach(func(k, v []byte) error {
			if _, ok := parseDedupeKey(k); !ok {
				return fmt.Errorf("store: dedupe key %q malformed", k)
			}
			if _, err := decodeWatermark(v); err != nil {
				return fmt.Errorf("store: dedupe %q: %w", k, err)
			}
			return nil
		})
	})
}
