package store

import (
	"path/filepath"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/wal"
)

// The first reading after Open, and after a compaction (which removes the log's
// segments and spares: erasure), is logged into a segment made ready beforehand: its
// commit writes a header page and its record (a block), not a segment of zeros.
func TestFirstReadingDoesNotWaitForZeros(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	commitOne := func(seq uint64) int64 {
		t.Helper()
		before := s.Flash().LogBytes
		done := make(chan error, 1)
		s.Submit([]device.Reading{reading("fridge1", 1, seq, 1)}, func(err error) { done <- err })
		wantCommitted(t, done)
		return s.Flash().LogBytes - before
	}
	if got, want := commitOne(1), wal.PageSize+s.wal.BlockSize(); got != want {
		t.Errorf("the first reading after Open wrote %d bytes to the log, want %d (a header page and the record)", got, want)
	}
	if _, err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if got, want := commitOne(2), wal.PageSize+s.wal.BlockSize(); got != want {
		t.Errorf("the first reading after a compaction wrote %d bytes to the log, want %d (a header page and the record)", got, want)
	}
}
