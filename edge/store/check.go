package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

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

// checkTruncated reads bbolt's two meta pages and reports a file shorter than the
// newer one says it is. bbolt maps the file and would read past its end (SIGBUS, a
// fatal fault that no recover catches: a boot loop) before noticing. Layout of a meta
// page (bbolt internal/common): 16-byte page header, then magic u32, version u32,
// page size u32, flags u32, root {pgid u64, sequence u64}, freelist u64, pgid u64,
// txid u64, checksum u64; native byte order (little-endian on every hub target).
func checkTruncated(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt reports it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	const magic = 0xED0CDAED
	var best struct{ txid, end uint64 }
	// Meta 0 at offset 0 gives the page size; meta 1 is at one page.
	read := func(at int64) (ok bool, pageSize uint32, end, txid uint64) {
		buf := make([]byte, 16+64)
		if n, _ := f.ReadAt(buf, at); n < len(buf) {
			return false, 0, 0, 0
		}
		m := buf[16:]
		if binary.LittleEndian.Uint32(m[0:]) != magic {
			return false, 0, 0, 0
		}
		pageSize = binary.LittleEndian.Uint32(m[8:])
		pgid := binary.LittleEndian.Uint64(m[40:])
		txid = binary.LittleEndian.Uint64(m[48:])
		return true, pageSize, pgid * uint64(pageSize), txid
	}
	ok0, ps, end0, tx0 := read(0)
	if !ok0 || ps < 512 || ps > 1<<20 {
		return nil // bbolt judges meta 0 itself
	}
	best.txid, best.end = tx0, end0
	if ok1, ps1, end1, tx1 := read(int64(ps)); ok1 && ps1 == ps && tx1 > best.txid {
		best.txid, best.end = tx1, end1
	}
	if best.end > uint64(fi.Size()) {
		return corruptErr{fmt.Errorf("store: %s is truncated: %d bytes, its meta page says %d", path, fi.Size(), best.end)}
	}
	return nil
}
