package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/wal"
	"github.com/hearth-iot/hearth/edge/store/wal/waltest"
	"github.com/prometheus/client_golang/prometheus"
)

// logCrashCopy commits n readings one at a time (one log record each) and copies
// the database and its log as a kill -9 would leave them: the readings are in the
// log only (no checkpoint since Open). It returns the copy's path and the newest
// segment file of the copy's log.
func logCrashCopy(t *testing.T, n int) (string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	s := openTest(t, path, nil)
	defer s.Close()
	for i := 1; i <= n; i++ {
		if err := device.Commit(context.Background(), s, []device.Reading{reading("f", 1, uint64(i), float64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	crashed := filepath.Join(t.TempDir(), "hearth.db")
	copyStore(t, path, crashed)
	if err := os.MkdirAll(crashed+walSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(path+walSuffix, "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no log segment beside the store: %v", err)
	}
	sort.Strings(segs)
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed+walSuffix, filepath.Base(seg)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return crashed, filepath.Join(crashed+walSuffix, filepath.Base(segs[len(segs)-1]))
}

// recordAt is the offset of the k-th record (from 0) of segment seg written one small
// group at a time: each record is one block (the header says its size), after the
// segment's header page.
func recordAt(seg []byte, k int) int64 {
	return wal.PageSize + int64(k)*int64(binary.BigEndian.Uint32(seg[12:]))
}

func readingsOf(t *testing.T, s *Store) map[uint64]bool {
	t.Helper()
	out := map[uint64]bool{}
	for _, r := range readAll(t, s) {
		out[r.Seq] = true
	}
	return out
}

// A torn last record — a write a power cut interrupted, never acknowledged — is cut
// off at Open: every acknowledged reading is there, no damage is reported, the torn
// tail is counted, and the log takes new readings.
func TestLogTornLastRecord(t *testing.T) {
	const n = 5
	crashed, seg := logCrashCopy(t, n)
	// The next record as a torn write leaves it: its first two sectors (header
	// and part of the body) written, the rest of its page not — the last record
	// with the next sequence, whose checksum no longer holds.
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	torn := bytes.Clone(b[recordAt(b, n-1) : recordAt(b, n-1)+2*waltest.Sector])
	binary.BigEndian.PutUint64(torn[16:], n+1)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(torn, recordAt(b, n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := openTest(t, crashed, &Options{Registerer: reg})
	defer s.Close()
	got := readingsOf(t, s)
	for i := uint64(1); i <= n; i++ {
		if !got[i] {
			t.Errorf("acknowledged reading %d lost with the torn tail", i)
		}
	}
	if len(got) != n {
		t.Errorf("%d readings after Open, want %d", len(got), n)
	}
	if d := s.LogDamage(); d != nil {
		t.Errorf("a torn tail reported as damage: %+v", d)
	}
	if v := counterValue(t, reg, "hearth_store_log_torn_tails_total"); v != 1 {
		t.Errorf("torn tails counted %v, want 1", v)
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("f", 1, n+1, 1)}); err != nil {
		t.Fatalf("a reading after the torn tail was cut: %v", err)
	}
	if s.LastSeq() != n+1 {
		t.Errorf("LastSeq %d, want %d", s.LastSeq(), n+1)
	}
}

// A corrupt record with valid records after it is damage: what precedes it is
// replayed, what follows is counted and reported (LogDamage, the audit record
// log_damaged, the metric), never silently skipped; the log is moved aside byte for
// byte, and no sequence it held is reused.
func TestLogCorruptSegment(t *testing.T) {
	const n = 6
	crashed, seg := logCrashCopy(t, n)
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), orig...)
	b[recordAt(b, 2)+wal.RecordHeaderSize+3] ^= 0x40 // a bit of the third record's body
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := openTest(t, crashed, &Options{Registerer: reg})
	defer s.Close()
	got := readingsOf(t, s)
	if !got[1] || !got[2] || len(got) != 2 {
		t.Errorf("readings after Open %v, want 1 and 2 (those before the damage)", got)
	}
	d := s.LogDamage()
	if d == nil {
		t.Fatal("a corrupt record with valid records after it was not reported")
	}
	if d.Lost != n-2 || d.LostFirst != 3 || d.LostLast != n || d.After.Records != n-3 {
		t.Errorf("damage %+v: want events 3..%d lost (the corrupt record and the %d valid ones after it)", d, n, n-3)
	}
	if v := counterValue(t, reg, "hearth_store_log_damaged_total"); v != 1 {
		t.Errorf("log damage counted %v, want 1", v)
	}
	moved, err := os.ReadFile(filepath.Join(d.MovedTo, filepath.Base(seg)))
	if err != nil || string(moved) != string(b) {
		t.Errorf("the damaged segment was not moved aside byte for byte to %s: %v", d.MovedTo, err)
	}
	audited := false
	if err := s.View(func(tx *Tx) error {
		return tx.forEach(Audit, nil, func(_, v []byte) error {
			audited = audited || bytes.Contains(v, []byte("log_damaged"))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if !audited {
		t.Error("no log_damaged audit record")
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("f", 2, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if s.LastSeq() <= n {
		t.Errorf("a new reading took sequence %d: the damaged log held up to %d", s.LastSeq(), n)
	}
}
