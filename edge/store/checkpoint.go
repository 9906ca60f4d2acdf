package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hearth-iot/hearth/device"
)

// Checkpoints. A commit of readings used to rewrite, besides the event log, each
// device's dedupe watermark and device record: three B+trees, each copied from leaf
// to root by bbolt, about half of what a commit wrote to flash (BenchmarkCommitDiskBytes:
// 51 KB for a commit of one reading from one of 200 devices, 29 KB without them) and
// of its time. Both are derived from the events: the watermark of (device, boot) is
// the set of sequences of its events, the device record counts them. So a commit now
// writes the events only, and every checkpointEvery (and whenever it evicts events) it
// also writes the records changed since the last checkpoint, with meta derived_seq,
// the last event they include. Open replays the events after derived_seq into the
// records, so after a crash they are exactly what they would have been: no reading
// acknowledged before it is lost, none taken twice. (A device's count of refused
// duplicates, Dups, is the one figure not derived from events: a crash loses what it
// gained since the last checkpoint.)

// checkpointEvery is the longest the devices and dedupe records wait to be written:
// at most this much of the log is replayed at Open. (A variable for tests.)
var checkpointEvery = 5 * time.Second

// recordDeletes stands in for the dedupe bucket when pruneBoots runs at a commit:
// pruned boots are deleted from the bucket at the next checkpoint (Store.prunedWM).
type recordDeletes struct{}

func (recordDeletes) Delete([]byte) error { return nil }

// writeCheckpoint writes, in tx, the records changed since the last checkpoint as
// they stand after this commit (changed here: wmChange, devNew; before: the dirty
// sets), deletes the boots pruned since then, and records seq as derived_seq.
func (s *Store) writeCheckpoint(tx *bolt.Tx, seq uint64, wmChange map[bootKey]*watermark, devNew map[string]*DeviceInfo, pruned []bootKey) error {
	dd, db := tx.Bucket(bucketDedupe), tx.Bucket(bucketDevices)
	for bk := range s.prunedWM {
		if _, back := wmChange[bk]; !back {
			if err := dd.Delete(dedupeKey(bk)); err != nil {
				return err
			}
		}
	}
	for _, bk := range pruned {
		if err := dd.Delete(dedupeKey(bk)); err != nil {
			return err
		}
	}
	for bk, w := range wmChange {
		if err := dd.Put(dedupeKey(bk), w.encode(dedupeKey(bk))); err != nil {
			return err
		}
	}
	for bk := range s.dirtyWM {
		if _, ok := wmChange[bk]; ok {
			continue
		}
		if w, ok := s.wm[bk]; ok && !slices.Contains(pruned, bk) {
			if err := dd.Put(dedupeKey(bk), w.encode(dedupeKey(bk))); err != nil {
				return err
			}
		}
	}
	putDev := func(d *DeviceInfo) error {
		v, err := jsonMarshal(d)
		if err != nil {
			return err
		}
		return db.Put([]byte(d.ID), v)
	}
	for _, d := range devNew {
		if err := putDev(d); err != nil {
			return err
		}
	}
	for id := range s.dirtyDev {
		if _, ok := devNew[id]; ok {
			continue
		}
		if d, ok := s.devices[id]; ok {
			if err := putDev(d); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(keyDerivedSeq, u64key(seq))
}

// checkpoint writes the records changed since the last checkpoint in a transaction of
// their own: by the writer when it has been idle for checkpointEvery, and at Close
// (after the writer stopped), so that the next Open replays nothing.
func (s *Store) checkpoint() error {
	if len(s.dirtyWM) == 0 && len(s.dirtyDev) == 0 && len(s.prunedWM) == 0 {
		return nil
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return s.writeCheckpoint(tx, s.lastSeq.Load(), nil, nil, nil)
	})
	if err == nil {
		clear(s.dirtyWM)
		clear(s.dirtyDev)
		clear(s.prunedWM)
		s.lastCheckpoint = s.opts.Now()
		return nil
	}
	// A failed write or fsync stops intake, as it does for a commit (tx.go Update):
	// the page cache and the file may disagree. A full file is not a write failure:
	// the next commit evicts (and checkpoints with it).
	if !errors.Is(err, berrors.ErrMaxSizeReached) && !errors.Is(err, bolt.ErrDatabaseNotOpen) && s.stopIntake(err) {
		s.log.Error("checkpoint write failed: intake stopped", "err", err)
	}
	return err
}

// checkpointNow has the writer write a checkpoint (if anything changed since the
// last one) and waits for it: afterwards derived_seq covers every event committed
// before the call. Expire calls it before it deletes events.
func (s *Store) checkpointNow() error {
	done := make(chan error, 1)
	select {
	case s.ckptCh <- done:
	case <-s.stop:
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-s.done:
		return ErrClosed
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
		s.dirtyDev[r.Device] = true
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
			s.dirtyWM[bk] = true
		}
		n++
	}
	if n > 0 {
		s.commitN++
	}
	return n, nil
}
