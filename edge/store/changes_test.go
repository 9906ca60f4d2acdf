package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hearth-iot/hearth/device"
)

// Changes grows with every write that reaches the batch — a group of events, an
// Update that wrote — and stays put across reads and Updates that wrote nothing: a
// stage may skip a pass while it stays put (tag evaluation does).
func TestChangesCountsWritesOnly(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	c0 := s.Changes()
	if err := s.View(func(tx *Tx) error { _ = tx.Cursor("x"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	readAll(t, s)
	if got := s.Changes(); got != c0 {
		t.Fatalf("Changes went from %d to %d over a View, an empty Update and a read", c0, got)
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	s.View(func(*Tx) error { return nil }) // the events are applied before a View runs
	c1 := s.Changes()
	if c1 == c0 {
		t.Fatal("Changes did not move when a reading was stored")
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("x", 1) }); err != nil {
		t.Fatal(err)
	}
	if s.Changes() == c1 {
		t.Fatal("Changes did not move when an Update wrote a cursor")
	}
}

// ReleaseMapped madvises only when something held the batch's lock since the last
// release: with no transaction in between no page of the mapping was touched.
func TestReleaseMappedOnlyAfterAccess(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	release := func() int {
		t.Helper()
		if err := s.ReleaseMapped(); err != nil {
			t.Fatal(err)
		}
		s.bmu.Mutex.Lock() // not counted: reading the count is no access to the file
		defer s.bmu.Unlock()
		return s.releases
	}
	n := release()
	if n != 1 {
		t.Fatalf("the first ReleaseMapped made %d releases, want 1", n)
	}
	if again := release(); again != n {
		t.Fatalf("ReleaseMapped with no transaction since the last: %d releases, then %d", n, again)
	}
	if err := s.View(func(tx *Tx) error { _ = tx.Cursor("x"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := release(); got != n+1 {
		t.Fatalf("ReleaseMapped after a View: %d releases, want %d", got, n+1)
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	n = release()
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 2, 1)}); err != nil {
		t.Fatal(err)
	}
	s.waitApplied(s.LastSeq())
	if got := release(); got != n+1 {
		t.Fatalf("ReleaseMapped after a reading was applied: %d releases, want %d", got, n+1)
	}
}

// Touched is signalled once the batch's lock was taken since the last receive, and
// not otherwise.
func TestTouched(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	touched := func() bool {
		select {
		case <-s.Touched():
			return true
		default:
			return false
		}
	}
	touched() // whatever Open did
	if touched() {
		t.Fatal("Touched signalled twice with nothing in between")
	}
	if err := s.View(func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !touched() {
		t.Fatal("Touched not signalled after a View")
	}
	if touched() {
		t.Fatal("Touched signalled again with nothing in between")
	}
}
