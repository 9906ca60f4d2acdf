package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hearth-iot/hearth/device"
)

// The batch: bbolt behind the write-ahead log.
//
// A reading is durable once the log's fdatasync returns (writer.go); the database
// gets it afterwards, in a batch. One bbolt write transaction is kept open (the
// batch, btx) and everything that writes the database writes into it: the applier
// goroutine puts each logged group's events there with the device and dedupe
// records they change, and the stages' Update calls (rollups, tags, cursors, sync
// state) run in it too — as in etcd's backend, whose batch transaction its
// raft-applied writes share. The batch is committed every CheckpointEvery (5
// minutes by default), when it holds checkpointEvents events or checkpointBytes
// bytes, when the log runs out of segments, when an Update writes a bucket whose
// records must not wait (durable in bucketDefs: credentials, the outbox, audit), and
// at Close. A commit writes the events, what the stages derived from them, the
// dedupe and device records and meta derived_seq — the last event it includes — in
// one transaction (two fdatasyncs); then the log's segments it covers are released.
//
// A crash loses the batch: at Open the events after derived_seq come back from the
// log (openLog, log.go), and every stage resumes from its cursor as of the last
// commit and derives again what the batch held: nothing acknowledged is lost, and
// nothing derived is applied twice, since a stage's records and its cursor were
// committed (or lost) together. Retention deletes events inside the batch as well,
// so a deletion is never committed without the cursors and derived_seq that allow it.
//
// Reads see the batch: View, ReadEvents, Latest and Stats run in it (or in a read
// transaction when nothing is pending), one at a time under bmu. Before reading,
// each waits until the applier has applied every event acknowledged before the
// call (waitApplied): what a caller was told is stored, it finds.
//
// An idle store commits nothing: no events and no writes leave the batch empty, and
// an empty batch is never committed.

// Defaults of the batch.
const (
	defaultCheckpointEvery = 5 * time.Minute
	// checkpointEvents and checkpointBytes bound the batch (its memory, the log it
	// holds on to, the replay at Open): a burst commits every few seconds.
	checkpointEvents = 50000
	checkpointBytes  = 4 << 20
)

// group is one group commit of the writer (writer.go): logged, acknowledged, then
// applied to the batch by the applier.
type group struct {
	first, last uint64 // sequences of its events; last < first: none (duplicates only)
	body        []byte // uvarint(len) ‖ event record, per event (the log record's body)
	wm          map[bootKey]*watermark
	dev         map[string]*DeviceInfo
	pruned      []bootKey
	need        int64 // the room it reserved (s.inflight)
}

// applier is the goroutine that owns the batch's commits: it applies the writer's
// groups, commits when a checkpoint is due, and compacts.
func (s *Store) applier() {
	defer close(s.applierDone)
	timer := s.clock.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func() { // the batch's commit is due CheckpointEvery after its first write
		if !armed && s.batchPending() {
			timer.Reset(s.opts.CheckpointEvery)
			armed = true
		}
	}
	for {
		select {
		case g, ok := <-s.applyCh:
			if !ok { // the writer has stopped (Close): commit what is left
				if err := s.commitBatch("close"); err != nil && !errors.Is(err, ErrIntakeStopped) {
					s.log.Warn("the last commit at close failed; the next start replays the log", "err", err)
				}
				return
			}
			s.apply(g)
			if s.batchFull() || s.roomBytes.Load() < 2*s.roomReserve() {
				s.checkpoint("size")
				timer.Stop()
				armed = false
			}
			arm()
		case <-timer.Chan():
			armed = false
			s.checkpoint("interval")
			arm()
		case req := <-s.ckptCh:
			// Every group logged before the request goes in first: a writer whose
			// log is full waits for this commit to release its segments.
			s.applyQueued()
			req.done <- s.commitBatch(req.reason)
			timer.Stop()
			armed = false
			arm()
		case req := <-s.compactCh:
			s.applyQueued() // the commit before the copy covers every group logged
			freed, err := s.compact("requested")
			req.done <- compactResult{freed, err}
			arm()
		case <-s.updated: // an Update wrote the batch: its commit is due in CheckpointEvery
			arm()
		}
	}
}

// applyQueued applies every group already queued for the applier (on the applier).
func (s *Store) applyQueued() {
	for {
		select {
		case g, ok := <-s.applyCh:
			if !ok {
				return
			}
			s.apply(g)
		default:
			return
		}
	}
}

// checkpoint commits the batch (on the applier), then compacts when the file asks.
func (s *Store) checkpoint(reason string) {
	if err := s.commitBatch(reason); err != nil {
		if !errors.Is(err, ErrIntakeStopped) {
			s.log.Warn("checkpoint failed", "reason", reason, "err", err)
		}
		return
	}
	if s.compactWanted || s.compactDue() {
		s.compactWanted = false
		if _, err := s.compact("quota"); err != nil {
			s.log.Warn("compaction failed", "err", err)
		}
	}
}

// batchPending reports whether the batch holds anything to commit.
func (s *Store) batchPending() bool {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.bDirty || len(s.ckWM) > 0 || len(s.ckDev) > 0
}

// batchFull reports whether the batch is big enough to commit now.
func (s *Store) batchFull() bool {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.bEvents >= checkpointEvents || s.bPut >= s.maxBatchBytes()
}

// maxBatchBytes bounds what a batch writes: checkpointBytes, and a sixteenth of the
// quota (the room eviction keeps free must hold a whole batch).
func (s *Store) maxBatchBytes() int64 { return min(checkpointBytes, s.opts.QuotaBytes/16) }

// batch returns the pending write transaction, beginning one if none is. s.bmu is held.
func (s *Store) batch() (*bolt.Tx, error) {
	if s.btx != nil {
		return s.btx, nil
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, err
	}
	s.btx = tx
	s.bSince = s.clock.Now()
	s.bBytes, s.bPut, s.bEvents = 0, 0, 0
	return tx, nil
}

// apply puts a logged group's events into the batch, with the device and dedupe
// records they changed (written at the next commit), evicting old events first when
// the quota asks.
func (s *Store) apply(g *group) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	defer s.inflight.Add(-g.need)
	defer s.measureRoom()
	defer func() {
		s.appliedMu.Lock()
		if g.last >= g.first {
			s.applied = g.last
		}
		s.appliedMu.Unlock()
		s.appliedCond.Broadcast()
	}()
	for bk, w := range g.wm {
		s.ckWM[bk] = w
	}
	for _, bk := range g.pruned {
		s.ckWM[bk] = nil
	}
	for id, d := range g.dev {
		s.ckDev[id] = d
	}
	if s.Failed() != nil {
		return // the batch is gone; the log holds the events for the next start
	}
	tx, err := s.batch()
	if err != nil {
		s.stopIntake(fmt.Errorf("store: begin the batch: %w", err))
		return
	}
	if g.last < g.first {
		return
	}
	n := int(g.last - g.first + 1)
	if err := s.evict(tx, g.need); err != nil && !errors.Is(err, ErrQuota) {
		s.stopIntake(fmt.Errorf("store: evict: %w", err))
		return
	}
	ev := tx.Bucket(bucketEvents)
	ev.FillPercent = 1.0 // append-only keys: pack pages full
	keys := make([]byte, 8*n)
	body := g.body
	for seq := g.first; seq <= g.last; seq++ {
		l, w := binary.Uvarint(body)
		val := body[w : w+int(l) : w+int(l)]
		body = body[w+int(l):]
		key := keys[:8:8]
		keys = keys[8:]
		binary.BigEndian.PutUint64(key, seq)
		if err := ev.Put(key, val); err != nil {
			s.stopIntake(fmt.Errorf("store: apply event %d: %w", seq, err))
			return
		}
	}
	s.eventCount += n
	s.bEvents += n
	s.markDirty()
	s.bBytes += int64(len(g.body)) + int64(n)*leafOverhead
	s.bPut += int64(len(g.body)) + int64(n)*leafOverhead
}

// evict makes room in the batch for need more bytes (makeRoom), counting what it
// evicted. s.bmu is held.
func (s *Store) evict(tx *bolt.Tx, need int64) error {
	evicted, err := s.makeRoom(tx, need)
	if evicted > 0 {
		s.eventCount -= evicted
		s.m.evicted.WithLabelValues("quota").Add(float64(evicted))
		s.log.Info("quota: evicted oldest raw readings", "evicted", evicted, "quota_bytes", s.opts.QuotaBytes)
	}
	return err
}

// Room.
//
// bbolt writes a commit's pages before it frees the pages they replace, and a page
// freed by a commit serves only later ones: what a batch writes must fit in the
// file's free pages and growth under the quota (bbolt's MaxSize), whatever it
// evicts. So the applier measures, after every change of the batch, the room left
// once the batch is committed — the quota less a growth step, less the pages in
// use, less what the batch will write (bBytes) — and the writer refuses a group
// of readings (ErrQuota, before logging or acknowledging it) that would not fit in
// it with what it logged since, less roomReserve: the stages' Updates keep that
// much (their progress is what lets eviction free room), and get ErrQuota only
// when they would not fit at all. Eviction (makeRoom) starts long before, at 80%
// of the quota, and a batch is committed early when the room runs low, so that
// what it evicted becomes free.

// roomReserve is the room readings leave to the stages' Updates.
func (s *Store) roomReserve() int64 { return int64(allocSize(s.opts)) }

// measureRoom sets roomBytes from the database and the batch. s.bmu is held.
func (s *Store) measureRoom() {
	measure := func(tx *bolt.Tx) {
		s.roomBytes.Store(s.opts.QuotaBytes - int64(allocSize(s.opts)) - s.used(tx) - s.bBytes)
	}
	if s.btx != nil {
		measure(s.btx)
		return
	}
	_ = s.db.View(func(tx *bolt.Tx) error { measure(tx); return nil })
}

// updateNeed is what an Update that put wrote bytes may make the batch write: its
// records, and the pages they change, each copied with its path to the root.
func updateNeed(wrote int64, keys int) int64 { return wrote + int64(min(keys, 64)+3)*4096 }

// leafOverhead is what bbolt adds to each key and value in a leaf page: its
// element header (16 bytes) and the 8-byte key.
const leafOverhead = 24

// commitBatch commits the batch: the dedupe and device records changed since the
// last commit and meta derived_seq with it, then releases the log segments it
// covers. Nothing pending: nothing written. A failed commit stops intake (the log
// holds every acknowledged reading; the next start replays it).
func (s *Store) commitBatch(reason string) error {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return s.commitLocked(reason)
}

func (s *Store) commitLocked(reason string) error {
	if failed := s.Failed(); failed != nil {
		if s.btx != nil {
			_ = s.btx.Rollback()
			s.btx = nil
		}
		return fmt.Errorf("store: %w: %v", ErrIntakeStopped, failed)
	}
	if !s.bDirty && len(s.ckWM) == 0 && len(s.ckDev) == 0 {
		if s.btx != nil { // begun by a reader or an Update that wrote nothing
			_ = s.btx.Rollback()
			s.btx = nil
		}
		return nil
	}
	tx, err := s.batch()
	if err != nil {
		s.stopIntake(err)
		return err
	}
	s.appliedMu.Lock()
	upTo := s.applied
	s.appliedMu.Unlock()
	if err := s.writeDerived(tx, upTo); err != nil {
		_ = tx.Rollback()
		s.btx = nil
		s.stopIntake(err)
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	before := s.db.Stats().TxStats
	start := time.Now()
	events := s.bEvents
	err = tx.Commit()
	s.btx, s.bDirty = nil, false
	s.m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		// bbolt rolled the transaction back: the events and the stages' writes of
		// the batch are gone from the database, not from the log. A restart replays
		// them; until then nothing more is written (the stages' own memory of what
		// they wrote would not match the file).
		if errors.Is(err, berrors.ErrMaxSizeReached) {
			s.compactWanted = true
			if s.quotaOnly {
				// Only a durable Update's writes (commitDurable): refused, as a
				// full store refuses, and nothing else lost.
				s.measureRoom()
				return fmt.Errorf("store: %w (%d bytes): %v", ErrQuota, s.opts.QuotaBytes, err)
			}
		}
		s.stopIntake(fmt.Errorf("store: commit: %w", err))
		s.log.Error("commit of the batch failed: intake stopped; the next start replays the log", "err", err, "reason", reason)
		return fmt.Errorf("store: %w: %v", ErrIntakeStopped, err)
	}
	after := s.db.Stats().TxStats
	// Every page a commit writes is newly allocated (bbolt copies on write), plus
	// the meta page.
	written := after.GetPageAlloc() - before.GetPageAlloc() + int64(s.db.Info().PageSize)
	s.flash.committed(written, events)
	s.m.commits.Inc()
	s.m.checkpoints.WithLabelValues(reason).Inc()
	s.m.checkpointEvents.Observe(float64(events))
	clear(s.ckWM)
	clear(s.ckDev)
	s.derived = upTo
	// What the commit freed (evicted pages) is room again.
	s.measureRoom()
	if s.opts.afterCommit != nil {
		s.opts.afterCommit()
	}
	if s.credsChanged {
		s.credsChanged = false
		if err := s.syncKeepLocked(); err != nil {
			s.log.Warn("credentials committed, but their copy in the keep file was not written", "err", err)
		}
	}
	if s.wal != nil {
		if _, err := s.wal.Release(upTo); err != nil {
			s.log.Warn("releasing the write-ahead log's segments failed", "err", err)
		}
	}
	return nil
}

// checkpointNow has the applier commit the batch and waits for it.
func (s *Store) checkpointNow(reason string) error {
	req := ckptReq{reason: reason, done: make(chan error, 1)}
	select {
	case s.ckptCh <- req:
	case <-s.applierDone:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-s.applierDone:
		return ErrClosed
	}
}

type ckptReq struct {
	reason string
	done   chan error
}

// Sync commits everything written so far (the batch) and returns once it is
// durable in the database. Nothing needs it for durability — the log has every
// acknowledged reading, and Update commits what must not wait — but a caller about
// to copy the file, or a test, may.
func (s *Store) Sync() error {
	s.waitApplied(s.lastSeq.Load()) // every acknowledged reading is in the batch
	return s.checkpointNow("sync")
}

// writeDerived writes, in tx, the dedupe and device records changed since the last
// commit as they stand after event upTo, and records upTo as derived_seq.
func (s *Store) writeDerived(tx *bolt.Tx, upTo uint64) error {
	dd, db := tx.Bucket(bucketDedupe), tx.Bucket(bucketDevices)
	for bk, w := range s.ckWM {
		k := dedupeKey(bk)
		if w == nil {
			if err := dd.Delete(k); err != nil {
				return err
			}
			continue
		}
		if err := dd.Put(k, w.encode(k)); err != nil {
			return err
		}
	}
	for id, d := range s.ckDev {
		v, err := jsonMarshal(d)
		if err != nil {
			return err
		}
		if err := db.Put([]byte(id), v); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if cur := derivedSeq(tx); upTo <= cur && meta.Get(keyDerivedSeq) != nil {
		return nil
	}
	return meta.Put(keyDerivedSeq, u64key(upTo))
}

// waitApplied waits until the applier has applied every event up to seq (or intake
// stopped, or the store closed): a read after an acknowledgement finds the reading.
func (s *Store) waitApplied(seq uint64) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	for s.applied < seq && !s.applyStopped {
		s.appliedCond.Wait()
	}
}

// derivedSeq is meta derived_seq in tx (0 when absent: nothing is covered).
func derivedSeq(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyDerivedSeq); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// replayDerived applies to devices and wm the events after meta derived_seq (none
// when it is absent: only a file older than schema 2 lacks it, and such files wrote
// their records at every commit; migrate adds it). At Open, in its transaction.
// Since schema 4 the database holds no event after derived_seq (events and
// derived_seq are committed together); a schema-2 or -3 file may.
func (s *Store) replayDerived(tx *bolt.Tx) (int, error) {
	v := tx.Bucket(bucketMeta).Get(keyDerivedSeq)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, corruptErr{fmt.Errorf("store: meta derived_seq of %d bytes", len(v))}
	}
	after := binary.BigEndian.Uint64(v)
	c := tx.Bucket(bucketEvents).Cursor()
	intern := map[string]string{}
	var r device.Reading
	n := 0
	for k, v := c.Seek(u64key(after + 1)); k != nil; k, v = c.Next() {
		if err := decodeReading(v, &r, intern); err != nil {
			return n, corruptErr{fmt.Errorf("store: event %d: %w", binary.BigEndian.Uint64(k), err)}
		}
		s.replayReading(&r)
		n++
	}
	if n > 0 {
		s.commitN++
	}
	return n, nil
}

// replayReading applies one event that the database's device and dedupe records
// do not include yet to the store's memory of them, and marks the records for the
// next commit. At Open only.
func (s *Store) replayReading(r *device.Reading) {
	d, ok := s.devices[r.Device]
	if !ok {
		d = &DeviceInfo{ID: r.Device}
		s.devices[r.Device] = d
	}
	d.Kind = r.Kind
	if d.FirstSeen.IsZero() {
		d.FirstSeen = r.HubTime
	}
	d.LastSeen = r.HubTime
	d.Readings++
	if r.Seq != 0 {
		d.Boot, d.Seq = r.Boot, r.Seq
		bk := bootKey{r.Device, r.Boot}
		w, ok := s.wm[bk]
		if !ok {
			w = &watermark{}
			s.wm[bk] = w
			s.indexBoot(bk)
		}
		if !w.seen(r.Seq) {
			w.add(r.Seq)
		}
		w.used = s.commitN + 1
		s.ckWM[bk] = w.clone()
	}
	s.ckDev[r.Device] = d.clone()
}
