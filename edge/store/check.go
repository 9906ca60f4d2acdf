package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the open store: the page structure as bbolt sees it (tx.Check: no
// page freed twice, none unreachable, every key in order), every event key a
// strictly increasing 8-byte sequence, and every record of every bucket the shape
// its owner writes (bucketDefs). Open checks the same of the file before bbolt
// reads it (checkFile); Check is for what happened since — tests, the crash
// harness and storetest run it. (Consumer cursors are the consumers' to check:
// Tx.Cursor against LastSeq.) It reads the whole file: about as long as Open's
// check (BenchmarkOpenCheck).
func (s *Store) Check() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	// What is committed (the batch is checked when it is): a read transaction beside
	// the batch's write transaction.
	s.bmu.Lock()
	defer s.bmu.Unlock()
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
		for _, def := range bucketDefs {
			b := tx.Bucket([]byte(def.name))
			if b == nil {
				if tx.Bucket(bucketMeta) == nil {
					return nil // a new file, before its buckets are made
				}
				return fmt.Errorf("store: %s: bucket %s missing", s.db.Path(), def.name)
			}
			var prev uint64
			if err := b.ForEach(func(k, v []byte) error {
				if def.check != nil {
					if err := def.check(k, v); err != nil {
						return fmt.Errorf("store: %s: bucket %s: key %x: %w", s.db.Path(), def.name, k, err)
					}
				}
				if def.name == "events" {
					seq := binary.BigEndian.Uint64(k)
					if seq <= prev {
						return fmt.Errorf("store: %s: events: sequence %d after %d", s.db.Path(), seq, prev)
					}
					prev = seq
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
