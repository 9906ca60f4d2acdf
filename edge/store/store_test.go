package store

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/poll"
)

func openTest(t *testing.T, path string, o *Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func reading(dev string, boot, seq uint64, v float64) device.Reading {
	return device.Reading{Device: dev, Kind: device.KindFridge, Signal: device.SignalDoor, Value: v,
		Boot: boot, Seq: seq, DeviceTime: time.Unix(1700000000+int64(seq), 0), HubTime: time.Unix(1700000100+int64(seq), 0)}
}

func readAll(t *testing.T, s *Store) []device.Reading {
	t.Helper()
	var out []device.Reading
	if _, err := s.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error {
		out = append(out, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCommitDedupeReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	ctx := context.Background()
	batch := []device.Reading{reading("fridge1", 7, 1, 1), reading("fridge1", 7, 2, 0), reading("oven", 0, 0, 2200)}
	batch[2].Kind, batch[2].Signal, batch[2].Unit, batch[2].Label = device.KindOven, device.SignalPower, "W", "bake"
	if err := device.Commit(ctx, s, batch); err != nil {
		t.Fatal(err)
	}
	// A retransmission of seq 2 plus a new seq 3: only seq 3 is stored.
	if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 7, 2, 0), reading("fridge1", 7, 3, 1)}); err != nil {
		t.Fatal(err)
	}
	// A reboot starts a new boot id; seq 1 again is new.
	if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 8, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	if len(got) != 5 {
		t.Fatalf("got %d events, want 5: %+v", len(got), got)
	}
	if got[2].Label != "bake" || got[2].Value != 2200 || got[2].Unit != "W" || !got[2].DeviceTime.IsZero() == false {
		t.Errorf("oven reading round trip: %+v", got[2])
	}
	if !got[0].DeviceTime.Equal(batch[0].DeviceTime) || !got[0].HubTime.Equal(batch[0].HubTime) {
		t.Errorf("times: got %v/%v", got[0].DeviceTime, got[0].HubTime)
	}
	devs := s.Devices()
	if len(devs) != 2 || devs[0].ID != "fridge1" || devs[0].Readings != 4 || devs[0].Dups != 1 {
		t.Errorf("devices: %+v", devs)
	}
	id := s.InstallID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, nil)
	defer s.Close()
	if s.InstallID() != id {
		t.Errorf("install id changed across reopen: %s -> %s", id, s.InstallID())
	}
	if s.LastSeq() != 5 {
		t.Errorf("LastSeq after reopen = %d, want 5", s.LastSeq())
	}
	// The dedupe watermark survived the reopen.
	if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 8, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, s)); n != 5 {
		t.Errorf("after retransmit across reopen: %d events, want 5", n)
	}
}

func TestCursorsAndTx(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		if err := tx.SetCursor("rollup", 42); err != nil {
			return err
		}
		return tx.put(Rollups, []byte("k"), []byte(`"v"`))
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(func(tx *Tx) error {
		_ = tx.SetCursor("rollup", 99)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		if c := tx.Cursor("rollup"); c != 42 {
			t.Errorf("cursor = %d, want 42 (rolled-back update must not stick)", c)
		}
		if v := tx.get(Rollups, []byte("k")); string(v) != `"v"` {
			t.Errorf("Get = %q", v)
		}
		return nil
	})
	if s.Failed() != nil {
		t.Errorf("a callback error must not stop intake: %v", s.Failed())
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path, nil)
	defer s.Close()
	if s.Recovered == "" {
		t.Fatal("Recovered is empty: corrupt file not moved aside")
	}
	b, err := os.ReadFile(s.Recovered)
	if err != nil || !strings.HasPrefix(string(b), "not a database") {
		t.Fatalf("moved file: %v %q", err, b[:min(20, len(b))])
	}
	if err := device.Commit(context.Background(), s, []device.Reading{reading("f", 1, 1, 1)}); err != nil {
		t.Fatalf("fresh store does not take readings: %v", err)
	}
}

func TestForeignBoltFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(path)
	_, err = Open(path, nil)
	if !errors.Is(err, ErrNotHearth) {
		t.Fatalf("Open foreign file: err = %v, want ErrNotHearth", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("foreign file was modified")
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	defer s.Close()
	_, err := Open(path, &Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestQuotaEvictsOldest(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{QuotaBytes: 1 << 20})
	defer s.Close()
	ctx := context.Background()
	var seq uint64
	for i := 0; i < 40; i++ {
		rs := make([]device.Reading, 1000)
		for j := range rs {
			seq++
			rs[j] = reading("fridge1", 1, seq, 1)
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Events >= 40000 || st.FirstSeq <= 1 {
		t.Errorf("nothing evicted: %+v", st)
	}
	if st.LastSeq != 40000 {
		t.Errorf("LastSeq = %d, want 40000 (newest kept)", st.LastSeq)
	}
	if st.UsedBytes > 1<<20 {
		t.Errorf("used %d bytes > quota", st.UsedBytes)
	}
}

func TestExpireByAge(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{MaxAge: time.Hour, Now: func() time.Time { return now }})
	defer s.Close()
	var rs []device.Reading
	for i := 0; i < 10; i++ {
		r := reading("f", 1, uint64(i+1), 1)
		r.HubTime = now.Add(-time.Duration(10-i) * 20 * time.Minute) // 200 min ago .. 20 min ago
		rs = append(rs, r)
	}
	if err := device.Commit(context.Background(), s, rs); err != nil {
		t.Fatal(err)
	}
	n, err := s.Expire(now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 { // 200,180,...,80 min old are past the hour; 60 (exactly), 40, 20 stay
		t.Errorf("expired %d, want 7", n)
	}
	if got := len(readAll(t, s)); got != 3 {
		t.Errorf("%d left, want 3", got)
	}
}

// Readings that arrive out of order (a refused publish sent again after later ones
// were committed) are all stored once; every retransmission is recognised.
func TestDedupeOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	ctx := context.Background()
	for _, seqs := range [][]uint64{{1, 2}, {5, 6}, {3}, {2, 5}, {4}, {6, 7}} {
		var rs []device.Reading
		for _, q := range seqs {
			rs = append(rs, reading("f", 9, q, 1))
		}
		if err := device.Commit(ctx, s, rs); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]int{}
	for _, r := range readAll(t, s) {
		seen[r.Seq]++
	}
	for q := uint64(1); q <= 7; q++ {
		if seen[q] != 1 {
			t.Errorf("seq %d stored %d times", q, seen[q])
		}
	}
	s.Close()
	// The state survives a restart: every one is a duplicate now, 8 is new.
	s = openTest(t, path, nil)
	defer s.Close()
	var rs []device.Reading
	for q := uint64(1); q <= 8; q++ {
		rs = append(rs, reading("f", 9, q, 1))
	}
	if err := device.Commit(ctx, s, rs); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, s)); n != 8 {
		t.Errorf("%d events after restart, want 8", n)
	}
}

func TestWatermarkNeverGivesUpOnAGap(t *testing.T) {
	w := &watermark{}
	w.add(1)
	for q := uint64(3); q < 3+maxAbove+10; q++ { // seq 2 never comes, for a long time
		w.add(q)
	}
	if w.seen(2) {
		t.Fatal("a gap counts as seen: its late reading would be acknowledged and never stored")
	}
	if len(w.above) != maxAbove {
		t.Errorf("%d sequences remembered above the gap, want the bound %d", len(w.above), maxAbove)
	}
	if w.seen(3) || !w.seen(3+maxAbove+9) {
		t.Error("the oldest present sequences should be the ones forgotten")
	}
	w.add(2) // the gap fills: low catches up with what is remembered after it
	if !w.seen(2) || w.low != 2 {
		t.Errorf("after the late fill: low=%d", w.low)
	}
}

// A device keeps the dedupe state of its maxBoots most recent boots: older ones are
// pruned (from disk too), the recent ones still recognise retransmissions, and other
// devices' boots are untouched.
func TestDedupePrunesOldBoots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	ctx := context.Background()
	if err := device.Commit(ctx, s, []device.Reading{reading("other", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	for boot := uint64(1); boot <= maxBoots+3; boot++ {
		if err := device.Commit(ctx, s, []device.Reading{reading("f", boot, 1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(dev string) int {
		n := 0
		for bk := range s.wm {
			if bk.dev == dev {
				n++
			}
		}
		return n
	}
	if n := count("f"); n != maxBoots || len(s.bootsOf["f"]) != maxBoots {
		t.Fatalf("device f keeps %d boots (index %d), want %d", n, len(s.bootsOf["f"]), maxBoots)
	}
	if count("other") != 1 {
		t.Error("another device's boot was pruned")
	}
	s.Close()
	s = openTest(t, path, nil)
	defer s.Close()
	if n := count("f"); n != maxBoots {
		t.Errorf("after reopening, device f has %d boots on disk, want %d", n, maxBoots)
	}
	before := s.LastSeq()
	// The newest boot still recognises its reading; the oldest, forgotten, does not.
	if err := device.Commit(ctx, s, []device.Reading{reading("f", maxBoots+3, 1, 1), reading("f", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if got := s.LastSeq() - before; got != 1 {
		t.Errorf("%d readings stored, want 1 (the newest boot's retransmission is a duplicate)", got)
	}
}

// With max_delay set, the writer lingers after a reading for more while they keep
// coming, and commits once they stop (after max_delay/8 of quiet), long before
// max_delay: here a reading submitted while it lingers joins the first one's commit.
// Without it, the first reading commits alone (the second is submitted only once it
// is committed: one submitted while the writer is taking the first may still join
// it, which is no linger).
func TestMaxDelayLingersThenCommitsWhenQuiet(t *testing.T) {
	for _, delay := range []time.Duration{0, 8 * time.Second} {
		reg := prometheus.NewRegistry()
		s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{MaxDelay: delay, Registerer: reg})
		done := make(chan error, 2)
		s.Submit([]device.Reading{reading("fridge1", 1, 1, 1)}, func(err error) { done <- err })
		// max_delay 8s: the writer has taken the first reading and lingers for more,
		// until 1s passes without one.
		poll.Until(t, "the writer to take the first reading", 5*time.Second, func() bool { return len(s.queue) == 0 })
		pending, want := 2, 1.0
		if delay == 0 {
			wantCommitted(t, done, delay, 5*time.Second)
			pending, want = 1, 2
		}
		s.Submit([]device.Reading{reading("fridge1", 1, 2, 0)}, func(err error) { done <- err })
		// Quiet ends the wait: with max_delay 8s the commit comes after 1s of quiet,
		// not at 8s (4s is the bound, far from both).
		bound := 5 * time.Second
		if delay > 0 {
			bound = delay / 2
		}
		for range pending {
			wantCommitted(t, done, delay, bound)
		}
		if commits := counterValue(t, reg, "hearth_store_commits_total"); commits != want {
			t.Errorf("max_delay %s: %v commits for two readings, want %v", delay, commits, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// wantCommitted waits up to bound for a commit callback on done and fails on an error.
func wantCommitted(t *testing.T, done <-chan error, delay, bound time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(bound):
		t.Fatalf("max_delay %s: not committed %s after the last reading", delay, bound)
	}
}

// A commit writes the events only; the device and dedupe records follow at the next
// checkpoint. A copy of the file taken between checkpoints (as a crash leaves it)
// opens with both rebuilt from the events after the last one: counts complete, and
// readings it already holds are still taken for retransmissions.
func TestDerivedRecordsReplayedAfterCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	s := openTest(t, path, nil)
	ctx := context.Background()
	a := []device.Reading{reading("fridge1", 1, 1, 1), reading("fridge1", 1, 2, 0), reading("plug1", 7, 1, 1)}
	if err := device.Commit(ctx, s, a); err != nil { // the first commit checkpoints
		t.Fatal(err)
	}
	b := []device.Reading{reading("fridge1", 1, 3, 1), reading("washer1", 2, 1, 1)}
	if err := device.Commit(ctx, s, b); err != nil { // within checkpointEvery: events only
		t.Fatal(err)
	}
	var derived uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		derived = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyDerivedSeq))
		return tx.Bucket(bucketDevices).ForEach(func(k, _ []byte) error {
			if string(k) == "washer1" {
				t.Errorf("washer1's record was written before a checkpoint")
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if derived != 3 {
		t.Fatalf("derived_seq %d after the first commit's checkpoint, want 3", derived)
	}
	// The file as a crash would leave it: every commit durable, no later checkpoint.
	crashed := filepath.Join(dir, "crashed.db")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c := openTest(t, crashed, nil)
	defer c.Close()
	want := map[string]uint64{"fridge1": 3, "plug1": 1, "washer1": 1}
	for _, d := range c.Devices() {
		if d.Readings != want[d.ID] {
			t.Errorf("%s: %d readings after replay, want %d", d.ID, d.Readings, want[d.ID])
		}
		delete(want, d.ID)
	}
	if len(want) != 0 {
		t.Errorf("devices missing after replay: %v", want)
	}
	if got := c.Committed("fridge1", 1); got != 3 {
		t.Errorf("fridge1 boot 1 committed through %d after replay, want 3", got)
	}
	// Retransmissions of what the log holds are dropped, new readings kept.
	again := append(append([]device.Reading{}, b...), reading("washer1", 2, 2, 0))
	if err := device.Commit(ctx, c, again); err != nil {
		t.Fatal(err)
	}
	if got := len(readAll(t, c)); got != 6 {
		t.Errorf("%d events after retransmitting 2 and adding 1 to 5, want 6", got)
	}
}

// Close writes a last checkpoint: the next Open has nothing to replay.
func TestCloseCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, nil)
	for i := range 3 {
		if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, uint64(i+1), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		if got := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyDerivedSeq)); got != 3 {
			t.Errorf("derived_seq %d after Close, want 3 (the last event)", got)
		}
		var d DeviceInfo
		if err := jsonUnmarshal(tx.Bucket(bucketDevices).Get([]byte("fridge1")), &d); err != nil {
			return err
		}
		if d.Readings != 3 || d.Seq != 3 {
			t.Errorf("fridge1's record after Close: %+v, want 3 readings through seq 3", d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// An idle writer checkpoints checkpointEvery after its last commit.
func TestIdleCheckpoint(t *testing.T) {
	defer func(d time.Duration) { checkpointEvery = d }(checkpointEvery)
	checkpointEvery = 50 * time.Millisecond
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	for i := range 2 { // the first commit checkpoints; the second, at once after, does not
		if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, uint64(i+1), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	derived := func() uint64 {
		var v uint64
		_ = s.db.View(func(tx *bolt.Tx) error {
			v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyDerivedSeq))
			return nil
		})
		return v
	}
	poll.Until(t, "an idle checkpoint to cover seq 2", 10*time.Second, func() bool { return derived() == 2 })
}

// copyFile copies the store's file as a crash would leave it at this instant: every
// commit so far durable, nothing later.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func derivedSeqOf(t *testing.T, s *Store) uint64 {
	t.Helper()
	var v uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keyDerivedSeq)
		if len(b) != 8 {
			return errors.New("meta derived_seq missing")
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// Age retention deletes only events a checkpoint covers (it has the writer write one
// first). It used to delete the events after derived_seq too: after a crash before
// the next checkpoint, Open had nothing to replay them from, so the device and dedupe
// records forgot them (a retransmission was stored a second time, Committed went
// back), and with the log empty the sequence started again at 1, behind the cursors
// of the consumers (which then skipped the new readings). The sequence also restarted
// after a clean Close with every event expired.
func TestExpireKeepsDerivedRecordsAndSequence(t *testing.T) {
	defer func(d time.Duration) { checkpointEvery = d }(checkpointEvery)
	checkpointEvery = time.Hour // no idle or timed checkpoint during the test
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	now := time.Unix(1700000000, 0)
	opts := &Options{MaxAge: time.Hour, Protect: []string{"rollup"}, Now: func() time.Time { return now }}
	s := openTest(t, path, opts)
	ctx := context.Background()
	for q := uint64(1); q <= 3; q++ { // the first commit checkpoints; the next two do not
		r := reading("fridge1", 1, q, 1)
		r.HubTime = now.Add(-2 * time.Hour)
		if err := device.Commit(ctx, s, []device.Reading{r}); err != nil {
			t.Fatal(err)
		}
	}
	if got := derivedSeqOf(t, s); got != 1 {
		t.Fatalf("derived_seq %d before Expire, want 1 (the test needs events after it)", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 3) }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(now); err != nil || n != 3 {
		t.Fatalf("Expire = %d, %v; want all 3 events (2 h old, max age 1 h)", n, err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	copyFile(t, path, crashed)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{crashed, path} {
		c := openTest(t, p, opts)
		if got := c.LastSeq(); got != 3 {
			t.Errorf("%s: LastSeq %d after every event expired, want 3 (sequences are never reused)", filepath.Base(p), got)
		}
		if got := c.Committed("fridge1", 1); got != 3 {
			t.Errorf("%s: fridge1 boot 1 committed through %d, want 3", filepath.Base(p), got)
		}
		if ds := c.Devices(); len(ds) != 1 || ds[0].Readings != 3 {
			t.Errorf("%s: devices %+v, want fridge1 with 3 readings", filepath.Base(p), ds)
		}
		// A retransmission of seq 2 is recognised; the new reading 4 is stored after
		// the rollup's cursor, where the rollup reads.
		if err := device.Commit(ctx, c, []device.Reading{reading("fridge1", 1, 2, 1), reading("fridge1", 1, 4, 1)}); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if _, err := c.ReadEvents(3, 0, func(seq uint64, r *device.Reading) error {
			got = append(got, seq, r.Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 4 || got[1] != 4 {
			t.Errorf("%s: after the rollup cursor (3): (event seq, reading seq) %v, want [4 4] only", filepath.Base(p), got)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// CommitPace: small commits start at most every CommitPace, and what arrives in
// between joins the next one; a batch of paceBelow readings or more is not paced.
func TestCommitPace(t *testing.T) {
	for _, pace := range []time.Duration{0, 300 * time.Millisecond} {
		reg := prometheus.NewRegistry()
		s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{CommitPace: pace, Registerer: reg})
		ctx := context.Background()
		if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 2)
		s.Submit([]device.Reading{reading("fridge1", 1, 2, 0)}, func(err error) { done <- err })
		// The writer has taken it: it commits it at once (no pace) or waits for the
		// rest of the pace after the first commit began, gathering.
		poll.Until(t, "the writer to take the second reading", 5*time.Second, func() bool { return len(s.queue) == 0 })
		waits := 2
		if pace == 0 {
			// Unpaced, the second commits alone; wait for it, or a third reading
			// sent while the writer is still draining the queue could join it.
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			waits = 1
		}
		s.Submit([]device.Reading{reading("fridge1", 1, 3, 1)}, func(err error) { done <- err })
		for range waits {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if got, want := counterValue(t, reg, "hearth_store_commits_total"), map[time.Duration]float64{0: 3, 300 * time.Millisecond: 2}[pace]; got != want {
			t.Errorf("commit_pace %s: %v commits for three readings, want %v", pace, got, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A burst right after a commit is not held for the pace (10s here).
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{CommitPace: 10 * time.Second})
	defer s.Close()
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	burst := make([]device.Reading, paceBelow)
	for i := range burst {
		burst[i] = reading("fridge1", 1, uint64(i+2), 1)
	}
	done := make(chan error, 1)
	s.Submit(burst, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a batch of paceBelow readings waited for the 10s commit pace")
	}
}
