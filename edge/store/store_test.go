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

	"github.com/jonboulle/clockwork"
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
	if err := s.Sync(); err != nil { // retention deletes only what a commit covers
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

// A fixed window (flash budget off, store.max_delay 8s): a reading opens a group
// and waits the window for others; a second reading submitted meanwhile joins it,
// and nothing is acknowledged before the window ends. Without a window, the first
// reading commits alone. The clock is injected: the window ends when the test says.
func TestWindowGathersReadings(t *testing.T) {
	for _, window := range []time.Duration{0, 8 * time.Second} {
		reg := prometheus.NewRegistry()
		fc := clockwork.NewFakeClock()
		s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{FlashBudget: -1, MaxDelay: window, Registerer: reg, Clock: fc})
		done := make(chan error, 2)
		s.Submit([]device.Reading{reading("fridge1", 1, 1, 1)}, func(err error) { done <- err })
		groups := 1.0
		if window == 0 {
			wantCommitted(t, done)
			groups = 2
		} else {
			waitTimers(t, fc, 1) // the writer's window (nothing is in the batch yet)
		}
		s.Submit([]device.Reading{reading("fridge1", 1, 2, 0)}, func(err error) { done <- err })
		if window > 0 {
			poll.Until(t, "the writer to take the second reading", 5*time.Second, func() bool { return s.Pending() == 2 && len(s.queue) == 0 })
			if len(done) != 0 {
				t.Fatalf("window %s: a reading acknowledged before its window ended", window)
			}
			fc.Advance(window)
			wantCommitted(t, done)
		}
		wantCommitted(t, done)
		if got := counterValue(t, reg, "hearth_store_group_commits_total"); got != groups {
			t.Errorf("window %s: %v group commits for two readings, want %v", window, got, groups)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitTimers waits until n timers wait on the fake clock: the writer's window, the
// applier's checkpoint interval.
func waitTimers(t *testing.T, fc *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fc.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("%d timers never waited on the clock: %v", n, err)
	}
}

// wantCommitted waits for a commit callback on done and fails on an error.
func wantCommitted(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang, not a measurement
		t.Fatal("not committed")
	}
}

// A group whose readings fill a page of the log is committed at once, whatever the
// window: a burst never waits (the fake clock never moves here).
func TestFullPageCommitsAtOnce(t *testing.T) {
	fc := clockwork.NewFakeClock()
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{MaxDelay: time.Hour, Clock: fc})
	defer s.Close()
	burst := make([]device.Reading, 0, 80)
	size := 0
	for i := uint64(1); size < pageFull; i++ {
		r := reading("fridge1", 1, i, 1)
		burst = append(burst, r)
		size += encodedSize(&r)
	}
	done := make(chan error, 1)
	s.Submit(burst, func(err error) { done <- err })
	wantCommitted(t, done)
	if got := s.LastSeq(); got != uint64(len(burst)) {
		t.Fatalf("LastSeq %d after a page of %d readings", got, len(burst))
	}
}

// CommitPace (budget off, no window): small groups start at most every CommitPace,
// and what arrives in between joins the next one; a group of paceBelow readings
// or more is not paced. The clock is injected.
func TestCommitPace(t *testing.T) {
	for _, pace := range []time.Duration{0, 300 * time.Millisecond} {
		reg := prometheus.NewRegistry()
		fc := clockwork.NewFakeClock()
		s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{FlashBudget: -1, CommitPace: pace, Registerer: reg, Clock: fc})
		ctx := context.Background()
		if err := device.Commit(ctx, s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		waitTimers(t, fc, 1) // the applier's checkpoint interval, armed by the first reading
		done := make(chan error, 2)
		s.Submit([]device.Reading{reading("fridge1", 1, 2, 0)}, func(err error) { done <- err })
		waits := 2
		if pace == 0 {
			wantCommitted(t, done) // unpaced: the second commits alone
			waits = 1
		} else {
			waitTimers(t, fc, 2) // paced: the writer waits out the rest of the pace, gathering
		}
		s.Submit([]device.Reading{reading("fridge1", 1, 3, 1)}, func(err error) { done <- err })
		if pace > 0 {
			poll.Until(t, "the writer to take the third reading", 5*time.Second, func() bool { return s.Pending() == 2 && len(s.queue) == 0 })
			fc.Advance(pace)
		}
		for range waits {
			wantCommitted(t, done)
		}
		if got, want := counterValue(t, reg, "hearth_store_group_commits_total"), map[time.Duration]float64{0: 3, 300 * time.Millisecond: 2}[pace]; got != want {
			t.Errorf("commit_pace %s: %v group commits for three readings, want %v", pace, got, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A burst right after a commit is not held for the pace (10s here; the clock
	// never moves).
	fc := clockwork.NewFakeClock()
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{FlashBudget: -1, CommitPace: 10 * time.Second, Clock: fc})
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
	wantCommitted(t, done)
}

// copyStore copies the store's files — the database, its write-ahead log, its keep
// file — as a crash would leave them at this instant: everything written so far,
// durable (the log's appends were synced; the database holds its last commit).
func copyStore(t *testing.T, from, to string) {
	t.Helper()
	copyFile(t, from, to)
	if b, err := os.ReadFile(from + keepSuffix); err == nil {
		if err := os.WriteFile(to+keepSuffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(from + walSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to+walSuffix, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(from+walSuffix, e.Name()), filepath.Join(to+walSuffix, e.Name()))
	}
}

// copyFile copies a file.
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

// derivedOnDisk reads meta derived_seq from a copy of the store's file (what its
// last commit left there).
func derivedOnDisk(t *testing.T, path string) uint64 {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "peek.db")
	copyFile(t, path, cp)
	db, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	if err := db.View(func(tx *bolt.Tx) error {
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

// An acknowledged reading is in the write-ahead log; the database gets it at the
// next checkpoint. A copy of the store taken before that (as a crash leaves it)
// opens with the readings put back from the log: counts complete, and readings it
// already holds still taken for retransmissions.
func TestLogReplayedAtOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	fc := clockwork.NewFakeClock()
	s := openTest(t, path, &Options{Clock: fc})
	ctx := context.Background()
	a := []device.Reading{reading("fridge1", 1, 1, 1), reading("fridge1", 1, 2, 0), reading("plug1", 7, 1, 1)}
	if err := device.Commit(ctx, s, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	b := []device.Reading{reading("fridge1", 1, 3, 1), reading("washer1", 2, 1, 1)}
	if err := device.Commit(ctx, s, b); err != nil { // logged; the database waits for the next checkpoint
		t.Fatal(err)
	}
	if got := derivedOnDisk(t, path); got != 3 {
		t.Fatalf("derived_seq %d in the file after Sync and two more readings, want 3", got)
	}
	crashed := filepath.Join(dir, "crashed.db")
	copyStore(t, path, crashed)
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
	if got := derivedOnDisk(t, crashed); got != 5 {
		t.Errorf("derived_seq %d after the replay at Open, want 5 (it commits what it replayed)", got)
	}
	// Retransmissions of what the log held are dropped, new readings kept.
	again := append(append([]device.Reading{}, b...), reading("washer1", 2, 2, 0))
	if err := device.Commit(ctx, c, again); err != nil {
		t.Fatal(err)
	}
	if got := len(readAll(t, c)); got != 6 {
		t.Errorf("%d events after retransmitting 2 and adding 1 to 5, want 6", got)
	}
}

// Close commits the batch: the next Open has nothing to replay.
func TestCloseCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, &Options{Clock: clockwork.NewFakeClock()})
	for i := range 3 {
		if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, uint64(i+1), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := derivedOnDisk(t, path); got != 3 {
		t.Errorf("derived_seq %d after Close, want 3 (the last event)", got)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		var d DeviceInfo
		if err := jsonUnmarshal(tx.Bucket(bucketDevices).Get([]byte("fridge1")), &d); err != nil {
			return err
		}
		if d.Readings != 3 || d.Seq != 3 {
			t.Errorf("fridge1's record after Close: %+v, want 3 readings through seq 3", d)
		}
		if n := tx.Bucket(bucketEvents).Stats().KeyN; n != 3 {
			t.Errorf("%d events in the file after Close, want 3", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// The batch is committed CheckpointEvery after its first write (the clock is
// injected), and an idle store commits nothing: no empty transaction, however
// long it idles, whatever Views and Updates that write nothing it runs.
func TestCheckpointIntervalAndIdle(t *testing.T) {
	reg := prometheus.NewRegistry()
	fc := clockwork.NewFakeClock()
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, &Options{Clock: fc, CheckpointEvery: time.Minute, Registerer: reg, FlashBudget: -1})
	defer s.Close()
	commits := func() float64 { return counterValue(t, reg, "hearth_store_commits_total") }
	idle := func(what string) {
		t.Helper()
		before := commits()
		for range 5 {
			if err := s.View(func(tx *Tx) error { tx.Cursor("rollup"); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(func(tx *Tx) error { tx.Cursor("rollup"); return nil }); err != nil {
				t.Fatal(err)
			}
			fc.Advance(time.Minute)
		}
		if got := commits(); got != before {
			t.Fatalf("%s: %v commits while idle, want none", what, got-before)
		}
	}
	idle("after Open")
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	waitTimers(t, fc, 1) // the applier's checkpoint timer
	if got := derivedOnDisk(t, path); got != 0 {
		t.Fatalf("derived_seq %d before the checkpoint interval, want 0", got)
	}
	c0 := commits()
	fc.Advance(time.Minute)
	// The file shows the commit before the applier counts it: wait for both, or
	// the count lands inside the idle spell (CI failed so: 1 commit while idle).
	poll.Until(t, "the checkpoint to commit the reading", 10*time.Second, func() bool {
		return derivedOnDisk(t, path) == 1 && commits() == c0+1
	})
	idle("after a checkpoint")
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 1) }); err != nil {
		t.Fatal(err)
	}
	before := commits()
	waitTimers(t, fc, 1)
	fc.Advance(time.Minute)
	poll.Until(t, "the checkpoint to commit the update", 10*time.Second, func() bool { return commits() == before+1 })
}

// An Update whose fn fails leaves the batch as it found it — also what fn wrote
// before failing — while what earlier Updates wrote in the same batch stays.
func TestFailedUpdateLeavesTheBatch(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), &Options{Clock: clockwork.NewFakeClock()})
	defer s.Close()
	if err := s.Update(func(tx *Tx) error {
		if err := tx.SetCursor("rollup", 7); err != nil {
			return err
		}
		return tx.Put(Rollups, []byte("kept"), []byte(`1`))
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		_ = tx.SetCursor("rollup", 9)
		_ = tx.Put(Rollups, []byte("kept"), []byte(`2`))
		_ = tx.Put(Rollups, []byte("new"), []byte(`3`))
		_ = tx.Delete(Rollups, []byte("kept"))
		if _, err := tx.NextSeq(TagLog); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if err := s.View(func(tx *Tx) error {
		if c := tx.Cursor("rollup"); c != 7 {
			t.Errorf("cursor %d after a failed update, want 7", c)
		}
		if v := tx.Get(Rollups, []byte("kept")); string(v) != "1" {
			t.Errorf("kept = %q after a failed update, want 1", v)
		}
		if v := tx.Get(Rollups, []byte("new")); v != nil {
			t.Errorf("new = %q after a failed update, want none", v)
		}
		if seq := tx.bucket(TagLog).Sequence(); seq != 0 {
			t.Errorf("taglog sequence %d after a failed update, want 0", seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error { return tx.Put(Rollups, []byte("x"), []byte(`1`)) }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a Put in View: %v, want ErrReadOnly", err)
	}
}

// An Update that writes credentials (or the outbox, or audit) is committed before
// it returns: a copy of the file taken right after has it.
func TestDurableUpdateCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	s := openTest(t, path, &Options{Clock: clockwork.NewFakeClock()})
	defer s.Close()
	if err := device.Commit(context.Background(), s, []device.Reading{reading("fridge1", 1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Put(Credentials, []byte("device/fridge1"), []byte(`{"hash":"x"}`)) }); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, path, cp)
	db, err := bolt.Open(cp, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(Credentials)).Get([]byte("device/fridge1")) == nil {
			t.Error("a credential written by Update is not in the file when Update returns")
		}
		if tx.Bucket(bucketEvents).Get(u64key(1)) == nil {
			t.Error("the batch's reading was not committed with the credential")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Age retention deletes only events the last commit covers: when expired events are
// only in the batch, Expire first commits it (with their device and dedupe
// records), then deletes them. A crash after Expire (before the next checkpoint) leaves the events,
// records and sequence as the last commit had them; and the sequence is never
// reused, also once every event expired.
func TestExpireKeepsDerivedRecordsAndSequence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hearth.db")
	now := time.Unix(1700000000, 0)
	opts := &Options{MaxAge: time.Hour, Protect: []string{"rollup"}, Now: func() time.Time { return now }, Clock: clockwork.NewFakeClock()}
	s := openTest(t, path, opts)
	ctx := context.Background()
	for q := uint64(1); q <= 3; q++ {
		r := reading("fridge1", 1, q, 1)
		r.HubTime = now.Add(-2 * time.Hour)
		if err := device.Commit(ctx, s, []device.Reading{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetCursor("rollup", 3) }); err != nil {
		t.Fatal(err)
	}
	// Before any checkpoint: Expire commits the batch first (checkpoint reason
	// retention), then deletes what that commit covers.
	if n, err := s.Expire(now); err != nil || n != 3 {
		t.Fatalf("Expire = %d, %v; want all 3 events (2 h old, max age 1 h)", n, err)
	}
	crashed := filepath.Join(dir, "crashed.db")
	copyStore(t, path, crashed)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{crashed, path} {
		c := openTest(t, p, opts)
		if got := c.LastSeq(); got != 3 {
			t.Errorf("%s: LastSeq %d, want 3 (sequences are never reused)", filepath.Base(p), got)
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
