package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
)

// The file on disk stays within the quota while raw readings are evicted oldest
// first; rollups written alongside are all kept.
func TestQuotaBoundsFile(t *testing.T) {
	const quota = 2 << 20
	path := filepath.Join(t.TempDir(), "hearth.db")
	reg := prometheus.NewRegistry()
	s := openTest(t, path, &Options{QuotaBytes: quota, Registerer: reg})
	defer s.Close()
	ctx := context.Background()
	var seq uint64
	for i := range 200 {
		rs := make([]device.Reading, 500)
		for j := range rs {
			seq++
			rs[j] = reading("fridge1", 1, seq, 1)
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if err := s.Update(func(tx *Tx) error {
			return tx.put(Rollups, fmt.Appendf(nil, "day-%04d", i), jsonOf(200))
		}); err != nil {
			t.Fatalf("rollup %d: %v", i, err)
		}
		if sz := fileSize(path); sz > quota {
			t.Fatalf("after batch %d the file is %d bytes, over the %d quota", i, sz, quota)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != seq || st.FirstSeq <= 1 || st.Events >= int(seq) {
		t.Errorf("want the newest kept and the oldest evicted: %+v", st)
	}
	if ev := counterValue(t, reg, "hearth_store_readings_evicted_total"); int(ev) != int(seq)-st.Events {
		t.Errorf("evicted counter %v, want %d", ev, int(seq)-st.Events)
	}
	_ = s.View(func(tx *Tx) error {
		if n := tx.count(Rollups); n != 200 {
			t.Errorf("%d rollups kept, want all 200", n)
		}
		return nil
	})
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// When what is left is only what is never evicted, new readings are refused (never
// acknowledged), counted, intake is not stopped, and nothing is corrupted.
func TestQuotaRefusesWhenFull(t *testing.T) {
	const quota = 1 << 20
	path := filepath.Join(t.TempDir(), "hearth.db")
	reg := prometheus.NewRegistry()
	s := openTest(t, path, &Options{QuotaBytes: quota, Registerer: reg})
	defer s.Close()
	// Fill with outbox entries (never evicted) until an Update is refused.
	var full error
	for i := 0; full == nil && i < 100000; i++ {
		full = s.Update(func(tx *Tx) error { return tx.put(Outbox, fmt.Appendf(nil, "%08d", i), append(Key(1), jsonOf(992)...)) })
	}
	if !errors.Is(full, ErrQuota) {
		t.Fatalf("filling the outbox: %v, want ErrQuota", full)
	}
	rs := make([]device.Reading, 1000)
	for i := range rs {
		rs[i] = reading("f", 1, uint64(i+1), 1)
	}
	err := device.Commit(context.Background(), s, rs)
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("a reading into a full store: %v, want ErrQuota", err)
	}
	if s.Failed() != nil {
		t.Errorf("a full quota stopped intake: %v", s.Failed())
	}
	if n := counterValue(t, reg, "hearth_store_readings_refused_total"); n != 1000 {
		t.Errorf("refused counter = %v, want 1000", n)
	}
	if sz := fileSize(path); sz > quota {
		t.Errorf("file %d bytes > quota %d", sz, quota)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Delivering the outbox frees room: readings are taken again.
	if err := s.Update(func(tx *Tx) error {
		var keys [][]byte
		_ = tx.forEach(Outbox, nil, func(k, _ []byte) error { keys = append(keys, k); return nil })
		for _, k := range keys[:len(keys)/2] {
			if err := tx.del(Outbox, k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("f", 1, 1, 1)}); err != nil {
		t.Fatalf("after freeing room: %v", err)
	}
}

// Compact returns the space retention freed to the disk, keeping every live key,
// bucket sequence and cursor.
func TestCompactReturnsSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	// Expire (below) keeps the last 1000 readings: hub times are seq seconds apart.
	s := openTest(t, path, &Options{MaxAge: 1000 * time.Second})
	defer s.Close()
	ctx := context.Background()
	var seq uint64
	for range 100 {
		rs := make([]device.Reading, 1000)
		for j := range rs {
			seq++
			rs[j] = reading("fridge1", 1, seq, 1)
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatal(err)
		}
	}
	var outSeq uint64
	if err := s.Update(func(tx *Tx) error {
		if err := tx.SetCursor("rollup", seq); err != nil {
			return err
		}
		var err error
		outSeq, err = tx.NextSeq(Outbox) // through the batch's undo log (a raw bucket call is not redone by a durable commit)
		if err != nil {
			return err
		}
		return tx.put(Outbox, Key(outSeq), append(Key(1), `"summary"`...))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
		t.Fatal(err)
	}
	n, err := s.Expire(reading("x", 1, seq, 0).HubTime)
	if err != nil || n < 98000 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	before := fileSize(path)
	freed, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	after := fileSize(path)
	if freed <= 0 || after >= before/2 || freed != before-after {
		t.Fatalf("compaction: %d → %d bytes, freed %d", before, after, freed)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the compaction copy was left behind: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Everything live is still there, and the store keeps working.
	if got := readAll(t, s); len(got) != int(seq)-n || got[len(got)-1].Seq != seq {
		t.Errorf("%d events after compaction, want %d", len(got), int(seq)-n)
	}
	_ = s.Update(func(tx *Tx) error {
		if c := tx.Cursor("rollup"); c != seq {
			t.Errorf("cursor %d after compaction, want %d", c, seq)
		}
		if v := tx.get(Outbox, Key(outSeq)); string(v[8:]) != `"summary"` {
			t.Errorf("outbox entry lost: %q", v)
		}
		next, _ := tx.bucket(Outbox).NextSequence()
		if next != outSeq+1 {
			t.Errorf("outbox sequence restarted at %d, want %d", next, outSeq+1)
		}
		return nil
	})
	if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 1, seq+1, 1), reading("fridge1", 1, seq, 1)}); err != nil {
		t.Fatal(err)
	}
	if s.LastSeq() != seq+1 {
		t.Errorf("LastSeq %d, want %d (dedupe kept across compaction)", s.LastSeq(), seq+1)
	}
}

// Retention never deletes what a protected consumer has not processed: with its
// cursor held back, eviction stops there and new readings are refused; once the
// consumer catches up, eviction makes room again.
func TestQuotaSparesUnprocessedReadings(t *testing.T) {
	const quota = 1 << 20
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, &Options{QuotaBytes: quota, Protect: []string{"rollup"}})
	defer s.Close()
	ctx := context.Background()
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 2000) }); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		rs := make([]device.Reading, 500)
		for j := range rs {
			seq++
			rs[j] = reading("fridge1", 1, seq, 1)
		}
		refused = device.Commit(ctx, s, rs)
	}
	if !errors.Is(refused, ErrQuota) {
		t.Fatalf("the quota never refused readings (err %v): eviction must have passed the protected cursor", refused)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FirstSeq != 2001 {
		t.Fatalf("oldest kept reading is %d, want 2001 (everything up to the cursor evicted, nothing after)", st.FirstSeq)
	}
	// The consumer catches up: room is made and readings are taken again.
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", st.LastSeq) }); err != nil {
		t.Fatal(err)
	}
	rs := []device.Reading{reading("fridge1", 1, seq+1, 1)}
	if err := device.Commit(ctx, s, rs); err != nil {
		t.Fatalf("after the consumer caught up: %v", err)
	}
}

// jsonOf is a JSON string of n bytes, quotes included: a record of that size for a
// bucket that holds JSON.
func jsonOf(n int) []byte { return strconv.AppendQuote(nil, strings.Repeat("x", max(n-2, 0))) }
