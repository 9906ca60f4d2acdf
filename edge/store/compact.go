package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compaction.
//
// bbolt never shrinks its file: pages freed by retention are reused, not returned.
// Compact copies every live key into path+".compact" (bbolt.Compact, each transaction
// fsync'd), closes the store's file, renames the copy over it, fsyncs the directory
// and reopens: freed space goes back to the disk. It runs on the applier goroutine, so
// no commit of the database is in flight, after committing the batch, under bmu, so
// no View or Update is either. Readings are logged and acknowledged meanwhile.
//
// A crash at any point leaves one whole file at path: before the rename the old one
// (Open deletes the partial copy), after it the complete copy.

type compactReq struct{ done chan compactResult }

type compactResult struct {
	freed int64
	err   error
}

// Compact rewrites the file without its free pages and returns the bytes it gave
// back to the disk. Readings submitted meanwhile wait for it.
//
// Every reading acknowledged before the call is applied first, so that the commit
// before the copy covers it and the log's segments holding it are removed with the
// rest (erasure: a segment the last commit does not cover is kept whole, with every
// older record in it).
func (s *Store) Compact() (int64, error) {
	s.waitApplied(s.lastSeq.Load())
	req := compactReq{done: make(chan compactResult, 1)}
	select {
	case s.compactCh <- req:
	case <-s.stop:
		return 0, ErrClosed
	}
	select {
	case r := <-req.done:
		return r.freed, r.err
	case <-s.done:
		return 0, ErrClosed
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// compact runs on the applier goroutine: it commits the batch first, and holds
// bmu throughout, so no transaction is open.
func (s *Store) compact(reason string) (int64, error) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if err := s.commitLocked("compact"); err != nil {
		return 0, err
	}
	start := time.Now()
	path := s.path
	before := fileSize(path)
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, s.boltOptions())
	if err != nil {
		return 0, fmt.Errorf("store: compact: create %s: %w", tmp, err)
	}
	dst.AllocSize = allocSize(s.opts)
	if err := bolt.Compact(dst, s.db, 4<<20); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("store: compact into %s: %w", tmp, err)
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("store: compact: close %s: %w", tmp, err)
	}
	if err := s.db.Close(); err != nil {
		return 0, s.failWith(fmt.Errorf("store: compact: close %s: %w", path, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		if db, oerr := openBolt(path, s.opts, nil); oerr == nil {
			s.db = db
			return 0, fmt.Errorf("store: compact: rename: %w", err)
		}
		return 0, s.failWith(fmt.Errorf("store: compact: rename %s: %w", tmp, err))
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		s.log.Warn("compact: fsync of the directory failed", "err", err)
	}
	db, err := openBolt(path, s.opts, nil)
	if err != nil {
		return 0, s.failWith(fmt.Errorf("store: compact: reopen: %w", err))
	}
	s.db = db
	// Erasure: no byte of a deleted record may stay in any file under the data
	// directory. The new file holds none; the log's segments (and spares, recycled
	// with old records past their header) covered by the last commit are removed.
	if s.wal != nil {
		if _, err := s.wal.Forget(s.derived); err != nil {
			s.log.Warn("compact: removing the write-ahead log's released segments failed", "err", err)
		}
		// A new spare of zeros, so that the next reading's acknowledgement does not
		// wait for one (the agent compacts at its first start, moving the pseudonym
		// key out of the store: the first readings then paid for 1 MB of zeros).
		wrote, err := s.wal.Prepare()
		if s.flash != nil {
			s.flash.other(wrote)
		}
		if err != nil {
			s.log.Warn("compact: the write-ahead log could not make a segment ready", "err", err)
		}
	}
	after := fileSize(path)
	freed := before - after
	s.m.compactions.Inc()
	s.m.compactedBytes.Add(float64(max(freed, 0)))
	s.log.Info("compacted the database", "reason", reason, "before_bytes", before, "after_bytes", after, "took", time.Since(start))
	return freed, nil
}

// failWith stops intake with err (the file could not be reopened) and returns it.
func (s *Store) failWith(err error) error {
	s.stopIntake(err)
	s.log.Error("intake stopped", "err", err)
	return err
}

// stopIntake records err as the failure that stopped intake, unless one already did;
// it reports whether this call stopped it. After a failed write or fsync the page
// cache and the file may disagree: nothing more is written until a restart.
func (s *Store) stopIntake(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return false
	}
	s.failed = err
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleCompaction deletes the partial copy a crash during Compact left.
func removeStaleCompaction(path string) {
	if err := os.Remove(path + ".compact"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = err // nothing else to do: the next Compact truncates it
	}
}

// compactDue reports whether the file has grown near its quota while holding much
// free space: the writer compacts it then, before raw readings would be evicted.
func (s *Store) compactDue() bool {
	size := fileSize(s.path)
	if size < s.opts.QuotaBytes*85/100 {
		return false
	}
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	return free >= size/4
}
