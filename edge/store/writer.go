package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/wal"
)

// The writer: one goroutine that group-commits what callers Submit to the
// write-ahead log and acknowledges it once the log's fdatasync returned.
//
// A group opens with the first request the writer takes and closes when one of:
//   - its readings fill a page of the log (wal.PageSize): waiting longer would
//     save at most a block's padding and a record header, so a burst is committed
//     at full speed, and what arrives during one commit forms the next group;
//   - MaxBatch readings;
//   - the window has passed since it opened (flash.go: chosen to hold FlashBudget;
//     0 with the budget off, when the group is what was queued, paced by
//     CommitPace while groups are small);
//   - Close.
//
// Then the writer drops the readings a device delivered again (dedupe.go), numbers
// the others, writes them to the log as one record (one write, one fdatasync),
// updates its memory of devices and watermarks, and only then calls each caller's
// done. The applier (checkpoint.go) puts the group into the database afterwards.

// pageFull is what a group's events may take before the group is committed at once:
// a page of the log less its record header.
const pageFull = wal.PageSize - wal.RecordHeaderSize

// writer is the goroutine that logs readings.
func (s *Store) writer() {
	defer close(s.done)
	defer close(s.applyCh)
	var (
		batch     []*request
		lastStart time.Time // when the last group began committing (CommitPace)
		cycle     cycle     // the last group's readings and when it opened: the recent rate
	)
	timer := s.clock.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		var first *request
		select {
		case first = <-s.queue:
		case <-s.stop:
			s.drain(batch)
			return
		}
		batch = append(batch, first)
		n, size := len(first.rs), first.size
		full := func() bool { return size >= pageFull || n >= s.opts.MaxBatch }
		take := func(r *request) {
			batch = append(batch, r)
			n += len(r.rs)
			size += r.size
		}
		// What is queued already joins the group.
	drain:
		for !full() {
			select {
			case r := <-s.queue:
				take(r)
			default:
				break drain
			}
		}
		wait, interval := s.flash.window(), cycle.interval(s.clock.Now(), s.flash.interval())
		cycle = cycle.next(s.clock.Now(), n)
		if wait <= 0 && s.opts.CommitPace > 0 && n < paceBelow {
			// Budget off: while groups are small, start one at most every CommitPace
			// (every group costs a page and an fdatasync, however few it holds).
			wait = s.opts.CommitPace - s.clock.Since(lastStart)
			interval = -1 // pacing holds its interval: no early close
		}
		if wait > 0 && !full() {
			g := newGathering(s.clock.Now(), n, wait, interval)
		gather:
			for !full() {
				timer.Reset(g.closeAt().Sub(s.clock.Now()))
				select {
				case r := <-s.queue:
					take(r)
					g.arrived(s.clock.Now(), len(r.rs))
					cycle.n += len(r.rs)
				case <-timer.Chan():
					if !s.clock.Now().Before(g.closeAt()) {
						break gather
					}
				case <-s.stop: // Close: commit what is here; the loop then drains the rest
					break gather
				}
				timer.Stop()
			}
			timer.Stop()
		}
		lastStart = s.clock.Now()
		s.logGroup(batch)
		if s.opts.OnCommit != nil {
			s.opts.OnCommit(s.clock.Now(), n)
		}
	}
}

// paceBelow: groups of this many readings or more are never paced (CommitPace): a
// burst keeps its throughput.
const paceBelow = 16

// gathering is when a group waiting out its window closes: at the window's end, or
// earlier once its readings have stopped coming — a quiet spell of stallGap times
// the time between its readings so far (the long-run rate's, for the reading that
// opened it), and never less than the recent time between readings (cycle). Senders that wait for their acknowledgements (a broker keeps at most
// 20 messages in flight to hearth by default) send nothing more until this group is
// committed; waiting the window for them would cut their throughput to what they
// keep in flight per window (15 messages a second instead of a thousand, measured
// through mosquitto: TestExternalOrderAcrossKill). At household rates — readings at
// random phases, ten a second — a gap that long comes about once in e^stallGap
// readings, and the window holds.
type gathering struct {
	opened, deadline, lastIn time.Time
	k                        int           // readings so far
	tau                      time.Duration // the time between them; negative: close at the deadline only
	longRun                  time.Duration // the recent time between readings (cycle)
}

// cycle is the last group as the rate of readings goes: when it opened and how many
// readings it took. The time between readings over the last cycle (interval) follows
// a change of rate within a few groups, where the flash account's rate takes minutes:
// a sender held back by the window is seen to speed up as soon as it does.
type cycle struct {
	opened time.Time
	n      int
}

func (c cycle) next(now time.Time, n int) cycle { return cycle{opened: now, n: n} }

// interval is the time between readings since the last cycle opened (longRun when
// there was none).
func (c cycle) interval(now time.Time, longRun time.Duration) time.Duration {
	if c.n == 0 || c.opened.IsZero() {
		return longRun
	}
	return now.Sub(c.opened) / time.Duration(c.n)
}

// stallGap: see gathering.
const stallGap = 8

func newGathering(now time.Time, n int, window, interval time.Duration) gathering {
	return gathering{opened: now, deadline: now.Add(window), lastIn: now, k: n, tau: interval, longRun: interval}
}

// arrived records n readings joining the group at now.
func (g *gathering) arrived(now time.Time, n int) {
	g.lastIn, g.k = now, g.k+n
	if g.tau >= 0 {
		// Never shorter than the recent time between readings: a few readings close
		// together in a sparse stream (household rates) must not read as a fast one that
		// stopped. A sender held back by the window raises the recent rate as its
		// groups close early, and the next groups close earlier still.
		g.tau = max(now.Sub(g.opened)/time.Duration(g.k), g.longRun)
	}
}

// closeAt is when the group closes if no reading joins it before.
func (g *gathering) closeAt() time.Time {
	if g.tau < 0 {
		return g.deadline
	}
	quiet := g.lastIn.Add(max(stallGap*g.tau, time.Millisecond)) // at least the scheduler's grain
	if quiet.Before(g.deadline) {
		return quiet
	}
	return g.deadline
}

// drain logs what was queued before Close.
func (s *Store) drain(batch []*request) {
	for {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
			continue
		default:
		}
		break
	}
	if len(batch) > 0 {
		s.logGroup(batch)
	}
}

// encodedSize is about what a reading takes in the log (its event record and a
// length): how a group knows it has filled a page.
func encodedSize(r *device.Reading) int {
	return 2 + 48 + len(r.Device) + len(r.Kind) + len(r.Signal) + len(r.Unit) + len(r.Label)
}

// logGroup writes one group of requests to the log and tells each caller.
func (s *Store) logGroup(batch []*request) {
	n := 0
	for _, r := range batch {
		n += len(r.rs)
	}
	defer s.pending.Add(-int64(n))
	refuse := func(err error) {
		for _, r := range batch {
			r.done(err)
		}
	}
	if failed := s.Failed(); failed != nil {
		s.m.refused.WithLabelValues("intake_stopped").Add(float64(n))
		refuse(fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed))
		return
	}
	start := time.Now()
	// Only this goroutine changes s.devices and s.wm, so it reads them without a
	// lock; devMu guards them only while it publishes the changes below.
	var (
		seq      = s.lastSeq.Load()
		first    = seq + 1
		dups     int
		wmChange = map[bootKey]*watermark{}
		devNew   = map[string]*DeviceInfo{}
		body     = make([]byte, 0, n*80)
		rec      []byte
		records  []logRecord // where each log record's events start in body
	)
	maxRecord := s.wal.MaxRecord()
	records = append(records, logRecord{first: first, at: 0})
	for _, req := range batch {
		for i := range req.rs {
			r := &req.rs[i]
			if r.Seq != 0 {
				bk := bootKey{r.Device, r.Boot}
				w, ok := wmChange[bk]
				if !ok {
					if old, ok := s.wm[bk]; ok {
						w = old.clone()
					} else {
						w = &watermark{}
					}
					w.used = s.commitN + 1
					wmChange[bk] = w
				}
				if w.seen(r.Seq) {
					dups++
					s.deviceInfo(devNew, r).Dups++
					continue
				}
				w.add(r.Seq)
			}
			rec = appendReading(rec[:0], r)
			if len(rec)+binary.MaxVarintLen32 > maxRecord {
				s.m.refused.WithLabelValues("too_large").Add(float64(n))
				refuse(fmt.Errorf("store: a reading of %d bytes: %w (a log record holds %d)", len(rec), ErrTooLarge, maxRecord))
				return
			}
			if cur := &records[len(records)-1]; len(body)-cur.at+len(rec)+binary.MaxVarintLen32 > maxRecord {
				// A group bigger than a segment goes in several records; it is
				// acknowledged after the last one's sync.
				records = append(records, logRecord{first: seq + 1, at: len(body)})
			}
			seq++
			body = binary.AppendUvarint(body, uint64(len(rec)))
			body = append(body, rec...)
			d := s.deviceInfo(devNew, r)
			if d.FirstSeen.IsZero() {
				d.FirstSeen = r.HubTime
			}
			d.LastSeen = r.HubTime
			d.Readings++
			if r.Seq != 0 {
				d.Boot, d.Seq = r.Boot, r.Seq
			}
		}
	}
	// Room in the database (checkpoint.go): refuse rather than acknowledge what
	// could not be kept. Room comes back as eviction, commits and the consumers'
	// progress free it.
	need := int64(len(body)) + int64(seq+1-first)*leafOverhead
	short := func() bool { return need > 0 && s.inflight.Load()+need > s.roomBytes.Load()-s.roomReserve() }
	if short() {
		// Evict and commit now, so that what eviction frees is room before the
		// group is refused (the applier would do it only after).
		s.makeRoomNow(need)
	}
	if short() {
		s.m.refused.WithLabelValues("quota").Add(float64(n))
		s.log.Warn("disk quota full: refusing readings", "readings", n, "quota_bytes", s.opts.QuotaBytes)
		select { // have the applier commit what it evicted, if anything
		case s.updated <- struct{}{}:
		default:
		}
		refuse(fmt.Errorf("store: %d readings: %w (%d bytes)", n, ErrQuota, s.opts.QuotaBytes))
		return
	}
	s.inflight.Add(need)
	// Boots pruned here are forgotten at once; their records go at the next commit.
	pruned, _ := s.pruneBoots(recordDeletes{}, wmChange)
	if seq >= first {
		var recBytes, other int64
		for i, lr := range records {
			end, last := len(body), seq
			if i+1 < len(records) {
				end, last = records[i+1].at, records[i+1].first-1
			}
			wrote, err := s.appendLog(lr.first, int(last-lr.first+1), body[lr.at:end])
			size := s.wal.RecordSize(end - lr.at)
			recBytes += min(wrote, size)
			other += max(wrote-size, 0)
			if err != nil {
				s.inflight.Add(-need)
				s.flash.logged(0, recBytes, other)
				s.m.refused.WithLabelValues("write_error").Add(float64(n))
				s.stopIntake(err)
				s.log.Error("write to the log failed: intake stopped", "err", err, "readings", n)
				refuse(fmt.Errorf("store: %w: %v", ErrIntakeStopped, err))
				return
			}
		}
		s.flash.logged(int(seq-first+1), recBytes, other)
	}
	s.devMu.Lock()
	s.lastSeq.Store(seq)
	s.commitN++
	for bk, w := range wmChange {
		s.wm[bk] = w
		s.indexBoot(bk)
	}
	for _, bk := range pruned {
		delete(s.wm, bk)
		delete(s.bootsOf[bk.dev], bk.boot)
	}
	for id, d := range devNew {
		s.devices[id] = d
	}
	s.devMu.Unlock()
	s.m.logSeconds.Observe(time.Since(start).Seconds())
	s.m.groups.Inc()
	s.m.committed.Add(float64(n - dups))
	s.m.duplicates.Add(float64(dups))
	s.m.batchSize.Observe(float64(n))
	// The applier gets its own copies: the writer changes these in later groups.
	g := &group{first: first, last: seq, body: body, wm: make(map[bootKey]*watermark, len(wmChange)),
		dev: make(map[string]*DeviceInfo, len(devNew)), pruned: pruned, need: need}
	for bk, w := range wmChange {
		g.wm[bk] = w.clone()
	}
	for id, d := range devNew {
		g.dev[id] = d.clone()
	}
	refuse(nil)
	s.applyCh <- g
}

// logRecord is where one log record of a group starts: its first sequence and
// its offset in the group's body.
type logRecord struct {
	first uint64
	at    int
}

// appendLog writes one record to the log. When every segment the log may keep
// holds events the database has not committed yet, it has the applier commit (which
// releases them) and tries again.
func (s *Store) appendLog(first uint64, n int, body []byte) (int64, error) {
	var total int64
	for try := 0; ; try++ {
		wrote, err := s.wal.Append(first, n, body)
		total += wrote
		if !errors.Is(err, wal.ErrFull) || try >= 3 {
			return total, err
		}
		if err := s.checkpointNow("log_full"); err != nil {
			return total, fmt.Errorf("store: the log is full and the database could not take its events: %w", err)
		}
	}
}

// clone returns a copy of d.
func (d *DeviceInfo) clone() *DeviceInfo {
	c := *d
	return &c
}

// deviceInfo returns the copy of r's device record that this group updates.
func (s *Store) deviceInfo(devNew map[string]*DeviceInfo, r *device.Reading) *DeviceInfo {
	if d, ok := devNew[r.Device]; ok {
		return d
	}
	d := &DeviceInfo{ID: r.Device, Kind: r.Kind}
	if old, ok := s.devices[r.Device]; ok {
		*d = *old
	}
	d.Kind = r.Kind
	devNew[r.Device] = d
	return d
}

// recordDeletes stands in for the dedupe bucket when pruneBoots runs in the writer:
// pruned boots are deleted from the bucket at the next commit.
type recordDeletes struct{}

func (recordDeletes) Delete([]byte) error { return nil }

// makeRoomNow waits for the applier to apply every logged group, then evicts the
// oldest evictable readings for need more bytes and commits, twice: the first
// commit covers the events the second may evict (derived_seq). The writer calls it
// before it refuses a group for want of room.
func (s *Store) makeRoomNow(need int64) {
	s.waitApplied(s.lastSeq.Load())
	for range 2 {
		s.bmu.Lock()
		tx, err := s.batch()
		if err == nil {
			_ = s.evict(tx, need)
			err = s.commitLocked("quota")
		}
		s.measureRoom()
		s.bmu.Unlock()
		if err != nil {
			return
		}
	}
}
