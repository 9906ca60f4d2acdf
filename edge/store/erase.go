package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Erasure (the household's right to be forgotten; FORMAT.md, "Erasure"). EraseDevice
// and EraseHousehold delete records in one transaction; the bytes they leave in
// bbolt's free pages are then gone only once the file is rewritten (Compact), which
// is the caller's next step (cmd/hearth's forget, docs/privacy.md).

// Erased counts the records an erasure deleted, by bucket.
type Erased map[string]int

// Total is the number of records deleted.
func (e Erased) Total() int {
	n := 0
	for _, v := range e {
		n += v
	}
	return n
}

// EraseOptions say how to recognise what an erasure takes with it beyond the local
// id.
type EraseOptions struct {
	// Pseudonym is the device's pseudonym upstream: queued, batched and dead-lettered
	// messages, and kept payloads, that carry it are about the device.
	Pseudonym string
	// Rename names a batch from the messages left in it (sync/outbox's rule).
	Rename func([]Message) string
}

// nulParts splits a key at NUL bytes.
func nulParts(k []byte) [][]byte { return bytes.Split(k, []byte{0}) }

// EraseDevice deletes every record of device id: its events, dedupe watermarks,
// device record, cursors named after it, rollups, rollup state and data clock,
// credential, accepted and proposed discovery entities that map to it, the queued,
// batched and dead-lettered messages and kept payloads about it, and the audit and
// other JSON records that name it. Readings of other devices are untouched. The
// event sequence is never reused (derived_seq is kept at or past the last event).
// Run it in Store.Erase, not Update.
func (t *Tx) EraseDevice(id string, o EraseOptions) (Erased, error) {
	if id == "" {
		return nil, fmt.Errorf("store: erase: no device id")
	}
	e := Erased{}
	idb := []byte(id)
	last := uint64(0)
	if k, _ := t.tx.Bucket(bucketEvents).Cursor().Last(); len(k) == 8 {
		last = binary.BigEndian.Uint64(k)
	}
	about := func(v []byte) bool {
		return bytes.Contains(v, idb) && mentions(v, id) || o.Pseudonym != "" && bytes.Contains(v, []byte(o.Pseudonym))
	}
	picks := map[string]func(k, v []byte) bool{
		"events":  func(_, v []byte) bool { d, ok := eventDevice(v); return ok && bytes.Equal(d, idb) },
		"dedupe":  func(k, _ []byte) bool { bk, ok := parseDedupeKey(k); return ok && bk.dev == id },
		"devices": func(k, _ []byte) bool { return bytes.Equal(k, idb) },
		"cursors": func(k, _ []byte) bool {
			for _, p := range nulParts(k) {
				if bytes.Equal(p, idb) {
					return true
				}
			}
			return false
		},
		"rollups": func(k, _ []byte) bool { p := nulParts(k); return len(p) >= 2 && bytes.Equal(p[1], idb) },
		"state": func(k, v []byte) bool {
			p := nulParts(k)
			return len(p) >= 2 && bytes.Equal(p[1], idb) || mentions(v, id)
		},
		"credentials": func(k, v []byte) bool { return bytes.Equal(k, []byte(credentialPrefix+id)) || about(v) },
		"outbox":      func(_, v []byte) bool { return about(v) },
		"privacy":     func(k, v []byte) bool { return !bytes.HasPrefix(k, []byte(erasePrefix)) && about(v) },
		"privacy.payloads": func(_, v []byte) bool {
			return bytes.Contains(v, idb) || o.Pseudonym != "" && bytes.Contains(v, []byte(o.Pseudonym))
		},
	}
	for _, d := range bucketDefs {
		switch d.name {
		case "meta", "sync.queue", "sync.batches", "sync.dead":
			continue
		}
		pick := picks[d.name]
		if pick == nil {
			pick = func(_, v []byte) bool { return about(v) } // JSON records that name it (audit, tags, taglog, sync.state, privacy.audit)
		}
		n, err := deleteWhere(t, []byte(d.name), pick)
		if err != nil {
			return nil, fmt.Errorf("store: erase %s from %s: %w", id, d.name, err)
		}
		if n > 0 {
			e[d.name] = n
		}
	}
	n, err := t.dropMessages(func(m *Message) bool { return about(m.Body) || m.Key == id }, o.Rename)
	if err != nil {
		return nil, fmt.Errorf("store: erase %s from the outbox: %w", id, err)
	}
	if n > 0 {
		e["sync"] = n
	}
	t.credsChanged = true
	return e, t.keepSeqPast(last)
}

// EraseHousehold deletes every record of every bucket but the store's identity
// (meta: the install id, the schema, derived_seq; the legacy pseudonym secret is
// deleted too) and the pending erasure requests. Bucket sequences go on where they
// were, so no sequence is reused. Each record is deleted through the Tx (rawDel),
// never by dropping its bucket: an Update that writes a durable bucket is committed
// by undoing it and writing again what its undo log names, and a dropped bucket is
// not in it — the household's erasure was lost whole so. It holds a copy of every
// record deleted until the Update returns (the undo log), as EraseDevice does of a
// device's. Run it in Store.Erase, not Update.
func (t *Tx) EraseHousehold() (Erased, error) {
	e := Erased{}
	last := uint64(0)
	if k, _ := t.tx.Bucket(bucketEvents).Cursor().Last(); len(k) == 8 {
		last = binary.BigEndian.Uint64(k)
	}
	for _, d := range bucketDefs {
		pick := func(_, _ []byte) bool { return true }
		switch d.name {
		case "meta":
			continue
		case "privacy":
			pick = func(k, _ []byte) bool { return !bytes.HasPrefix(k, []byte(erasePrefix)) }
		}
		n, err := deleteWhere(t, []byte(d.name), pick)
		if err != nil {
			return nil, fmt.Errorf("store: erase %s: %w", d.name, err)
		}
		if n > 0 {
			e[d.name] = n
		}
	}
	if err := t.rawDel(string(bucketMeta), keySecret); err != nil {
		return nil, err
	}
	t.credsChanged = true
	return e, t.keepSeqPast(last)
}

// keepSeqPast sets derived_seq to at least last: with the events after it deleted,
// the next sequence still follows every event ever written (a consumer's cursor is
// never ahead of a new event).
func (t *Tx) keepSeqPast(last uint64) error {
	meta := t.tx.Bucket(bucketMeta)
	cur := uint64(0)
	if v := meta.Get(keyDerivedSeq); len(v) == 8 {
		cur = binary.BigEndian.Uint64(v)
	}
	if last > cur {
		return t.rawPut(string(bucketMeta), keyDerivedSeq, u64key(last))
	}
	return nil
}

// DropLegacySecret deletes the pseudonymisation secret an older hearth kept in the
// meta bucket (sync/privacy keeps the key in a file of its own now); it reports
// whether there was one. Its bytes stay in a free page until the file is compacted.
func (t *Tx) DropLegacySecret() (bool, error) {
	meta := t.tx.Bucket(bucketMeta)
	if meta.Get(keySecret) == nil {
		return false, nil
	}
	return true, t.rawDel(string(bucketMeta), keySecret)
}

// LegacySecret returns the secret an older hearth kept in the meta bucket (nil: none).
func (t *Tx) LegacySecret() []byte { return bytes.Clone(t.tx.Bucket(bucketMeta).Get(keySecret)) }
