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
