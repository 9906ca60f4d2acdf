package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ReleaseMapped drops the store file's pages from the process's resident set. bbolt
// reads through a read-only shared mapping of the whole file, so every page a reader
// touched (the rollup consumer reading new events, retention and compaction walking
// old ones) stays counted in the agent's RSS until the process ends: on a hub with a
// 64 MB quota, RSS would creep up to the file's size plus the binary. The pages stay
// in the page cache; a later read maps them again with a minor fault. Maintain calls
// it every releaseInterval, and a ReadEvents of releaseAfterEvents or more does the
// same before it returns.
//
// The madvise runs inside a read transaction: bbolt re-maps the file (when it grows)
// only while no read transaction is open, so the address range is the mapping's for
// the whole call; its length is the transaction's view of the file (tx.Size), which
// is never larger than the mapping.
//
// Every read and write of the file through the mapping holds bmu (View, Update, the
// applier, commits, compaction): when no one has held it since the last release,
// no page can have been touched, and the call does nothing — an idle hub makes no
// madvise four times a second.
func (s *Store) ReleaseMapped() error {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.released && s.bmu.n == s.releasedAt+1 { // only this call has held bmu since
		return nil
	}
	if err := s.db.View(s.releaseIn); err != nil {
		return err
	}
	s.released, s.releasedAt = true, s.bmu.n
	s.releases++
	return nil
}

// Touched is signalled when bmu is taken — a transaction, the applier, a commit —
// after the last receive: a caller that releases pages periodically (the agent's
// release-pages stage) can wait on it instead of waking an idle process.
func (s *Store) Touched() <-chan struct{} { return s.bmu.touched }

// countedMutex is a mutex that counts how often it was locked (n, read and written
// only under it) and signals touched (when made, buffered 1) each time.
type countedMutex struct {
	sync.Mutex
	n       uint64
	touched chan struct{}
}

func (m *countedMutex) Lock() {
	m.Mutex.Lock()
	m.n++
	select {
	case m.touched <- struct{}{}:
	default:
	}
}

// releaseIn releases the mapping as tx sees it; tx (a read transaction) keeps bbolt
// from re-mapping the file meanwhile.
func (s *Store) releaseIn(tx *bolt.Tx) error {
	return releaseMapped(s.db.Info().Data, uintptr(tx.Size()))
}
