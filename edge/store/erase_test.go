package store

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// After a record is deleted and the store compacted (the rewrite erasure relies
// on), no byte of it remains in any file under the data directory: not in the
// database, not in the write-ahead log's segments, nor in the spares it recycles
// (which keep old records past their header until overwritten).
func TestCompactLeavesNoDeletedRecordBytes(t *testing.T) {
	for _, rounds := range []int{1, 6, 40} {
		t.Run(fmt.Sprintf("rounds=%d", rounds), func(t *testing.T) { compactErases(t, rounds) })
	}
}

func compactErases(t *testing.T, rounds int) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	now := time.Unix(1700000000, 0)
	s := openTest(t, path, &Options{MaxAge: time.Hour, Now: func() time.Time { return now }, logSegment: 64 << 10})
	defer s.Close()
	const marker = "erase-me-7f3a9c"
	old := reading("fridge", 1, 1, 1)
	old.Unit = marker // in the event only (the device's records keep its id, not this)
	old.HubTime = now.Add(-2 * time.Hour)
	ctx := context.Background()
	if err := device.Commit(ctx, s, []device.Reading{old}); err != nil {
		t.Fatal(err)
	}
	// Later readings: some in the marker's segment, some filling and recycling
	// segments, so that the log holds the marker both in its active segment and,
	// with more rounds, in a spare (rounds 1 and 6; at 40 it is overwritten).
	for i := range rounds {
		rs := make([]device.Reading, 200)
		for j := range rs {
			rs[j] = reading("fridge", 1, uint64(i*200+j+2), 1)
			rs[j].HubTime = now
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if !dataDirHas(t, dir, marker) {
		t.Fatal("the marker is in no file before its deletion: the test plants nothing")
	}
	if n, err := s.Expire(now); err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v; want the marker's reading deleted", n, err)
	}
	if _, err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if dataDirHas(t, dir, marker) {
		t.Error("bytes of the deleted reading remain under the data directory after compaction")
	}
	// The log still works: a new reading is taken and read back.
	if err := device.Commit(ctx, s, []device.Reading{reading("after", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s); got[len(got)-1].Device != "after" {
		t.Errorf("the last reading is %+v, want the one committed after compaction", got[len(got)-1])
	}
}

// dataDirHas reports whether any file under dir holds marker, naming each.
func dataDirHas(t *testing.T, dir, marker string) bool {
	t.Helper()
	found := false
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(marker)) {
			t.Logf("%s holds %q", p, marker)
			found = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// EraseHousehold in one Update with what the agent writes beside it (the erasure
// request queued upstream, a durable bucket: such an Update is committed alone, by
// undoing it and writing it again): every reading and record is gone once the store
// is compacted and reopened, and no byte of the devices' ids is left in any file.
// Its buckets were emptied by DeleteBucket, which the undo log does not see: the
// commit wrote back the erasure request alone, and `hearth forget --household`
// erased nothing (the agent's scan found 2,261 copies left).
func TestEraseHouseholdIsCommitted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	s := openTest(t, path, nil)
	ctx := context.Background()
	for _, dev := range []string{"fridge-qx81", "washer-qx82"} {
		rs := make([]device.Reading, 300)
		for i := range rs {
			rs[i] = reading(dev, 1, uint64(i+1), 1)
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !dataDirHas(t, dir, "-qx8") {
		t.Fatal("the devices' ids are in no file before the erasure: the test plants nothing")
	}
	s = openTest(t, path, nil)
	var erased Erased
	if err := s.Update(func(tx *Tx) error {
		var err error
		if erased, err = tx.EraseHousehold(); err != nil {
			return err
		}
		return tx.Enqueue(&Message{Enqueued: time.Now(), Type: "erasure", ID: "req1", Category: "erasure", At: time.Now(), Body: []byte(`{"scope":"household"}`)})
	}); err != nil {
		t.Fatal(err)
	}
	if erased["events"] != 600 || erased["devices"] != 2 {
		t.Errorf("EraseHousehold erased %v, want 600 events and 2 devices", erased)
	}
	if _, err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, nil)
	defer s.Close()
	if got := readAll(t, s); len(got) != 0 {
		t.Errorf("%d readings after the household's erasure, want none", len(got))
	}
	if d := s.Devices(); len(d) != 0 {
		t.Errorf("devices after the household's erasure: %+v", d)
	}
	queued := 0
	if err := s.View(func(tx *Tx) error {
		return tx.Queued(0, func(m Message) error { queued++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if queued != 1 {
		t.Errorf("%d messages queued after the erasure, want its request alone", queued)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if dataDirHas(t, dir, "-qx8") {
		t.Error("bytes of the erased devices remain under the data directory")
	}
}

// An erasure with other writes pending, on a store over half its quota: Erase
// commits the batch first, so the erasure is committed and intake goes on. Run
// through Update instead, the commit of the batch as it stood before the erasure
// (its undo puts every deleted record back) rewrote nearly every page, reached the
// quota and stopped intake, the erasure lost (a reviewer's probe: 40,000 readings
// left, "database reached maximum size").
func TestEraseWithPendingWritesOnAFullishStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	opts := &Options{QuotaBytes: 5 << 20}
	s := openTest(t, path, opts)
	ctx := context.Background()
	const n = 40000
	for i := 0; i < n; i += 1000 {
		rs := make([]device.Reading, 1000)
		for j := range rs {
			rs[j] = reading("fridge-qx81", 1, uint64(i+j+1), 1)
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < int64(opts.QuotaBytes)/2 {
		t.Fatalf("the store is %v bytes (%v): the test needs one over half of its quota", fi.Size(), err)
	}
	s = openTest(t, path, opts)
	defer s.Close()
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("x", 1) }); err != nil {
		t.Fatal(err)
	}
	var erased Erased
	if err := s.Erase(func(tx *Tx) error {
		var err error
		if erased, err = tx.EraseHousehold(); err != nil {
			return err
		}
		return tx.Enqueue(&Message{Enqueued: time.Now(), Type: "erasure", ID: "req1", Category: "erasure", At: time.Now(), Body: []byte(`{"scope":"household"}`)})
	}); err != nil {
		t.Fatalf("the erasure: %v (intake: %v)", err, s.Failed())
	}
	if err := s.Failed(); err != nil {
		t.Fatalf("intake stopped by the erasure: %v", err)
	}
	if erased["events"] != n {
		t.Errorf("erased %v, want %d events", erased, n)
	}
	if got := readAll(t, s); len(got) != 0 {
		t.Errorf("%d readings after the erasure, want none", len(got))
	}
	if err := device.Commit(ctx, s, []device.Reading{reading("washer", 1, 1, 1)}); err != nil {
		t.Errorf("a reading after the erasure: %v", err)
	}
}
