package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Age retention deletes no reading a protected consumer has not processed, however
// old: with the rollup's cursor at 4 of 10 readings all past the age limit, Expire
// deletes 1..4 only; once the cursor reaches 10 it deletes the rest. (Taking the
// protected cursors out of Expire's floor passed every test before this one.)
func TestExpireSparesUnprocessedReadings(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{MaxAge: time.Hour, Protect: []string{"rollup"},
		Now: func() time.Time { return now }})
	defer s.Close()
	var rs []device.Reading
	for q := uint64(1); q <= 10; q++ {
		r := reading("fridge1", 1, q, 1)
		r.HubTime = now.Add(-2 * time.Hour)
		rs = append(rs, r)
	}
	if err := device.Commit(context.Background(), s, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 4) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
		t.Fatal(err)
	}
	if n, err := s.Expire(now); err != nil || n != 4 {
		t.Fatalf("Expire with the rollup at 4: deleted %d (%v), want 4: 5..10 are not rolled up yet", n, err)
	}
	if st, _ := s.Stats(); st.FirstSeq != 5 || st.Events != 6 {
		t.Fatalf("after Expire: %+v, want events 5..10", st)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 10) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
		t.Fatal(err)
	}
	if n, err := s.Expire(now); err != nil || n != 6 {
		t.Fatalf("Expire with the rollup at 10: deleted %d (%v), want the other 6", n, err)
	}
}

// With several protected consumers, retention stops at the lowest of their cursors,
// whichever consumer it belongs to, by age and by quota alike.
func TestRetentionStopsAtTheLowestProtectedCursor(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{MaxAge: time.Hour, QuotaBytes: 1 << 20,
		Protect: []string{"fast", "slow"}, Now: func() time.Time { return now }})
	defer s.Close()
	ctx := context.Background()
	var seq uint64
	commit := func(n int, age time.Duration) error {
		rs := make([]device.Reading, n)
		for i := range rs {
			seq++
			rs[i] = reading("fridge1", 1, seq, 1)
			rs[i].HubTime = now.Add(-age)
		}
		return device.Commit(ctx, s, rs)
	}
	if err := commit(100, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		if err := tx.SetCursor("fast", 100); err != nil {
			return err
		}
		return tx.SetCursor("slow", 30)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
		t.Fatal(err)
	}
	if n, err := s.Expire(now); err != nil || n != 30 {
		t.Fatalf("Expire: deleted %d (%v), want 30 (the slow consumer is at 30)", n, err)
	}
	// The quota: fill until refused; eviction must not pass the slow consumer.
	var refused error
	for i := 0; i < 200 && refused == nil; i++ {
		refused = commit(500, 0)
	}
	if !errors.Is(refused, ErrQuota) {
		t.Fatalf("the quota never refused readings (%v): eviction must have passed the slow consumer's cursor", refused)
	}
	if st, _ := s.Stats(); st.FirstSeq != 31 {
		t.Fatalf("oldest kept reading %d, want 31 (nothing after the slow consumer's cursor evicted)", st.FirstSeq)
	}
}
