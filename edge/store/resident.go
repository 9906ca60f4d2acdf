package store

import (
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
func (s *Store) ReleaseMapped() error {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.db.View(s.releaseIn)
}

// releaseIn releases the mapping as tx sees it; tx (a read transaction) keeps bbolt
// from re-mapping the file meanwhile.
func (s *Store) releaseIn(tx *bolt.Tx) error {
	return releaseMapped(s.db.Info().Data, uintptr(tx.Size()))
}
