package store

import (
	"encoding/binary"
	"fmt"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/wal"
)

// The log at Open.
//
// The write-ahead log lives beside the database, in <file>.wal/ (FORMAT.md, "The
// write-ahead log"). Open reads it after the database, under the database's lock,
// and puts into the database every event after derived_seq — what was
// acknowledged but not yet committed there when the last run ended — with the
// device and dedupe records they change, in one commit. Then the log's segments
// are released, and new readings go to a new segment.
//
// What the log's recovery found (wal.Recovery) decides the rest:
//   - a torn tail (the write a crash interrupted, never acknowledged) is cut off
//     and logged;
//   - damage — a record failing its checksum with valid records after it, a
//     missing segment, an unreadable segment header, a gap in the sequences, or a
//     log that starts after the database ends — stops the replay there: the events
//     after it that the database does not hold are lost, and they are counted,
//     logged, audited (log_damaged), counted in hearth_store_log_damaged_total and
//     reported upstream in the health message (LogDamage). The damaged segments are
//     moved aside to <file>.wal.corrupt-<UTC time>/, byte for byte, and the store
//     starts: a damaged log never stops hearth from starting;
//   - damage to records the database already holds (at or before derived_seq) loses
//     nothing; it is reported all the same.
//
// The next sequence starts above every one the log holds anywhere, damaged part
// included: no sequence is ever reused.

// walSuffix names the log's directory after the database file.
const walSuffix = ".wal"

// LogDamage is what the write-ahead log's recovery found wrong at Open.
type LogDamage struct {
	Damage string `json:"damage"`
	At     string `json:"at,omitempty"`
	// Lost is the number of acknowledged events the database does not have and the
	// log could not give back; LostFirst..LostLast their sequences (as far as known).
	Lost      int    `json:"lost_events"`
	LostFirst uint64 `json:"lost_first_seq,omitempty"`
	LostLast  uint64 `json:"lost_last_seq,omitempty"`
	// After counts the valid records found after the damage.
	After wal.Counted `json:"after"`
	// MovedTo is where the damaged segments were moved (a path beside the database).
	MovedTo string `json:"moved_to,omitempty"`
}

// openLog opens the log and replays into the database what it holds after
// derived_seq. Called by Open before the writer starts.
func (s *Store) openLog() error {
	opts := &wal.Options{FS: s.opts.logFS, SegmentSize: s.opts.logSegment, Logger: s.log}
	l, rec, err := wal.Open(s.path+walSuffix, opts)
	if err != nil {
		return fmt.Errorf("store: the write-ahead log: %w", err)
	}
	s.wal = l
	if rec.Torn != nil {
		s.m.logTorn.Inc()
	}
	derived := s.derived
	var dmg *LogDamage
	if rec.Damage != "" {
		dmg = &LogDamage{Damage: rec.Damage, At: rec.At.String(), After: rec.After}
		if rec.After.Last > derived {
			// Lost: everything after what is replayed (or the database holds), the
			// damaged record itself included, up to the last valid record after it.
			dmg.LostFirst = derived + 1
			if n := len(rec.Records); n > 0 {
				dmg.LostFirst = max(dmg.LostFirst, rec.Records[n-1].Last()+1)
			}
			dmg.LostLast = rec.After.Last
			dmg.Lost = int(dmg.LostLast - dmg.LostFirst + 1)
		}
	}
	if len(rec.Records) > 0 && rec.Records[0].First > derived+1 {
		// The log starts after the database ends: the events between are nowhere.
		gap := &LogDamage{Damage: fmt.Sprintf("the log starts at sequence %d, the database ends at %d: a segment is missing",
			rec.Records[0].First, derived), LostFirst: derived + 1, LostLast: rec.Records[0].First - 1}
		gap.Lost = int(gap.LostLast - gap.LostFirst + 1)
		if dmg == nil {
			dmg = gap
		} else {
			dmg.Damage = gap.Damage + "; " + dmg.Damage
			dmg.Lost += gap.Lost
			dmg.LostFirst = gap.LostFirst
		}
	}
	n, err := s.replayLog(rec.Records)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("replayed the write-ahead log into the database", "events", n)
	}
	if last := rec.LastSeq(); last > s.lastSeq.Load() {
		s.lastSeq.Store(last) // never reuse a sequence the log held, damaged part included
		// What was lost is applied as far as anything can be: a read waits for
		// nothing that will never come.
		s.appliedMu.Lock()
		s.applied = max(s.applied, last)
		s.appliedMu.Unlock()
	}
	if dmg != nil {
		s.logDamage = dmg
		s.m.logDamage.Inc()
		if len(rec.Records) > 0 || rec.After.Records > 0 || rec.Segments > 0 {
			dmg.MovedTo = fmt.Sprintf("%s%s.corrupt-%s", s.path, walSuffix, s.opts.Now().UTC().Format("20060102T150405Z"))
		}
		s.log.Error("the write-ahead log is damaged: replayed what precedes the damage, moved the log aside", "damage", dmg.Damage,
			"at", dmg.At, "lost_events", dmg.Lost, "lost_first_seq", dmg.LostFirst, "lost_last_seq", dmg.LostLast,
			"records_after", dmg.After.Records, "moved_to", dmg.MovedTo)
		if err := s.auditLocked("log_damaged", dmg); err != nil {
			return err
		}
	}
	// One commit: the events replayed, their device and dedupe records, derived_seq,
	// and the audit record of any damage.
	// (The log's segments are released only after the damaged ones are set
	// aside: released first, they would be recycled as spares, evidence and all.)
	s.wal = nil
	err = s.commitLocked("open")
	s.wal = l
	if err != nil {
		return fmt.Errorf("store: commit the log's replay: %w", err)
	}
	if dmg != nil && dmg.MovedTo != "" {
		if _, err := l.SetAside(dmg.MovedTo); err != nil {
			s.log.Error("the damaged write-ahead log could not be moved aside", "err", err)
		}
	}
	if _, err := l.Release(s.derived); err != nil {
		s.log.Warn("releasing the write-ahead log's segments failed", "err", err)
	}
	s.measureRoom()
	return nil
}

// replayLog puts the events of the log's records after derived_seq into the batch
// and the store's memory of devices and watermarks. The database may exceed its
// quota for this one commit (acknowledged readings are never dropped to make room);
// the writer's eviction and compaction bring it back under.
func (s *Store) replayLog(recs []wal.Record) (int, error) {
	derived := s.derived
	tx, err := s.batch()
	if err != nil {
		return 0, err
	}
	ev := tx.Bucket(bucketEvents)
	ev.FillPercent = 1.0
	intern := map[string]string{}
	var r device.Reading
	n := 0
	for _, rec := range recs {
		if rec.Last() <= derived {
			continue
		}
		body := rec.Body
		for seq := rec.First; seq <= rec.Last(); seq++ {
			l, w := binary.Uvarint(body)
			if w <= 0 || uint64(len(body)-w) < l {
				return n, fmt.Errorf("store: the log's record %d..%d: entry %d is cut short", rec.First, rec.Last(), seq)
			}
			val := body[w : w+int(l) : w+int(l)]
			body = body[w+int(l):]
			if seq <= derived {
				continue
			}
			if err := decodeReading(val, &r, intern); err != nil {
				// The record passed its checksum: this is not damage on the disk
				// but an event this code cannot read. Stop rather than guess.
				return n, fmt.Errorf("store: the log's event %d: %w", seq, err)
			}
			if err := ev.Put(u64key(seq), val); err != nil {
				return n, fmt.Errorf("store: replay event %d: %w", seq, err)
			}
			s.replayReading(&r)
			s.eventCount++
			n++
			s.applied = seq
		}
	}
	if n > 0 {
		s.markDirty()
		s.bEvents += n
		s.commitN++
		s.lastSeq.Store(max(s.lastSeq.Load(), s.applied))
	}
	return n, nil
}

// auditLocked appends an audit record to the batch. s.bmu is held (or the store is
// not running yet).
func (s *Store) auditLocked(event string, detail any) error {
	tx, err := s.batch()
	if err != nil {
		return err
	}
	s.markDirty()
	return writeTx(tx).Audit(event, detail)
}

// LogDamage is what the write-ahead log's recovery found wrong at Open, or nil.
func (s *Store) LogDamage() *LogDamage { return s.logDamage }
