package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Salvage.
//
// A file that fails the check at Open is moved aside (quarantined) and a new store
// takes its place. Before that, salvage copies into the new store what it can still
// read of the old one: device records and dedupe watermarks, consumer cursors,
// rollups and their state, tags and the tag log, the unsent outbox, the audit
// trail, the credentials of the MQTT devices, the install's identity, and the
// events on pages that are intact. It reads the file with the same reader that
// checks it (pagefile.go), tolerantly: from the root of the newest valid meta page,
// a damaged page is skipped with everything under it, an element that does not
// lie inside its page or is out of key order is dropped, and every record must
// pass its bucket's check (bucketDefs) — nothing is read through bbolt's map, the
// free list is never consulted, and a page reached twice is read once, so no damage
// can crash the process or loop. What was recovered and what was lost, per bucket,
// goes into the audit record, the log, the metrics and `hearth status`.
//
// The install id (and the pseudonymisation secret of a store not yet migrated to
// its key file) are kept: the same household behind
// the same hub is the same pseudonym upstream before and after, so the maker's
// history of it continues, and outbox messages salvaged keep the ids the cloud
// deduplicates on. Corruption is not a request to be forgotten; a new secret would
// only make one household look like two. (When the secret cannot be read, the new
// store's is new, and the report says so: identity_kept false.)
//
// The new store is built beside the file (path.salvage-partial), renamed to
// path.salvage when complete, and moved into place after the damaged file has been
// moved aside. A crash anywhere leaves either the damaged file at path (Open starts
// again, deleting a partial copy) or path missing and a complete path.salvage,
// which Open moves into place.

// SalvageReport is what salvage recovered from a quarantined file. It names no
// device and carries no reading: it goes upstream in the health message.
type SalvageReport struct {
	// Txid is the bbolt transaction read (the newest valid meta page's).
	Txid uint64 `json:"txid"`
	// IdentityKept: the install id and the pseudonymisation secret were recovered
	// (pseudonyms upstream are unchanged).
	IdentityKept bool `json:"identity_kept"`
	// Buckets counts, per bucket, what was recovered and what was lost.
	Buckets map[string]BucketSalvage `json:"buckets"`
	// FromKeep names what came from the keep file (keep.go) rather than the
	// damaged file: "identity", "credentials".
	FromKeep []string `json:"from_keep,omitempty"`
	// Error says why nothing (or not everything) could be salvaged, or "".
	Error string `json:"error,omitempty"`
}

// BucketSalvage counts what salvage did with one bucket.
type BucketSalvage struct {
	Recovered int `json:"recovered"`
	// Lost counts the records known lost: found but failing their check or cut
	// from a damaged page, and for events, the sequences missing between the
	// first recovered and the last known to have been written.
	Lost int `json:"lost"`
	// LostPages counts the damaged pages skipped, each with everything under it
	// (their records, not known, are not in Lost).
	LostPages int `json:"lost_pages"`
}

// Recovered is the number of records salvaged from every bucket (0 for nil).
func (r *SalvageReport) Recovered() int {
	if r == nil {
		return 0
	}
	n := 0
	for _, b := range r.Buckets {
		n += b.Recovered
	}
	return n
}

// salvageBatch bounds one transaction of the new store while salvage copies
// records: bbolt keeps a transaction's changed pages in memory.
const salvageBatch = 8 << 20

// salvageFile copies what is readable of the damaged file from into a new store
// at to, and returns what it recovered. An error means the new store could not be
// written (to is removed); the report says what was read.
//
// f is the damaged file at path from, opened and locked by the caller.
func salvageFile(f *os.File, from, to string, opts Options, rec *recovery) (*SalvageReport, error) {
	rep := &SalvageReport{Buckets: map[string]BucketSalvage{}}
	if err := os.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("store: salvage: remove %s: %w", to, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("store: salvage: %w", err)
	}
	sv := &salvager{rep: rep, log: opts.Logger, protect: opts.Protect}
	if sv.keep, err = readKeep(from + keepSuffix); err != nil {
		opts.Logger.Warn("salvage: no keep file to fall back on", "component", "store", "err", err)
	}
	bf, top := sv.read(f, fi.Size())
	// The new store: made as Open makes one, then filled. It is a scratch file
	// until it is renamed complete, so its commits are not synced one by one: one
	// fdatasync before it is closed covers them all.
	opts.scratch = true
	dst, err := openStore(to, opts, nil)
	if err != nil {
		return rep, fmt.Errorf("store: salvage: create %s: %w", to, err)
	}
	if err := sv.copyAll(dst.db, bf, top); err != nil {
		_ = dst.db.Close()
		_ = os.Remove(to)
		return rep, fmt.Errorf("store: salvage into %s: %w", to, err)
	}
	if err := closeSynced(dst.db); err != nil {
		_ = os.Remove(to)
		return rep, fmt.Errorf("store: salvage: close %s: %w", to, err)
	}
	// Reopen it as Open would (checking every record it now holds) and apply the
	// events after derived_seq to the device and dedupe records (init replays them):
	// then the records and the sequence start where the old store left off. The
	// same transaction counts the corruption and writes the audit record, so the
	// new store carries them from the moment it is complete.
	dst, err = openStore(to, opts, nil)
	if err == nil {
		rec.report = rep
		err = dst.db.Update(func(tx *bolt.Tx) error {
			if err := dst.writeDerived(tx, max(dst.lastSeq.Load(), sv.seqFloor)); err != nil {
				return err
			}
			return rec.record(tx)
		})
		if cerr := closeSynced(dst.db); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(to)
		return rep, fmt.Errorf("store: salvage: finish %s: %w", to, err)
	}
	return rep, nil
}

// salvager reads a damaged file tolerantly and copies what passes into a new store.
type salvager struct {
	rep     *SalvageReport
	log     *slog.Logger
	protect []string // Options.Protect: consumers whose cursors are over the log
	// seqFloor: no new event may take a sequence at or below it (the last event
	// the old store is known to have written: its derived_seq, its last event
	// recovered, the cursors of the protected consumers over the log).
	seqFloor uint64
	meta     map[string][]byte // the meta keys recovered (salvageMetaKeys)
	// eventsDamaged: part of the event log could not be read or was not trusted;
	// scanEvents then looks for its events elsewhere, from sequence eventsFrom on.
	eventsDamaged bool
	eventsFrom    uint64
	eventsFirst   bool              // eventsFrom is the first event the walk gave
	keep          *keepContent      // the keep file (keep.go), or nil
	sawCreds      bool              // the damaged file's credentials bucket was found
	olderTxn      bool              // the tree read is the older meta page's (the newer's root was unreadable)
	seqs          map[string]uint64 // each bucket's sequence (NextSeq)
	schema        uint64            // the damaged file's schema (meta), when schemaKnown
	schemaKnown   bool
}

func (sv *salvager) count(bucket string, fn func(*BucketSalvage)) {
	b := sv.rep.Buckets[bucket]
	fn(&b)
	sv.rep.Buckets[bucket] = b
}

// read finds the root of the damaged file: the newest valid meta page's, or the
// other's when that root is unreadable. With neither, it returns the file with
// no tree (top nil) for scanEvents, at the system's page size.
func (sv *salvager) read(f *os.File, size int64) (*boltFile, map[string][]byte) {
	bf, err := readBoltFile(f, size, false)
	if bf == nil {
		sv.rep.Error = fmt.Sprintf("no usable meta page (%v)", err)
		ps := os.Getpagesize()
		return &boltFile{r: f, size: size, pageSize: ps, meta: boltMeta{hwm: uint64(size) / uint64(ps)},
			reached: make([]uint64, (uint64(size)/uint64(ps)+63)/64)}, nil
	}
	for i, m := range bf.metas() {
		bf.meta = m
		bf.reached = make([]uint64, (m.hwm+63)/64)
		if top, _ := sv.walker(bf).topLevel(); len(top) > 0 {
			sv.rep.Txid, sv.olderTxn = m.txid, i > 0
			return bf, top
		}
	}
	sv.rep.Error = "the root page is unreadable"
	bf.reached = make([]uint64, (bf.meta.hwm+63)/64)
	return bf, nil
}

// walker returns a tolerant walker that counts what it skips.
func (sv *salvager) walker(bf *boltFile) *walker {
	return &walker{bf: bf, damage: func(n damageNote) {
		sv.log.Warn("salvage: skipped damage", "component", "store", "bucket", n.bucket, "page", n.page, "damage", n.what, "records", n.lost)
		sv.count(n.bucket, func(b *BucketSalvage) {
			if n.lost < 0 {
				b.LostPages++
			} else {
				b.Lost += n.lost
			}
		})
		if n.bucket == "events" {
			sv.eventsDamaged = true
			if n.lost < 0 && len(n.lo) != 8 { // the damage may reach below the first event
				sv.eventsFrom, sv.eventsFirst = 0, true
			}
		}
	}}
}

// batcher puts records into one bucket of the new store, in transactions of
// about salvageBatch bytes.
type batcher struct {
	db     *bolt.DB
	bucket string
	kvs    [][2][]byte
	size   int
	// ifAbsent: keep a key the new store already has (scanEvents: the tree's
	// copy of an event is the one to trust).
	ifAbsent bool
	added    int
}

func (b *batcher) put(k, v []byte) error {
	b.kvs = append(b.kvs, [2][]byte{k, v})
	if b.size += len(k) + len(v); b.size >= salvageBatch {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.kvs) == 0 {
		return nil
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(b.bucket))
		if b.bucket == "events" {
			bk.FillPercent = 1.0 // append-only keys, as the writer packs them
		}
		for _, kv := range b.kvs {
			if b.ifAbsent && bk.Get(kv[0]) != nil {
				continue
			}
			if err := bk.Put(kv[0], kv[1]); err != nil {
				return err
			}
			b.added++
		}
		return nil
	})
	b.kvs, b.size = b.kvs[:0], 0
	return err
}

// copyAll copies every bucket of the damaged file that bucketDefs knows into db,
// then looks for the events under damaged pages elsewhere in the file.
func (sv *salvager) copyAll(db *bolt.DB, bf *boltFile, top map[string][]byte) error {
	sv.meta, sv.seqs = map[string][]byte{}, map[string]uint64{}
	w := sv.walker(bf)
	for _, def := range bucketDefs {
		v, ok := top[def.name]
		if !ok {
			if def.name == "events" {
				sv.eventsDamaged, sv.eventsFirst = true, true
			}
			continue
		}
		if err := sv.copyBucket(db, w, def, v); err != nil {
			return err
		}
		sv.sawCreds = sv.sawCreds || def.name == "credentials"
	}
	if err := sv.scanEvents(db, bf); err != nil {
		return err
	}
	return sv.finish(db)
}

// copyBucket copies the records of one bucket that pass its check. Damage rarely
// stops at one record: a record that fails its check, or that the walk dropped,
// makes its neighbours on the page suspect too, and they are not copied either
// (a record whose bytes were hit can still pass its check; its neighbours share
// the bytes around the damage).
func (sv *salvager) copyBucket(db *bolt.DB, w *walker, def bucketDef, v []byte) error {
	_, seq, _, err := bucketRoot(v)
	if err != nil {
		sv.count(def.name, func(b *BucketSalvage) { b.LostPages++ })
		return nil
	}
	out := &batcher{db: db, bucket: def.name}
	var maxKey uint64
	var page []element
	take := func() error {
		bad := map[int]bool{}
		for i, e := range page {
			if e.bucket || e.misplaced || !sv.passes(def, e) {
				bad[e.index] = true
			}
			prev := -1
			if i > 0 {
				prev = page[i-1].index
			}
			if e.index != prev+1 { // the walk dropped what was between
				bad[prev+1], bad[e.index-1] = true, true
			}
		}
		for _, e := range page {
			if def.name == "events" && !sv.eventsFirst && len(e.key) == 8 {
				sv.eventsFrom, sv.eventsFirst = binary.BigEndian.Uint64(e.key), true
			}
			if bad[e.index] || bad[e.index-1] || bad[e.index+1] {
				sv.count(def.name, func(b *BucketSalvage) { b.Lost++ })
				if def.name == "events" {
					sv.eventsDamaged = true
				}
				continue
			}
			if len(e.key) == 8 {
				maxKey = max(maxKey, binary.BigEndian.Uint64(e.key))
			}
			sv.count(def.name, func(b *BucketSalvage) { b.Recovered++ })
			if def.upgrade != nil && (def.check == nil || def.check(e.key, e.value) != nil) {
				e.value = def.upgrade(e.key, e.value) // written by an older schema
			}
			switch {
			case def.salvage == salvageMeta:
				if slices.Contains(salvageMetaKeys, string(e.key)) {
					sv.meta[string(e.key)] = e.value
				}
				if string(e.key) == "schema" {
					sv.schema, sv.schemaKnown = binary.BigEndian.Uint64(e.value), true
				}
				continue
			case def.name == "cursors" && slices.Contains(sv.protect, string(e.key)):
				sv.seqFloor = max(sv.seqFloor, binary.BigEndian.Uint64(e.value))
			}
			if err := out.put(e.key, e.value); err != nil {
				return err
			}
		}
		page = page[:0]
		return nil
	}
	err = w.forEach(def.name, v, func(e element) error {
		if len(page) > 0 && page[0].page != e.page {
			if err := take(); err != nil {
				return err
			}
		}
		page = append(page, e)
		return nil
	})
	if err == nil {
		err = take()
	}
	if err == nil {
		err = out.flush()
	}
	if def.seqKeyed {
		seq = max(seq, maxKey)
	}
	sv.seqs[def.name] = seq
	return err
}

// passes reports whether a record of the damaged file passes its bucket's check,
// as the file's schema wrote it (either schema, when the meta bucket was lost: a
// sealed record never passes an unsealed one's check, nor the reverse but by a
// chance of 1 in 2³²).
func (sv *salvager) passes(def bucketDef, e element) bool {
	ok := func(check func(k, v []byte) error) bool { return check == nil || check(e.key, e.value) == nil }
	switch {
	case sv.schema == 0 && !sv.schemaKnown:
		return ok(def.check) || def.v2 != nil && ok(def.v2)
	default:
		return ok(def.checkOf(sv.schema))
	}
}

// scanEvents looks, when part of the event log could not be read or trusted,
// for its events elsewhere in the file: a damaged branch page hides every sound
// leaf under it, and a leaf of the log is self-evident (8-byte keys, each value an
// event record). Events never change once written, so a copy of a leaf that an
// older transaction left on a free page holds the same records as the live one.
// A page is taken whole or not at all (it must be exactly as bbolt writes a leaf,
// every record passing its check), and only for keys the new store lacks, at or
// above the first event the tree gave unless the damage reached below it, and
// above meta evicted_seq when it was read. (An event retention had deleted may
// come back this way from a file without evicted_seq; the next retention pass
// deletes it again. Events of a commit that never completed may come back too:
// their devices were never told they were stored, so they may be stored twice —
// a duplicate, not a loss.)
func (sv *salvager) scanEvents(db *bolt.DB, bf *boltFile) error {
	if !sv.eventsDamaged {
		return nil
	}
	out := &batcher{db: db, bucket: "events", ifAbsent: true}
	from := sv.eventsFrom
	if v := sv.meta["evicted_seq"]; len(v) == 8 { // never what retention deleted (schema 4)
		from = max(from, binary.BigEndian.Uint64(v)+1)
	}
	for id := uint64(2); id < bf.meta.hwm; id++ {
		p, err := bf.readRaw(id)
		if err != nil {
			continue
		}
		leaf, elems, _, err := parseElements(p, id, true, false, nil)
		if err != nil || !leaf || len(elems) == 0 {
			continue
		}
		ok := true
		for _, e := range elems {
			if e.bucket || checkEventRecord(e.key, e.value) != nil {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for _, e := range elems {
			if binary.BigEndian.Uint64(e.key) >= from {
				if err := out.put(e.key, e.value); err != nil {
					return err
				}
			}
		}
		id += uint64(ne.Uint32(p[12:]))
	}
	if err := out.flush(); err != nil {
		return err
	}
	if out.added > 0 {
		sv.log.Warn("salvage: events found on pages outside the damaged tree", "component", "store", "events", out.added)
	}
	return nil
}

// finish writes the meta keys recovered, sets derived_seq and the floor of the
// next sequence, and counts the events lost: every sequence missing between the
// first event recovered and the last the old store is known to have written.
func (sv *salvager) finish(db *bolt.DB) error {
	meta := sv.meta
	// The identity is the install id (the pseudonym key lives in a file of its own,
	// sync/privacy; a store not yet migrated also holds it in meta as "secret", which
	// is kept with its id or not at all: one without the other would pair a new id
	// with old pseudonyms, or the reverse). Else the keep file's.
	if meta["install_id"] == nil || (meta["secret"] == nil && sv.keep != nil && len(sv.keep.Secret) == 32) {
		delete(meta, "install_id")
		delete(meta, "secret")
		if k := sv.keep; k != nil && checkMetaRecord(keyInstallID, []byte(k.InstallID)) == nil {
			meta["install_id"] = []byte(k.InstallID)
			if len(k.Secret) == 32 { // a keep file written before the key moved out
				meta["secret"] = k.Secret
			}
			if checkMetaRecord(keyCreated, []byte(k.Created)) == nil {
				meta["created"] = []byte(k.Created)
			}
			sv.rep.FromKeep = append(sv.rep.FromKeep, "identity")
		}
	}
	sv.rep.IdentityKept = meta["install_id"] != nil
	// The credentials: all of them, or the keep file's (which the damaged file's,
	// read in part, would only mix with an older or newer state).
	// (Read from an older transaction than the newest, they may be older too.)
	if c := sv.rep.Buckets["credentials"]; sv.keep != nil && (c.Lost > 0 || c.LostPages > 0 || !sv.sawCreds || sv.olderTxn) {
		if err := db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte(Credentials)); err != nil {
				return err
			}
			b, err := tx.CreateBucket([]byte(Credentials))
			if err != nil {
				return err
			}
			for k, v := range sv.keep.Credentials {
				if checkJSONValue(nil, v) != nil {
					continue
				}
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		sv.rep.Buckets["credentials"] = BucketSalvage{Recovered: len(sv.keep.Credentials)}
		sv.rep.FromKeep = append(sv.rep.FromKeep, "credentials")
	}
	var first, last uint64
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		if k, _ := c.First(); k != nil {
			first = binary.BigEndian.Uint64(k)
		}
		if k, _ := c.Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		n = tx.Bucket(bucketEvents).Stats().KeyN
		return nil
	}); err != nil {
		return err
	}
	// derived_seq: the old store's (the device and dedupe records recovered cover the
	// events up to it; Open replays the rest). Lost, or from a file before schema 2
	// (whose records covered every event), it is the last event: nothing is
	// replayed twice into the records.
	derived := last
	if v := meta["derived_seq"]; v != nil {
		derived = binary.BigEndian.Uint64(v)
	}
	meta["derived_seq"] = u64key(derived)
	sv.seqFloor = max(sv.seqFloor, derived, last)
	ev := sv.rep.Buckets["events"]
	ev.Recovered, ev.Lost = n, 0
	if n > 0 {
		ev.Lost = int(sv.seqFloor-first+1) - n
	}
	sv.rep.Buckets["events"] = ev
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		for k, v := range meta {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for name, seq := range sv.seqs { // the buckets' sequences, as they were
			if err := tx.Bucket([]byte(name)).SetSequence(seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// metas returns the valid meta pages that fit the file, newest first.
func (bf *boltFile) metas() []boltMeta {
	out := []boltMeta{bf.meta}
	if m := bf.alt; m != nil && m.root >= 2 && m.root < m.hwm && m.hwm < 1<<40 {
		out = append(out, *m)
	}
	return out
}

// quarantine moves the damaged file at path aside to moved and, when salvage
// made one, moves the salvaged store into its place.
func quarantine(path, moved, salvaged string) error {
	if err := os.Rename(path, moved); err != nil {
		return err
	}
	if salvaged != "" {
		if err := os.Rename(salvaged, path); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(path))
}

// File names of salvage's new store: path+salvagePartialSuffix while it is written,
// path+salvageSuffix once complete.
const (
	salvagePartialSuffix = ".salvage-partial"
	salvageSuffix        = ".salvage"
)

// finishSalvage completes what a crash interrupted: a partial new store is deleted
// (the damaged file is still at path, and Open salvages it again); a complete one
// with nothing at path (the damaged file was moved aside just before the crash) is
// moved into place. One left beside a file at path is stale and deleted.
func finishSalvage(path string, log *slog.Logger) error {
	if err := os.Remove(path + salvagePartialSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove a partial salvage: %w", err)
	}
	done := path + salvageSuffix
	if _, err := os.Lstat(done); err != nil {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		if err := os.Remove(done); err != nil {
			return fmt.Errorf("store: remove a stale salvage: %w", err)
		}
		return nil
	}
	if err := os.Rename(done, path); err != nil {
		return fmt.Errorf("store: move the salvaged store into place: %w", err)
	}
	log.Warn("moved the store salvaged before a crash into place", "component", "store", "path", path)
	return syncDir(filepath.Dir(path))
}

// recovery is how a damaged file was handled at Open.
type recovery struct {
	movedTo  string
	damage   string // what the check found
	at       time.Time
	report   *SalvageReport
	recorded bool // the new store already holds the audit record and the count
}

// record counts the corruption in meta and writes its audit record, in tx.
func (r *recovery) record(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	n := uint64(0)
	if v := meta.Get(keyCorruptions); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	if err := meta.Put(keyCorruptions, u64key(n+1)); err != nil {
		return err
	}
	return writeTx(tx).Audit("corrupt_file_moved_aside", map[string]any{"moved_to": r.movedTo,
		"at": r.at.Format(time.RFC3339), "damage": r.damage, "salvage": r.report})
}

// summary is the report as log attributes: recovered and lost per bucket.
func (r *SalvageReport) summary() slog.Value {
	if r == nil {
		return slog.StringValue("none")
	}
	attrs := []slog.Attr{slog.Uint64("txid", r.Txid), slog.Bool("identity_kept", r.IdentityKept)}
	for _, d := range bucketDefs {
		if b, ok := r.Buckets[d.name]; ok {
			attrs = append(attrs, slog.String(d.name, fmt.Sprintf("recovered %d, lost %d, lost pages %d", b.Recovered, b.Lost, b.LostPages)))
		}
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	return slog.GroupValue(attrs...)
}

// Salvage reports what was salvaged from the damaged file moved aside at this
// Open (Recovered), or nil when there was none.
func (s *Store) Salvage() *SalvageReport { return s.salvage }

// MetaDamage says which meta page was found damaged at Open, or "": bbolt then
// opened the transaction of the other one, and a commit the damaged page held
// (the newest, if it was the newer) is lost. The next commit rewrites the page.
func (s *Store) MetaDamage() string { return s.metaDamage }

// closeSynced writes what the scratch file's unsynced commits left in the page
// cache to disk, then closes it.
func closeSynced(db *bolt.DB) error {
	err := db.Sync()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
